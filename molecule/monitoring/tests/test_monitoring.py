"""Prometheus scrapes the whole scenario, alerts reach Alertmanager and the
webhook, and the console page shows the stack's live numbers.

Tests query mon-01's HTTPS APIs from the controller, with the logins and act on the other
containers with docker exec; testinfra's host is mon-01.
"""

from __future__ import annotations

import time
from typing import Any

from monitoring_scenario import ADDRESSES, DB, LB, MON, WEB, alertmanager, prometheus
from testinfra.host import Host
from webinfra_load import burst
from webinfra_monitoring import (
    alertmanager_alerts,
    alerts_named,
    console_rows,
    notified,
    prometheus_query,
    prometheus_targets,
    webhook_notifications,
)
from webinfra_testlib import docker, wait_for

testinfra_hosts = [f"ansible://{MON}"]

# Scenario settings (converge.yml): scrape and evaluation every 2 s, alerts
# fire after 4 s, Alertmanager's group_wait is 1 s: an alert is due about
# 9 s after its cause. The bound leaves room for a loaded 2-core machine.
ALERT_DEADLINE = 60.0

EXPECTED_TARGETS = {
    ("prometheus", MON),
    ("alertmanager", MON),
    ("blackbox_exporter", MON),
    ("node", MON),
    ("node", LB),
    ("node", WEB),
    ("node", DB),
    ("nginx", WEB),
    ("haproxy", LB),
    ("mysqld", DB),
    ("blackbox_http", f"http://{ADDRESSES[LB]}/health"),
    ("blackbox_http", f"https://{ADDRESSES[LB]}/health"),
}


def _target_keys(targets: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(t["labels"]["job"], t["labels"]["instance"]) for t in targets}


def _all_up() -> list[dict[str, Any]]:
    targets = prometheus_targets(prometheus())
    if _target_keys(targets) != EXPECTED_TARGETS:
        return []
    if any(t["health"] != "up" for t in targets):
        return []
    return targets


def test_every_target_reports_up() -> None:
    try:
        wait_for(_all_up, timeout=60)
    except TimeoutError:
        targets = prometheus_targets(prometheus())
        report = [
            (t["labels"]["job"], t["labels"]["instance"], t["health"], t["lastError"])
            for t in targets
        ]
        raise AssertionError(f"targets not all up: {report}") from None
    up = {
        (s["metric"]["job"], s["metric"]["instance"]): s["value"][1]
        for s in prometheus_query(prometheus(), "up")
    }
    assert set(up) == EXPECTED_TARGETS
    assert set(up.values()) == {"1"}


def test_probes_succeed_through_the_load_balancer() -> None:
    probes = wait_for(
        lambda: prometheus_query(prometheus(), 'probe_success{job="blackbox_http"} == 1'),
        timeout=30,
        accept=lambda result: len(result) == 2,
    )
    assert {p["metric"]["instance"] for p in probes} == {
        f"http://{ADDRESSES[LB]}/health",
        f"https://{ADDRESSES[LB]}/health",
    }


def test_https_probe_reports_the_certificate_expiry() -> None:
    # prepare.yml gave the load balancer a certificate valid for 90 days.
    result = prometheus_query(prometheus(), "(probe_ssl_earliest_cert_expiry - time()) / 86400")
    assert len(result) == 1
    assert result[0]["metric"]["instance"] == f"https://{ADDRESSES[LB]}/health"
    assert 88 < float(result[0]["value"][1]) <= 90


def test_no_alert_fires_on_the_healthy_stack() -> None:
    firing = [a for a in alertmanager_alerts(alertmanager()) if a["status"]["state"] == "active"]
    assert firing == []


def test_exporters_listen_only_on_the_stack_address() -> None:
    ports = {MON: [9100], LB: [9100], WEB: [9100, 9113], DB: [9100, 9104]}
    for container, expected in ports.items():
        listening = docker("exec", container, "ss", "-Hltn").stdout.split("\n")
        for port in expected:
            bound = {
                line.split()[3].rsplit(":", 1)[0]
                for line in listening
                if line.split() and line.split()[3].endswith(f":{port}")
            }
            assert bound == {ADDRESSES[container]}, f"{container}:{port} listens on {bound}"


