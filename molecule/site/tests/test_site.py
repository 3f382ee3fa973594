"""The whole stack, deployed by site.yml, seen from a client and an operator."""

from __future__ import annotations

import uuid

import pytest
import requests
import urllib3
from testinfra.host import Host
from webinfra_testlib import (
    Target,
    alternates,
    docker,
    prometheus_targets,
    reachable,
    start_probe,
    wait_for,
)

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

NETWORK = "webinfra-site"
VIP = "172.30.10.10"
LBS = ["webinfra-site-lb-01", "webinfra-site-lb-02"]
WEBS = ["webinfra-site-web-01", "webinfra-site-web-02"]
ADDRESS = {
    "webinfra-site-lb-01": "172.30.10.11",
    "webinfra-site-lb-02": "172.30.10.12",
    "webinfra-site-web-01": "172.30.10.21",
    "webinfra-site-web-02": "172.30.10.22",
    "webinfra-site-db-01": "172.30.10.31",
    "webinfra-site-db-02": "172.30.10.32",
    "webinfra-site-mon-01": "172.30.10.41",
}
PROMETHEUS = f"http://{ADDRESS['webinfra-site-mon-01']}:9090"
PROBE = "webinfra-site-probe"

# The tests below look at the stack from outside; run them once, not per host.
testinfra_hosts = ["webinfra-site-lb-01"]


@pytest.fixture(scope="module")
def probe() -> str:
    """A client container on the stack's network that belongs to no group."""
    return start_probe(PROBE, NETWORK, ip="172.30.10.50")


def holders_of_vip() -> list[str]:
    return [
        lb
        for lb in LBS
        if f" {VIP}/" in docker("exec", lb, "ip", "-o", "-4", "addr", "show").stdout
    ]


def test_exactly_one_load_balancer_holds_the_virtual_ip() -> None:
    assert len(holders_of_vip()) == 1


def test_https_through_the_virtual_ip_answers_with_hsts() -> None:
    response = requests.get(f"https://{VIP}/", verify=False, timeout=10)
    assert response.status_code == 200
    assert "max-age=63072000" in response.headers["Strict-Transport-Security"]


def test_http_answers_301_to_https() -> None:
    response = requests.get(f"http://{VIP}/status?x=1", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{VIP}/status?x=1"


def test_round_robin_alternates_between_the_web_servers() -> None:
    seen = [
        requests.get(f"https://{VIP}/", verify=False, timeout=10).headers.get("X-Served-By", "")
        for _ in range(8)
    ]
    assert set(seen) == set(WEBS), seen
    assert alternates(seen), seen


def test_a_note_is_written_to_the_primary_and_read_from_the_replica() -> None:
    text = f"site-{uuid.uuid4()}"
    url = f"https://{VIP}/api/notes"
    created = requests.post(url, json={"text": text}, verify=False, timeout=10)
    assert created.status_code == 201, created.text
    assert created.json()["written_to"].startswith("primary")

    def read() -> dict[str, object]:
        body: dict[str, object] = requests.get(
            f"https://{VIP}/api/notes", verify=False, timeout=10
        ).json()
        return body

    body = wait_for(read, timeout=5, accept=lambda b: text in str(b.get("notes")))
    assert str(body["read_from"]).startswith("replica"), body


def test_the_database_is_closed_to_hosts_outside_the_web_servers(probe: str) -> None:
    db = ADDRESS["webinfra-site-db-01"]
    from_probe = reachable(probe, [(db, "tcp", 3306)])
    from_web = reachable("webinfra-site-web-01", [(db, "tcp", 3306)])
    assert from_probe == {(db, "tcp", 3306): False}
    assert from_web == {(db, "tcp", 3306): True}


def test_web_servers_take_http_only_from_the_load_balancers(probe: str) -> None:
    targets: list[Target] = [(ADDRESS[web], "tcp", 80) for web in WEBS]
    assert not any(reachable(probe, targets).values())
    assert all(reachable(LBS[0], targets).values())


def test_the_load_balancers_are_open_to_clients_on_80_and_443_only(probe: str) -> None:
    lb = ADDRESS[LBS[0]]
    answers = reachable(probe, [(lb, "tcp", 80), (lb, "tcp", 443), (lb, "tcp", 8404)])
    assert answers == {(lb, "tcp", 80): True, (lb, "tcp", 443): True, (lb, "tcp", 8404): False}


def test_every_prometheus_target_is_up() -> None:
    def targets() -> list[dict[str, object]]:
        return prometheus_targets(PROMETHEUS)

    found = wait_for(
        targets,
        timeout=90,
        interval=3,
        accept=lambda ts: bool(ts) and all(t["health"] == "up" for t in ts),
    )
    jobs = {str(t["labels"]["job"]) for t in found}  # type: ignore[index]
    assert {"node", "haproxy", "nginx", "mysqld"} <= jobs, jobs


def test_no_unit_failed_on_any_host(host: Host) -> None:
    for name in ADDRESS:
        failed = docker("exec", name, "systemctl", "--failed", "--plain", "--no-legend").stdout
        assert failed.strip() == "", f"{name}: {failed}"
