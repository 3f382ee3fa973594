"""The monitoring role's alert rules, checked and unit-tested by promtool.

promtool is Debian's (package `prometheus`); webinfra_promtool fetches it
into .cache/promtool when it is not installed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from webinfra_promtool import DASHBOARD, ROLE, TESTS, check_and_test, check_rule_file, render_rules

DEFAULTS = ROLE / "defaults" / "main.yml"

ISSUE_ALERTS = {
    "InstanceDown",
    "HAProxyBackendNoServerUp",
    "HAProxyServerDown",
    "HTTP5xxRatioHigh",
    "MariaDBReplicationIOThreadStopped",
    "MariaDBReplicationSQLThreadStopped",
    "MariaDBReplicationLag",
    "MariaDBSemiSyncOff",
    "DiskAlmostFull",
    "CertificateExpiringSoon",
    "AppHealthFailing",
    "VirtualIPHeldByNoLoadBalancer",
    "VirtualIPHeldByTwoLoadBalancers",
    "DatabaseClusterQuorumLost",
    "DatabaseClusterNodeOffline",
    "DatabaseClusterResourceFailed",
    "DatabaseFailoverHappened",
}


def _alerts(text: str) -> list[dict[str, Any]]:
    groups = yaml.safe_load(text)["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_rules_pass_promtool_check_and_their_unit_tests(tmp_path: Path) -> None:
    check, test = check_and_test(tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert test.returncode == 0, test.stdout + test.stderr


def test_the_issue_alerts_exist_and_each_has_a_one_line_runbook() -> None:
    alerts = _alerts(render_rules())
    assert {a["alert"] for a in alerts} >= ISSUE_ALERTS
    for alert in alerts:
        runbook = alert["annotations"].get("runbook", "")
        assert runbook and "\n" not in runbook, alert["alert"]
        assert alert["annotations"].get("summary"), alert["alert"]
        assert alert["labels"]["severity"] in {"critical", "warning"}


def test_every_alert_fires_in_a_unit_test() -> None:
    fired: set[str] = set()
    for path in TESTS.glob("*.test.yml"):
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                if check["exp_alerts"]:
                    fired.add(check["alertname"])
    assert {a["alert"] for a in _alerts(render_rules())} - fired == set()


def test_without_vip_or_replicas_those_rules_are_left_out(tmp_path: Path) -> None:
    text = render_rules({"monitoring_vip_address": "", "monitoring_mysqld_replica_hosts": []})
    names = {a["alert"] for a in _alerts(text)}
    assert not names & {
        "VirtualIPHeldByNoLoadBalancer",
        "VirtualIPHeldByTwoLoadBalancers",
        "MariaDBSemiSyncOff",
    }
    rules = tmp_path / "rules.yml"
    rules.write_text(text, encoding="utf-8")
    result = check_rule_file(rules)
    assert result.returncode == 0, result.stdout + result.stderr


REPLICATION_ALERTS = {
    "MariaDBReplicationIOThreadStopped",
    "MariaDBReplicationSQLThreadStopped",
    "MariaDBReplicaNotReplicating",
}
TREND_ALERTS = {
    "HTTP5xxRatioHigh",
    "MariaDBReplicationLag",
    "MariaDBSemiSyncOff",
    "DatabaseClusterResourceFailed",
    "DiskAlmostFull",
    "CertificateExpiringSoon",
}


def test_thresholds_and_pending_times_come_from_the_variables_by_class() -> None:
    text = render_rules(
        {
            "monitoring_alert_for": "7m",
            "monitoring_alert_for_replication": "8m",
            "monitoring_alert_for_trend": "9m",
            "monitoring_alert_for_overrides": {"DiskAlmostFull": "1h"},
            "monitoring_alert_replication_lag_seconds": 99,
        }
    )
    alerts = {a["alert"]: a for a in _alerts(text)}
    for name, alert in alerts.items():
        if name == "DiskAlmostFull":
            expected = "1h"
        elif name in REPLICATION_ALERTS:
            expected = "8m"
        elif name in TREND_ALERTS:
            expected = "9m"
        else:
            expected = "7m"
        assert alert["for"] == expected, name
    assert set(alerts) >= REPLICATION_ALERTS | TREND_ALERTS
    assert alerts["MariaDBReplicationLag"]["expr"].endswith("> 99")


def test_the_defaults_notify_an_outage_within_a_minute() -> None:
    """Scrape + evaluation + pending + group_wait of an availability alert."""
    defaults = yaml.safe_load(DEFAULTS.read_text(encoding="utf-8"))
    seconds = {
        key: _seconds(defaults[key])
        for key in (
            "monitoring_scrape_interval",
            "monitoring_evaluation_interval",
            "monitoring_alert_for",
            "monitoring_alert_for_replication",
            "monitoring_alertmanager_group_wait",
        )
    }
    path = (
        seconds["monitoring_scrape_interval"]
        + seconds["monitoring_evaluation_interval"]
        + seconds["monitoring_alertmanager_group_wait"]
    )
    # The worst case, with half the minute left for the daemon's own
    # detection (HAProxy's health checks), the delivery and a loaded machine.
    assert path + seconds["monitoring_alert_for"] <= 30, seconds
    assert path + seconds["monitoring_alert_for_replication"] <= 40, seconds
    assert defaults["monitoring_alertmanager_group_by"] == ["alertname", "instance"]
    # A recurrence joins the group Prometheus keeps open with the resolved
    # alert: it waits group_interval instead of group_wait.
    recurrence = (
        path
        - seconds["monitoring_alertmanager_group_wait"]
        + _seconds(defaults["monitoring_alertmanager_group_interval"])
    )
    assert recurrence + seconds["monitoring_alert_for"] <= 40, seconds
    assert recurrence + seconds["monitoring_alert_for_replication"] <= 50, seconds


def _seconds(duration: str) -> int:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_extra_rule_groups_are_appended(tmp_path: Path) -> None:
    extra = {
        "name": "site",
        "rules": [{"alert": "Custom", "expr": "vector(1)", "labels": {"severity": "warning"}}],
    }
    text = render_rules({"monitoring_extra_rule_groups": [extra]})
    assert yaml.safe_load(text)["groups"][-1] == extra
    rules = tmp_path / "rules.yml"
    rules.write_text(text, encoding="utf-8")
    assert check_rule_file(rules).returncode == 0


def test_grafana_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    assert len(exprs) >= 10
    # Each query becomes a recording rule, so promtool parses it.
    rules = [
        {"record": f"dashboard:query{i}", "expr": re.sub(r"\$__rate_interval", "5m", expr)}
        for i, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8"
    )
    result = check_rule_file(path)
    assert result.returncode == 0, result.stdout + result.stderr
    titles = " ".join(panel["title"] for panel in dashboard["panels"]).lower()
    for topic in ("request rate", "5xx", "backend", "replication lag", "load"):
        assert topic in titles


def test_the_cluster_alerts_exist_only_with_a_clustered_tier() -> None:
    cluster = {"DatabaseClusterQuorumLost", "DatabaseClusterNodeOffline"}
    with_cluster = {a["alert"] for a in _alerts(render_rules())}
    without = {a["alert"] for a in _alerts(render_rules({"monitoring_hacluster_hosts": []}))}
    assert cluster <= with_cluster
    assert not cluster & without
