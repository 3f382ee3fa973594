"""The whole stack, seen from a client and an operator.

Runs against the lab or the site scenario (see conftest.py); every name and
address comes from the target's inventory.
"""

from __future__ import annotations

import json
import time
import uuid
from functools import partial
from typing import Any

import pytest
import requests
from webinfra_baseline import MAX_EXPOSURE, parse_exposure
from webinfra_cluster import parse_crm_mon
from webinfra_database import mysql_sql, write_vip_holders
from webinfra_e2e import Stack, parse_listening, public_ports
from webinfra_firewall import reachable
from webinfra_load import alternating_sample
from webinfra_monitoring import (
    MonitoringLogins,
    login_statuses,
    prometheus_query,
    prometheus_targets,
)
from webinfra_testlib import docker, wait_for
from webinfra_tls import (
    fetch_pebble_root,
    served_certificate,
    sslyze_compliant,
    sslyze_mozilla_intermediate,
)

# Where playbooks/lab_acme.yml leaves the CA of pebble's own TLS certificate
# on the acme host.
ACME_SERVER_CA = "/etc/pebble/tls/ca.pem"
# Run on a web server with the demo application's own code and settings (the
# gunicorn_app defaults): for each database server, the TLS cipher of the
# application's connection, and what a plain connection with its account got.
APP_DB_TLS_PROBE = """
import json, sys
import pymysql
sys.path.insert(0, "/srv/webapp/app")
from webinfra_demo.db import pymysql_connect
from webinfra_demo.settings import from_environ
lines = open("/etc/webapp/app.env", encoding="utf-8").read().splitlines()
env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
settings = from_environ(env)
report = {}
for endpoint in [settings.primary, *settings.replicas]:
    conn = pymysql_connect(endpoint, settings)
    cur = conn.cursor()
    cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
    cipher = cur.fetchall()[0][1]
    conn.close()
    try:
        pymysql.connect(host=endpoint.host, port=endpoint.port, user=settings.db_user,
                        password=settings.db_password, connect_timeout=5).close()
        plain = "connected"
    except pymysql.MySQLError as exc:
        plain = str(exc)
    report[endpoint.label] = {"cipher": cipher, "plain": plain, "ca": settings.db_ssl_ca}
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def acme_root(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Pebble's issuing root, the trust anchor of the stack's certificate."""
    assert stack.acme is not None, "the target's inventory has no acme host (the lab's CA)"
    assert stack.domain, "the target's inventory sets no lab_domain"
    folder = tmp_path_factory.mktemp("acme")
    server_ca = folder / "server-ca.pem"
    server_ca.write_text(
        docker("exec", stack.acme.container, "cat", ACME_SERVER_CA).stdout, encoding="utf-8"
    )
    return fetch_pebble_root(stack.acme.address, str(server_ca), str(folder / "root.pem"))


def test_a_host_in_webinfra_unmanaged_is_left_alone(stack: Stack) -> None:
    """site.yml targets every host but those in webinfra_unmanaged (the acme
    host here): it gets neither the firewall nor the node exporter."""
    assert stack.acme is not None, "the target's inventory has no acme host (the lab's CA)"
    packages = ["ufw", "prometheus-node-exporter"]
    query = ["dpkg-query", "-W", "-f", r"${Package} ${db:Status-Status}\n", *packages]
    listed = docker("exec", stack.acme.container, *query, check=False).stdout.split("\n")
    assert [line for line in listed if line.endswith(" installed")] == []


def holders_of_vip(stack: Stack) -> list[str]:
    return [
        lb.name
        for lb in stack.group("loadbalancers")
        if f" {stack.vip}/" in docker("exec", lb.container, "ip", "-o", "-4", "addr", "show").stdout
    ]


def test_exactly_one_load_balancer_holds_the_virtual_ip(stack: Stack) -> None:
    assert len(holders_of_vip(stack)) == 1


def test_https_through_the_virtual_ip_answers_with_hsts(stack: Stack) -> None:
    response = requests.get(f"https://{stack.vip}/", verify=False, timeout=10)
    assert response.status_code == 200
    assert "max-age=63072000" in response.headers["Strict-Transport-Security"]


