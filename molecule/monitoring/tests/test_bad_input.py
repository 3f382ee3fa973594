"""A wrong variable stops the play before any change, naming the variable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from monitoring_scenario import MON
from testinfra.host import Host
from webinfra_testlib import ansible_playbook

testinfra_hosts = [f"ansible://{MON}"]

CONVERGE = str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml")
WATCHED = [
    "/etc/prometheus/prometheus.yml",
    "/etc/prometheus/alertmanager.yml",
    "/etc/prometheus/rules/webinfra.rules.yml",
    "/etc/prometheus/web.yml",
    "/etc/prometheus/alertmanager-web.yml",
    "/etc/prometheus/secrets/prometheus.password",
]


def _checksums(host: Host) -> dict[str, str]:
    return {path: host.file(path).sha256sum for path in WATCHED}


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        (
            {"monitoring_alertmanager_receiver_type": "pager"},
            "monitoring_alertmanager_receiver_type",
        ),
        (
            {"monitoring_scrape_interval": "15 seconds"},
            "monitoring_scrape_interval must be a Prometheus duration",
        ),
        (
            {"monitoring_alertmanager_webhook_url": "not-a-url"},
            "monitoring_alertmanager_webhook_url must be an http",
        ),
        (
            {"monitoring_blackbox_ca_pem": "/etc/ssl/certs/ca-certificates.crt"},
            "monitoring_blackbox_ca_pem must be empty or PEM text",
        ),
        (
            {"monitoring_prometheus_web_password": "short"},
            "monitoring_prometheus_web_password and monitoring_alertmanager_web_password",
        ),
        (
            {"monitoring_operator_sources": ["10.0.0.0/33"]},
            "monitoring_operator_sources must be a list of addresses or CIDRs",
        ),
        (
            {"monitoring_haproxy_metrics_password": ""},
            "set monitoring_haproxy_metrics_password",
        ),
    ],
    ids=[
        "unknown-receiver-type",
        "malformed-scrape-interval",
        "webhook-url-not-a-url",
        "ca-pem-is-a-path",
        "web-password-too-short",
        "operator-source-not-a-network",
        "haproxy-metrics-password-missing",
    ],
)
def test_wrong_variable_stops_the_play_before_any_change(
    host: Host, extra_vars: dict[str, str], expected: str
) -> None:
    before = _checksums(host)
    outcome = ansible_playbook(CONVERGE, extra_vars=extra_vars, limit=MON)
    output = outcome.stdout + outcome.stderr
    assert outcome.rc != 0, output[-3000:]
    assert expected in output, output[-3000:]
    recap = output[output.rindex("PLAY RECAP") :]
    assert "changed=0" in recap and "failed=1" in recap, recap
    assert _checksums(host) == before
    assert host.service("prometheus").is_running
    assert host.service("prometheus-alertmanager").is_running
