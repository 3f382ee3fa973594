"""Run the project's quality gates and print one summary at the end.

    python -m tools.run_tests all        # what `make test` runs
    python -m tools.run_tests lint unit  # a selection
    python -m tools.run_tests molecule --scenario haproxy --distro 13

Gates: lint, unit, sanity, build, galaxy, min-ansible, molecule. galaxy
imports the built artefact with galaxy-importer (tools/galaxy_import.py) and
fails on any error or warning or an undocumented plugin. min-ansible runs
the playbooks' syntax check, a check-mode run of every role's preflight on
the example inventory (the controller standing in for every host) and the
MIN_ANSIBLE_RUNS with .venv-min, the oldest ansible-core
meta/runtime.yml claims. The molecule gate runs every scenario on the
Debian releases SCENARIO_DISTROS (tools/molecule_runs.py) names (Debian 12
by default), WEBINFRA_TEST_JOBS (default 2) at a time, never two runs of one scenario at
once (they share container names); its runs start first and go on while the
other gates run. Each run's output goes to .cache/test-logs/; a failed run
prints the end of its log.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import yaml

from tools.gate_report import MIN_VENV_BIN, ROOT, VENV_BIN, Outcome, Report, say
from tools.molecule_runs import (
    MoleculeRun,
    discover_scenarios,
    heaviest_first,
    molecule_env,
    oldest_ansible_runs,
    plan_molecule,
    run_molecule,
    schedule,
)

GATES = ("lint", "unit", "sanity", "build", "galaxy", "min-ansible", "molecule")
EXAMPLE_INVENTORY = ROOT / "inventory" / "example"
VAULT_NAME = re.compile(r"\bvault_[a-z0-9_]+\b")


def tool(name: str) -> str:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


def run(cmd: Sequence[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> bool:
    """Run one command, streaming its output; True when it exits 0."""
    say(f"$ {' '.join(cmd)}")
    return subprocess.run(list(cmd), cwd=cwd, env=env, check=False).returncode == 0


def timed(report: Report, name: str, steps: Iterable[Sequence[str]]) -> None:
    start = time.monotonic()
    ok = all(run(step) for step in steps)
    report.add(Outcome(name, ok, time.monotonic() - start))


def python_dirs() -> list[str]:
    """Top-level folders that hold the project's Python (mypy checks them all)."""
    names = ("plugins", "tests", "molecule", "tools", "roles", "scripts")
    return [name for name in names if any((ROOT / name).rglob("*.py"))]


def gate_lint(report: Report) -> None:
    shell_scripts = [str(p) for p in sorted((ROOT / "scripts").glob("*.sh"))]
    shell_scripts.append(str(ROOT / ".ci" / "run"))
    timed(report, "yamllint", [[tool("yamllint"), "--strict", "."]])
    timed(report, "ansible-lint (production)", [[tool("ansible-lint"), "--offline"]])
    timed(
        report,
        "ruff and mypy",
        [
            [tool("ruff"), "check", "."],
            [tool("ruff"), "format", "--check", "."],
            [tool("mypy"), *python_dirs()],
        ],
    )
    timed(report, "shellcheck", [["shellcheck", "-x", *shell_scripts]])
    timed(report, "changelog fragments", [[tool("antsibull-changelog"), "lint"]])


def gate_unit(report: Report) -> None:
    timed(report, "unit tests (pytest)", [[tool("python"), "-m", "pytest", "-q", "tests/unit"]])


def shipped(path: str, build_ignore: Sequence[str]) -> bool:
    """False when galaxy.yml's build_ignore leaves `path` out of the artifact.

    As ansible-galaxy does, a pattern matches the file or any folder above it.
    """
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return not any(fnmatch.fnmatch(prefix, p) for prefix in prefixes for p in build_ignore)


def collection_files() -> list[str]:
    """The files that ship in the collection artifact (what sanity checks)."""
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
    build_ignore = [str(p) for p in galaxy.get("build_ignore", [])]
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        line
        for line in out.splitlines()
        if line and (ROOT / line).is_file() and shipped(line, build_ignore)
    ]


def gate_sanity(report: Report) -> None:
    """ansible-test sanity on what ships, laid out as ansible_collections/webinfra/stack.

    Tests, molecule scenarios and tools stay out (build_ignore): ruff, mypy
    and shellcheck check those.
    """
    start = time.monotonic()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    with tempfile.TemporaryDirectory(prefix="webinfra-sanity-") as tmp:
        dest = Path(tmp) / "ansible_collections" / "webinfra" / "stack"
        for rel in collection_files():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target)
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
        subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
        install_get_pip_stand_in()
        ok = run([tool("ansible-test"), "sanity", "--local", "--python", version], cwd=dest)
    report.add(Outcome(f"ansible-test sanity (Python {version})", ok, time.monotonic() - start))


