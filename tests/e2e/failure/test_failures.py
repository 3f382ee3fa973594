"""Whole-stack failure tests: what a client sees while parts of the stack fail.

They run after the checks of tests/e2e (conftest.py orders them) and in the
order written here, least destructive first: each one puts back what it
broke (restarts the killed container, waits for the virtual IP and the
backends) so the next starts from a healthy stack. The database failover
comes last and leaves the replica promoted (on a clustered tier, with the
old primary back as its replica).

Every test is bounded in requests and time, and prints its measured figures
as `E2E-FIGURE name=value unit` lines (webinfra_e2e.parse_figures reads them).
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
import requests
from webinfra_alerts import NOTIFY_WITHIN, first_firing_alert, read_mailbox, wait_for_mail
from webinfra_cluster import double_writers
from webinfra_database import (
    ReadOnlyWatch,
    mysql_sql,
    read_only,
)
from webinfra_e2e import Stack, StackHost, time_to_recover
from webinfra_failures import (
    BACKEND,
    NoteWriter,
    Report,
    assert_healthy,
    current_primary,
    rejoins_as_a_replica,
    replica_status,
    restart,
    url,
    vip_holders,
    wait_writes_back,
)
from webinfra_haproxy import haproxy_server_status
from webinfra_load import PatientTlsBackgroundBurst
from webinfra_monitoring import MonitoringLogins, alertmanager_alerts, alerts_named
from webinfra_testlib import ansible_playbook, docker, wait_for
from webinfra_vip_probe import (
    VipRequest,
    clients_seen,
    describe,
    failures_by_kind,
    finish_vip_probe,
    longest_gap,
    start_vip_probe,
)
from webinfra_vrrp import vrrp_history

PLAYBOOKS = Path(__file__).resolve().parents[3] / "playbooks"
# The warning the monitoring role sends when another member was promoted.
FAILOVER_ALERT = "DatabaseFailoverHappened"


def main_pid(container: str, unit: str) -> str:
    return docker(
        "exec", container, "systemctl", "show", "-p", "MainPID", "--value", unit
    ).stdout.strip()


# The planned work below (reloads, the rolling deploy): name, start, end.
PLANNED_WORK: list[tuple[str, float, float]] = []
# The longest a condition raised in the planned work's last second takes to
# reach the mailbox: scrape 5 s, evaluation 5 s, pending 10 s, group_wait
# 10 s, with room for a loaded machine (the monitoring role's defaults).
NOTIFY_PATH = 40.0


@pytest.fixture
def planned(request: pytest.FixtureRequest) -> Iterator[None]:
    """Record this test's time span as planned work."""
    start = time.time()
    yield
    PLANNED_WORK.append((request.node.name, start, time.time()))


@pytest.fixture(autouse=True)
def healthy_start(stack: Stack) -> None:
    assert_healthy(stack)


def workers(container: str, unit: str) -> set[str]:
    """PIDs of the processes the unit's main process started (its workers)."""
    done = docker("exec", container, "pgrep", "-P", main_pid(container, unit), check=False)
    return set(done.stdout.split())


def reload_once(container: str, unit: str) -> None:
    """`systemctl reload unit`; the test sends the next one as soon as it returns.

    gunicorn_app's reload (webapp) returns only once the old workers are gone
    and a new one answers: every worker must be new when it returns.
    """
    before = workers(container, unit)
    docker("exec", container, "systemctl", "reload", unit)
    if unit == "webapp":
        now = workers(container, unit)
        assert now, f"{container}: no gunicorn worker after the reload"
        assert not now & before, f"{container}: the reload returned while old workers ran"
    else:
        time.sleep(0.3)


@pytest.mark.parametrize(
    ("name", "unit", "group"),
    [
        ("haproxy", "haproxy", "loadbalancers"),
        ("nginx", "nginx", "webservers"),
        # HUP through the role's reload helper; the role runs gunicorn with
        # an unbuffered stderr so that its master survives HUPs in a row.
        ("gunicorn", "webapp", "webservers"),
    ],
    ids=["haproxy", "nginx", "gunicorn"],
)
@pytest.mark.usefixtures("planned")
def test_twenty_reloads_under_load_fail_no_request(
    stack: Stack, report: Report, name: str, unit: str, group: str
) -> None:
    """Twenty reloads of one daemon, spread over the hosts that run it."""
    hosts = [h.container for h in stack.group(group)]
    masters = {h: main_pid(h, unit) for h in hosts}
    with PatientTlsBackgroundBurst(
        url(stack), count=8000, duration=180, interval=0.01, verify=False
    ) as load:
        for index in range(20):
            reload_once(hosts[index % len(hosts)], unit)
    result = load.result
    report(f"reload_{name}_requests", result.sent, "requests")
    report(f"reload_{name}_failed", result.failed, "requests")
    assert {h: main_pid(h, unit) for h in hosts} == masters, "a reload restarted the master"
    assert result.sent > 100, result
    assert result.failed == 0, result.errors


