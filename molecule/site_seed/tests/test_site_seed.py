"""The design document's layout, deployed by site.yml, seen from a client and an operator.

One load balancer (lb-01, no virtual IP: clients use its own address) in
front of web-01 and web-02, which also carry the database primary (web-01)
and its replica (web-02). No monitoring host.
"""

from __future__ import annotations

import os
import uuid

import pytest
import requests
import urllib3
from webinfra_database import mysql_replica_status, mysql_sql
from webinfra_firewall import open_ports
from webinfra_load import alternates, served_by
from webinfra_testlib import (
    ansible_playbook,
    changed_tasks,
    docker,
    failed_units_in,
    play_recap,
    start_probe,
    wait_for,
)

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

NETWORK = "webinfra-site_seed"
LB = "webinfra-site_seed-lb-01"
WEB_01 = "webinfra-site_seed-web-01"
WEB_02 = "webinfra-site_seed-web-02"
WEBS = [WEB_01, WEB_02]
ADDRESS = {
    LB: "172.30.11.11",
    WEB_01: "172.30.11.21",
    WEB_02: "172.30.11.22",
}
ENTRY = ADDRESS[LB]
PROBE = "webinfra-site_seed-probe"

# Every port a role of the stack listens on, or could: the load balancer's
# frontends and stats page, nginx and its stub_status, MariaDB, the
# exporters. SSH (22) is left out: the containers run no sshd, so a closed
# answer would say nothing about the firewall.
STACK_PORTS = [80, 443, 3306, 8080, 8404, 9100, 9104, 9113]

# The tests below look at the stack from outside; run them once, not per host.
testinfra_hosts = [LB]


@pytest.fixture(scope="module")
def probe() -> str:
    """A client container on the stack's network that belongs to no group."""
    return start_probe(PROBE, NETWORK, ip="172.30.11.50")


def open_on(source: str, host: str) -> set[int]:
    """The ports of STACK_PORTS on `host` that accept a connection from `source`."""
    return open_ports(source, ADDRESS[host], STACK_PORTS)


def test_keepalived_is_not_deployed_on_the_single_load_balancer() -> None:
    # One load balancer, no virtual IP: site.yml skips keepalived entirely.
    status = docker("exec", LB, "dpkg-query", "-W", "-f", "${Status}", "keepalived", check=False)
    assert "install ok installed" not in status.stdout, status.stdout


def test_https_through_the_load_balancer_answers_with_hsts() -> None:
    response = requests.get(f"https://{ENTRY}/", verify=False, timeout=10)
    assert response.status_code == 200
    assert "max-age=63072000" in response.headers["Strict-Transport-Security"]


def test_http_answers_301_to_https() -> None:
    response = requests.get(f"http://{ENTRY}/status?x=1", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{ENTRY}/status?x=1"


def test_round_robin_alternates_between_the_web_servers() -> None:
    seen = served_by(f"https://{ENTRY}/", count=8)
    assert set(seen) == set(WEBS), seen
    assert alternates(seen), seen


def test_a_note_is_written_on_web_01_and_read_from_web_02() -> None:
    text = f"seed-{uuid.uuid4()}"
    url = f"https://{ENTRY}/api/notes"
    created = requests.post(url, json={"text": text}, verify=False, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["written_to"] == f"primary {ADDRESS[WEB_01]}:3306"

    def read() -> dict[str, object]:
        body: dict[str, object] = requests.get(url, verify=False, timeout=10).json()
        return body

    body = wait_for(read, timeout=5, accept=lambda b: text in str(b.get("notes")))
    assert body["read_from"] == f"replica {ADDRESS[WEB_02]}:3306", body
    # The row lives in both servers' own tables: written on web-01, replicated to web-02.
    query = f"SELECT COUNT(*) FROM webinfra.notes WHERE body = '{text}'"
    assert mysql_sql(WEB_01, query) == "1"
    assert mysql_sql(WEB_02, query) == "1"


def test_web_02_replicates_from_web_01() -> None:
    status = mysql_replica_status(WEB_02)
    assert status["Master_Host"] == ADDRESS[WEB_01]
    assert status["Slave_IO_Running"] == "Yes", status
    assert status["Slave_SQL_Running"] == "Yes", status
    assert mysql_replica_status(WEB_01) == {}
    assert mysql_sql(WEB_02, "SELECT @@read_only") == "1"


def test_an_outside_client_reaches_only_the_load_balancers_80_and_443(probe: str) -> None:
    assert open_on(probe, LB) == {80, 443}
    assert open_on(probe, WEB_01) == set()
    assert open_on(probe, WEB_02) == set()


def test_the_load_balancer_reaches_only_nginx_on_the_web_servers() -> None:
    assert open_on(LB, WEB_01) == {80}
    assert open_on(LB, WEB_02) == {80}


def test_the_web_servers_reach_each_others_database_only() -> None:
    # web-01 carries nginx (open to the load balancer only) and the primary
    # (open to the web servers and the replica); web-02 the same with the replica.
    assert open_on(WEB_02, WEB_01) == {3306}
    assert open_on(WEB_01, WEB_02) == {3306}


def test_no_unit_failed_on_any_host() -> None:
    assert failed_units_in(list(ADDRESS)) == {}


def test_a_dry_run_of_the_converged_stack_passes_and_changes_nothing() -> None:
    """site.yml --check --diff on the converged stack: no task fails and none
    would change anything (the scenario's check step dry-ran the fresh hosts)."""
    converge = os.path.join(os.environ["MOLECULE_SCENARIO_DIRECTORY"], "converge.yml")
    outcome = ansible_playbook(converge, check=True)
    assert outcome.rc == 0, outcome.stdout[-4000:] + outcome.stderr[-2000:]
    recap = play_recap(outcome.stdout)
    assert len(recap) == len(ADDRESS), recap
    assert changed_tasks(outcome.stdout) == []
    assert all(counts["changed"] == 0 for counts in recap.values()), recap
