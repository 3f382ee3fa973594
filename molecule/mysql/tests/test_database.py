"""The database tier behaves as a user of it expects.

One primary (db-01), two replicas (db-02, db-03) and a web server (web-01),
the only host the application account may connect from. Queries as root run
through the unix socket inside the database containers (docker exec);
queries as the application run from the web server (dbclient.py).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from mysql_plays import CLIENT, SCENARIO, install_client, scenario_plays
from webinfra_database import mysql_replica_status, mysql_sql
from webinfra_testlib import (
    RunOutcome,
    ansible_playbook,
    docker,
    play_recap,
    scenario_secret,
    wait_for,
)

PRIMARY = "webinfra-mysql-db-01"
REPLICAS = ["webinfra-mysql-db-02", "webinfra-mysql-db-03"]
WEB = "webinfra-mysql-web-01"
ADDRESS = {
    PRIMARY: "172.30.5.11",
    REPLICAS[0]: "172.30.5.12",
    REPLICAS[1]: "172.30.5.13",
    WEB: "172.30.5.21",
}
CONFIG = "/etc/mysql/mariadb.conf.d/60-webinfra.cnf"


def secret(name: str) -> str:
    return scenario_secret(name)


def sql(container: str, statement: str) -> str:
    return mysql_sql(container, statement)


def replica_status(container: str) -> dict[str, str]:
    status = mysql_replica_status(container)
    assert status, f"{container} is not a replica"
    return status


def app_client(request: dict[str, Any]) -> dict[str, Any]:
    """Run dbclient.py on the web server as the application account."""
    return client_as("app", secret("app"), request)


def client_as(user: str, password: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run dbclient.py on the web server as `user`."""
    done = docker(
        "exec", "-e", f"DB_PASSWORD={password}", WEB,
        "python3", CLIENT, json.dumps({**request, "user": user}),
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def client_from(container: str, *args: str) -> tuple[int, str]:
    """Run the mariadb command-line client in a database container."""
    done = docker("exec", container, "mariadb", *args, check=False)
    return done.returncode, done.stdout + done.stderr


def table_checksum(container: str, table: str) -> str:
    return sql(container, f"CHECKSUM TABLE {table}").split()[-1]


def count_and_checksum(container: str, table: str) -> tuple[str, str]:
    return sql(container, f"SELECT COUNT(*) FROM {table}"), table_checksum(container, table)


def wait_in_sync(table: str, timeout: float = 60.0) -> None:
    """Wait until every replica holds exactly the primary's rows of `table`."""
    want = count_and_checksum(PRIMARY, table)
    for replica in REPLICAS:
        wait_for(
            functools.partial(count_and_checksum, replica, table),
            accept=lambda got: got == want,
            timeout=timeout,
        )


@contextlib.contextmanager
def plain_transport_allowed(server: str) -> Iterator[None]:
    """Let TCP clients in without TLS for a moment, to test the accounts' own rule."""
    sql(server, "SET GLOBAL require_secure_transport = OFF")
    try:
        yield
    finally:
        sql(server, "SET GLOBAL require_secure_transport = ON")


@pytest.fixture(scope="module", autouse=True)
def probe_table() -> None:
    install_client(PRIMARY)
    sql(
        PRIMARY,
        "CREATE TABLE IF NOT EXISTS app.probe (id INT AUTO_INCREMENT PRIMARY KEY,"
        " token VARCHAR(64) NOT NULL, created TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6))",
    )
    wait_in_sync("app.probe")


def test_a_row_written_on_the_primary_is_on_both_replicas_within_one_second() -> None:
    for _ in range(3):
        result = app_client(
            {
                "action": "replicate",
                "primary": ADDRESS[PRIMARY],
                "replicas": [ADDRESS[r] for r in REPLICAS],
                "table": "app.probe",
                "timeout": 1.0,
            }
        )
        seen = result["seen_after"]
        assert all(seconds is not None for seconds in seen.values()), seen


def test_replication_runs_over_verified_tls_with_gtid() -> None:
    for replica in REPLICAS:
        status = replica_status(replica)
        assert status["Slave_IO_Running"] == "Yes", status
        assert status["Slave_SQL_Running"] == "Yes", status
        assert status["Master_Host"] == ADDRESS[PRIMARY]
        assert status["Master_SSL_Allowed"] == "Yes"
        assert status["Master_SSL_Verify_Server_Cert"] == "Yes"
        assert status["Using_Gtid"] == "Slave_Pos"


def test_the_replication_account_needs_tls_and_a_replica_address() -> None:
    password = f"-p{secret('replication')}"
    login = ["-h", ADDRESS[PRIMARY], "-u", "replicator", password, "-e", "SELECT 1"]
    rc, out = client_from(REPLICAS[0], "--ssl", *login)
    assert rc == 0, out
    with plain_transport_allowed(PRIMARY):
        rc, out = client_from(REPLICAS[0], "--skip-ssl", *login)
    assert rc != 0 and "Access denied" in out, out
    done = docker(
        "exec", WEB, "python3", "-c",
        "import pymysql,sys; pymysql.connect(host=sys.argv[1], user='replicator',"
        " password=sys.argv[2], ssl={'ca': None}, connect_timeout=5)",
        ADDRESS[PRIMARY], secret("replication"), check=False,
    )  # fmt: skip
    assert done.returncode != 0, done.stderr
    assert "Access denied" in done.stderr or "is not allowed" in done.stderr, done.stderr


def test_semi_sync_after_sync_is_on_at_the_primary() -> None:
    sql(PRIMARY, "INSERT INTO app.probe (token) VALUES ('semi-sync')")
    status = dict(
        line.split("\t")
        for line in sql(PRIMARY, "SHOW STATUS LIKE 'Rpl_semi_sync_master_%'").splitlines()
    )
    assert status["Rpl_semi_sync_master_status"] == "ON", status
    assert int(status["Rpl_semi_sync_master_clients"]) == 2, status
    assert sql(PRIMARY, "SELECT @@rpl_semi_sync_master_wait_point") == "AFTER_SYNC"
    for replica in REPLICAS:
        assert sql(replica, "SHOW STATUS LIKE 'Rpl_semi_sync_slave_status'").split() == [
            "Rpl_semi_sync_slave_status",
            "ON",
        ]


def test_a_write_on_a_replica_is_refused() -> None:
    for replica in REPLICAS:
        read = app_client(
            {"action": "query", "host": ADDRESS[replica], "sql": ["SELECT COUNT(*) FROM app.probe"]}
        )
        assert read["ok"], read
        write = app_client(
            {
                "action": "query",
                "host": ADDRESS[replica],
                "sql": ["INSERT INTO app.probe (token) VALUES ('replica-write')"],
            }
        )
        assert not write["ok"], write
        assert write["code"] == 1290, write  # ER_OPTION_PREVENTS_STATEMENT: read-only
    assert sql(PRIMARY, "SELECT COUNT(*) FROM app.probe WHERE token = 'replica-write'") == "0"


def test_the_application_connects_over_verified_tls_to_every_server() -> None:
    for server in [PRIMARY, *REPLICAS]:
        result = app_client(
            {
                "action": "query",
                "host": ADDRESS[server],
                "sql": ["SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_cipher', 'Ssl_version')"],
            }
        )
        assert result["ok"], result
        status = dict(result["rows"])
        assert status["Ssl_cipher"] and status["Ssl_version"] in ("TLSv1.2", "TLSv1.3"), status


def test_every_server_refuses_a_plain_tcp_connection() -> None:
    # An account with no TLS rule of its own: what refuses its plain login
    # is the server's require_secure_transport. MariaDB answers it with
    # ER_ACCESS_DENIED_ERROR (1045), as for a wrong password, so the test
    # shows the same login working over TLS and, with the setting off for a
    # moment, in plain text.
    password = uuid.uuid4().hex
    sql(PRIMARY, f"CREATE USER 'plainprobe'@'{ADDRESS[WEB]}' IDENTIFIED BY '{password}'")
    try:
        wait_in_sync_users("plainprobe")
        for server in [PRIMARY, *REPLICAS]:
            assert sql(server, "SELECT @@GLOBAL.require_secure_transport") == "1"
            request = {"action": "query", "host": ADDRESS[server], "sql": ["SELECT 1"]}
            assert client_as("plainprobe", password, request)["ok"], server
            plain = client_as("plainprobe", password, {**request, "tls": False})
            assert not plain["ok"] and plain["code"] == 1045, plain
            with plain_transport_allowed(server):
                allowed = client_as("plainprobe", password, {**request, "tls": False})
            assert allowed["ok"], allowed
    finally:
        sql(PRIMARY, f"DROP USER 'plainprobe'@'{ADDRESS[WEB]}'")


def wait_in_sync_users(name: str) -> None:
    """Wait until every replica has the account the primary created."""
    query = f"SELECT COUNT(*) FROM mysql.user WHERE User = '{name}'"
    for replica in REPLICAS:
        wait_for(functools.partial(sql, replica, query), accept=lambda n: n == "1", timeout=30)


def test_the_application_account_itself_requires_tls() -> None:
    grants = sql(PRIMARY, f"SHOW CREATE USER 'app'@'{ADDRESS[WEB]}'")
    assert "REQUIRE SSL" in grants, grants
    with plain_transport_allowed(PRIMARY):
        plain = app_client(
            {"action": "query", "host": ADDRESS[PRIMARY], "sql": ["SELECT 1"], "tls": False}
        )
    assert not plain["ok"] and plain["code"] == 1045, plain  # ER_ACCESS_DENIED_ERROR


def test_the_application_account_works_only_from_the_web_servers() -> None:
    ok = app_client({"action": "query", "host": ADDRESS[PRIMARY], "sql": ["SELECT 1"]})
    assert ok == {"ok": True, "rows": [[1]]}
    rc, out = client_from(
        REPLICAS[0], "--ssl", "-h", ADDRESS[PRIMARY], "-u", "app", f"-p{secret('app')}",
        "-e", "SELECT 1",
    )  # fmt: skip
    assert rc != 0, out
    assert "Access denied" in out or "is not allowed to connect" in out, out


def test_root_cannot_log_in_over_tcp() -> None:
    assert sql(PRIMARY, "SELECT CURRENT_USER()") == "root@localhost"
    for host in ("127.0.0.1", ADDRESS[PRIMARY]):
        rc, out = client_from(
            PRIMARY, "--ssl", "--protocol=tcp", "-h", host, "-u", "root", "-e", "SELECT 1"
        )
        assert rc != 0, out
        assert "Access denied" in out or "is not allowed" in out, out
    rc, out = client_from(
        REPLICAS[0], "--ssl", "-h", ADDRESS[PRIMARY], "-u", "root", "-e", "SELECT 1"
    )
    assert rc != 0, out


def test_no_anonymous_account_and_no_test_database() -> None:
    for server in [PRIMARY, *REPLICAS]:
        assert sql(server, "SELECT COUNT(*) FROM mysql.user WHERE user = ''") == "0"
        assert sql(server, "SHOW DATABASES LIKE 'test'") == ""


def test_a_stopped_replica_catches_up_with_nothing_missing() -> None:
    stopped = REPLICAS[1]
    run = uuid.uuid4().hex[:8]
    docker("exec", stopped, "systemctl", "stop", "mariadb")
    try:
        for n in range(25):
            sql(PRIMARY, f"INSERT INTO app.probe (token) VALUES ('stopped-{run}-{n}')")
    finally:
        docker("exec", stopped, "systemctl", "start", "mariadb")
    wait_in_sync("app.probe")
    status = replica_status(stopped)
    assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes", status
    assert (
        sql(stopped, f"SELECT COUNT(*) FROM app.probe WHERE token LIKE 'stopped-{run}-%'") == "25"
    )


# --- a wrong variable stops the play before any change --------------------


def scenario_secrets() -> dict[str, Any]:
    secrets: dict[str, Any] = yaml.safe_load(
        (SCENARIO / "vars" / "secrets.yml").read_text(encoding="utf-8")
    )
    return secrets


def deploy_databases(
    secrets: dict[str, Any],
    extra_vars: dict[str, Any] | None = None,
    add: dict[str, list[str]] | None = None,
    tags: str | None = None,
) -> RunOutcome:
    """Run playbooks/databases.yml with the scenario's settings and `secrets`
    (only `tags`, when given)."""
    with tempfile.TemporaryDirectory() as tmp:
        secrets_file = Path(tmp) / "secrets.yml"
        secrets_file.write_text(yaml.safe_dump(secrets), encoding="utf-8")
        plays = scenario_plays("databases.yml", secrets_file=secrets_file, add=add)
        playbook = Path(tmp) / "deploy.yml"
        playbook.write_text(yaml.safe_dump(plays, sort_keys=False), encoding="utf-8")
        os.environ["ANSIBLE_NOCOLOR"] = "1"
        os.environ["ANSIBLE_FORCE_COLOR"] = "0"
        return ansible_playbook(str(playbook), extra_vars=extra_vars, timeout=600, tags=tags)


ROTATION_TAGS = "mysql_primary_accounts,mysql_replica_replication"


def test_a_rotated_replication_password_reaches_the_running_replicas() -> None:
    """The primary's account and every replica's connection change together;
    replication goes on (a replica would otherwise fail at its next reconnect).

    It runs the two phases the README names for a rotation, as an operator
    would, so the phase tags are proven to carry the change on their own."""
    rotated = {**scenario_secrets(), "mysql_primary_replication_password": uuid.uuid4().hex}
    try:
        outcome = deploy_databases(rotated, tags=ROTATION_TAGS)
        assert outcome.rc == 0, (outcome.stdout + outcome.stderr)[-4000:]
        new_password = rotated["mysql_primary_replication_password"]
        for replica in REPLICAS:
            # The replica now connects with the new password (line 6 of
            # master.info), and a new connection must authenticate with it.
            kept = docker("exec", replica, "sed", "-n", "6p", "/var/lib/mysql/master.info")
            assert kept.stdout.strip() == new_password, f"{replica} kept the old password"
            docker("exec", replica, "mariadb", "-e", "STOP SLAVE IO_THREAD; START SLAVE IO_THREAD")
        token = f"rotated-{uuid.uuid4().hex[:8]}"
        sql(PRIMARY, f"INSERT INTO app.probe (token) VALUES ('{token}')")
        wait_in_sync("app.probe")
        for replica in REPLICAS:
            status = replica_status(replica)
            assert status["Slave_IO_Running"] == "Yes", status
    finally:
        restored = deploy_databases(scenario_secrets(), tags=ROTATION_TAGS)
    assert restored.rc == 0, (restored.stdout + restored.stderr)[-4000:]
    wait_in_sync("app.probe")


def _run_with(
    extra_vars: dict[str, Any] | None = None,
    drop_secret: str | None = None,
    extra_primary: str | None = None,
) -> tuple[int, str]:
    """Run the scenario's deployment with one thing wrong; return rc and output."""
    secrets = scenario_secrets()
    if drop_secret:
        secrets.pop(drop_secret)
        # Whatever derived from it must not bring it back.
        secrets = {k: v for k, v in secrets.items() if drop_secret not in str(v)}
    add = {extra_primary: ["db_primary"]} if extra_primary else None
    checksum_before = docker("exec", PRIMARY, "sha256sum", CONFIG).stdout
    outcome = deploy_databases(secrets, extra_vars=extra_vars, add=add)
    checksum_after = docker("exec", PRIMARY, "sha256sum", CONFIG).stdout
    output = outcome.stdout + outcome.stderr
    assert checksum_after == checksum_before, "the server configuration changed"
    recap = play_recap(outcome.stdout)
    assert recap, output
    # localhost only ran the test's own in-memory add_host.
    changed = {
        host: counters["changed"]
        for host, counters in recap.items()
        if counters["changed"] and host != "localhost"
    }
    assert changed == {}, f"hosts changed before the play stopped: {changed}\n{output}"
    return outcome.rc, output


def test_two_primaries_stop_the_play_before_any_change() -> None:
    rc, output = _run_with(extra_primary=REPLICAS[0])
    assert rc != 0, output
    assert "mysql_primary_primary_group" in output or "mysql_replica_primary_group" in output, (
        output
    )
    assert "must hold exactly one host" in output, output


def test_a_duplicate_server_id_stops_the_play_before_any_change() -> None:
    rc, output = _run_with(extra_vars={"mysql_replica_server_id": 7})
    assert rc != 0, output
    assert "server_id must be unique" in output, output
    assert "mysql_replica_server_id" in output, output


def test_a_missing_password_stops_the_play_before_any_change() -> None:
    rc, output = _run_with(drop_secret="mysql_replica_replication_password")
    assert rc != 0, output
    assert "mysql_replica_replication_password" in output, output
    assert "missing required arguments" in output or "required" in output, output


def test_replication_is_still_healthy_at_the_end() -> None:
    wait_in_sync("app.probe")
    for replica in REPLICAS:
        status = replica_status(replica)
        assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes", status
