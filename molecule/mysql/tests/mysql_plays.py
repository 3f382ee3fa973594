"""Playbooks the mysql scenario's tests write on the fly, and the
application's client they drive from the web server.

Every run from a test loads the scenario's settings and secrets first, as
converge.yml does, then imports one of the collection's playbooks.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import yaml
from webinfra_testlib import RunOutcome, ansible_playbook, copy_between, docker, scenario_secret

SCENARIO = Path(__file__).resolve().parents[1]
PLAYBOOKS = SCENARIO.parents[1] / "playbooks"
DOCKER_HOST = {"ansible_connection": "community.docker.docker"}

NETWORK = "webinfra-mysql"
# db-01..03 are the scenario's; the day-2 tests and the seed bench start 04 and 05.
DB = {n: f"webinfra-mysql-db-0{n}" for n in range(1, 6)}
ADDRESS = {DB[n]: f"172.30.5.1{n}" for n in range(1, 6)}
WEB = "webinfra-mysql-web-01"
CLIENT = "/usr/local/bin/webinfra-dbclient.py"
# Where dbclient.py finds the tier's CA (its CA_FILE).
CLIENT_CA = "/usr/local/share/webinfra-tests/db-ca.crt"


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


def play(
    playbook: str, extra_vars: dict[str, Any] | None = None, add: dict[str, list[str]] | None = None
) -> RunOutcome:
    """Run a playbook of the collection with the scenario's settings.

    `add` puts extra containers into inventory groups for this run.
    """
    plays = scenario_plays(playbook, add=add)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.yml"
        path.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
        return ansible_playbook(str(path), extra_vars=extra_vars, timeout=900)


def run(
    playbook: str, extra_vars: dict[str, Any] | None = None, add: dict[str, list[str]] | None = None
) -> str:
    """play() that must succeed; its output."""
    outcome = play(playbook, extra_vars, add)
    output = outcome.stdout + outcome.stderr
    assert outcome.rc == 0, output[-6000:]
    return output


def install_client(primary: str) -> None:
    """Put dbclient.py and the tier's CA (read from `primary`) on the web server."""
    docker("cp", str(SCENARIO / "tests" / "dbclient.py"), f"{WEB}:{CLIENT}")
    copy_between(primary, "/etc/mysql/ssl/ca.crt", WEB, CLIENT_CA)


def start_writer(primary: str, tag: str, **options: Any) -> subprocess.Popen[str]:
    """The application's client on the web server, inserting `tag`-N rows
    into app.ledger on `primary` (see dbclient.py's stream for `options`)."""
    request = {"action": "stream", "user": "app", "primary": ADDRESS[primary],
               "table": "app.ledger", "tag": tag, **options}  # fmt: skip
    return subprocess.Popen(
        ["docker", "exec", "-e", f"DB_PASSWORD={scenario_secret('app')}", WEB,
         "python3", CLIENT, json.dumps(request)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