def install_get_pip_stand_in() -> None:
    """ansible-test downloads a pip bootstrap script from a host not reachable here."""
    pip_version = pinned_pip_version()
    cache = (
        Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "scripts" / "ansible-test-get-pip.py", cache)


def pinned_pip_version() -> str:
    """The pip version ansible-test bootstraps into its sanity virtualenvs."""
    import ansible_test  # type: ignore[import-not-found,unused-ignore]

    source = (
        Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    ).read_text(encoding="utf-8")
    return parse_pinned_pip(source)


def parse_pinned_pip(source: str) -> str:
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("pip='") or stripped.startswith('pip="'):
            return stripped.split("=", 1)[1].strip("',\"")
    raise RuntimeError("could not find the pinned pip version in ansible-test")


def bundled_collection_roots() -> list[str]:
    """Folders holding the ansible_collections namespace the `ansible` package ships."""
    spec = importlib.util.find_spec("ansible_collections")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [str(Path(p).parent) for p in spec.submodule_search_locations]


def build_collection() -> Path | None:
    """Build the artefact into .cache/build; its path, or None when the build fails."""
    build_dir = ROOT / ".cache" / "build"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    ok = run(
        [tool("ansible-galaxy"), "collection", "build", "--force", "--output-path", str(build_dir)]
    )
    tarballs = sorted(build_dir.glob("webinfra-stack-*.tar.gz"))
    return tarballs[-1] if ok and tarballs else None


def gate_build(report: Report) -> None:
    """Build the collection, install the tarball offline into a consumer project."""
    start = time.monotonic()
    tarball = build_collection()
    if tarball is not None:
        with tempfile.TemporaryDirectory(prefix="webinfra-consumer-") as tmp:
            consumer = Path(tmp)
            env = dict(os.environ)
            # The consumer sees only its own install and the collections the
            # `ansible` package bundles (they satisfy galaxy.yml's dependencies).
            env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
                [str(consumer / "collections"), *bundled_collection_roots()]
            )
            env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
            (consumer / "inventory.ini").write_text("localhost ansible_connection=local\n")
            ok = run(
                [
                    tool("ansible-galaxy"),
                    "collection",
                    "install",
                    "--offline",
                    "-p",
                    str(consumer / "collections"),
                    str(tarball),
                ],
                cwd=consumer,
                env=env,
            ) and run(
                [
                    tool("ansible-playbook"),
                    "-i",
                    "inventory.ini",
                    "--syntax-check",
                    "webinfra.stack.site",
                ],
                cwd=consumer,
                env=env,
            )
    else:
        ok = False
    report.add(Outcome("collection build and consumer syntax check", ok, time.monotonic() - start))


def gate_galaxy(report: Report) -> None:
    """galaxy-importer on the built artefact: no error, no warning, every plugin documented."""
    start = time.monotonic()
    tarball = build_collection()
    ok = tarball is not None and run(
        [tool("python"), str(ROOT / "tools" / "galaxy_import.py"), str(tarball)],
        cwd=ROOT / ".cache" / "build",
    )
    report.add(Outcome("galaxy-importer and ansible-doc", ok, time.monotonic() - start))


def playbooks() -> list[Path]:
    return sorted((ROOT / "playbooks").glob("*.yml"))


def example_secrets(example: Path = EXAMPLE_INVENTORY) -> dict[str, str]:
    """Stand-in values for the vault_* secrets the example inventory reads."""
    names: set[str] = set()
    for path in sorted((example / "group_vars").rglob("*.yml")):
        names.update(VAULT_NAME.findall(path.read_text(encoding="utf-8")))
    return {name: f"{name}-not-a-secret" for name in sorted(names)}


def preflight_command(bin_dir: Path, extra_vars: Path) -> list[str]:
    """site.yml on the example inventory with only the always-tagged tasks, in check mode.

    No task carries the tag `preflight`, so --tags preflight runs exactly what
    runs whatever the tags: the inventory checks and every role's argument
    validation, preflight and published rules. They only read, and every
    host is the controller itself (connection local): the whole stack's
    variables and facts go through each role's preflight with no container.
    """
    return [
        str(bin_dir / "ansible-playbook"),
        "-i",
        str(EXAMPLE_INVENTORY),
        str(ROOT / "playbooks" / "site.yml"),
        "--tags",
        "preflight",
        "--check",
        "-e",
        "ansible_connection=local ansible_become=false",
        "-e",
        "ansible_python_interpreter={{ ansible_playbook_python }}",
        # The controller stands in for every host, so every host would have
        # its `uname -n`; the example's database hosts are named as their
        # inventory names.
        "-e",
        "db_cluster_node_name={{ inventory_hostname }}",
        "-e",
        f"@{extra_vars}",
    ]


