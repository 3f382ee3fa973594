"""Each host's firewall lets through exactly what its roles published.

Hosts (172.30.6.0/24): lb-01 .11 and lb-02 .12 publish 80/443 from anywhere,
VRRP from their peer; web-01 .21 publishes 8080 from the load balancers;
db-01 .31 publishes 3306 from web-01, has SSH restricted to `mon` and a
user rule for 5514/udp from `mon`; every host publishes 9100 (node
exporter) from `mon` .100. Listeners also run on unpublished ports. An
outsider probe (.200) belongs to no group.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from webinfra_firewall import Target, reachable
from webinfra_testlib import ansible_playbook, docker, probe_exec, start_probe, wait_for

NET = "webinfra-ufw"
ADDR = {
    "lb-01": "172.30.6.11",
    "lb-02": "172.30.6.12",
    "web-01": "172.30.6.21",
    "db-01": "172.30.6.31",
    "mon": "172.30.6.100",
    "outsider": "172.30.6.200",
}
FIREWALLED = ["lb-01", "lb-02", "web-01", "db-01"]
# Where prepare.yml installs openssh-server (scenario_ssh_servers).
SSH_SERVERS = ["web-01", "db-01"]
LB = [("tcp", 80), ("tcp", 443), ("tcp", 8404), ("tcp", 9100)]
LISTENING: dict[str, list[tuple[str, int]]] = {
    "lb-01": LB,
    "lb-02": LB,
    "web-01": [("tcp", 22), ("tcp", 8080), ("tcp", 8000), ("tcp", 9100)],
    "db-01": [
        ("tcp", 22),
        ("tcp", 3306),
        ("tcp", 33060),
        ("tcp", 9100),
        ("udp", 5514),
        ("udp", 5515),
    ],
}
PUBLIC_LB = {("tcp", 80), ("tcp", 443)}
# source -> target host -> the listening ports that must answer; every
# other listening port must be refused or time out.
EXPECTED_OPEN: dict[str, dict[str, set[tuple[str, int]]]] = {
    "outsider": {"lb-01": PUBLIC_LB, "lb-02": PUBLIC_LB, "web-01": {("tcp", 22)}, "db-01": set()},
    "mon": {
        "lb-01": PUBLIC_LB | {("tcp", 9100)},
        "lb-02": PUBLIC_LB | {("tcp", 9100)},
        "web-01": {("tcp", 22), ("tcp", 9100)},
        "db-01": {("tcp", 22), ("tcp", 9100), ("udp", 5514)},
    },
    "web-01": {"lb-01": PUBLIC_LB, "lb-02": PUBLIC_LB, "db-01": {("tcp", 3306)}},
    "lb-01": {"lb-02": PUBLIC_LB, "web-01": {("tcp", 22), ("tcp", 8080)}, "db-01": set()},
}
CONVERGE = str(Path(__file__).resolve().parents[1] / "converge.yml")


def container(name: str) -> str:
    return name if name.startswith("webinfra-") else f"webinfra-ufw-{name}"


@pytest.fixture(scope="module")
def outsider() -> str:
    return start_probe("webinfra-ufw-outsider", NET, ADDR["outsider"])


def open_ports(source: str, hosts: list[str]) -> dict[str, set[tuple[str, int]]]:
    targets: list[Target] = [(ADDR[h], proto, port) for h in hosts for proto, port in LISTENING[h]]
    answers = reachable(container(source), targets)
    by_addr = {a: h for h, a in ADDR.items()}
    result: dict[str, set[tuple[str, int]]] = {h: set() for h in hosts}
    for (address, proto, port), ok in answers.items():
        if ok:
            result[by_addr[address]].add((proto, port))
    return result


def firewall_state() -> dict[str, str]:
    return {h: docker("exec", container(h), "ufw", "status", "verbose").stdout for h in FIREWALLED}


def plain(text: str) -> str:
    """ansible-playbook output without colour codes."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host of an ansible-playbook run."""
    counters: dict[str, dict[str, int]] = {}
    for host, fields in re.findall(r"^(\S+)\s+:\s+(ok=.*)$", plain(stdout), re.M):
        counters[host] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", fields)}
    return counters


def test_every_listener_runs(outsider: str) -> None:
    """Closed ports below are closed by the firewall, not missing listeners."""
    for host in FIREWALLED:
        targets: list[Target] = [("127.0.0.1", proto, port) for proto, port in LISTENING[host]]
        answers = reachable(container(host), targets)
        assert all(answers.values()), f"{host}: listener not answering: {answers}"


@pytest.mark.parametrize("source", sorted(EXPECTED_OPEN))
def test_exactly_the_published_ports_answer(source: str, outsider: str) -> None:
    expected = EXPECTED_OPEN[source]
    assert open_ports(source, sorted(expected)) == expected


def test_ufw_policies_are_deny_in_allow_out_deny_routed() -> None:
    for host, status in firewall_state().items():
        assert "Status: active" in status, host
        assert "Default: deny (incoming), allow (outgoing), deny (routed)" in status, host
        if host in SSH_SERVERS:
            assert re.search(r"^22/tcp\s+LIMIT IN", status, re.M), f"{host}: SSH not rate-limited"
        else:
            # No sshd there (and Ansible comes through docker): no SSH rule.
            assert not re.search(r"^22/tcp\b", status, re.M), f"{host}: SSH open without sshd"