@pytest.mark.usefixtures("planned")
def test_a_rolling_deploy_under_load_fails_no_request(stack: Stack, report: Report) -> None:
    version = f"e2e-{uuid.uuid4().hex[:8]}"
    began = time.time()
    with PatientTlsBackgroundBurst(
        url(stack), count=30000, duration=400, interval=0.01, verify=False
    ) as load:
        outcome = ansible_playbook(
            str(PLAYBOOKS / "deploy_app.yml"),
            extra_vars={"gunicorn_app_version": version},
            timeout=400,
        )
    assert outcome.rc == 0, (outcome.stdout + outcome.stderr)[-4000:]
    result = load.result
    report("deploy_requests", result.sent, "requests")
    report("deploy_failed", result.failed, "requests")
    assert result.sent > 100, result
    # A failure names what the load balancers' keepalived did meanwhile (a
    # move of the address resets a keep-alive connection).
    lbs = [lb.container for lb in stack.group("loadbalancers")]
    assert result.failed == 0, (result.errors, result.failed_at, vrrp_history(lbs, began))
    pages = [requests.get(url(stack), verify=False, timeout=10) for _ in range(4)]
    assert all(f"(version {version})" in page.text for page in pages), [p.text for p in pages]


@pytest.mark.usefixtures("planned")
def test_a_planned_switchover_under_writes_moves_the_writes_and_loses_none(
    stack: Stack, report: Report
) -> None:
    """db_failover.yml hands the primary role to the replica: Pacemaker
    demotes and promotes through the agent and moves the write VIP; the
    application keeps writing to the VIP (no application role re-run)."""
    old = current_primary(stack)
    new = next(db for db in stack.group("databases") if db != old)
    tag = f"switchover-{uuid.uuid4().hex[:8]}"
    with (
        ReadOnlyWatch([db.container for db in stack.group("databases")]) as watch,
        NoteWriter(stack, tag) as writer,
    ):
        wait_for(lambda: len(writer.acked), timeout=60, accept=lambda n: n >= 20)
        outcome = ansible_playbook(
            str(PLAYBOOKS / "db_failover.yml"),
            extra_vars={"db_failover_new_primary": new.name, "db_failover_app_role": ""},
            timeout=600,
        )
        done = time.time()
        wait_for(
            lambda: time_to_recover(writer.attempts, done),
            timeout=30,
            accept=lambda t: t is not None,
        )
    assert outcome.rc == 0, (outcome.stdout + outcome.stderr)[-4000:]
    report("switchover_failed_writes", sum(1 for _, ok in writer.attempts if not ok), "writes")
    assert current_primary(stack) == new
    assert double_writers(watch.samples) == [], double_writers(watch.samples)
    stored = set(
        mysql_sql(
            new.container, f"SELECT body FROM webinfra.notes WHERE body LIKE '{tag}-%'"
        ).split()
    )
    lost = [text for text in writer.acked if text not in stored]
    assert lost == [], lost[:10]
    # No constraint is left behind: a later failure may promote either member.
    constraints = docker("exec", new.container, "pcs", "constraint", "location", "config")
    assert "cli-prefer" not in constraints.stdout, constraints.stdout
    # The old primary follows the new one.
    status = wait_for(
        partial(replica_status, old.container),
        timeout=30,
        accept=lambda st: st.get("Slave_IO_Running") == st.get("Slave_SQL_Running") == "Yes",
    )
    assert status["Master_Host"] == new.address, status


def test_the_planned_work_above_delivered_no_critical_notification(stack: Stack) -> None:
    """No false alarm: the reloads, the rolling deploy and the switchover
    page nobody."""
    assert len(PLANNED_WORK) == 5, PLANNED_WORK  # three reloaded, a deploy, a switchover
    start = min(s for _, s, _ in PLANNED_WORK)
    end = max(e for _, _, e in PLANNED_WORK)
    time.sleep(max(0.0, end + NOTIFY_PATH - time.time()))
    paged = [
        note
        for note in read_mailbox(stack.one("monitoring").container)
        if int(start) <= note.delivered <= end + NOTIFY_PATH and note.critical_firing
    ]
    assert paged == [], paged


