"""Every exporter serves live values on the host's stack address only, the
mysqld exporter with a least-privilege user, and wrong variables stop the
play before any change."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import requests
from testinfra.host import Host
from webinfra_baseline import MAX_EXPOSURE, parse_exposure
from webinfra_testlib import ansible_playbook, wait_for

ADDRESS = "172.30.19.10"
CONVERGE = str(Path(os.environ["MOLECULE_SCENARIO_DIRECTORY"]) / "converge.yml")
PORTS = {"node": 9100, "nginx": 9113, "mysqld": 9104}


def _metrics(port: int) -> str:
    response = requests.get(f"http://{ADDRESS}:{port}/metrics", timeout=10)
    response.raise_for_status()
    return response.text


def _value(text: str, metric: str) -> float:
    match = re.search(rf"^{re.escape(metric)} (\S+)$", text, re.MULTILINE)
    assert match, f"{metric} missing"
    return float(match.group(1))


def test_node_exporter_reports_the_host_and_its_addresses() -> None:
    text = _metrics(PORTS["node"])
    assert _value(text, "node_load1") >= 0
    # Address info is on for load balancers (the VIP rules need it).
    assert f'address="{ADDRESS}"' in text
    assert "node_network_address_info" in text


def test_nginx_exporter_reads_stub_status(host: Host) -> None:
    before = _value(_metrics(PORTS["nginx"]), "nginx_connections_accepted")
    for _ in range(5):
        assert host.run("curl -sf http://127.0.0.1/").rc == 0
    text = wait_for(
        lambda: _metrics(PORTS["nginx"]),
        timeout=10,
        accept=lambda t: _value(t, "nginx_connections_accepted") >= before + 5,
    )
    assert _value(text, "nginx_up") == 1


def test_mysqld_exporter_logs_in_with_its_own_user(host: Host) -> None:
    text = _metrics(PORTS["mysqld"])
    assert _value(text, "mysql_up") == 1
    assert "mysql_global_status_uptime" in text
    grants = host.run("mariadb -N -e 'SHOW GRANTS FOR mysqld_exporter@localhost'").stdout
    assert "GRANT PROCESS, BINLOG MONITOR, SLAVE MONITOR ON *.*" in grants
    assert "GRANT SELECT ON `performance_schema`.*" in grants
    assert "ALL PRIVILEGES" not in grants and "SELECT ON *.*" not in grants


def test_mysqld_exporter_credentials_are_private(host: Host) -> None:
    cnf = host.file("/etc/prometheus/mysqld-exporter.cnf")
    # The exporter's own group, not the prometheus group all exporters share.
    assert (cnf.user, cnf.group, cnf.mode) == ("root", "exporter-mysqld", 0o640)
    assert "password=" in cnf.content_string
    assert "password" not in host.file("/etc/default/prometheus-mysqld-exporter").content_string
    # The user was created without binary logging: no GTID for replicas.
    binlog = host.run('mariadb -N -e "SHOW BINLOG EVENTS" 2>/dev/null').stdout
    assert "mysqld_exporter" not in binlog


SERVICES = {
    "node": "prometheus-node-exporter",
    "nginx": "prometheus-nginx-exporter",
    "mysqld": "prometheus-mysqld-exporter",
}


def exposure(host: Host, service: str) -> float:
    """systemd-analyze security's overall exposure of a unit (0 safe, 10 unsafe)."""
    return parse_exposure(host.check_output(f"systemd-analyze security --no-pager {service}"))


def test_each_exporter_runs_sandboxed_as_a_user_of_its_own(host: Host) -> None:
    users: dict[str, str] = {}
    for name, service in SERVICES.items():
        pid = host.check_output(f"systemctl show -p MainPID --value {service}")
        assert pid != "0", f"{service} does not run"
        users[name] = host.check_output(f"ps -o user= -p {pid}")
        score = exposure(host, service)
        print(f"\nEXPORTER-FIGURE exposure_{name}={score}", flush=True)
        assert score <= MAX_EXPOSURE, (service, score)
    # Not root, not the packages' shared prometheus user, one each: the node
    # exporter's identity cannot read what the mysqld exporter reads.
    assert sorted(users) == sorted(SERVICES)
    assert len(set(users.values())) == len(users), users
    assert not {"root", "prometheus"} & set(users.values()), users


@pytest.mark.parametrize("port", PORTS.values(), ids=PORTS.keys())
def test_exporter_listens_only_on_the_stack_address(host: Host, port: int) -> None:
    lines = host.run(f"ss -Hltn 'sport = :{port}'").stdout.splitlines()
    assert [line.split()[3] for line in lines] == [f"{ADDRESS}:{port}"]
    assert host.run(f"curl -s -o /dev/null http://127.0.0.1:{port}/metrics").rc != 0


def test_firewall_rules_let_only_the_monitoring_hosts_in(host: Host) -> None:
    # converge.yml records the webinfra_firewall_rules fact the role published.
    published = json.loads(host.file("/root/webinfra_firewall_rules.json").content_string)
    rules = published["exporters"]
    assert sorted(rule["port"] for rule in rules) == sorted(PORTS.values())
    assert all(rule["from"] == [ADDRESS] and rule["proto"] == "tcp" for rule in rules)


@pytest.mark.parametrize(
    ("extra_vars", "expected"),
    [
        ({"exporters_mysqld_password": ""}, "exporters_mysqld_password must be set"),
        (
            {"exporters_listen_address": "0.0.0.0"},
            "exporters_listen_address must be this host's own address",
        ),
        ({"exporters_nginx_port": "ninety"}, "exporters_nginx_port"),
    ],
    ids=["missing-password", "wildcard-listen-address", "port-not-a-number"],
)
def test_wrong_variable_stops_the_play_before_any_change(
    host: Host, extra_vars: dict[str, str], expected: str
) -> None:
    files = ["/etc/default/prometheus-node-exporter", "/etc/default/prometheus-nginx-exporter"]
    before = {path: host.file(path).sha256sum for path in files}
    outcome = ansible_playbook(CONVERGE, extra_vars=extra_vars)
    output = outcome.stdout + outcome.stderr
    assert outcome.rc != 0, output[-3000:]
    assert expected in output, output[-3000:]
    assert exporters_secret_not_in(output)
    recap = output[output.rindex("PLAY RECAP") :]
    assert "changed=0" in recap and "failed=1" in recap, recap
    assert {path: host.file(path).sha256sum for path in files} == before


def exporters_secret_not_in(output: str) -> bool:
    secret = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "secrets", "mysqld_exporter")
    return secret.read_text(encoding="utf-8").split()[0] not in output