def test_vrrp_passes_only_between_the_load_balancer_peers(outsider: str) -> None:
    """Raw IP protocol 112 packets from lb-02 reach lb-01, the outsider's do not.

    A raw socket sees a packet only after netfilter's INPUT hook accepted it.
    """
    listen = (
        "import json, socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112); s.settimeout(0.2)\n"
        "seen = set(); end = time.monotonic() + 5\n"
        "while time.monotonic() < end:\n"
        "    try: seen.add(s.recvfrom(128)[1][0])\n"
        "    except OSError: pass\n"
        "print(json.dumps(sorted(seen)))\n"
    )
    send = (
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)\n"
        "for _ in range(10):\n"
        "    s.sendto(b'\\x31\\x01' + bytes(18), ('172.30.6.11', 0)); time.sleep(0.2)\n"
    )
    listener = subprocess.Popen(
        ["docker", "exec", container("lb-01"), "python3", "-c", listen],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(1)
    for sender in (container("lb-02"), outsider):
        assert probe_exec(sender, ["python3", "-c", send]).rc == 0
    stdout, _ = listener.communicate(timeout=30)
    seen = set(json.loads(stdout))
    assert ADDR["lb-02"] in seen
    assert ADDR["outsider"] not in seen


def test_an_open_ssh_session_survived_enabling_the_firewall() -> None:
    """mon's SSH session to db-01 opened in prepare, before ufw existed."""
    assert (
        docker("exec", container("mon"), "systemctl", "is-active", "admin-session").stdout.strip()
        == "active"
    )
    enabled_at = int(
        docker("exec", container("db-01"), "stat", "-c", "%Y", "/etc/ufw/ufw.conf").stdout
    )
    assert "ENABLED=yes" in docker("exec", container("db-01"), "cat", "/etc/ufw/ufw.conf").stdout

    def lines() -> list[int]:
        out = docker("exec", container("mon"), "cat", "/var/log/admin-session.log").stdout
        # one epoch second a line (ssh may also log a warning there)
        return [int(x) for x in out.split() if x.isdigit()]

    before = lines()
    assert before[0] < enabled_at, "the session must have started before ufw was enabled"
    # It still carries data now: a new line arrives over the open session.
    after = wait_for(lines, timeout=10, accept=lambda now: now[-1] > before[-1])
    assert after[-1] > enabled_at


def test_a_withdrawn_rule_is_removed_and_comes_back_when_published() -> None:
    db = container("db-01")
    # db-01 no longer publishes the mysql rules: that rule goes, nothing else.
    run = ansible_playbook(CONVERGE, {"scenario_withdrawn": ["mysql"]}, limit=db)
    assert run.rc == 0, plain(run.stdout)[-3000:]
    assert recap(run.stdout)[db]["changed"] == 1
    assert "mysql" not in firewall_state()["db-01"]
    assert open_ports("web-01", ["db-01"]) == {"db-01": set()}
    assert open_ports("mon", ["db-01"]) == {"db-01": EXPECTED_OPEN["mon"]["db-01"]}
    # Published again: the rule comes back.
    run = ansible_playbook(CONVERGE, limit=db)
    assert run.rc == 0, plain(run.stdout)[-3000:]
    assert recap(run.stdout)[db]["changed"] == 1
    assert open_ports("web-01", ["db-01"]) == {"db-01": {("tcp", 3306)}}


def established_packets(host: str) -> int:
    """Packets ufw let in on established connections since it last (re)loaded."""
    out = docker("exec", container(host), "iptables", "-L", "ufw-before-input", "-v", "-x", "-n")
    return sum(
        int(line.split()[0]) for line in out.stdout.splitlines()[2:] if "ESTABLISHED" in line
    )


def test_a_re_run_does_not_reload_the_firewall() -> None:
    """A reload rebuilds every chain (its counters start again from zero) and,
    for a moment, drops what it should pass: a cluster member can lose its
    Corosync token in that moment and be fenced. A re-run changes nothing,
    so it must not reload."""
    db = container("db-01")
    before = established_packets("db-01")
    # mon's open SSH session (prepare) carries a line a second: the counter grows.
    assert before > 0
    run = ansible_playbook(CONVERGE, limit=db)
    assert run.rc == 0, plain(run.stdout)[-3000:]
    assert recap(run.stdout)[db]["changed"] == 0
    after = established_packets("db-01")
    assert after >= before, f"the counters restarted ({before} -> {after}): ufw reloaded"


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        (
            {"ufw_rules": [{"port": "80x", "proto": "tcp", "from": ["any"]}]},
            "ufw_rules[0].port must be a number 1-65535",
        ),
        (
            {"ufw_rules": [{"port": 80, "proto": "icmp", "from": ["any"]}]},
            "value of proto must be one of: tcp, udp, vrrp, got: icmp found in ufw_rules",
        ),
        (
            {"scenario_extra_published": {"broken": [{"port": 81, "from": ["10.0.0.0/33"]}]}},
            "ufw_published_rules['broken'][0].from[0]",
        ),
        ({"ufw_ssh_sources": []}, "ufw_ssh_sources"),
        ({"ufw_ssh_rule": "sometimes"}, "ufw_ssh_rule"),
    ],
    ids=["malformed-port", "unknown-proto", "malformed-source", "no-ssh-source", "ssh-rule"],
)
def test_a_wrong_variable_stops_the_play_before_any_change(
    extra_vars: dict[str, object], message: str
) -> None:
    before = firewall_state()
    run = ansible_playbook(CONVERGE, extra_vars, limit=container("db-01"))
    assert run.rc != 0
    assert message in plain(run.stdout + run.stderr)
    assert recap(run.stdout)[container("db-01")]["changed"] == 0
    assert firewall_state() == before