def test_the_certificate_comes_from_the_lab_acme_ca_on_every_path(
    stack: Stack, acme_root: str
) -> None:
    """Valid for the domain against pebble's root: through the VIP and on
    each load balancer, whichever holds the VIP later."""
    through_vip = served_certificate(stack.vip, stack.domain, acme_root)
    assert stack.domain in through_vip.subject_alt_names, through_vip
    for lb in stack.group("loadbalancers"):
        direct = served_certificate(lb.address, stack.domain, acme_root)
        assert stack.domain in direct.subject_alt_names, (lb.name, direct)


def test_sslyze_mozilla_intermediate_profile_passes(stack: Stack, acme_root: str) -> None:
    outcome = sslyze_mozilla_intermediate(stack.domain, stack.vip, acme_root)
    assert sslyze_compliant(outcome, stack.domain), outcome.stdout[-3000:] + outcome.stderr


def test_http_answers_301_to_https(stack: Stack) -> None:
    response = requests.get(f"http://{stack.vip}/status?x=1", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{stack.vip}/status?x=1"


def test_round_robin_alternates_between_the_web_servers(stack: Stack) -> None:
    def sample() -> list[str]:
        return [
            requests.get(f"https://{stack.vip}/", verify=False, timeout=10).headers.get(
                "X-Served-By", ""
            )
            for _ in range(8)
        ]

    seen = alternating_sample(sample)
    assert set(seen) == {web.name for web in stack.group("webservers")}, seen


def test_a_note_is_written_to_the_primary_and_read_from_a_replica(stack: Stack) -> None:
    text = f"e2e-{uuid.uuid4()}"
    url = f"https://{stack.vip}/api/notes"
    created = requests.post(url, json={"text": text}, verify=False, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["written_to"].startswith("primary"), created.json()

    def read() -> dict[str, Any]:
        body: dict[str, Any] = requests.get(url, verify=False, timeout=10).json()
        return body

    body = wait_for(read, timeout=5, accept=lambda b: text in str(b.get("notes")))
    assert str(body["read_from"]).startswith("replica"), body
    # Replicated to every server the application may read from.
    for db in stack.group("databases"):
        wait_for(
            partial(
                mysql_sql,
                db.container,
                f"SELECT COUNT(*) FROM webinfra.notes WHERE body = '{text}'",
            ),
            timeout=5,
            accept=lambda count: count == "1",
        )


def test_the_application_reaches_every_database_over_verified_tls_only(stack: Stack) -> None:
    web = stack.group("webservers")[0]
    done = docker("exec", web.container, "python3", "-c", APP_DB_TLS_PROBE, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report: dict[str, dict[str, str]] = json.loads(done.stdout)
    # Writes go to the cluster's write virtual IP when there is one (one
    # address, never repointed), reads to every server.
    databases = {d.address for d in stack.group("databases")} | (
        {stack.write_vip} if stack.write_vip else set()
    )
    assert {label.rsplit(":", 1)[0] for label in report} == databases, report
    for label, seen in report.items():
        assert seen["ca"], f"{label}: the application verifies no certificate: {seen}"
        assert seen["cipher"], f"{label}: the application's connection is not encrypted: {seen}"
        # The account is REQUIRE SSL, so its plain login is denied first.
        assert "Access denied" in seen["plain"], f"{label}: plain TCP was not refused: {seen}"
    for db in stack.group("databases"):
        setting = docker(
            "exec", db.container, "mariadb", "-N", "-B", "-e",
            "SELECT @@GLOBAL.require_secure_transport",
        ).stdout.strip()  # fmt: skip
        assert setting == "1", f"{db.name}: require_secure_transport is {setting}"


def test_each_host_exposes_exactly_its_public_ports(stack: Stack, probe: str) -> None:
    """From a client in no group: what a host listens on is reachable only when public."""
    for host in stack.hosts:
        listening = parse_listening(docker("exec", host.container, "ss", "-Hltn").stdout)
        expected = public_ports(host.groups)
        assert expected <= listening, f"{host.name} should listen on {sorted(expected)}"
        answers = reachable(probe, [(host.address, "tcp", port) for port in sorted(listening)])
        opened = {port for (_, _, port), ok in answers.items() if ok}
        assert opened == expected, f"{host.name}: open to any client {sorted(opened)}"


def db_addresses(stack: Stack) -> list[str]:
    """Where the application may reach MariaDB: every server, and the write VIP."""
    return [d.address for d in stack.group("databases")] + (
        [stack.write_vip] if stack.write_vip else []
    )


def test_private_ports_answer_the_groups_that_need_them(stack: Stack) -> None:
    lb = stack.group("loadbalancers")[0]
    web = stack.group("webservers")[0]
    mon = stack.one("monitoring")
    cases = [
        (lb, [(w.address, "tcp", 80) for w in stack.group("webservers")]),
        (web, [(d, "tcp", 3306) for d in db_addresses(stack)]),
        (mon, [(h.address, "tcp", 9100) for h in stack.hosts]),
    ]
    for source, targets in cases:
        answers = reachable(source.container, targets)
        assert all(answers.values()), f"from {source.name}: {answers}"


def test_prometheus_and_alertmanager_answer_only_the_operator_with_a_login(
    stack: Stack, monitoring: MonitoringLogins, probe: str
) -> None:
    """From the operator (this machine): 401 without the login or with a wrong
    password, 200 with it, over TLS verified against the monitoring CA. From
    a client in no group: no connection at all."""
    cases = [
        (monitoring.prometheus, "/api/v1/query?query=up"),
        (monitoring.prometheus, "/api/v1/status/config"),
        (monitoring.prometheus, "/api/v1/status/flags"),
        (monitoring.alertmanager, "/api/v2/silences"),
        (monitoring.alertmanager, "/api/v2/alerts"),
    ]
    for login, path in cases:
        assert login_statuses(login, path) == {
            "anonymous": 401,
            "wrong password": 401,
            "login": 200,
        }, f"{login.base_url}{path}"
    mon = stack.one("monitoring").address
    answers = reachable(probe, [(mon, "tcp", 9090), (mon, "tcp", 9093)])
    assert not any(answers.values()), f"open to a client in no group: {answers}"


def test_every_prometheus_target_is_up(stack: Stack, monitoring: MonitoringLogins) -> None:
    def targets() -> list[dict[str, Any]]:
        return prometheus_targets(monitoring.prometheus)

    found = wait_for(
        targets,
        timeout=90,
        interval=3,
        accept=lambda ts: bool(ts) and all(t["health"] == "up" for t in ts),
    )
    jobs = {str(t["labels"]["job"]) for t in found}
    assert {"node", "haproxy", "nginx", "mysqld"} <= jobs, jobs
    if stack.write_vip:
        # The cluster's exporter on every member.
        scraped = {str(t["labels"]["instance"]) for t in found if t["labels"]["job"] == "hacluster"}
        assert len(scraped) == len(stack.group("databases")), scraped


def test_the_database_alerts_read_each_servers_live_role(
    stack: Stack, monitoring: MonitoringLogins
) -> None:
    """The replication alerts pick the primary by read_only, so the mysqld
    exporters must report it: 0 on the primary, 1 on every replica. On a
    clustered tier the primary is whichever server the cluster promoted (it
    holds the write VIP), not the one the inventory names."""
    primary = write_vip_holders(stack) if stack.write_vip else stack.group("db_primary")
    assert len(primary) == 1, [p.name for p in primary]
    expected = {db.name: "0" if db in primary else "1" for db in stack.group("databases")}

    def read_only() -> dict[str, str]:
        found = prometheus_query(
            monitoring.prometheus, 'mysql_global_variables_read_only{job="mysqld"}'
        )
        return {str(r["metric"]["instance"]): str(r["value"][1]) for r in found}

    assert wait_for(read_only, timeout=90, interval=3, accept=lambda v: v == expected)


def test_the_database_cluster_has_quorum_fencing_and_its_write_vip_on_the_writable_server(
    stack: Stack,
) -> None:
    """Every member online with quorum, fencing on and started, one promoted
    MariaDB: the one server that accepts writes, holding the write VIP."""
    if not stack.write_vip:
        pytest.fail("the target's database tier is not clustered (db_cluster_enabled)")
    members = stack.group("databases")
    state = parse_crm_mon(
        docker("exec", members[0].container, "crm_mon", "--one-shot", "--output-as=xml").stdout
    )
    assert state.quorate, state
    assert sorted(state.online) == sorted(
        docker("exec", m.container, "uname", "-n").stdout.strip() for m in members
    ), state
    assert len(state.promoted) == 1, state
    assert any(rid.startswith("fence") for rid in state.started), state.started
    holders = write_vip_holders(stack)
    assert len(holders) == 1, [h.name for h in holders]
    assert docker("exec", holders[0].container, "uname", "-n").stdout.strip() == state.promoted[0]
    writable = [
        db.name
        for db in members
        if docker(
            "exec", db.container, "mariadb", "-N", "-B", "-e", "SELECT @@GLOBAL.read_only"
        ).stdout.strip()
        == "0"
    ]
    assert writable == [holders[0].name], writable
    fencing = docker(
        "exec", members[0].container, "crm_attribute", "--type", "crm_config",
        "--name", "stonith-enabled", "--query", "--quiet",
    ).stdout.strip()  # fmt: skip
    assert fencing == "true", fencing


def test_the_health_probe_through_the_virtual_ip_succeeds_over_https(
    stack: Stack, monitoring: MonitoringLogins
) -> None:
    """The blackbox exporter reaches the app's health check through the VIP,
    trusting the ACME CA, and knows when the certificate expires."""
    selector = f'{{job="blackbox_http",instance=~"https://{stack.vip}/.*"}}'

    def sample(metric: str) -> list[dict[str, Any]]:
        return prometheus_query(monitoring.prometheus, metric + selector)

    success = wait_for(
        lambda: sample("probe_success"),
        timeout=90,
        interval=3,
        accept=lambda found: bool(found) and all(r["value"][1] == "1" for r in found),
    )
    assert success, "no blackbox probe of the virtual IP over HTTPS"
    expiry = sample("probe_ssl_earliest_cert_expiry")
    assert expiry and float(expiry[0]["value"][1]) > time.time(), expiry


def test_no_unit_failed_on_any_host(stack: Stack) -> None:
    for host in stack.hosts:
        failed = docker(
            "exec", host.container, "systemctl", "--failed", "--plain", "--no-legend"
        ).stdout
        assert failed.strip() == "", f"{host.name}: {failed}"


# The daemons each group runs in a sandbox drop-in, by the roles' defaults
# (nginx_sandbox, haproxy_sandbox, keepalived_sandbox, gunicorn_app_sandbox,
# exporters_sandbox).
SANDBOXED = {
    "loadbalancers": ("haproxy", "keepalived", "prometheus-node-exporter"),
    "webservers": ("nginx", "webapp", "prometheus-node-exporter", "prometheus-nginx-exporter"),
    "databases": ("prometheus-node-exporter", "prometheus-mysqld-exporter"),
    "monitoring": (
        "prometheus",
        "prometheus-alertmanager",
        "prometheus-blackbox-exporter",
        "prometheus-node-exporter",
    ),
}


def test_the_stack_daemons_run_sandboxed(stack: Stack) -> None:
    """systemd-analyze security scores each sandboxed daemon at most 5.0
    (9.6 for haproxy, keepalived and nginx, 9.0 for the application's
    gunicorn, 9.2 for Alertmanager and the blackbox exporter, without their
    sandbox)."""
    scores: dict[str, float] = {}
    for group, units in SANDBOXED.items():
        for host in stack.group(group):
            for unit in units:
                out = docker("exec", host.container, "systemd-analyze", "security", "--no-pager",
                             unit).stdout  # fmt: skip
                scores[f"{host.name} {unit}"] = parse_exposure(out)
    assert {k: v for k, v in scores.items() if v > MAX_EXPOSURE} == {}, scores
