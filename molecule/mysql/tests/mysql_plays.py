"""Playbooks the mysql scenario's tests write on the fly.

Every run from a test loads the scenario's settings and secrets first, as
converge.yml does, then imports one of the collection's playbooks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SCENARIO = Path(__file__).resolve().parents[1]
PLAYBOOKS = SCENARIO.parents[1] / "playbooks"
DOCKER_HOST = {"ansible_connection": "community.docker.docker"}


def scenario_plays(
    playbook: str,
    secrets_file: Path | None = None,
    add: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """Plays that run playbooks/`playbook` with the scenario's settings.

    `secrets_file` replaces vars/secrets.yml (a test that breaks a secret);
    `add` puts containers into inventory groups for this run only.
    """
    plays: list[dict[str, Any]] = []
    if add:
        tasks = [
            {
                "name": f"Add {name}",
                "ansible.builtin.add_host": {"name": name, "groups": groups, **DOCKER_HOST},
            }
            for name, groups in add.items()
        ]
        plays.append(
            {"name": "Extra hosts", "hosts": "localhost", "gather_facts": False, "tasks": tasks}
        )
    secrets = secrets_file or SCENARIO / "vars" / "secrets.yml"
    plays.append(
        {
            "name": "Load the scenario's settings",
            "hosts": "all",
            "gather_facts": False,
            # As an inventory's group_vars would be: there whatever --tags select.
            "tags": ["always"],
            "tasks": [
                {
                    "name": "Settings",
                    "ansible.builtin.include_vars": str(SCENARIO / "vars" / "scenario.yml"),
                },
                {"name": "Secrets", "ansible.builtin.include_vars": str(secrets), "no_log": True},
            ],
        }
    )
    plays.append({"name": "Run", "ansible.builtin.import_playbook": str(PLAYBOOKS / playbook)})
    return plays
