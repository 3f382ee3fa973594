"""The virtual IP of the keepalived pair: one holder, fast failover, clean return.

The tests run in file order and share the two load balancers: each one
finds the current MASTER itself, and leaves both containers running.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webinfra_testlib import (
    ansible_playbook,
    docker,
    probe_exec,
    start_probe,
    start_systemd_host,
    wait_for,
)
from webinfra_vip_probe import (
    clients_seen,
    describe,
    failures_by_kind,
    finish_vip_probe,
    longest_gap,
    start_vip_probe,
)
from webinfra_vrrp import AddressWatch, holder_violations

NETWORK = "webinfra-keepalived"
LB1 = "webinfra-keepalived-lb1"
LB2 = "webinfra-keepalived-lb2"
LBS = [LB1, LB2]
VIP = "172.30.8.100"
PROBE = "webinfra-keepalived-probe"
PROBE_IP = "172.30.8.50"
# A host with nothing on it yet, for the dry run of a first deployment.
FRESH = "webinfra-keepalived-fresh"
FRESH_IP = "172.30.8.13"
CONFIG = "/etc/keepalived/keepalived.conf"
# The keepalived role alone, with the scenario's variables (bad-input tests).
KEEPALIVED_ONLY = str(Path(__file__).resolve().parents[1] / "keepalived_only.yml")


@pytest.fixture(scope="module")
def probe() -> Iterator[str]:
    name = start_probe(PROBE, NETWORK, PROBE_IP)
    yield name
    docker("rm", "-f", name, check=False)


def running(container: str) -> bool:
    out = docker("inspect", "-f", "{{.State.Running}}", container, check=False).stdout
    return out.strip() == "true"


def holds_vip(container: str) -> bool:
    out = docker("exec", container, "ip", "-o", "-4", "addr", "show", check=False).stdout
    return any(f" {VIP}/" in line for line in out.splitlines())


def holders() -> list[str]:
    return [lb for lb in LBS if running(lb) and holds_vip(lb)]


def single_holder() -> str:
    """Wait until exactly one load balancer holds the virtual IP; return it."""
    found = wait_for(holders, timeout=30, accept=lambda hs: len(hs) == 1)
    return found[0]


def other(lb: str) -> str:
    return LB2 if lb == LB1 else LB1


def nopreempt_configured() -> bool:
    lb = next(lb for lb in LBS if running(lb))
    config = docker("exec", lb, "cat", CONFIG).stdout
    return any(line.strip() == "nopreempt" for line in config.splitlines())


def priority(lb: str) -> int:
    config = docker("exec", lb, "cat", CONFIG).stdout
    line = next(line for line in config.splitlines() if line.strip().startswith("priority "))
    return int(line.split()[1])


def vrrp_state(lb: str) -> str:
    """The state keepalived last logged for instance `web` ("(web) Entering MASTER STATE")."""
    log = docker(
        "exec", lb, "journalctl", "-u", "keepalived", "-o", "cat", "-n", "2000", check=False
    )
    states = re.findall(r"^\(web\) Entering ([A-Z]+) STATE", log.stdout, flags=re.MULTILINE)
    return states[-1] if states else "UNKNOWN"


def served_by(probe: str) -> str:
    result = probe_exec(probe, ["curl", "-sk", "-m", "2", f"https://{VIP}/"])
    return result.stdout.strip()


def journal_transitions(lb: str) -> str:
    return docker(
        "exec", lb, "journalctl", "-t", "keepalived-notify", "--no-pager", "-o", "cat"
    ).stdout


def assert_logged(lb: str, text: str) -> None:
    """The notify script logged `text` on `lb` (it runs a moment after the change)."""
    try:
        wait_for(lambda: text in journal_transitions(lb), timeout=10)
    except TimeoutError:
        pytest.fail(f"{lb} did not log {text!r}:\n{journal_transitions(lb)[-2000:]}")


def assert_state(lb: str, *states: str) -> None:
    try:
        wait_for(lambda: vrrp_state(lb), timeout=10, accept=lambda s: s in states)
    except TimeoutError as exc:
        pytest.fail(f"{lb} is not {' or '.join(states)}: {exc}")


def wait_until_booted(lb: str) -> None:
    """After `docker start`: systemd up, then keepalived active."""

    def boot_state() -> str:
        done = docker(
            "exec", lb, "systemctl", "is-system-running", "--wait", check=False, timeout=120
        )
        return done.stdout.strip()

    # Until systemd listens on its bus, systemctl fails at once ("Failed to connect to bus").
    wait_for(boot_state, timeout=120, interval=0.5, accept=lambda s: s in ("running", "degraded"))

    def keepalived_state() -> str:
        done = docker("exec", lb, "systemctl", "is-active", "keepalived", check=False)
        return done.stdout.strip()

    wait_for(keepalived_state, timeout=30, accept=lambda state: state == "active")


def ensure_both_running() -> None:
    for lb in LBS:
        if not running(lb):
            docker("start", lb)
            wait_until_booted(lb)
        docker("exec", lb, "systemctl", "start", "haproxy")


def test_live_configuration_passes_keepalived_config_test() -> None:
    for lb in LBS:
        result = docker(
            "exec", lb, "keepalived", "--config-test", f"--use-file={CONFIG}", check=False
        )
        assert result.returncode == 0, f"{lb}: {result.stderr}"


def test_exactly_one_load_balancer_holds_the_vip() -> None:
    ensure_both_running()
    single_holder()
    with AddressWatch(LBS, VIP) as watch:
        time.sleep(3)
    both, neither = holder_violations(watch.timelines)
    assert both == [], f"both load balancers held {VIP}: {both}"
    assert neither == [], f"no load balancer held {VIP}: {neither}"
    for lb, samples in watch.timelines.items():
        assert len(samples) > 20, f"too few samples from {lb}"
    holding = {lb for lb, samples in watch.timelines.items() if all(s.held for s in samples)}
    assert len(holding) == 1
    if not nopreempt_configured():
        assert holding == {max(LBS, key=priority)}, "the highest priority should be MASTER"


def test_the_probe_is_served_through_the_vip_by_the_master(probe: str) -> None:
    master = single_holder()
    assert_state(master, "MASTER")
    assert_state(other(master), "BACKUP")
    assert served_by(probe) == master


def test_haproxy_on_the_backup_listens_on_the_vip_too() -> None:
    """ip_nonlocal_bind lets haproxy bind an address the host does not hold yet."""
    backup = other(single_holder())
    assert (
        docker("exec", backup, "cat", "/proc/sys/net/ipv4/ip_nonlocal_bind").stdout.strip() == "1"
    )
    listening = docker("exec", backup, "ss", "-Hltn").stdout
    assert f"{VIP}:443" in listening, listening
    assert not holds_vip(backup)


def test_every_transition_is_logged_to_the_journal() -> None:
    master = single_holder()
    assert_logged(master, f"VRRP INSTANCE web on {master} is now MASTER")
    backup = other(master)
    assert_logged(backup, f"VRRP INSTANCE web on {backup} is now BACKUP")


def test_stopping_haproxy_on_the_master_moves_the_vip(probe: str) -> None:
    master = single_holder()
    backup = other(master)
    try:
        with AddressWatch(LBS, VIP) as watch:
            docker("exec", master, "systemctl", "stop", "haproxy")
            wait_for(holders, timeout=15, accept=lambda hs: hs == [backup])
        both = holder_violations(watch.timelines)[0]
        assert both == [], f"both load balancers held {VIP}: {both}"
        assert served_by(probe) == backup
        assert_state(master, "FAULT")
        assert_logged(master, f"VRRP INSTANCE web on {master} is now FAULT")
    finally:
        docker("exec", master, "systemctl", "start", "haproxy")
    expected = backup if nopreempt_configured() else master
    wait_for(holders, timeout=15, accept=lambda hs: hs == [expected])
    assert_state(master, "MASTER", "BACKUP")


def test_stopping_haproxy_on_the_master_leaves_impatient_clients_under_a_second(
    probe: str,
) -> None:
    """Until keepalived notices (a check every second) the master keeps the VIP.

    Without the handoff rules its kernel refused every connection meanwhile
    (1.1-1.9 s without an answer); with them the backup serves at once.
    """
    ensure_both_running()
    master = single_holder()
    backup = other(master)
    loop = start_vip_probe(probe, VIP, duration=5, clients=4, timeout=1.0)
    try:
        time.sleep(2)
        docker("exec", master, "systemctl", "stop", "haproxy")
        requests = finish_vip_probe(loop)
    finally:
        docker("exec", master, "systemctl", "start", "haproxy")
    outage = longest_gap(requests)
    print(f"\nVIP outage when haproxy stopped on the MASTER: {describe(requests)}")
    assert len(requests) > 100, "the probe sent too few requests"
    assert requests[-1].ok and requests[-1].detail == backup
    assert outage < 1.0, f"no answer for {outage:.3f} s through the VIP: {describe(requests)}"
    expected = backup if nopreempt_configured() else master
    wait_for(holders, timeout=15, accept=lambda hs: hs == [expected])
    assert_state(master, "MASTER", "BACKUP")


def test_killing_the_master_moves_the_vip_within_a_second(probe: str) -> None:
    """Four impatient clients (fresh TLS connection per GET, 1 s timeout) barely notice.

    `docker kill` stops haproxy and keepalived at once, but the container's
    network stays up a moment longer: without the handoff rules its kernel
    refused every connection (hundreds to thousands of "connection
    refused"), and the connections sent after it vanished, before the backup
    announced the virtual IP, were lost and cost each client its whole 1 s
    timeout (1.1-1.2 s without an answer).
    """
    ensure_both_running()
    master = single_holder()
    backup = other(master)
    assert_state(master, "MASTER")
    assert_state(backup, "BACKUP")
    loop = start_vip_probe(probe, VIP, duration=6, clients=4, timeout=1.0)
    time.sleep(2)
    docker("kill", master)
    requests = finish_vip_probe(loop)
    outage = longest_gap(requests)
    print(f"\nVIP outage when the MASTER was killed: {describe(requests)}")
    assert len(requests) > 100, "the probe sent too few requests"
    assert clients_seen(requests) == {0, 1, 2, 3}
    assert requests[0].ok and requests[0].detail == master
    assert requests[-1].ok and requests[-1].detail == backup
    assert outage < 1.0, f"no answer for {outage:.3f} s through the VIP: {describe(requests)}"
    refused = failures_by_kind(requests)["ConnectionRefusedError"]
    assert refused <= 20, f"the dying MASTER refused {refused} connections: {describe(requests)}"
    assert holders() == [backup]
    assert_logged(backup, f"VRRP INSTANCE web on {backup} is now MASTER")


def test_the_old_master_comes_back_as_configured() -> None:
    stopped = [lb for lb in LBS if not running(lb)]
    if not stopped:  # the kill test did not leave one: kill the MASTER here
        stopped = [single_holder()]
        docker("kill", stopped[0])
    returning = stopped[0]
    staying = other(returning)
    wait_for(holders, timeout=15, accept=lambda hs: hs == [staying])

    with AddressWatch([staying], VIP) as watch:
        docker("start", returning)
        watch.add(returning)
        wait_until_booted(returning)
        preempt = not nopreempt_configured() and priority(returning) > priority(staying)
        wait_for(
            lambda: vrrp_state(returning), timeout=30, accept=lambda s: s in ("MASTER", "BACKUP")
        )
        if preempt:
            wait_for(holders, timeout=15, accept=lambda hs: hs == [returning])
        time.sleep(2)  # long enough for a wrong takeover (20 advertisement intervals)

    both, neither = holder_violations(watch.timelines)
    assert both == [], f"both load balancers held {VIP}: {both}"
    assert neither == [], f"no load balancer held {VIP}: {neither}"
    assert watch.timelines[returning], f"no address samples from {returning}"
    assert not watch.timelines[returning][0].held, "sampling started after the return"
    expected = returning if preempt else staying
    assert holders() == [expected]
    assert_state(expected, "MASTER")
    assert_state(other(expected), "BACKUP")


@pytest.fixture
def configuration_phases_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a configuration change needs, to keep the role's runs short."""
    monkeypatch.setenv(
        "ANSIBLE_RUN_TAGS", "keepalived_preflight,keepalived_configure,keepalived_service"
    )


def first_holds() -> str:
    """Both load balancers running and the first (highest priority) holding the VIP."""
    ensure_both_running()
    first = max(LBS, key=priority)
    wait_for(holders, timeout=15, accept=lambda hs: hs == [first])
    return first


@pytest.mark.usefixtures("configuration_phases_only")
def test_with_nopreempt_a_returning_master_leaves_the_vip_where_it_is() -> None:
    first = first_holds()
    switched = ansible_playbook(KEEPALIVED_ONLY, extra_vars={"keepalived_nopreempt": True})
    assert switched.rc == 0, (switched.stdout + switched.stderr)[-3000:]
    try:
        assert nopreempt_configured()
        assert holders() == [first], "a reload must not move the virtual IP"
        backup = other(first)
        docker("exec", first, "systemctl", "stop", "haproxy")
        wait_for(holders, timeout=15, accept=lambda hs: hs == [backup])
        with AddressWatch(LBS, VIP) as watch:
            docker("exec", first, "systemctl", "start", "haproxy")
            assert_state(first, "BACKUP")
            time.sleep(2)  # long enough for a takeover (20 advertisement intervals)
        both, neither = holder_violations(watch.timelines)
        assert both == [], f"both load balancers held {VIP}: {both}"
        assert neither == [], f"no load balancer held {VIP}: {neither}"
        assert holders() == [backup], "with nopreempt the virtual IP must stay"
    finally:
        docker("exec", first, "systemctl", "start", "haproxy", check=False)
        restored = ansible_playbook(KEEPALIVED_ONLY)
    assert restored.rc == 0, (restored.stdout + restored.stderr)[-3000:]
    assert not nopreempt_configured()
    wait_for(holders, timeout=15, accept=lambda hs: hs == [first])


@pytest.mark.usefixtures("configuration_phases_only")
def test_with_join_later_a_stopped_member_starts_only_through_join() -> None:
    first = first_holds()
    joiner = other(first)
    docker("exec", joiner, "systemctl", "stop", "keepalived")
    try:
        waited = ansible_playbook(KEEPALIVED_ONLY, extra_vars={"keepalived_join_later": True})
        assert waited.rc == 0, (waited.stdout + waited.stderr)[-3000:]
        assert not active(joiner, "keepalived"), "keepalived_join_later must leave it stopped"
        with AddressWatch(LBS, VIP) as watch:
            joined = ansible_playbook(
                KEEPALIVED_ONLY, extra_vars={"keepalived_join_later": True, "join": True}
            )
            time.sleep(1)
        assert joined.rc == 0, (joined.stdout + joined.stderr)[-3000:]
        assert active(joiner, "keepalived")
        assert_state(joiner, "BACKUP")
        both, neither = holder_violations(watch.timelines)
        assert both == [], f"both load balancers held {VIP}: {both}"
        assert neither == [], f"no load balancer held {VIP}: {neither}"
        assert holders() == [first]
    finally:
        docker("exec", joiner, "systemctl", "start", "keepalived", check=False)


def test_a_dry_run_of_a_first_deployment_with_join_passes_and_installs_nothing(
    tmp_path: Path,
) -> None:
    """`--check` on a host that has nothing yet, join included (as site.yml
    runs it): there is no keepalived unit to start, and the dry run must say
    so and pass, not fail on the missing unit."""
    fresh = start_systemd_host(FRESH, NETWORK, FRESH_IP)
    inventory = tmp_path / "fresh.yml"
    inventory.write_text(
        f"loadbalancers:\n  hosts:\n    {fresh}:\n"
        "      ansible_connection: community.docker.docker\n",
        encoding="utf-8",
    )
    try:
        dry = ansible_playbook(
            KEEPALIVED_ONLY,
            extra_vars={"keepalived_join_later": True, "join": True},
            check=True,
            inventory=str(inventory),
        )
        assert dry.rc == 0, (dry.stdout + dry.stderr)[-3000:]
        assert "keepalived is not installed yet" in dry.stdout
        installed = docker("exec", fresh, "dpkg-query", "-W", "keepalived", check=False)
        assert installed.returncode != 0, "a dry run installed keepalived"
    finally:
        docker("rm", "-f", "-v", fresh, check=False)


def active(container: str, unit: str) -> bool:
    return docker(
        "exec", container, "systemctl", "is-active", unit, check=False
    ).stdout.strip() == ("active")


@pytest.mark.parametrize(
    ("instances", "expected"),
    [
        pytest.param(
            [{"name": "web", "virtual_router_id": 51, "virtual_ipaddresses": ["172.30.8.300/24"]}],
            "these are not: ['172.30.8.300/24']",
            id="vip-not-an-address",
        ),
        pytest.param(
            [
                {
                    "name": "web",
                    "virtual_router_id": 51,
                    "virtual_ipaddresses": ["172.30.8.100/24"],
                },
                {
                    "name": "api",
                    "virtual_router_id": 51,
                    "virtual_ipaddresses": ["172.30.8.101/24"],
                },
            ],
            "duplicates: [51]",
            id="duplicate-router-id",
        ),
    ],
)
def test_a_wrong_variable_stops_the_play_before_any_change(
    instances: list[dict[str, object]], expected: str
) -> None:
    ensure_both_running()
    before = {lb: docker("exec", lb, "md5sum", CONFIG).stdout for lb in LBS}
    result = ansible_playbook(KEEPALIVED_ONLY, extra_vars={"keepalived_instances": instances})
    output = result.stdout + result.stderr
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)  # molecule forces colour
    flat = " ".join(plain.split())
    assert result.rc != 0, output[-3000:]
    assert "keepalived_instances" in flat
    assert expected in flat, output[-3000:]
    for lb in LBS:
        recap = re.search(rf"^{lb}\s*:.*$", plain, flags=re.MULTILINE)
        assert recap, f"no play recap for {lb}:\n{plain[-3000:]}"
        assert " changed=0 " in f" {' '.join(recap.group(0).split())} ", recap.group(0)
        assert " failed=1 " in f" {' '.join(recap.group(0).split())} ", recap.group(0)
    assert {lb: docker("exec", lb, "md5sum", CONFIG).stdout for lb in LBS} == before
    single_holder()
