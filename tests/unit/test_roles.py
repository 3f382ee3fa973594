"""Every public role documents exactly the variables it defaults.

meta/argument_specs.yml must describe every key of defaults/main.yml and
nothing else (the prometheus-community rule), so a wrong variable is caught
by the role's argument validation and every default is documented.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").glob("*") if p.is_dir())
PUBLIC = [p for p in ROLES if not p.name.startswith("_")]
# Roles tested together in one scenario named differently from the role.
SHARED_SCENARIOS = {"mysql_primary": "mysql", "mysql_replica": "mysql"}


def _load(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def _spec_options(role: Path) -> dict[str, Any]:
    specs = _load(role / "meta" / "argument_specs.yml")["argument_specs"]
    return dict(specs["main"].get("options") or {})


@pytest.mark.parametrize("role", PUBLIC, ids=lambda p: p.name)
def test_role_has_specs_readme_and_scenario(role: Path) -> None:
    assert (role / "meta" / "argument_specs.yml").is_file()
    assert (role / "README.md").is_file()
    scenario = SHARED_SCENARIOS.get(role.name, role.name)
    assert (ROOT / "molecule" / scenario / "molecule.yml").is_file()


@pytest.mark.parametrize("role", PUBLIC, ids=lambda p: p.name)
def test_argument_specs_match_defaults(role: Path) -> None:
    defaults_file = role / "defaults" / "main.yml"
    defaults = set((_load(defaults_file) or {}) if defaults_file.is_file() else {})
    options = _spec_options(role)
    required = {name for name, spec in options.items() if spec.get("required")}
    assert sorted(defaults - set(options)) == [], "defaults missing from argument_specs"
    assert sorted(set(options) - defaults - required) == [], (
        "argument_specs options with neither a default nor required: true"
    )


@pytest.mark.parametrize("role", PUBLIC, ids=lambda p: p.name)
def test_argument_specs_carry_the_defaults(role: Path) -> None:
    """ansible-doc shows every literal default, and no spec default is a template.

    A spec default must equal defaults/main.yml's value. A value derived by a
    template (from the inventory, other hosts) stays out of the spec: Ansible
    templates the argument spec when it validates the role, so a derived
    default would be computed there, and fail there when a host it reads is
    down (the gunicorn_app re-run of db_failover.yml after a primary died).
    """
    defaults = _load(role / "defaults" / "main.yml") or {}
    options = _spec_options(role)
    templated = [n for n, opt in options.items() if "{{" in json.dumps(opt.get("default"))]
    wrong = {
        name: (opt["default"], defaults.get(name))
        for name, opt in options.items()
        if "default" in opt and opt["default"] != defaults.get(name)
    }
    missing = [
        name
        for name, value in defaults.items()
        if "default" not in options.get(name, {}) and "{{" not in json.dumps(value)
    ]
    assert templated == []
    assert wrong == {}
    assert missing == []


@pytest.mark.parametrize("role", PUBLIC, ids=lambda p: p.name)
def test_public_variables_carry_the_role_prefix(role: Path) -> None:
    unprefixed = [name for name in _spec_options(role) if not name.startswith(f"{role.name}_")]
    assert unprefixed == []


@pytest.mark.parametrize("role", PUBLIC, ids=lambda p: p.name)
def test_every_option_is_described(role: Path) -> None:
    undescribed = [
        name for name, spec in _spec_options(role).items() if not spec.get("description")
    ]
    assert undescribed == []


@pytest.mark.parametrize("role", PUBLIC, ids=lambda p: p.name)
def test_readme_lists_every_variable(role: Path) -> None:
    readme = (role / "README.md").read_text(encoding="utf-8")
    missing = [name for name in _spec_options(role) if f"`{name}`" not in readme]
    assert missing == []


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_templates_carry_the_managed_header(role: Path) -> None:
    unmarked = [
        str(t.relative_to(role))
        for t in (role / "templates").rglob("*.j2")
        if "ansible_managed" not in t.read_text(encoding="utf-8")
    ]
    assert unmarked == []


def test_the_shared_mysql_entry_points_document_exactly_what_their_callers_pass() -> None:
    """_mysql_common's entry points check `_mysql` against their spec: each key
    the two MariaDB roles pass must be documented, and nothing else."""
    specs = yaml.safe_load((ROOT / "roles/_mysql_common/meta/argument_specs.yml").read_text())
    entry_points = ("preflight", "install", "tls", "configure", "service", "role_change")
    for caller in ("mysql_primary", "mysql_replica"):
        tasks = "\n".join(
            p.read_text(encoding="utf-8") for p in (ROOT / "roles" / caller / "tasks").glob("*.yml")
        )
        used = {ep for ep in entry_points if f"tasks_from: {ep}\n" in tasks}
        assert used == set(entry_points), (caller, used)
        passed = yaml.safe_load((ROOT / "roles" / caller / "vars/main.yml").read_text())
        keys = set(passed[f"_{caller}_common"])
        for entry_point in entry_points:
            documented = set(specs["argument_specs"][entry_point]["options"]["_mysql"]["options"])
            assert keys == documented, (caller, entry_point, keys ^ documented)


def _private_name(role: str) -> re.Pattern[str]:
    """A name private to `role`: `_<role>_...` (constants, facts) or `__<role>_...` (results)."""
    return re.compile(rf"(?<![A-Za-z0-9_.])__?{re.escape(role.lstrip('_'))}_[a-z0-9_]+")


def _reads_of_private_names(text: str, owner: str | None) -> list[str]:
    """Names private to a role other than `owner` that `text` reads.

    A name the text sets itself (a key, a registered result) is its own: a
    playbook passing an internal role's documented `_<role>_*` inputs in
    include_role's `vars`, or naming its own results, reads nothing."""
    own = set(re.findall(r"^\s*(?:- )?([A-Za-z_][A-Za-z0-9_]*):", text, re.MULTILINE))
    own |= set(re.findall(r"register:\s*([A-Za-z_][A-Za-z0-9_]*)", text))
    return sorted(
        {
            match.group(0)
            for role in ROLES
            if role.name != owner
            for match in _private_name(role.name).finditer(text)
        }
        - own
    )


