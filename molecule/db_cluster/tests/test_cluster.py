"""The clustered database tier heals itself, as a user of it would see.

The checks of the healthy cluster come first; the failure tests follow in
file order, each bounded in time and putting back what it broke (the hosts
and helpers: cluster_scenario.py). The replica kill and quorum loss are
tested against the whole stack (tests/e2e/failure/test_failures_database.py);
the partition both here, with the tight 10 s bound a bare tier meets, and
there.
"""

from __future__ import annotations

import re
import time
import uuid

from cluster_scenario import (
    CLIENT,
    DB,
    NETWORK,
    VIP,
    WRITES_BACK_WITHIN,
    Writer,
    container_of,
    cut_off,
    fail_primary_under_writes,
    figure,
    healthy,
    kill,
    kill_mid_commit,
    rejoined,
    run_playbook,
    running,
    same_history,
    start,
    stored,
)
from webinfra_cluster import double_writers, parse_samples
from webinfra_database import ReadOnlyWatch, mysql_replica_status, read_only
from webinfra_testlib import docker, wait_for


def test_the_cluster_has_quorum_from_the_device_and_fencing_on() -> None:
    s = healthy()
    assert sorted(container_of(n) for n in s.online) == sorted(DB)
    quorum = docker("exec", next(iter(DB)), "corosync-quorumtool", "-s").stdout
    assert re.search(r"Quorate:\s+Yes", quorum), quorum
    # Two members and the quorum device's vote.
    assert re.search(r"Total votes:\s+3\b", quorum), quorum
    assert re.search(r"Flags:.*\bQdevice\b", quorum), quorum
    prop = docker(
        "exec",
        next(iter(DB)),
        "crm_attribute",
        "--type",
        "crm_config",
        "--name",
        "stonith-enabled",
        "--query",
        "--quiet",
    ).stdout.strip()
    assert prop == "true"
    assert s.started.get("fence-docker"), s.started


def test_exactly_the_promoted_member_accepts_writes_and_holds_the_write_ip() -> None:
    s = healthy()
    primary, replica = s.promoted[0], s.unpromoted[0]
    assert read_only(container_of(primary)) == "0"
    assert read_only(container_of(replica)) == "1"
    addresses = docker("exec", container_of(primary), "ip", "-o", "-4", "addr", "show").stdout
    assert f" {VIP}/24" in addresses


def test_a_write_through_the_ip_reaches_the_replica_over_verified_tls() -> None:
    s = healthy()
    tag = f"tls-{uuid.uuid4().hex[:8]}"
    writer = Writer(tag, duration=2, interval=0.2)
    writer.proc.wait(timeout=30)
    writes = writer.stop()
    assert writes and all(w.ok for w in writes), writes
    # Verified against the tier's CA, the VIP being a name in the certificate.
    assert all(w.cipher for w in writes), writes
    replica = container_of(s.unpromoted[0])
    wait_for(lambda: stored(replica, tag), timeout=5, accept=lambda got: len(got) == len(writes))
    status = mysql_replica_status(replica)
    assert status["Master_Host"] == DB[container_of(s.promoted[0])], status
    assert status["Master_SSL_Allowed"] == "Yes", status
    assert status["Master_SSL_Verify_Server_Cert"] == "Yes", status
    assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes", status


def exporter_samples(address: str) -> list[tuple[str, dict[str, str], float]]:
    """The Pacemaker/Corosync exporter's samples on a member, fetched from the client."""
    url = f"http://{address}:9664/metrics"
    script = (
        f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=10).read().decode())"
    )
    text = docker("exec", CLIENT, "python3", "-c", script, timeout=30).stdout
    return parse_samples(text)


def values(
    samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str
) -> list[float]:
    """Values of the samples named `name` whose labels include `labels`."""
    return [
        v
        for n, have, v in samples
        if n == name and all(have.get(k) == want for k, want in labels.items())
    ]


def test_each_member_exports_quorum_nodes_and_the_promoted_member() -> None:
    s = healthy()
    for container, address in DB.items():
        samples = exporter_samples(address)

        assert values(samples, "ha_cluster_corosync_quorate") == [1.0], container
        for node in s.online:
            assert values(samples, "ha_cluster_pacemaker_nodes", node=node, status="online") == [
                1.0
            ], node
        # What the failover alert reads: which node holds the promoted role.
        promoted = {
            labels["node"]
            for name, labels, v in samples
            if name == "ha_cluster_pacemaker_resources"
            and labels.get("resource") == "mariadb"
            and labels.get("role") in ("promoted", "master")
            and labels.get("status") == "active"
            and v == 1.0
        }
        assert promoted == set(s.promoted), (container, promoted)


