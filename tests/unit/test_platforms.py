"""Only the platforms `make test` runs on pass a role's preflight.

The filter is tested on its own; then every role's preflight runs on the
controller (connection local) with the facts of an Ubuntu host, and each
must refuse it before anything else, naming the tested platforms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from plugins.filter.platforms import FilterModule, platform_problem

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = ROOT / ".venv" / "bin" / "ansible-playbook"
# The roles a playbook includes (the mysql roles check through _mysql_common).
ROLES = sorted(
    p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "preflight.yml").exists()
)
REPORT = "REFUSED {{ inventory_hostname }}={{ refused }}"
UBUNTU = {"distribution": "Ubuntu", "distribution_major_version": "22", "os_family": "Debian"}


@pytest.mark.parametrize("version", ["12", "13"])
def test_debian_12_and_13_pass(version: str) -> None:
    facts = {"distribution": "Debian", "distribution_major_version": version}
    assert platform_problem(facts) == ""


@pytest.mark.parametrize(
    ("facts", "named"),
    [
        (UBUNTU, "Ubuntu 22"),
        ({"distribution": "Debian", "distribution_major_version": "11"}, "Debian 11"),
        ({}, "unknown"),
    ],
)
def test_anything_else_is_refused_with_the_tested_platforms_named(
    facts: dict[str, str], named: str
) -> None:
    problem = platform_problem(facts)
    assert problem.startswith(f"{named} is not a platform")
    assert "Debian 12 and 13" in problem
    assert "webinfra_allow_untested_platform" in problem


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters()["platform_problem"] is platform_problem


def run_preflights(tmp_path: Path, extra: dict[str, object]) -> dict[str, str]:
    """Each role's preflight on an Ubuntu host; the message each one failed with."""
    plays = [
        {
            "name": "Every role's preflight on an untested platform",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Run the role's preflight",
                    "block": [
                        {
                            "name": "Include the preflight",
                            "ansible.builtin.include_role": {
                                "name": "webinfra.stack.{{ inventory_hostname }}",
                                "tasks_from": "preflight.yml",
                            },
                        },
                        {"ansible.builtin.set_fact": {"refused": ""}},
                    ],
                    "rescue": [
                        {"ansible.builtin.set_fact": {"refused": "{{ ansible_failed_result.msg }}"}}
                    ],
                },
                {"ansible.builtin.debug": {"msg": REPORT}},
            ],
        }
    ]
    playbook = tmp_path / "preflights.yml"
    playbook.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
    inventory = tmp_path / "hosts.yml"
    hosts = {role: {"ansible_connection": "local"} for role in ROLES}
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}), encoding="utf-8")
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".venv" / "collections")
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.builtin.default"
    env["ANSIBLE_FORCE_COLOR"] = "0"
    variables = {"ansible_facts": UBUNTU, "ansible_python_interpreter": sys.executable, **extra}
    done = subprocess.run(
        [str(PLAYBOOK), "-i", str(inventory), str(playbook), "-e", json.dumps(variables)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        if '"msg": "REFUSED ' in line:
            role, _sep, message = line.split('"msg": "REFUSED ', 1)[1].rstrip('"').partition("=")
            found[role] = message
    return found


def test_every_role_refuses_an_untested_platform_first(tmp_path: Path) -> None:
    refused = run_preflights(tmp_path, {})
    assert sorted(refused) == ROLES
    for role, message in refused.items():
        assert message.startswith("Ubuntu 22 is not a platform"), f"{role}: {message}"


def test_an_expert_may_go_on_at_their_own_risk(tmp_path: Path) -> None:
    refused = run_preflights(tmp_path, {"webinfra_allow_untested_platform": True})
    # Past the platform check: whatever else a preflight says, not that.
    assert sorted(refused) == ROLES
    assert not [r for r, message in refused.items() if "is not a platform" in message], refused
