"""Day 2 on the live lab: a web server added, then removed, under load.

    make demo
    make day2        # WEBINFRA_E2E_DAY2=1 pytest tests/e2e/day2 --target lab

The operator's path and nothing else. web-03 joins `webservers` through an
inventory overlay (inventory/lab stays as it is), its container is created
like the lab's others, and site.yml runs over the whole lab while a client
reads the site through the HTTPS virtual IP. Then the overlay goes, site.yml
runs again, and only then is the container removed. The tests run in file
order: the second removes what the first added. They converge the whole lab
twice (about ten minutes), so `make test` leaves them to `make day2`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from webinfra_database import mysql_sql
from webinfra_e2e import Stack
from webinfra_failures import BACKEND, Report, current_primary, url
from webinfra_firewall import open_ports
from webinfra_haproxy import haproxy_server_status
from webinfra_load import BurstResult, PatientTlsBackgroundBurst, served_by
from webinfra_monitoring import MonitoringLogins, prometheus_targets
from webinfra_testlib import docker, wait_for

from tools import lab as labtool
from tools.bench_run import ansible_playbook

NEW = ("web-03", "172.31.250.23")
MYSQL_PORT = 3306


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory that adds web-03 to the lab's webservers."""
    return labtool.write_overlay(
        "webservers", [NEW], tmp_path_factory.mktemp("day2") / "web-03.yml"
    )


@pytest.fixture(scope="module", autouse=True)
def lab_only(stack: Stack) -> Iterator[None]:
    assert stack.kind == "lab", "the day-2 tests grow the lab (make demo first)"
    yield
    # Whatever a failed test left behind: the lab as inventory/lab draws it.
    docker("rm", "-f", f"webinfra-lab-{NEW[0]}", check=False)


def site_under_load(stack: Stack, overlays: list[Path]) -> tuple[float, BurstResult]:
    """site.yml over the lab (and `overlays`) while a client reads notes
    (each read asks the database, so a web server that cannot reach it
    fails it) through the virtual IP.

    Returns the play's seconds and what the client saw; asserts that no
    request failed.
    """
    with PatientTlsBackgroundBurst(
        url(stack, "/api/notes"), count=100_000, duration=1800, interval=0.05, verify=False
    ) as load:
        seconds, _ = ansible_playbook("playbooks/site.yml", overlays=overlays)
    result = load.result
    assert result.sent > 100, result
    assert result.failed == 0, (result.failed, result.errors)
    return seconds, result


def app_accounts_at(stack: Stack, address: str) -> str:
    primary = current_primary(stack).container
    return mysql_sql(primary, f"SELECT COUNT(*) FROM mysql.user WHERE Host = '{address}'")


def database_address(stack: Stack) -> str:
    return stack.write_vip or current_primary(stack).address


def scraped(monitoring: MonitoringLogins, name: str) -> bool:
    return any(
        t["labels"].get("instance") == name for t in prometheus_targets(monitoring.prometheus)
    )


def post_served_by(stack: Stack, name: str, attempts: int = 30) -> int:
    """POST a note through the virtual IP until `name` serves one; its status."""
    for index in range(attempts):
        answer = requests.post(
            url(stack, "/api/notes"), json={"text": f"day2-{index}"}, verify=False, timeout=30
        )
        if answer.headers.get("X-Served-By") == name:
            return answer.status_code
    raise AssertionError(f"{name} served none of {attempts} writes")


def test_a_web_server_added_under_load_serves_its_share_and_fails_no_request(
    stack: Stack, report: Report, overlay: Path, monitoring: MonitoringLogins
) -> None:
    name, address = NEW
    grown = labtool.load_lab((overlay,))
    labtool.ensure_hosts(grown)
    seconds, load = site_under_load(stack, [overlay])
    report("day2_add_web_site_yml", round(seconds), "s")
    report("day2_add_web_requests", load.sent, "requests")
    report("day2_add_web_served_by_the_new_one", load.served_by.get(name, 0), "requests")

    # Its share as soon as the play ends: every load balancer has it UP.
    for lb in stack.group("loadbalancers"):
        assert haproxy_server_status(lb.container, BACKEND, name) == "UP", lb.name
    seen = served_by(url(stack), count=3 * (len(stack.group("webservers")) + 1))
    assert name in seen, seen
    # The firewalls followed: the load balancers reach it (UP above), it
    # reaches the database tier, where the application has an account, and
    # a note it takes is written.
    container = grown.host(name).container
    assert open_ports(container, database_address(stack), [MYSQL_PORT]) == {MYSQL_PORT}
    assert app_accounts_at(stack, address) != "0"
    assert post_served_by(stack, name) == 201
    wait_for(lambda: scraped(monitoring, name), timeout=60, interval=2)


def test_a_web_server_removed_under_load_leaves_every_rule_and_target(
    stack: Stack, report: Report, monitoring: MonitoringLogins
) -> None:
    name, address = NEW
    container = f"webinfra-lab-{name}"
    assert docker("inspect", container, check=False).returncode == 0, "the previous test adds it"
    seconds, load = site_under_load(stack, [])
    report("day2_remove_web_site_yml", round(seconds), "s")
    report("day2_remove_web_requests", load.sent, "requests")

    for lb in stack.group("loadbalancers"):
        config = docker("exec", lb.container, "cat", "/etc/haproxy/haproxy.cfg").stdout
        assert name not in config and address not in config, lb.name
    # Still running, it reaches nothing of the stack's any more.
    assert open_ports(container, database_address(stack), [MYSQL_PORT]) == set()
    assert app_accounts_at(stack, address) == "0"
    wait_for(lambda: scraped(monitoring, name), timeout=60, interval=2, accept=lambda s: not s)
    docker("rm", "-f", container)
