"""Day-2 operations of the database tier, in the order an operator meets them.

Runs after test_database.py on the same containers: a replica added to a
populated primary, a backup restored into a fresh server, a planned
switchover, then a lost primary during a stream of writes. Extra servers are
systemd containers started here with the scenario's label (destroy removes
them).
"""

from __future__ import annotations

import json

import pytest
from mysql_plays import ADDRESS, DB, NETWORK, WEB, play, run, start_writer
from webinfra_database import mysql_replica_status, mysql_sql
from webinfra_testlib import (
    docker,
    start_systemd_host,
    wait_for,
)

TABLES = ("app.ledger", "app.probe")


def state(container: str) -> tuple[str, ...]:
    """Row count and CHECKSUM TABLE of every test table."""
    values: list[str] = []
    for table in TABLES:
        values.append(mysql_sql(container, f"SELECT COUNT(*) FROM {table}"))
        values.append(mysql_sql(container, f"CHECKSUM TABLE {table}").split()[-1])
    return tuple(values)


def wait_same_state(reference: str, others: list[str], timeout: float = 60.0) -> None:
    want = state(reference)
    for other in others:
        wait_for(lambda o=other: state(o), accept=lambda got: got == want, timeout=timeout)  # type: ignore[misc]


def follows(container: str, primary: str) -> bool:
    status = mysql_replica_status(container)
    return (
        status.get("Master_Host") == ADDRESS[primary]
        and status.get("Slave_IO_Running") == "Yes"
        and status.get("Slave_SQL_Running") == "Yes"
        and status.get("Master_SSL_Allowed") == "Yes"
    )


def settings(container: str, skip: tuple[str, ...] = ()) -> list[str]:
    """Lines of the settings file the MariaDB roles render, but those starting with `skip`."""
    text = docker("exec", container, "cat", "/etc/mysql/mariadb.conf.d/60-webinfra.cnf").stdout
    return [line for line in text.splitlines() if not line.startswith(skip)]