def _role_sources(role: Path) -> list[Path]:
    return [
        path
        for part in ("tasks", "handlers", "templates", "vars", "defaults")
        for path in sorted((role / part).rglob("*"))
        if path.is_file()
    ]


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_no_role_reads_another_roles_private_names(role: Path) -> None:
    """A role reads another role only through documented names: never its
    `_<role>_*` constants and facts or `__<role>_*` results (style guide: a
    role never reaches into another role's variables)."""
    reads = {
        str(path.relative_to(ROOT)): found
        for path in _role_sources(role)
        if (found := _reads_of_private_names(path.read_text(encoding="utf-8"), role.name))
    }
    assert reads == {}


PLAYBOOKS = sorted((ROOT / "playbooks").glob("*.yml"))


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_no_playbook_reads_a_roles_private_names(playbook: Path) -> None:
    assert _reads_of_private_names(playbook.read_text(encoding="utf-8"), None) == []


def test_the_private_name_check_catches_a_read() -> None:
    text = 'login_unix_socket: "{{ _mysql_common_socket }}"\nwhen: __mysql_common_apt is changed'
    assert _reads_of_private_names(text, "mysql_primary") == [
        "__mysql_common_apt",
        "_mysql_common_socket",
    ]
    assert _reads_of_private_names(text, "_mysql_common") == []
    assert _reads_of_private_names("{{ mysql_common_server.socket }}", "mysql_primary") == []
    passed = "vars:\n  _lab_acme_port: 1\n  register: __lab_acme_ca\nx: '{{ __lab_acme_ca }}'"
    assert _reads_of_private_names(passed, None) == []


def test_the_shared_mysql_preflight_documents_and_sets_what_its_callers_read() -> None:
    """The callers read `mysql_common_server.<key>`: each key is set by the
    preflight entry point and named in its argument spec."""
    preflight = yaml.safe_load((ROOT / "roles/_mysql_common/tasks/preflight.yml").read_text())
    facts = [t["ansible.builtin.set_fact"] for t in preflight if "ansible.builtin.set_fact" in t]
    keys = set(next(f for f in facts if "mysql_common_server" in f)["mysql_common_server"])
    specs = yaml.safe_load((ROOT / "roles/_mysql_common/meta/argument_specs.yml").read_text())
    described = " ".join(specs["argument_specs"]["preflight"]["description"])
    documented = set(re.findall(r"C\(mysql_common_server\.([a-z_]+)\)", described))
    read: set[str] = set()
    for caller in ("mysql_primary", "mysql_replica"):
        for path in (ROOT / "roles" / caller / "tasks").glob("*.yml"):
            read |= set(re.findall(r"mysql_common_server\.([a-z_]+)", path.read_text()))
    assert read, "the callers read nothing from mysql_common_server"
    assert sorted(read - keys) == [], "read but not set"
    assert documented == keys, "set and documented differ"


def test_the_mysqld_exporter_account_gets_the_same_grants_from_both_creators() -> None:
    """mysql_primary owns the exporter's account; the deprecated
    exporters_mysqld_manage_user path creates the same account, with the same
    privileges and connection cap, until it is removed."""
    dialect = _load(ROOT / "roles/_mysql_common/vars/Debian.yml")["_mysql_common_sql"]
    exporters = _load(ROOT / "roles/exporters/vars/Debian.yml")
    assert dialect["exporter_privileges"] == exporters["_exporters_mysqld_privileges"]
    accounts = _load(ROOT / "roles/mysql_primary/tasks/accounts.yml")
    owner = next(t for t in accounts if "exporter" in t["name"])["community.mysql.mysql_user"]
    defaults = _load(ROOT / "roles/exporters/defaults/main.yml")
    assert owner["resource_limits"] == {
        "MAX_USER_CONNECTIONS": defaults["exporters_mysqld_max_user_connections"]
    }
    assert owner["name"] == "{{ mysql_primary_exporter_user }}"
    primary = _load(ROOT / "roles/mysql_primary/defaults/main.yml")
    assert primary["mysql_primary_exporter_user"] == defaults["exporters_mysqld_user"]
    # 1.x keeps the deprecated default; the stack's playbook turns it off.
    assert defaults["exporters_mysqld_manage_user"] is True
    site = _load(ROOT / "playbooks/site.yml")
    exporters = next(
        r for play in site for r in play.get("roles", []) if r["role"] == "webinfra.stack.exporters"
    )
    assert exporters["vars"]["exporters_mysqld_manage_user"] is False
