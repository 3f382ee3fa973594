"""Unit tests of the gate runner's planning logic (tools/run_tests.py, molecule_runs.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

import tools.run_tests as run_tests
from tools.gate_report import MIN_VENV_BIN, VENV_BIN, Outcome, Report
from tools.molecule_runs import (
    MIN_ANSIBLE_RUNS,
    MITOGEN_STRATEGY,
    SCENARIO_DISTROS,
    SCENARIO_WEIGHT,
    STRATEGY_DIR,
    MoleculeRun,
    PhaseClock,
    discover_scenarios,
    may_start,
    molecule_env,
    plan_molecule,
)
from tools.run_tests import (
    GATES,
    collection_files,
    example_secrets,
    molecule_plan,
    parse_pinned_pip,
    preflight_command,
    shipped,
)


def test_resources_folder_is_not_a_scenario(tmp_path: Path) -> None:
    for name in ("smoke", "haproxy", "resources"):
        (tmp_path / "molecule" / name).mkdir(parents=True)
    (tmp_path / "molecule" / "smoke" / "molecule.yml").write_text("---\n")
    (tmp_path / "molecule" / "haproxy" / "molecule.yml").write_text("---\n")
    assert discover_scenarios(tmp_path) == ["haproxy", "smoke"]


def test_plan_runs_each_scenario_on_its_releases_heaviest_first() -> None:
    runs = plan_molecule(["haproxy", "site", "site_seed", "smoke"])
    assert runs == [
        MoleculeRun("site", "12"),
        MoleculeRun("site_seed", "13"),
        MoleculeRun("haproxy", "12"),
        MoleculeRun("smoke", "12"),
        MoleculeRun("smoke", "13"),
    ]


def test_every_scenario_but_smoke_has_a_weight_so_none_long_starts_last() -> None:
    # An unweighted scenario sorts last; monitoring (501 s) once ran alone at the end.
    assert set(discover_scenarios()) - set(SCENARIO_WEIGHT) == {"smoke"}


def test_debian_13_runs_every_role_once() -> None:
    # site_seed converges every role on 13 but keepalived and monitoring.
    on_13 = {s for s, releases in SCENARIO_DISTROS.items() if "13" in releases}
    assert {"site_seed", "keepalived", "monitoring"} <= on_13


def test_the_roles_site_converges_on_debian_12_get_no_second_run_there() -> None:
    # site (Debian 12) converges and tests keepalived and monitoring.
    runs = {(r.scenario, r.distro) for r in plan_molecule(["site", "keepalived", "monitoring"])}
    assert runs == {("site", "12"), ("keepalived", "13"), ("monitoring", "13")}


def test_oldest_ansible_runs_have_their_own_venv_label_and_log() -> None:
    normal, oldest = MoleculeRun("smoke", "12"), MoleculeRun("smoke", "12", oldest_ansible=True)
    assert (normal.bin_dir, oldest.bin_dir) == (VENV_BIN, MIN_VENV_BIN)
    assert oldest.label == "molecule smoke (Debian 12, oldest ansible-core)"
    assert oldest.log != normal.log
    assert oldest.log.name == "molecule-smoke-debian12-min-ansible.log"


def test_galaxy_and_oldest_ansible_gates_run_before_molecule() -> None:
    assert GATES.index("galaxy") < GATES.index("molecule")
    assert GATES.index("min-ansible") < GATES.index("molecule")
    # The oldest ansible-core converges the whole stack, not just the smoke host.
    assert ("site_seed", "13") in MIN_ANSIBLE_RUNS
    assert ("smoke", "12") in MIN_ANSIBLE_RUNS


def test_oldest_ansible_runs_replace_the_same_runs_in_the_molecule_schedule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "molecule").touch()
    monkeypatch.setattr(run_tests, "MIN_VENV_BIN", tmp_path)
    runs = molecule_plan(["min-ansible", "molecule"], ["nginx", "site", "site_seed", "smoke"], None)
    assert runs == [
        MoleculeRun("site", "12"),
        MoleculeRun("site_seed", "13", oldest_ansible=True),
        MoleculeRun("nginx", "12"),
        MoleculeRun("smoke", "13"),
        MoleculeRun("smoke", "12", oldest_ansible=True),
    ]
    # On their own, the oldest ansible-core's gate runs its scenarios itself.
    assert molecule_plan(["min-ansible"], ["smoke"], None) == []
    assert MoleculeRun("smoke", "12", oldest_ansible=True) not in molecule_plan(
        ["molecule"], ["smoke"], None
    )


def test_example_secrets_cover_every_vault_name(tmp_path: Path) -> None:
    (tmp_path / "group_vars" / "all").mkdir(parents=True)
    (tmp_path / "group_vars" / "all" / "main.yml").write_text(
        'a: "{{ vault_a_password }}"\nb: "{{ vault_b }}" # vault_a_password again\n'
    )
    secrets = example_secrets(tmp_path)
    assert sorted(secrets) == ["vault_a_password", "vault_b"]
    assert all(len(v) >= 12 for v in secrets.values())


def test_preflight_run_only_reads_on_the_controller(tmp_path: Path) -> None:
    cmd = preflight_command(MIN_VENV_BIN, tmp_path / "s.json")
    assert cmd[0] == str(MIN_VENV_BIN / "ansible-playbook")
    assert cmd[cmd.index("--tags") + 1] == "preflight"
    assert "--check" in cmd
    assert "ansible_connection=local ansible_become=false" in cmd
    assert cmd[-1] == f"@{tmp_path / 's.json'}"


def test_explicit_distro_overrides_the_plan() -> None:
    assert plan_molecule(["nginx"], ["13"]) == [MoleculeRun("nginx", "13")]


def test_summary_ends_with_the_counts_line() -> None:
    report = Report()
    report.add(Outcome("yamllint", True, 1.0))
    report.add(Outcome("molecule smoke (Debian 12)", False, 20.0))
    assert report.summary().splitlines()[-1] == "gates: 1 passed, 1 failed"
    assert [o.name for o in report.failed] == ["molecule smoke (Debian 12)"]


def test_pinned_pip_is_read_from_ansible_test_source() -> None:
    source = "    infrastructure_packages = dict(\n        pip='24.2',\n    )\n"
    assert parse_pinned_pip(source) == "24.2"


def test_missing_pin_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="pinned pip"):
        parse_pinned_pip("nothing here")


def test_the_artefact_leaves_the_lab_and_the_build_files_out() -> None:
    files = collection_files()
    assert "roles/haproxy/tasks/main.yml" in files
    assert "inventory/example/hosts.yml" in files
    leaked = [
        f
        for f in files
        if f.startswith(("inventory/lab/", "roles/_lab_acme/", "changelogs/fragments/"))
        or f.startswith("playbooks/lab_")
        or f.endswith(".deb")
        or f == ".ansible-lint-ignore"
    ]
    assert leaked == []


def test_sanity_skips_what_build_ignore_leaves_out() -> None:
    ignore = ["molecule", "tests", "*.tar.gz", ".ci"]
    assert shipped("roles/nginx/tasks/main.yml", ignore)
    assert shipped("plugins/filter/addresses.py", ignore)
    assert not shipped("molecule/nginx/tests/test_nginx.py", ignore)
    assert not shipped("tests/unit/test_lab.py", ignore)
    assert not shipped("webinfra-stack-1.0.0.tar.gz", ignore)


def test_the_two_clusters_scenarios_never_run_side_by_side() -> None:
    assert may_start("db_cluster", {"haproxy"})
    assert not may_start("db_cluster", {"site"})
    assert not may_start("site", {"db_cluster"})
    assert not may_start("site", {"site"})
    assert may_start("site", {"site_seed"})


def test_the_phase_clock_times_each_molecule_action_from_its_log_lines() -> None:
    now = iter([0.0, 10.0, 250.0, 400.0, 400.5])
    clock = PhaseClock(clock=lambda: next(now))
    clock.line("INFO     [site > create] Executing\n")
    clock.line("TASK [x] ****\n")
    clock.line("INFO     [site > converge] Executing\n")
    clock.line("INFO     [site > verify] Executing\n")
    clock.line("INFO     [site > destroy] Executing\n")
    assert clock.finish() == " (create 10 s, converge 240 s, verify 150 s)"
    assert clock.seconds["destroy"] == 0.5


def test_the_phase_clock_says_nothing_without_action_lines() -> None:
    clock = PhaseClock(clock=lambda: 0.0)
    clock.line("PLAY RECAP ****\n")
    assert clock.finish() == ""


def test_webinfra_mitogen_1_plays_every_run_but_the_oldest_ansible_ones_under_mitogen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEBINFRA_MITOGEN", "1")
    assert MoleculeRun("site", "12").mitogen
    assert not MoleculeRun("site_seed", "13", oldest_ansible=True).mitogen
    env = molecule_env("12", mitogen=True)
    assert env["ANSIBLE_STRATEGY"] == MITOGEN_STRATEGY
    assert (STRATEGY_DIR / f"{MITOGEN_STRATEGY}.py").is_file()
    assert env["ANSIBLE_STRATEGY_PLUGINS"] == str(STRATEGY_DIR)
    assert "ANSIBLE_STRATEGY" not in molecule_env("12", MIN_VENV_BIN)


def test_without_webinfra_mitogen_every_run_plays_with_ansibles_own_executor(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ANSIBLE_STRATEGY", raising=False)
    monkeypatch.delenv("WEBINFRA_MITOGEN", raising=False)
    assert "ANSIBLE_STRATEGY" not in molecule_env("12", mitogen=True)
    monkeypatch.setenv("WEBINFRA_MITOGEN", "0")
    assert "ANSIBLE_STRATEGY" not in molecule_env("12", mitogen=True)