def install_mariadb(container: str) -> None:
    done = docker(
        "exec", container, "bash", "-c",
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq"
        " mariadb-server python3-pymysql >/tmp/apt.log 2>&1 || { tail -20 /tmp/apt.log; exit 1; }",
        check=False, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def running_primary() -> tuple[str, list[str]]:
    """The server that takes writes now, and the running servers that follow it."""
    running = set(docker("ps", "--format", "{{.Names}}").stdout.split())
    servers = [DB[n] for n in range(1, 5) if DB[n] in running]
    primaries = [s for s in servers if not mysql_replica_status(s)]
    assert len(primaries) == 1, f"expected one primary among {servers}, found {primaries}"
    return primaries[0], [s for s in servers if s != primaries[0]]


@pytest.fixture(scope="module", autouse=True)
def ledger() -> None:
    """A populated primary: a few thousand rows besides the probe table."""
    primary, replicas = running_primary()
    mysql_sql(
        primary,
        "CREATE TABLE IF NOT EXISTS app.ledger (id INT AUTO_INCREMENT PRIMARY KEY,"
        " token VARCHAR(64) NOT NULL, amount BIGINT NOT NULL DEFAULT 0)",
    )
    mysql_sql(
        primary,
        "INSERT INTO app.ledger (token, amount)"
        " SELECT CONCAT('row-', seq), seq * 7 FROM app.seq_1_to_3000",
    )
    wait_same_state(primary, replicas)


def test_a_replica_added_under_writes_is_seeded_by_a_streamed_backup_with_identical_data() -> None:
    """mariadb-backup streams the primary's files to the new replica while
    the application writes ten rows a second; every acknowledged write is on
    the primary and, once it replicates, on the new replica."""
    start_systemd_host(DB[4], NETWORK, ADDRESS[DB[4]])
    stop = "/tmp/stop-seed-writes"
    writer = start_writer(DB[1], "seed", duration=900, interval=0.1, stop_file=stop)
    try:
        output = run(
            "databases.yml",
            extra_vars={"mysql_replica_seed_method": "backup"},
            add={DB[4]: ["databases", "db_replicas"]},
        )
    finally:
        docker("exec", WEB, "touch", stop)
        out, err = writer.communicate(timeout=60)
        docker("exec", WEB, "rm", "-f", stop)
    result = json.loads(out)
    assert result["error"] is None, (result["error"], err)
    assert len(result["acked"]) >= 20, result
    assert "by backup" in output, output[-3000:]
    assert follows(DB[4], DB[1]), mysql_replica_status(DB[4])
    wait_same_state(DB[1], [DB[4]])
    rows = mysql_sql(DB[4], "SELECT token FROM app.ledger WHERE token LIKE 'seed-%'")
    present = set(rows.split())
    missing = [token for token in result["acked"] if token not in present]
    assert missing == [], f"{len(missing)} acknowledged writes missing on the new replica"
    mysql_sql(DB[1], "INSERT INTO app.ledger (token, amount) VALUES ('after-seed', 1)")
    wait_same_state(DB[1], [DB[2], DB[3], DB[4]])


def test_a_seed_that_fails_midway_leaves_the_new_server_running_on_its_own_data() -> None:
    """Something else holds the seed port on the new host, so the stream
    fails after its data directory was put aside: the play stops naming the
    step, and the server runs again on the directory it had."""
    start_systemd_host(DB[5], NETWORK, ADDRESS[DB[5]])
    docker("exec", "-d", DB[5], "python3", "-m", "http.server", "4444")
    try:
        outcome = play(
            "databases.yml",
            extra_vars={"mysql_replica_seed_method": "backup"},
            add={DB[5]: ["databases", "db_replicas"]},
        )
        output = outcome.stdout + outcome.stderr
        assert outcome.rc != 0, output[-3000:]
        assert f"Seeding {DB[5]} from {DB[1]} by a streamed backup failed" in output, output[-3000:]
        assert "The server runs on the data it had" in output, output[-3000:]
        answered = docker("exec", DB[5], "systemctl", "is-active", "mariadb", check=False)
        assert answered.stdout.strip() == "active", answered.stdout
        assert mysql_sql(DB[5], "SELECT COUNT(*) FROM mysql.user") != "0"
        assert mysql_replica_status(DB[5]) == {}
        leftovers = docker("exec", DB[5], "ls", "/var/lib/").stdout.split()
        assert "mysql.before-seed" not in leftovers, leftovers
    finally:
        docker("rm", "-f", "-v", DB[5], check=False)


def test_a_backup_restored_into_a_fresh_server_gives_identical_data() -> None:
    start_systemd_host(DB[5], NETWORK, ADDRESS[DB[5]])
    install_mariadb(DB[5])
    assert "app" not in mysql_sql(DB[5], "SHOW DATABASES").split()
    run("db_backup.yml", extra_vars={"db_backup_host": DB[3]})
    run("db_backup.yml", extra_vars={"db_backup_host": DB[3], "db_backup_keep": 1})
    listing = docker("exec", DB[3], "ls", "/var/backups/webinfra-mysql").stdout.split()
    assert len([f for f in listing if f.endswith(".sql.gz")]) == 1, listing
    assert len([f for f in listing if f.endswith(".json")]) == 1, listing
    output = run(
        "db_restore.yml",
        extra_vars={"db_restore_from": DB[3], "db_restore_target": DB[5]},
        add={DB[5]: ["restore_targets"]},
    )
    # The callback may wrap long messages: compare with whitespace collapsed.
    assert "every row count and checksum equal to the backup manifest" in " ".join(output.split())
    # Nothing was written since the backup: the fresh server equals the primary.
    assert state(DB[5]) == state(DB[1])


def test_a_planned_switchover_keeps_every_row_and_demotes_the_old_primary() -> None:
    before = state(DB[1])
    run(
        "db_failover.yml",
        extra_vars={
            "db_failover_new_primary": DB[2],
            "db_failover_replicas": [DB[3], DB[4]],
            "db_failover_app_role": "",
        },
        add={DB[4]: ["databases"]},
    )
    assert state(DB[2]) == before
    assert mysql_replica_status(DB[2]) == {}
    assert mysql_sql(DB[2], "SELECT @@read_only") == "0"
    assert mysql_sql(DB[1], "SELECT @@read_only") == "1"
    for replica in (DB[1], DB[3], DB[4]):
        wait_for(lambda r=replica: follows(r, DB[2]), timeout=60)  # type: ignore[misc]
    mysql_sql(DB[2], "INSERT INTO app.ledger (token, amount) VALUES ('after-switchover', 2)")
    wait_same_state(DB[2], [DB[1], DB[3], DB[4]])
    semi = mysql_sql(DB[2], "SHOW STATUS LIKE 'Rpl_semi_sync_master_status'").split()
    assert semi == ["Rpl_semi_sync_master_status", "ON"]
    # Each server's settings file is what its new role renders (the next
    # site.yml run, with the hosts moved between the groups, changes
    # nothing): the demoted primary's equals a replica's but for its id.
    assert settings(DB[1], skip=("server_id",)) == settings(DB[3], skip=("server_id",))
    primary = settings(DB[2])
    assert "read_only = OFF" in primary, primary
    assert "rpl_semi_sync_master_enabled = ON" in primary, primary
    assert not [line for line in primary if line.startswith("rpl_semi_sync_slave_enabled")], primary


def test_after_the_primary_is_killed_every_acknowledged_write_is_on_the_new_primary() -> None:
    old = DB[2]
    writer = start_writer(old, "stream", duration=20)
    try:
        wait_for(
            lambda: mysql_sql(old, "SELECT COUNT(*) FROM app.ledger WHERE token LIKE 'stream-%'"),
            accept=lambda n: int(n) >= 50,
            timeout=30,
        )
        docker("kill", old)
        out, err = writer.communicate(timeout=60)
    finally:
        if writer.poll() is None:
            writer.kill()
    result = json.loads(out)
    acked: list[str] = result["acked"]
    assert len(acked) >= 50, (result, err)
    assert result["error"], "the stream should have ended with the primary's death"

    run(
        "db_failover.yml",
        extra_vars={
            "db_failover_planned": False,
            "db_failover_old_primary": old,
            "db_failover_replicas": [DB[1], DB[3], DB[4]],
            "db_failover_app_role": "",
        },
        add={DB[4]: ["databases"]},
    )
    survivors = [DB[1], DB[3], DB[4]]
    primaries = [s for s in survivors if not mysql_replica_status(s)]
    assert len(primaries) == 1, primaries
    new = primaries[0]
    assert mysql_sql(new, "SELECT @@read_only") == "0"
    present = set(
        mysql_sql(new, "SELECT token FROM app.ledger WHERE token LIKE 'stream-%'").split()
    )
    missing = [token for token in acked if token not in present]
    assert missing == [], f"{len(missing)} acknowledged writes lost on {new}: {missing[:10]}"
    others = [s for s in survivors if s != new]
    for replica in others:
        wait_for(lambda r=replica: follows(r, new), timeout=60)  # type: ignore[misc]
    mysql_sql(new, "INSERT INTO app.ledger (token, amount) VALUES ('after-failover', 3)")
    wait_same_state(new, others)
