"""Alerts that reach a person: failures against the whole stack, timed from
the failure to the notification delivered in the lab's mailbox (Alertmanager
mails it through exim4 on the monitoring host, playbooks/lab_mail.yml).

Five incidents at once, five alert classes, each its own notification
group (the monitoring role groups by alert name and instance):
- gunicorn stopped on one web server (socket and service): nginx answers
  502, HAProxy takes the server out of rotation, HAProxyServerDown names the
  web server, however many load balancers see it;
- nginx stopped on the other web server: NginxDown, which inhibits that
  server's HAProxyServerDown;
- with both web servers out, the site answers 503 through the VIP: the
  blackbox probe's AppHealthFailing, which inhibits HAProxyBackendNoServerUp;
- the load balancer without the VIP killed: InstanceDown of its node
  exporter, which inhibits the InstanceDown of its HAProxy target;
- replication stopped on the database replica (its IO thread):
  MariaDBReplicationIOThreadStopped.

Each must be notified within 60 s (the issue's bound), exactly once while it
lasts (it lasts past Alertmanager's group_interval, so a second alert about
the same host would show as a second mail), and resolved once it heals.
Then the VIP held by two load balancers and by none, and a lost database
member whose replicas' alerts must stay inhibited. `make bench` runs this
file against the lab and reports every time it measures.
"""

from __future__ import annotations

import time
import uuid

from webinfra_alerts import (
    NOTIFY_WITHIN,
    Notification,
    first_delivery,
    read_mailbox,
    wait_for_mail,
)
from webinfra_database import mysql_sql
from webinfra_e2e import Stack
from webinfra_failures import Report, assert_healthy, current_primary, restart, vip_holders
from webinfra_monitoring import MonitoringLogins, alertmanager_alerts, inhibited_by, post_alerts
from webinfra_testlib import docker, wait_for

# The monitoring role's group_interval (20s): a change of a group that has
# already notified waits that long, and another alert of the same host
# forms its own group (group_wait 10 s); an incident held past it shows
# any second notification.
GROUP_INTERVAL = 20.0
# Healing is seen at the next scrape and evaluation; the resolved message
# leaves at the group's next interval.
RESOLVE_WITHIN = 150.0


def _firing(notes: list[Notification], instance: str, since: float, until: float) -> list[str]:
    """Subjects of the notifications between since and until firing `instance`."""
    return [n.subject for n in notes if since <= n.delivered <= until and n.firing(instance)]


def test_each_incident_notifies_once_within_a_minute_and_resolves(
    stack: Stack, report: Report
) -> None:
    assert_healthy(stack)
    mailbox = stack.one("monitoring").container
    stopped, web = stack.group("webservers")[:2]
    (holder,) = vip_holders(stack)
    lb = next(h for h in stack.group("loadbalancers") if h.container != holder)
    primary = current_primary(stack)
    replica = next(db for db in stack.group("databases") if db != primary)
    probe = f"https://{stack.vip}/healthz"  # the lab's blackbox target
    expected = {
        web.name: "HAProxyServerDown",
        stopped.name: "NginxDown",
        probe: "AppHealthFailing",
        lb.name: "InstanceDown",
        replica.name: "MariaDBReplicationIOThreadStopped",
    }
    # Delivery-date has whole seconds.
    broken = {web.name: float(int(time.time()))}
    try:
        docker("exec", web.container, "systemctl", "stop", "webapp.socket", "webapp.service")
        broken[stopped.name] = broken[probe] = float(int(time.time()))
        docker("exec", stopped.container, "systemctl", "stop", "nginx")
        broken[lb.name] = float(int(time.time()))
        docker("kill", lb.container)
        broken[replica.name] = float(int(time.time()))
        mysql_sql(replica.container, "STOP SLAVE IO_THREAD")
        notes = wait_for_mail(
            mailbox,
            accept=lambda ns: all(first_delivery(ns, h, broken[h]) for h in expected),
            timeout=NOTIFY_WITHIN + 30,
        )
        first = {h: first_delivery(notes, h, broken[h]) for h in expected}
        # Hold the failures past one group interval after the last first
        # notification: a second mail for the same incident would come now.
        last_first = max(n.delivered for n in first.values() if n)
        time.sleep(max(0.0, last_first + GROUP_INTERVAL + 10 - time.time()))
        held = read_mailbox(mailbox)
    finally:
        # The repairs below take a while (the load balancer boots again):
        # a resolved mail may come before the last one, never before the
        # first.
        healed = float(int(time.time()))
        mysql_sql(replica.container, "START SLAVE IO_THREAD")
        docker("exec", stopped.container, "systemctl", "start", "nginx")
        docker("exec", web.container, "systemctl", "start", "webapp.socket")
        restart(lb.container, "keepalived", "haproxy")
    notes = wait_for_mail(
        mailbox,
        accept=lambda ns: all(first_delivery(ns, h, healed, resolved=True) for h in expected),
        timeout=RESOLVE_WITHIN,
    )
    for host, alertname in expected.items():
        note = first[host]
        assert note is not None
        seconds = note.delivered - broken[host]
        report(f"alert_notified_{alertname}", seconds, "s")
        assert seconds <= NOTIFY_WITHIN, (host, note)
        # One alert for the incident: the rest are inhibited or not raised.
        assert [(a.name, a.status) for a in note.alerts if a.instance == host] == [
            (alertname, "firing")
        ], note
        assert _firing(held, host, broken[host], healed) == [note.subject], held
        resolved = first_delivery(notes, host, healed, resolved=True)
        assert resolved is not None
        report(f"alert_resolved_{alertname}", resolved.delivered - healed, "s")
    assert_healthy(stack)


