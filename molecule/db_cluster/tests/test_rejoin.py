"""A member that comes back holding an errant write (the replica kill: tests/e2e/failure).

Runs after test_cluster.py (file order), on the healthy cluster it leaves,
and leaves the cluster healthy.
"""

from __future__ import annotations

import time
import uuid

from cluster_scenario import (
    DB,
    Writer,
    container_of,
    figure,
    healthy,
    kill,
    run_playbook,
    start,
    state,
    stored,
)
from webinfra_cluster import double_writers
from webinfra_database import ReadOnlyWatch, mysql_replica_status, mysql_sql, read_only
from webinfra_testlib import docker, wait_for


def node_of(container: str) -> str:
    return container.removeprefix("webinfra-dbcluster-")


def wait_until_fenced(survivor: str, lost: str) -> None:
    """The survivor has fenced `lost`: only then may it be started again."""
    wait_for(
        lambda: state(survivor).unclean,
        timeout=60,
        interval=1,
        accept=lambda unclean: node_of(lost) not in unclean,
    )


def replicates_from(replica: str, primary: str) -> dict[str, str]:
    """Wait until `replica` runs both replication threads from `primary`."""
    status = wait_for(
        lambda: mysql_replica_status(replica),
        timeout=60,
        interval=1,
        accept=lambda st: (
            st.get("Slave_IO_Running") == "Yes" and st.get("Slave_SQL_Running") == "Yes"
        ),
    )
    assert status["Master_Host"] == DB[primary], status
    return status


def refusals(container: str) -> str:
    """How often the server in `container` logged a primary's refusal (error 1236)."""
    return docker(
        "exec", container, "grep", "-c", "error 1236", "/var/log/mysql/error.log", check=False
    ).stdout.strip()


def durable_in_the_engine(container: str) -> None:
    """Every commit of `container` so far is on disk in InnoDB, not only in
    its binary log: after a rotation MariaDB writes a binlog checkpoint
    naming the new file once the engine has made the older ones durable."""
    mysql_sql(container, "FLUSH BINARY LOGS")
    current = mysql_sql(container, "SHOW MASTER STATUS").split()[0]
    wait_for(
        lambda: mysql_sql(container, f"SHOW BINLOG EVENTS IN '{current}'").splitlines(),
        timeout=30,
        accept=lambda events: any(
            e.split("\t")[2:3] == ["Binlog_checkpoint"] and e.split("\t")[-1] == current
            for e in events
        ),
    )


def same_gtid_history() -> None:
    """Both members hold the same GTID history once the replica has applied it."""
    wait_for(
        lambda: {c: mysql_sql(c, "SELECT @@GLOBAL.gtid_current_pos") for c in DB},
        timeout=20,
        accept=lambda positions: len(set(positions.values())) == 1,
    )


def test_a_primary_back_with_an_errant_write_is_refused_then_reseeded_by_one_command() -> None:
    """The replica misses one commit (semi-sync times out), the primary dies.

    The new primary never had that commit, so the old one cannot replicate
    from it (MariaDB error 1236) and must never accept writes again as it
    is. `db_reseed.yml` copies the new primary onto it and keeps its own
    data, the errant write included, aside.
    """
    s = healthy()
    old, new = container_of(s.promoted[0]), container_of(s.unpromoted[0])
    errant = f"errant-{uuid.uuid4().hex[:8]}"
    tag = f"reseed-{uuid.uuid4().hex[:8]}"
    refusals_before = int(refusals(old) or "0")
    with ReadOnlyWatch(list(DB)) as watch:
        mysql_sql(new, "STOP SLAVE IO_THREAD")
        # Acknowledged after the semi-sync timeout, on the primary alone,
        # and durable there before it dies: a commit still in the tail of
        # its binary log only would be rolled back by its crash recovery
        # (it restarts as a replica, init_rpl_role), like an unacknowledged
        # one (test_cluster.py's kill mid-commit).
        mysql_sql(old, f"INSERT INTO app.notes (body) VALUES ('{errant}-0')")
        durable_in_the_engine(old)
        kill(old)
        wait_for(
            lambda: state(new).promoted,
            timeout=60,
            interval=1,
            accept=lambda promoted: [container_of(n) for n in promoted] == [new],
        )
        wait_until_fenced(new, old)
        start(old)
        # The agent starts it as a replica of the new primary, which refuses it.
        wait_for(
            lambda: refusals(old),
            timeout=120,
            interval=2,
            accept=lambda count: count.isdigit() and int(count) > refusals_before,
        )
        assert read_only(new) == "0"

        writer = Writer(tag)
        try:
            wait_for(lambda: sum(w.ok for w in writer.writes), timeout=30, accept=lambda n: n >= 10)
            began = time.time()
            run_playbook("db_reseed.yml", {"db_reseed_host": old})
            figure("reseed_playbook", round(time.time() - began, 1), "s")
        finally:
            writes = writer.stop()
    assert double_writers(watch.samples) == [], double_writers(watch.samples)
    figure("failed_writes_during_reseed", sum(not w.ok for w in writes), "writes")
    assert all(w.ok for w in writes), [w for w in writes if not w.ok]

    after = healthy()
    assert [container_of(n) for n in after.promoted] == [new]
    replicates_from(old, new)
    assert read_only(old) == "1"
    same_gtid_history()
    # Every acknowledged write is on both; the errant one on neither.
    acked = {w.text for w in writes}
    assert acked <= stored(new, tag) and acked <= stored(old, tag)
    assert stored(old, errant) == set() and stored(new, errant) == set()
    # The old primary's own data, errant write included, is kept aside.
    kept = docker(
        "exec",
        old,
        "sh",
        "-c",
        "mariadb-binlog -v /var/lib/mysql.before-reseed-*/mysql-bin.[0-9]* | grep -c " + errant,
        check=False,
    ).stdout.strip()
    assert kept not in ("", "0"), "the errant write is not in the kept binary logs"