def test_killing_a_web_server_under_load_fails_no_get(stack: Stack, report: Report) -> None:
    victim, survivor = stack.group("webservers")[:2]
    try:
        with PatientTlsBackgroundBurst(
            url(stack), count=6000, duration=120, interval=0.01, verify=False
        ) as load:
            time.sleep(1)
            docker("kill", victim.container)
            for lb in stack.group("loadbalancers"):
                wait_for(
                    partial(haproxy_server_status, lb.container, BACKEND, victim.name),
                    timeout=30,
                    accept=lambda s: s.startswith("DOWN"),
                )
            time.sleep(2)
        result = load.result
        report("kill_web_requests", result.sent, "requests")
        report("kill_web_failed", result.failed, "requests")
        assert result.sent > 100, result
        assert result.failed == 0, result.errors
        assert result.served_by.get(victim.name, 0) > 0, result.served_by
        assert result.served_by.get(survivor.name, 0) > 0, result.served_by
    finally:
        restart(victim.container, "nginx", "webapp")
    assert_healthy(stack)


@pytest.fixture
def vip_clients(probe: str, stack: Stack) -> Iterator[Callable[[float], subprocess.Popen[str]]]:
    """Start four impatient clients in the probe: a fresh TLS connection per GET, 1 s timeout."""
    started: list[subprocess.Popen[str]] = []

    def start(duration: float) -> subprocess.Popen[str]:
        loop = start_vip_probe(probe, stack.vip, duration=duration, clients=4, timeout=1.0)
        started.append(loop)
        return loop

    yield start
    for loop in started:
        if loop.poll() is None:
            loop.kill()


def test_killing_the_master_load_balancer_moves_the_vip_within_a_second(
    stack: Stack, report: Report, vip_clients: Callable[[float], subprocess.Popen[str]]
) -> None:
    master = vip_holders(stack)[0]
    backup = next(lb.container for lb in stack.group("loadbalancers") if lb.container != master)
    try:
        loop = vip_clients(8)
        time.sleep(2)
        docker("kill", master)
        requests: list[VipRequest] = finish_vip_probe(loop)
        outage = longest_gap(requests)
        failures = failures_by_kind(requests)
        report("vip_outage", round(outage * 1000), "ms")
        report("vip_failed_requests", sum(failures.values()), "requests")
        report("vip_refused_requests", failures["ConnectionRefusedError"], "requests")
        report("vip_requests", len(requests), "requests")
        assert len(requests) > 50, "the probe sent too few requests"
        assert clients_seen(requests) == {0, 1, 2, 3}
        assert requests[-1].ok, describe(requests)
        assert outage < 1.0, f"no answer for {outage:.3f} s through the VIP: {describe(requests)}"
        assert failures["ConnectionRefusedError"] <= 20, describe(requests)
        assert vip_holders(stack) == [backup]
    finally:
        restart(master, "keepalived", "haproxy")
    assert_healthy(stack)


def pages_and_reads_without_a_primary(
    stack: Stack, writer: NoteWriter, killed_at: float
) -> tuple[list[int], requests.Response]:
    """Statuses of GET / for 4 s once writes fail, then one GET /api/notes.

    Sampling starts when the writer sees its first failure after the kill and
    lasts longer than HAProxy needs to mark a server down (2 checks 1 s apart).
    """
    wait_for(
        lambda: [ok for started, ok in writer.attempts if started >= killed_at],
        timeout=60,
        accept=lambda oks: False in oks,
    )
    statuses: list[int] = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        try:
            statuses.append(requests.get(url(stack), verify=False, timeout=10).status_code)
        except requests.RequestException:
            statuses.append(0)
        time.sleep(0.2)
    reads = requests.get(url(stack, "/api/notes"), verify=False, timeout=30)
    return statuses, reads


def fail_over_by_playbook(
    stack: Stack, old: StackHost, others: list[StackHost]
) -> Callable[[], None]:
    """Without a cluster a person runs db_failover.yml: start it, return its wait."""
    pool = ThreadPoolExecutor(max_workers=1)
    failover = pool.submit(
        ansible_playbook,
        str(PLAYBOOKS / "db_failover.yml"),
        extra_vars={
            "db_failover_planned": False,
            "db_failover_old_primary": old.name,
            "db_failover_replicas": [r.name for r in others],
        },
        timeout=600,
    )

    def finished() -> None:
        outcome = failover.result()
        pool.shutdown()
        assert outcome.rc == 0, (outcome.stdout + outcome.stderr)[-4000:]

    return finished