def test_mysqld_exporter_user_has_least_privilege() -> None:
    grants = docker(
        "exec", DB, "mariadb", "-N", "-e", "SHOW GRANTS FOR mysqld_exporter@localhost"
    ).stdout
    assert "ALL PRIVILEGES" not in grants
    assert "GRANT SELECT ON *.*" not in grants
    assert "SELECT ON `performance_schema`.*" in grants
    assert "MAX_USER_CONNECTIONS 3" in grants
    up = prometheus_query(prometheus(), "mysql_up")
    assert [(s["metric"]["instance"], s["metric"]["db_role"], s["value"][1]) for s in up] == [
        (DB, "primary", "1")
    ]


def test_console_page_renders_live_values() -> None:
    # Traffic through the load balancer that the page must then show.
    sent = burst(f"http://{ADDRESSES[LB]}/", count=150, duration=20, interval=0.02)
    assert sent.failed == 0, sent.errors

    def page() -> str:
        response = prometheus().get("/consoles/webinfra.html")
        response.raise_for_status()
        text: str = response.text
        return text

    def rates(html: str) -> dict[str, float]:
        return {r.attrs["tier"]: float(r.cells[2]) for r in console_rows(html, "request-rate")}

    html = wait_for(
        page,
        timeout=30,
        accept=lambda h: rates(h).get("haproxy", 0) > 0 and rates(h).get("nginx", 0) > 0,
    )
    request_rows = {
        (r.attrs["tier"], r.attrs["instance"]) for r in console_rows(html, "request-rate")
    }
    assert request_rows == {("haproxy", LB), ("nginx", WEB)}

    load = {r.attrs["instance"]: r.cells for r in console_rows(html, "load")}
    assert set(load) == {MON, LB, WEB, DB}
    for cells in load.values():
        assert float(cells[1]) >= 0  # load, a number from node_load1
        assert int(cells[2]) >= 1  # CPU count

    backends = [
        (r.attrs["proxy"], r.attrs["server"], r.cells[3]) for r in console_rows(html, "backends")
    ]
    assert backends == [("web", WEB, "UP")]

    databases = [
        (r.attrs["instance"], r.cells[1], r.cells[2]) for r in console_rows(html, "databases")
    ]
    assert databases == [(DB, "primary", "1")]

    targets = console_rows(html, "targets")
    assert {(r.attrs["job"], r.attrs["instance"]) for r in targets} == EXPECTED_TARGETS
    assert {r.cells[2] for r in targets} == {"1"}

    errors = {r.attrs["proxy"]: r.cells for r in console_rows(html, "errors")}
    assert errors["www"][3] == "0%"


def _notifications(host: Host) -> list[dict[str, Any]]:
    log = host.run("cat /var/lib/webhook-recorder/notifications.jsonl 2>/dev/null").stdout
    return webhook_notifications(log)


def test_stopping_nginx_fires_its_alert_and_starting_it_resolves_it(host: Host) -> None:
    docker("exec", WEB, "systemctl", "stop", "nginx")
    stopped = time.monotonic()
    try:
        alerts = wait_for(
            lambda: alertmanager_alerts(alertmanager()),
            timeout=ALERT_DEADLINE,
            interval=1,
            accept=lambda a: bool(alerts_named(a, "NginxDown", instance=WEB)),
        )
        fired_after = time.monotonic() - stopped
        nginx_down = alerts_named(alerts, "NginxDown", instance=WEB)[0]
        assert nginx_down["status"]["state"] == "active"
        assert nginx_down["annotations"]["runbook"].startswith(f"On {WEB}:")
        # The load balancer sees it too: its server is down and the app's
        # health check through it fails.
        wait_for(
            lambda: alertmanager_alerts(alertmanager()),
            timeout=ALERT_DEADLINE,
            interval=1,
            accept=lambda a: (
                bool(alerts_named(a, "HAProxyServerDown", server=WEB))
                and bool(
                    alerts_named(a, "AppHealthFailing", instance=f"https://{ADDRESSES[LB]}/health")
                )
            ),
        )
        # ... and the receiver got the notification.
        wait_for(
            lambda: _notifications(host),
            timeout=30,
            interval=1,
            accept=lambda n: notified(n, "NginxDown", "firing", instance=WEB),
        )
    finally:
        docker("exec", WEB, "systemctl", "start", "nginx")

    wait_for(
        lambda: alertmanager_alerts(alertmanager()),
        timeout=ALERT_DEADLINE,
        interval=1,
        accept=lambda a: (
            not alerts_named(a, "NginxDown") and not alerts_named(a, "HAProxyServerDown")
        ),
    )
    wait_for(
        lambda: _notifications(host),
        timeout=30,
        interval=1,
        accept=lambda n: notified(n, "NginxDown", "resolved", instance=WEB),
    )
    assert fired_after < ALERT_DEADLINE