def test_a_planned_switchover_under_writes_moves_the_write_ip_and_loses_none() -> None:
    s = healthy()
    old, new = container_of(s.promoted[0]), container_of(s.unpromoted[0])
    tag = f"switch-{uuid.uuid4().hex[:8]}"
    with ReadOnlyWatch(list(DB)) as watch:
        writer = Writer(tag)
        wait_for(lambda: sum(w.ok for w in writer.writes), timeout=30, accept=lambda n: n >= 10)
        started = time.time()
        run_playbook(
            "db_failover.yml", {"db_failover_new_primary": new, "db_failover_app_role": ""}
        )
        finished = time.time()
        wait_for(lambda: [w for w in writer.writes if w.t > finished and w.ok], timeout=30)
        writes = writer.stop()
    after = healthy()
    assert [container_of(n) for n in after.promoted] == [new]
    assert [container_of(n) for n in after.unpromoted] == [old]
    assert double_writers(watch.samples) == [], double_writers(watch.samples)
    during = [w for w in writes if started <= w.t <= finished]
    figure("switchover_playbook", round(finished - started, 1), "s")
    figure("failed_writes_during_switchover", sum(not w.ok for w in during), "writes")
    lost = sorted({w.text for w in writes if w.ok} - stored(new, tag))
    figure("lost_acknowledged_writes_switchover", len(lost), "writes")
    assert lost == [], lost
    # No constraint is left behind: a later failure may promote either member.
    constraints = docker("exec", new, "pcs", "constraint", "location", "config").stdout
    assert "cli-prefer" not in constraints, constraints
    status = wait_for(
        lambda: mysql_replica_status(old),
        timeout=30,
        accept=lambda st: (
            st.get("Slave_IO_Running") == "Yes" and st.get("Slave_SQL_Running") == "Yes"
        ),
    )
    assert status["Master_Host"] == DB[new], status


def test_killing_the_primary_brings_writes_back_within_ten_seconds_and_loses_none() -> None:
    tag = f"kill-{uuid.uuid4().hex[:8]}"
    old, new, recovery, writes, samples = fail_primary_under_writes(tag, kill)
    figure("writes_back_after_kill", round(recovery, 2), "s")
    figure("failed_writes", sum(not w.ok for w in writes), "writes")
    assert double_writers(samples) == [], double_writers(samples)
    assert recovery < WRITES_BACK_WITHIN, f"writes came back {recovery:.1f} s after the kill"
    acked = [w.text for w in writes if w.ok]
    lost = sorted(set(acked) - stored(new, tag))
    figure("lost_acknowledged_writes", len(lost), "writes")
    assert lost == [], lost
    node = old.removeprefix("webinfra-dbcluster-")
    history = docker("exec", new, "stonith_admin", "--history", node).stdout
    # The member was fenced before the replica was promoted (docker kill
    # already stopped it; the history proves the cluster fenced it anyway).
    assert re.search(rf"\b(reboot|off) of {node} successful", history), history


def test_the_old_primary_rejoins_as_a_replica_of_the_new_one() -> None:
    down = [c for c in DB if not running(c)]
    assert len(down) == 1, "the previous test leaves the fenced primary off"
    old = down[0]
    start(old)
    s = healthy()
    new = container_of(s.promoted[0])
    assert container_of(s.unpromoted[0]) == old
    assert read_only(old) == "1"
    tag = f"rejoin-{uuid.uuid4().hex[:8]}"
    writer = Writer(tag, duration=2, interval=0.2)
    writer.proc.wait(timeout=30)
    writes = writer.stop()
    assert writes and all(w.ok for w in writes), writes
    wait_for(lambda: stored(old, tag), timeout=5, accept=lambda got: len(got) == len(writes))
    status = mysql_replica_status(old)
    assert status["Master_Host"] == DB[new], status
    assert status["Slave_IO_Running"] == "Yes" and status["Slave_SQL_Running"] == "Yes", status

    # No errant transaction: both hold the same GTID history (once the
    # replica has applied what it received).
    same_history(tuple(DB))


def test_a_primary_killed_mid_commit_rolls_back_what_no_replica_got_and_rejoins() -> None:
    """The failover back again, killing the primary while writes wait for an
    acknowledgement the replica cannot send: they are in the old primary's
    binary log only. Restarted, it must roll them back (it never acknowledged
    them to a client) and follow the new primary with the same history."""
    tag = f"back-{uuid.uuid4().hex[:8]}"
    old, new, recovery, writes, samples = fail_primary_under_writes(tag, kill_mid_commit)
    figure("writes_back_after_second_kill", round(recovery, 2), "s")
    assert double_writers(samples) == []
    assert recovery < WRITES_BACK_WITHIN
    lost = sorted({w.text for w in writes if w.ok} - stored(new, tag))
    assert lost == [], lost
    start(old)
    s = rejoined(old)
    assert container_of(s.promoted[0]) == new
    assert container_of(s.unpromoted[0]) == old
    same_history((old, new))
    # What it rolled back was never acknowledged: every write it holds of
    # this test's, the new primary holds too.
    assert stored(old, tag) <= stored(new, tag)


def test_a_primary_cut_off_from_the_others_is_replaced_and_loses_no_write() -> None:
    """The majority side (replica + quorum device) promotes; the cut-off side is fenced."""
    tag = f"cut-{uuid.uuid4().hex[:8]}"
    old = container_of(healthy().promoted[0])
    try:
        old, new, recovery, writes, samples = fail_primary_under_writes(tag, cut_off)
        figure("writes_back_after_partition", round(recovery, 2), "s")
        assert double_writers(samples) == [], double_writers(samples)
        assert recovery < WRITES_BACK_WITHIN
        assert read_only(new) == "0"
        lost = sorted({w.text for w in writes if w.ok} - stored(new, tag))
        assert lost == [], lost
        assert not running(old), "the cut-off primary was not fenced"
    finally:
        if not running(old):
            docker("network", "disconnect", NETWORK, old, check=False)
            docker("network", "connect", "--ip", DB[old], NETWORK, old)
        start(old)
    rejoined(old)