def failover_notified(stack: Stack, monitoring: MonitoringLogins, since: float) -> float:
    """Seconds from `since` to the mail announcing DatabaseFailoverHappened."""
    mailbox = stack.one("monitoring").container
    since = float(int(since))  # Delivery-date has whole seconds
    try:
        notes = wait_for_mail(
            mailbox,
            accept=lambda ns: first_firing_alert(ns, FAILOVER_ALERT, since) is not None,
            timeout=max(1.0, since + NOTIFY_WITHIN + 30 - time.time()),
        )
    except TimeoutError:
        active = alerts_named(alertmanager_alerts(monitoring.alertmanager), FAILOVER_ALERT)
        raise AssertionError(
            f"no mail announced {FAILOVER_ALERT} {NOTIFY_WITHIN + 30:.0f} s after the kill; "
            f"Alertmanager holds {active}"
        ) from None
    note = first_firing_alert(notes, FAILOVER_ALERT, since)
    assert note is not None
    return note.delivered - since


def test_after_the_primary_is_killed_writes_come_back_and_no_acknowledged_write_is_lost(
    stack: Stack, report: Report, monitoring: MonitoringLogins
) -> None:
    """A clustered tier heals by itself: writes through the HTTPS VIP come
    back within 10 s of the kill, with no playbook run, and never two
    servers accept writes, and the operator gets a mail saying the tier
    failed over within a minute. Without a cluster, db_failover.yml does it."""
    old = current_primary(stack)
    others = [db for db in stack.group("databases") if db != old]
    assert others, "a failover needs a replica"
    tag = f"failover-{uuid.uuid4().hex[:8]}"
    with (
        ReadOnlyWatch([db.container for db in stack.group("databases")]) as watch,
        NoteWriter(stack, tag) as writer,
    ):
        wait_for(lambda: len(writer.acked), timeout=60, accept=lambda n: n >= 20)
        docker("kill", old.container)
        # The clock starts when the kill has happened (docker kill returned).
        killed_at = time.time()
        finished = None if stack.write_vip else fail_over_by_playbook(stack, old, others)
        pages, reads = pages_and_reads_without_a_primary(stack, writer, killed_at)
        if finished is not None:
            finished()
        report("db_pages_without_primary", len(pages), "requests")
        # HAProxy checks the servers' liveness, not the primary every one of
        # them shares: losing it fails the writes, not the site.
        assert set(pages) == {200}, pages
        assert reads.status_code == 200, reads.text
        assert reads.json()["read_from"].startswith("replica "), reads.json()
        recovery = wait_writes_back(writer, killed_at)
    report("db_writes_back_after", round(recovery, 1), "s")
    report("db_acknowledged_writes", len(writer.acked), "writes")
    report("db_failed_writes", sum(1 for _, ok in writer.attempts if not ok), "writes")
    assert double_writers(watch.samples) == [], double_writers(watch.samples)
    if stack.write_vip:
        # A bound far from the noise: the target, with no person involved.
        assert recovery < 10.0, f"writes came back {recovery:.1f} s after the kill"

    writable = [db for db in others if read_only(db.container) == "0"]
    assert len(writable) == 1, [db.name for db in writable]
    new = writable[0]
    if stack.write_vip:
        assert current_primary(stack) == new
    stored = set(
        mysql_sql(
            new.container, f"SELECT body FROM webinfra.notes WHERE body LIKE '{tag}-%'"
        ).split()
    )
    lost = [text for text in writer.acked if text not in stored]
    report("db_lost_writes", len(lost), "writes")
    assert lost == [], f"{len(lost)} acknowledged writes missing on {new.name}: {lost[:10]}"
    after = requests.post(
        url(stack, "/api/notes"), json={"text": f"{tag}-after"}, verify=False, timeout=10
    )
    assert after.status_code == 201, after.text
    assert (stack.write_vip or new.address) in after.json()["written_to"], after.json()
    if stack.write_vip:
        # The cluster fenced the lost primary before promoting (docker kill
        # had stopped it already; the history shows the cluster made sure).
        node = docker("inspect", "-f", "{{.Config.Hostname}}", old.container).stdout.strip()
        history = docker("exec", new.container, "stonith_admin", "--history", node).stdout
        assert re.search(rf"\b(reboot|off) of {node} successful", history), history
        rejoins_as_a_replica(old, new, report)
        notified = failover_notified(stack, monitoring, killed_at)
        report("db_failover_notified_after", round(notified), "s")
        assert notified <= NOTIFY_WITHIN, f"the failover was mailed {notified:.0f} s after the kill"