def _vip_incident(
    stack: Stack,
    report: Report,
    alertname: str,
    holders: int,
    inflict: str,
    heal: str,
    quiet: tuple[str, ...] = (),
) -> None:
    """Run `inflict` (a shell line per load balancer, or on the backup only
    for two holders) until the VIP has `holders` holders; the alert named
    for the VIP must be mailed within a minute and resolved once healed,
    and nothing mailed for the `quiet` instances meanwhile."""
    mailbox = stack.one("monitoring").container
    vip = stack.vip
    (holder,) = vip_holders(stack)
    targets = (
        [h.container for h in stack.group("loadbalancers")]
        if holders == 0
        else [h.container for h in stack.group("loadbalancers") if h.container != holder]
    )
    broken = float(int(time.time()))
    try:
        for container in targets:
            docker("exec", container, "sh", "-c", inflict)
        wait_for(lambda: len(vip_holders(stack)), timeout=10, accept=lambda n: n == holders)
        notes = wait_for_mail(
            mailbox,
            accept=lambda ns: first_delivery(ns, vip, broken) is not None,
            timeout=NOTIFY_WITHIN + 30,
        )
    finally:
        healed = float(int(time.time()))
        for container in targets:
            docker("exec", container, "sh", "-c", heal)
    note = first_delivery(notes, vip, broken)
    assert note is not None
    seconds = note.delivered - broken
    report(f"alert_notified_{alertname}", seconds, "s")
    assert seconds <= NOTIFY_WITHIN, note
    # Only this alert fires in it (an earlier one may show as resolved).
    assert [a.name for a in note.alerts if a.instance == vip and a.status == "firing"] == [
        alertname
    ], note
    # Resolved before the next incident: it then opens a group of its own.
    after = wait_for_mail(
        mailbox,
        accept=lambda ns: first_delivery(ns, vip, healed, resolved=True) is not None,
        timeout=RESOLVE_WITHIN,
    )
    resolved = first_delivery(after, vip, healed, resolved=True)
    assert resolved is not None
    report(f"alert_resolved_{alertname}", resolved.delivered - healed, "s")
    for instance in quiet:
        assert _firing(after, instance, broken, time.time()) == [], (instance, after)
    assert_healthy(stack)


def test_the_vip_held_by_two_then_by_none_is_mailed_within_a_minute(
    stack: Stack, report: Report
) -> None:
    """Split brain (the backup stops hearing VRRP and takes the VIP too),
    then no holder (keepalived stopped on both): one mail each, naming the
    VIP; the site's failing probe is the same incident as no holder."""
    assert_healthy(stack)
    _vip_incident(
        stack,
        report,
        "VirtualIPHeldByTwoLoadBalancers",
        holders=2,
        inflict="iptables -I INPUT 1 -p vrrp -j DROP",
        heal="iptables -D INPUT -p vrrp -j DROP",
    )
    _vip_incident(
        stack,
        report,
        "VirtualIPHeldByNoLoadBalancer",
        holders=0,
        inflict="systemctl stop keepalived",
        heal="systemctl start keepalived",
        quiet=(f"https://{stack.vip}/healthz",),
    )


def test_a_lost_database_member_does_not_also_page_for_each_replica(
    stack: Stack, report: Report, monitoring: MonitoringLogins
) -> None:
    """The inhibition a tier of three or more needs: when a member is lost,
    the replicas that replicated from it may stop or lose their source
    before the cluster points them at the new primary, and those alerts are
    its consequence. The lab's and site's tiers have one replica, which the
    cluster promotes, so no replica is left to raise them: the alerts such a
    tier raises are posted to the real Alertmanager instead, which must mail
    the lost member alone (its inhibition rules, grouping and mail path as
    deployed) and hold the replicas' alerts as inhibited."""
    mailbox = stack.one("monitoring").container
    run = uuid.uuid4().hex[:6]
    lost = f"db-lost-{run}"
    replicas = {
        f"db-replica-{run}-a": "MariaDBReplicationIOThreadStopped",
        f"db-replica-{run}-b": "MariaDBReplicaNotReplicating",
    }
    labels = [{"alertname": "MariaDBDown", "instance": lost, "job": "mysql",
               "severity": "critical"}] + [
        {"alertname": name, "instance": host, "job": "mysql", "severity": "critical"}
        for host, name in replicas.items()
    ]  # fmt: skip
    posted = float(int(time.time()))
    post_alerts(monitoring.alertmanager, labels, posted, posted + 600)
    try:
        notes = wait_for_mail(
            mailbox,
            accept=lambda ns: first_delivery(ns, lost, posted) is not None,
            timeout=NOTIFY_WITHIN,
        )
        first = first_delivery(notes, lost, posted)
        assert first is not None
        report("posted_alert_notified", first.delivered - posted, "s")
        # Every group was created by the same post: an uninhibited replica
        # alert would be mailed with the lost member's, or one group_wait later.
        time.sleep(max(0.0, first.delivered + GROUP_INTERVAL - time.time()))
        held = read_mailbox(mailbox)
        active = alertmanager_alerts(monitoring.alertmanager)
    finally:
        post_alerts(monitoring.alertmanager, labels, posted, time.time() - 1)
    for host, alertname in replicas.items():
        assert _firing(held, host, posted, time.time()) == [], (host, held)
        assert inhibited_by(active, alertname, instance=host), (host, active)
    assert inhibited_by(active, "MariaDBDown", instance=lost) == []