def run_preflight_only(bin_dir: Path, env: dict[str, str]) -> bool:
    with tempfile.TemporaryDirectory(prefix="webinfra-preflight-") as tmp:
        extra_vars = Path(tmp) / "secrets.json"
        extra_vars.write_text(json.dumps(example_secrets()), encoding="utf-8")
        return run(preflight_command(bin_dir, extra_vars), env=env)


def gate_min_ansible(report: Report, with_scenarios: bool = True) -> None:
    """The playbooks and MIN_ANSIBLE_RUNS with the oldest ansible-core claimed.

    with_scenarios=False leaves the scenarios to the molecule schedule.
    """
    if not (MIN_VENV_BIN / "ansible-playbook").exists():
        say(f"{MIN_VENV_BIN} is missing: run `make venv` (scripts/setup-venv.sh) first")
        report.add(Outcome("oldest ansible-core", False, 0.0, ": .venv-min is missing"))
        return
    env = molecule_env("12", MIN_VENV_BIN)
    start = time.monotonic()
    ok = run([str(MIN_VENV_BIN / "ansible-playbook"), "--version"], env=env) and all(
        run(
            [str(MIN_VENV_BIN / "ansible-playbook"), "-i", "localhost,", "--syntax-check", str(p)],
            env=env,
        )
        for p in playbooks()
    )
    report.add(
        Outcome("playbooks syntax check (oldest ansible-core)", ok, time.monotonic() - start)
    )
    start = time.monotonic()
    ok = run_preflight_only(MIN_VENV_BIN, env)
    report.add(Outcome("whole-stack preflight (oldest ansible-core)", ok, time.monotonic() - start))
    if with_scenarios:
        for run_ in oldest_ansible_runs():
            run_molecule(run_, report)


def molecule_plan(
    gates: Sequence[str], scenarios: Sequence[str], distros: Sequence[str] | None
) -> list[MoleculeRun]:
    """Every molecule run the selected gates ask for, in one schedule.

    The oldest ansible-core's runs join the molecule gate's, so that one
    schedule keeps two runs of a scenario apart, and each replaces the
    molecule gate's run of the same scenario and release (MIN_ANSIBLE_RUNS).
    """
    runs = plan_molecule(scenarios, distros) if "molecule" in gates else []
    if "molecule" in gates and "min-ansible" in gates and (MIN_VENV_BIN / "molecule").exists():
        oldest = oldest_ansible_runs()
        covered = {(r.scenario, r.distro) for r in oldest}
        runs = heaviest_first([r for r in runs if (r.scenario, r.distro) not in covered] + oldest)
    return runs


def run_gates(
    gates: Sequence[str],
    report: Report,
    scenarios: Sequence[str],
    distros: Sequence[str] | None,
) -> None:
    """Run the gates; the molecule runs start first and go on beside the others.

    The scenarios spend most of their time waiting on containers, and the
    first minutes of each are package installs with no timing asserted, so
    the quick gates (lint, unit, sanity, build, galaxy) run meanwhile.
    """
    runs = molecule_plan(gates, scenarios, distros)
    jobs = int(os.environ.get("WEBINFRA_TEST_JOBS", "2"))
    background: threading.Thread | None = None
    if runs:
        say(f"molecule: {len(runs)} runs, {jobs} at a time: {', '.join(r.label for r in runs)}")
        background = threading.Thread(target=schedule, args=(runs, jobs, report))
        background.start()
    for gate in gates:
        if gate == "molecule":
            continue
        say(f"\n=== {gate} ===")
        if gate == "lint":
            gate_lint(report)
        elif gate == "unit":
            gate_unit(report)
        elif gate == "sanity":
            gate_sanity(report)
        elif gate == "build":
            gate_build(report)
        elif gate == "galaxy":
            gate_galaxy(report)
        elif gate == "min-ansible":
            gate_min_ansible(report, with_scenarios="molecule" not in gates)
    if background is not None:
        background.join()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gates", nargs="+", choices=(*GATES, "all"))
    parser.add_argument("--scenario", action="append", help="molecule scenario (repeatable)")
    parser.add_argument("--distro", action="append", choices=("12", "13"))
    args = parser.parse_args(argv)
    # Every gate sees the pinned tools and resolves webinfra.stack to this
    # checkout, whether it was started by make or by hand.
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    ours = str(ROOT / ".venv" / "collections")
    theirs = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(p for p in (ours, theirs) if p)
    gates = GATES if "all" in args.gates else tuple(g for g in GATES if g in args.gates)

    report = Report()
    started = time.monotonic()
    run_gates(gates, report, args.scenario or discover_scenarios(), args.distro)
    say(report.summary())
    say(f"wall time {time.monotonic() - started:.0f} s")
    return 1 if report.failed or not report.outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
