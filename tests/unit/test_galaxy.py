"""What a Galaxy user is told about the collection is true.

The minimum ansible-core is one claim: meta/runtime.yml, every role's
min_ansible_version and the virtualenv the min-ansible gate tests with
(requirements-min-ansible.txt) agree. The only modules mocked for Galaxy's
offline lint are those the playbooks take from declared dependencies, and
each exists there. tools/galaxy_import.py counts what the importer reports.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tools import galaxy_import, run_tests

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta" / "main.yml").is_file())
_FQCN = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$")
_TASK_LISTS = ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def major_minor(version: str) -> tuple[int, int]:
    match = re.match(r"^\D*(\d+)\.(\d+)", version)
    assert match, f"not a version: {version!r}"
    return int(match.group(1)), int(match.group(2))


def claimed_minimum() -> tuple[int, int]:
    claim = str(_load(ROOT / "meta" / "runtime.yml")["requires_ansible"])
    assert claim.startswith(">="), f"requires_ansible should be a lower bound, got {claim}"
    return major_minor(claim)


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, sep, version = line.split("#", 1)[0].strip().partition("==")
        if sep:
            out[name.split("[", 1)[0].lower()] = version
    return out


def test_major_minor_reads_claims_and_pins() -> None:
    assert major_minor(">=2.16.0") == (2, 16)
    assert major_minor("2.17") == (2, 17)


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_min_ansible_version_matches_runtime(role: Path) -> None:
    info = _load(role / "meta" / "main.yml")["galaxy_info"]
    assert major_minor(str(info["min_ansible_version"])) == claimed_minimum()


def test_min_ansible_gate_tests_the_claimed_minimum() -> None:
    pinned = pins(ROOT / "requirements-min-ansible.txt")
    core = major_minor(pinned["ansible-core"])
    assert core == claimed_minimum()
    # The `ansible` package N bundles collections for ansible-core 2.(N+7).
    assert int(pinned["ansible"].split(".")[0]) == core[1] - 7
    # The tools the gate runs share the main virtualenv's pins.
    main = pins(ROOT / "requirements.txt")
    for tool in ("molecule", "molecule-plugins", "pytest-testinfra", "docker"):
        assert pinned[tool] == main[tool], tool


def playbook_modules(path: Path) -> set[str]:
    """FQCN modules the tasks of one playbook call (roles and imports aside)."""
    found: set[str] = set()

    def walk(items: Any) -> None:
        for item in items or []:
            if not isinstance(item, dict):
                continue
            found.update(k for k in item if _FQCN.match(str(k)))
            for key in _TASK_LISTS:
                walk(item.get(key))

    walk(_load(path))
    return found


def test_playbook_modules_reads_plays_and_blocks(tmp_path: Path) -> None:
    playbook = tmp_path / "p.yml"
    playbook.write_text(
        "- hosts: all\n  tasks:\n    - block:\n        - community.mysql.mysql_query: {}\n"
        "  post_tasks:\n    - ansible.builtin.debug: {}\n",
        encoding="utf-8",
    )
    assert playbook_modules(playbook) == {"community.mysql.mysql_query", "ansible.builtin.debug"}


def test_lint_mocks_exactly_the_dependency_modules_of_the_playbooks() -> None:
    dependencies = set(_load(ROOT / "galaxy.yml")["dependencies"])
    used = set().union(*(playbook_modules(p) for p in (ROOT / "playbooks").glob("*.yml")))
    from_dependencies = {m for m in used if m.rsplit(".", 1)[0] in dependencies}
    mocked = set(_load(ROOT / ".ansible-lint").get("mock_modules") or [])
    assert sorted(mocked) == sorted(from_dependencies)


@pytest.mark.parametrize(
    "module", sorted(_load(ROOT / ".ansible-lint").get("mock_modules") or []), ids=str
)
def test_every_mocked_module_exists_in_its_collection(module: str) -> None:
    namespace, collection, name = module.split(".")
    spec = importlib.util.find_spec(
        f"ansible_collections.{namespace}.{collection}.plugins.modules.{name}"
    )
    assert spec is not None, f"{module} is not in the installed {namespace}.{collection}"


def test_lint_config_ships_and_build_files_do_not() -> None:
    ignored = [str(p) for p in _load(ROOT / "galaxy.yml")["build_ignore"]]
    assert run_tests.shipped(".ansible-lint", ignored)
    for path in (".venv-min/bin/python", "requirements-min-ansible.txt"):
        assert not run_tests.shipped(path, ignored), path


def test_plugin_names_lists_every_filter_and_test() -> None:
    filters = galaxy_import.plugin_names(ROOT / "plugins" / "filter", "filter")
    tests = galaxy_import.plugin_names(ROOT / "plugins" / "test", "test")
    assert "duplicates" in filters and "ufw_desired_rules" in filters
    assert tests == ["ipv4_address", "ipv4_interface"]
    assert len(filters) + len(tests) == 11


@pytest.mark.parametrize(
    ("entry", "problems"),
    [
        ({"doc": {"short_description": "x"}, "examples": "- x", "return": {"_value": {}}}, []),
        ({"doc": {}, "examples": "", "return": None}, ["DOCUMENTATION", "EXAMPLES", "RETURN"]),
    ],
)
def test_doc_problems_names_each_missing_part(entry: dict[str, Any], problems: list[str]) -> None:
    found = galaxy_import.doc_problems({"a.b.c": entry}, "a.b.c")
    assert len(found) == len(problems)
    assert all(word in line for word, line in zip(problems, found, strict=True))


def test_doc_problems_when_ansible_doc_returns_nothing() -> None:
    assert galaxy_import.doc_problems({}, "a.b.c") == ["a.b.c: ansible-doc returned nothing"]


def test_galaxy_environment_hides_every_other_collection() -> None:
    env = galaxy_import.galaxy_environment({"ANSIBLE_COLLECTIONS_PATH": "/x", "PATH": "/bin"})
    assert env == {"PATH": "/bin", "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "False"}


def test_findings_count_warnings_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    findings = galaxy_import.Findings()
    logger = logging.getLogger("test_galaxy.collect")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(galaxy_import._Collect(findings))
    logger.info("Loading role x")
    logger.warning("playbooks/a.yml:1: syntax-check[unknown-module]")
    logger.error("Error running ansible-doc")
    assert (len(findings.errors), len(findings.warnings), findings.ok) == (1, 1, False)
    assert findings.summary().startswith("galaxy-importer: 1 errors, 1 warnings;")
    assert "WARNING: playbooks/a.yml" in capsys.readouterr().out
