"""The whole stack, seen from a client and an operator.

Runs against the lab or the site scenario (see conftest.py); every name and
address comes from the target's inventory.
"""

from __future__ import annotations

import uuid
from typing import Any

import requests
from webinfra_e2e import Stack, parse_listening, public_ports
from webinfra_testlib import (
    alternates,
    docker,
    prometheus_targets,
    reachable,
    wait_for,
)


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


def test_http_answers_301_to_https(stack: Stack) -> None:
    response = requests.get(f"http://{stack.vip}/status?x=1", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == f"https://{stack.vip}/status?x=1"


def test_round_robin_alternates_between_the_web_servers(stack: Stack) -> None:
    seen = [
        requests.get(f"https://{stack.vip}/", verify=False, timeout=10).headers.get(
            "X-Served-By", ""
        )
        for _ in range(8)
    ]
    assert set(seen) == {web.name for web in stack.group("webservers")}, seen
    assert alternates(seen), seen


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


def test_each_host_exposes_exactly_its_public_ports(stack: Stack, probe: str) -> None:
    """From a client in no group: what a host listens on is reachable only when public."""
    for host in stack.hosts:
        listening = parse_listening(docker("exec", host.container, "ss", "-Hltn").stdout)
        expected = public_ports(host.groups)
        assert expected <= listening, f"{host.name} should listen on {sorted(expected)}"
        answers = reachable(probe, [(host.address, "tcp", port) for port in sorted(listening)])
        opened = {port for (_, _, port), ok in answers.items() if ok}
        assert opened == expected, f"{host.name}: open to any client {sorted(opened)}"


def test_private_ports_answer_the_groups_that_need_them(stack: Stack) -> None:
    lb = stack.group("loadbalancers")[0]
    web = stack.group("webservers")[0]
    mon = stack.one("monitoring")
    cases = [
        (lb, [(w.address, "tcp", 80) for w in stack.group("webservers")]),
        (web, [(d.address, "tcp", 3306) for d in stack.group("databases")]),
        (mon, [(h.address, "tcp", 9100) for h in stack.hosts]),
    ]
    for source, targets in cases:
        answers = reachable(source.container, targets)
        assert all(answers.values()), f"from {source.name}: {answers}"


def test_every_prometheus_target_is_up(stack: Stack) -> None:
    base = f"http://{stack.one('monitoring').address}:9090"

    def targets() -> list[dict[str, Any]]:
        return prometheus_targets(base)

    found = wait_for(
        targets,
        timeout=90,
        interval=3,
        accept=lambda ts: bool(ts) and all(t["health"] == "up" for t in ts),
    )
    jobs = {str(t["labels"]["job"]) for t in found}
    assert {"node", "haproxy", "nginx", "mysqld"} <= jobs, jobs


def test_no_unit_failed_on_any_host(stack: Stack) -> None:
    for host in stack.hosts:
        failed = docker(
            "exec", host.container, "systemctl", "--failed", "--plain", "--no-legend"
        ).stdout
        assert failed.strip() == "", f"{host.name}: {failed}"
