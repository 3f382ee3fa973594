"""Prometheus and Alertmanager answer only over HTTPS, only with their login,
and only to the operator network; HAProxy's /metrics wants its stats login.

The controller is the operator (converge.yml: monitoring_operator_sources is
the network's gateway); the scenario's other hosts are outsiders.
"""

from __future__ import annotations

import pytest
import requests
from monitoring_scenario import (
    ADDRESSES,
    LB,
    MON,
    OPERATOR,
    alertmanager,
    haproxy_stats_password,
    prometheus,
)
from testinfra.host import Host
from webinfra_firewall import reachable
from webinfra_monitoring import WebLogin, login_statuses, prometheus_query
from webinfra_testlib import wait_for

testinfra_hosts = [f"ansible://{MON}"]

GUARDED = [
    ("prometheus", "/api/v1/query?query=up"),
    ("prometheus", "/api/v1/status/config"),
    ("prometheus", "/api/v1/status/flags"),
    ("prometheus", "/consoles/webinfra.html"),
    ("prometheus", "/metrics"),
    ("alertmanager", "/api/v2/silences"),
    ("alertmanager", "/api/v2/alerts"),
    ("alertmanager", "/api/v2/status"),
    ("alertmanager", "/metrics"),
]


def _login(daemon: str) -> WebLogin:
    login: WebLogin = prometheus() if daemon == "prometheus" else alertmanager()
    return login


@pytest.mark.parametrize(("daemon", "path"), GUARDED, ids=[f"{d}{p}" for d, p in GUARDED])
def test_endpoint_answers_only_the_right_login_over_verified_tls(daemon: str, path: str) -> None:
    assert login_statuses(_login(daemon), path) == {
        "anonymous": 401,
        "wrong password": 401,
        "login": 200,
    }


@pytest.mark.parametrize("daemon", ["prometheus", "alertmanager"])
def test_plain_http_is_refused(daemon: str) -> None:
    login = _login(daemon)
    plain = login.base_url.replace("https://", "http://", 1)
    response = requests.get(f"{plain}/api/v2/status", auth=(login.user, login.password), timeout=10)
    # Go's TLS server answers a plain HTTP request with 400 and nothing else.
    assert response.status_code == 400, response.text[:300]
    assert "HTTPS" in response.text


@pytest.mark.parametrize("daemon", ["prometheus", "alertmanager"])
def test_the_certificate_verifies_only_against_the_monitoring_ca(daemon: str) -> None:
    login = _login(daemon)
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{login.base_url}/-/ready", auth=(login.user, login.password), timeout=10)
    assert login.get("/-/ready").status_code == 200


def test_an_outsider_cannot_connect_and_the_firewall_names_only_the_operator(
    host: Host,
) -> None:
    mon = ADDRESSES[MON]
    answers = reachable(LB, [(mon, "tcp", 9090), (mon, "tcp", 9093)])
    assert answers == {(mon, "tcp", 9090): False, (mon, "tcp", 9093): False}
    rules = host.run("ufw status").stdout.splitlines()
    for port in ("9090/tcp", "9093/tcp"):
        opened = [line for line in rules if line.startswith(port)]
        assert opened, rules
        assert all(OPERATOR in line for line in opened), opened


def test_prometheus_sends_alerts_to_alertmanager_over_tls() -> None:
    body = prometheus().json("/api/v1/alertmanagers")
    urls = [a["url"] for a in body["data"]["activeAlertmanagers"]]
    assert urls == ["https://127.0.0.1:9093/api/v2/alerts"]


def test_prometheus_scrapes_itself_and_alertmanager_with_their_logins() -> None:
    up = wait_for(
        lambda: prometheus_query(prometheus(), 'up{job=~"prometheus|alertmanager"}'),
        timeout=30,
        accept=lambda found: len(found) == 2 and all(s["value"][1] == "1" for s in found),
    )
    assert {s["metric"]["job"] for s in up} == {"prometheus", "alertmanager"}


def test_haproxy_metrics_need_the_stats_login_and_prometheus_sends_it() -> None:
    url = f"http://{ADDRESSES[LB]}:8404/metrics"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=("admin", haproxy_stats_password()), timeout=5).ok
    up = wait_for(
        lambda: prometheus_query(prometheus(), 'up{job="haproxy"}'),
        timeout=30,
        accept=lambda found: len(found) == 1 and found[0]["value"][1] == "1",
    )
    assert up[0]["metric"]["instance"] == LB


def test_no_password_is_stored_in_clear_outside_the_prometheus_group(host: Host) -> None:
    for path in (
        "/etc/prometheus/secrets/prometheus.password",
        "/etc/prometheus/secrets/alertmanager.password",
        "/etc/prometheus/secrets/haproxy.password",
        "/etc/prometheus/web.yml",
        "/etc/prometheus/alertmanager-web.yml",
        "/etc/prometheus/tls/server.key",
    ):
        secret = host.file(path)
        assert (secret.user, secret.group, secret.mode) == ("root", "prometheus", 0o640), path
    web = host.file("/etc/prometheus/web.yml").content_string
    assert "$2b$" in web and prometheus().password not in web
    config = host.file("/etc/prometheus/prometheus.yml").content_string
    for password in (prometheus().password, alertmanager().password, haproxy_stats_password()):
        assert password not in config
