"""Day 2 on the live lab: a load balancer added, the VIP holder retired, and
the lab put back, each under load.

    make demo
    make day2        # WEBINFRA_E2E_DAY2=1 pytest tests/e2e/day2 --target lab

The operator's path: lb-03 joins `loadbalancers` through an inventory
overlay and site.yml runs; then the holder of the virtual IP hands it over
(`systemctl stop keepalived` on it), leaves the group (a copy of the lab's
inventory without it: an overlay can only add) and site.yml runs again
before its machine goes. The last test puts the lab back as inventory/lab
draws it: the retired load balancer is rebuilt, joins again, and lb-03 is
retired the same way. While each play runs a patient client reads pages
through the HTTPS virtual IP and a sampler in every load balancer records
who holds the address. Four runs of site.yml: about 25 minutes. The tests
run in file order; after a failure, `make demo` rebuilds what is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from webinfra_e2e import Stack, StackHost
from webinfra_failures import BACKEND, Report, running, url, vip_holders
from webinfra_haproxy import haproxy_server_status
from webinfra_load import BurstResult, PatientTlsBackgroundBurst
from webinfra_monitoring import MonitoringLogins, prometheus_targets
from webinfra_testlib import docker, wait_for
from webinfra_vrrp import AddressWatch, holder_violations

from tools import lab as labtool
from tools.bench_run import ansible_playbook

NEW = ("lb-03", "172.31.250.13")
KEEPALIVED_CONF = "/etc/keepalived/keepalived.conf"
# The sampler outlives a run of site.yml over the whole lab.
WATCH_LIMIT = 1800.0


@pytest.fixture(scope="module")
def overlay(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An inventory that adds lb-03 to the lab's load balancers."""
    path = tmp_path_factory.mktemp("day2-lb") / "lb-03.yml"
    path.write_text(json.dumps(labtool.overlay_inventory("loadbalancers", [NEW]), indent=2))
    return path


@pytest.fixture(scope="module")
def first(stack: Stack) -> StackHost:
    """The load balancer that holds the virtual IP when the tests start."""
    holders = vip_holders(stack)
    assert len(holders) == 1, holders
    return stack.by_name(holders[0])


@pytest.fixture(scope="module", autouse=True)
def lab_only(stack: Stack) -> Iterator[None]:
    assert stack.kind == "lab", "the day-2 tests grow the lab (make demo first)"
    yield
    # lb-03 is in no inventory of the lab: left behind by a failed test, it
    # would hold a stale configuration and could take the virtual IP.
    docker("rm", "-f", f"webinfra-lab-{NEW[0]}", check=False)


def site_under_watch(
    stack: Stack, containers: list[str], overlays: list[Path], inventory: Path = labtool.INVENTORY
) -> tuple[float, BurstResult, AddressWatch]:
    """site.yml while a patient client reads pages through the virtual IP and
    `containers` sample whether they hold it. Asserts no request failed and
    that the address always had exactly one holder."""
    with (
        AddressWatch(containers, stack.vip, limit=WATCH_LIMIT) as watch,
        PatientTlsBackgroundBurst(
            url(stack), count=100_000, duration=WATCH_LIMIT, interval=0.05, verify=False
        ) as load,
    ):
        seconds, _ = ansible_playbook("playbooks/site.yml", overlays=overlays, inventory=inventory)
    result = load.result
    assert result.sent > 100, result
    assert result.failed == 0, (result.failed, result.errors)
    both, neither = holder_violations(watch.timelines)
    assert both == [], f"two load balancers held the virtual IP: {both}"
    assert neither == [], f"no load balancer held the virtual IP: {neither}"
    return seconds, result, watch


def peers(container: str) -> set[str]:
    """The unicast peers in a load balancer's keepalived configuration."""
    text = docker("exec", container, "cat", KEEPALIVED_CONF).stdout
    block = text.split("unicast_peer {", 1)[1].split("}", 1)[0]
    return set(block.split())


def firewall(container: str) -> str:
    return docker("exec", container, "ufw", "status").stdout


def scraped(monitoring: MonitoringLogins, name: str) -> bool:
    return any(
        t["labels"].get("instance") == name for t in prometheus_targets(monitoring.prometheus)
    )


def hand_over(stack: Stack, holder: StackHost, others: list[StackHost]) -> float:
    """Move the virtual IP off `holder` the documented way; the seconds it
    had no holder, as sampled. Asserts one of `others` took it."""
    containers = [holder.container, *(o.container for o in others)]
    with AddressWatch(containers, stack.vip, limit=60) as watch:
        docker("exec", holder.container, "systemctl", "stop", "keepalived")
        wait_for(lambda: vip_holders_among(stack, others), timeout=10, interval=0.1, accept=bool)
        time.sleep(1)
    both, neither = holder_violations(watch.timelines)
    assert both == [], both
    return sum(end - start for start, end in neither)


def all_up(container: str, stack: Stack) -> bool:
    return all(
        haproxy_server_status(container, BACKEND, web.name) == "UP"
        for web in stack.group("webservers")
    )


def vip_holders_among(stack: Stack, hosts: list[StackHost]) -> list[str]:
    return [
        h.container
        for h in hosts
        if running(h.container)
        and f" {stack.vip}/"
        in docker("exec", h.container, "ip", "-o", "-4", "addr", "show", check=False).stdout
    ]


def test_a_load_balancer_added_under_load_joins_as_a_backup(
    stack: Stack, report: Report, overlay: Path, monitoring: MonitoringLogins, first: StackHost
) -> None:
    name, address = NEW
    grown = labtool.load_lab((overlay,))
    labtool.ensure_hosts(grown)
    new = grown.host(name).container
    old = stack.group("loadbalancers")
    seconds, load, _ = site_under_watch(stack, [*(lb.container for lb in old), new], [overlay])
    report("day2_add_lb_site_yml", round(seconds), "s")
    report("day2_add_lb_requests", load.sent, "requests")

    # It joined as the lowest priority: the holder kept the address.
    assert vip_holders_among(stack, old) == [first.container]
    for lb in old:
        assert address in peers(lb.container), lb.name
        assert address in firewall(lb.container), lb.name
    assert peers(new) == {lb.address for lb in old}
    # The web servers' firewalls admit it: every server is UP in its HAProxy.
    wait_for(lambda: all_up(new, stack), timeout=30)
    wait_for(lambda: scraped(monitoring, name), timeout=60, interval=2)


def test_the_vip_holder_retired_under_load_hands_over_first_and_leaves_every_rule(
    stack: Stack,
    report: Report,
    overlay: Path,
    monitoring: MonitoringLogins,
    first: StackHost,
    tmp_path: Path,
) -> None:
    assert running(f"webinfra-lab-{NEW[0]}"), "the previous test adds lb-03"
    grown = labtool.load_lab((overlay,))
    rest = [
        StackHost(h.name, h.container, h.address, frozenset(h.groups))
        for h in grown.hosts
        if "loadbalancers" in h.groups and h.name != first.name
    ]
    gap = hand_over(stack, first, rest)
    report("day2_retire_lb_handover_without_holder", round(gap * 1000), "ms")
    assert gap < 1.0, gap

    retired = labtool.write_retired_inventory([first.name], tmp_path / "inventory")
    seconds, load, _ = site_under_watch(
        stack, [h.container for h in rest], [overlay], inventory=retired
    )
    report("day2_retire_lb_site_yml", round(seconds), "s")
    report("day2_retire_lb_requests", load.sent, "requests")
    for lb in rest:
        assert first.address not in peers(lb.container), lb.name
        assert first.address not in firewall(lb.container), lb.name
    for web in stack.group("webservers"):
        assert first.address not in firewall(web.container), web.name
    wait_for(
        lambda: scraped(monitoring, first.name), timeout=60, interval=2, accept=lambda s: not s
    )
    # The machine goes; the new member takes the address when it is the last.
    docker("rm", "-f", first.container)
    holder = stack.by_name(vip_holders_among(stack, rest)[0])
    last = [h for h in rest if h.name != holder.name]
    gap = hand_over(stack, holder, last)
    report("day2_new_lb_takes_over_without_holder", round(gap * 1000), "ms")
    docker("exec", holder.container, "systemctl", "start", "keepalived")
    wait_for(
        lambda: vip_holders_among(stack, rest),
        timeout=10,
        interval=0.2,
        accept=lambda h: h == [holder.container],
    )


def test_the_lab_is_put_back_the_retired_one_rebuilt_and_the_added_one_retired(
    stack: Stack, report: Report, overlay: Path, first: StackHost
) -> None:
    name, address = NEW
    new = f"webinfra-lab-{name}"
    assert not running(first.container), "the previous test retires it"
    grown = labtool.load_lab((overlay,))
    labtool.ensure_hosts(grown)
    everyone = [lb.container for lb in stack.group("loadbalancers")] + [new]
    seconds, load, _ = site_under_watch(stack, everyone, [overlay])
    report("day2_rejoin_lb_site_yml", round(seconds), "s")
    report("day2_rejoin_lb_requests", load.sent, "requests")
    assert first.address in peers(new)

    # Retired the same way: the handover first (a no-op unless it holds the
    # address), then the lab's own inventory.
    hand_over(stack, grown_host(grown, name), stack.group("loadbalancers"))
    seconds, load, _ = site_under_watch(
        stack, [lb.container for lb in stack.group("loadbalancers")], []
    )
    report("day2_retire_added_lb_site_yml", round(seconds), "s")
    for lb in stack.group("loadbalancers"):
        assert address not in peers(lb.container), lb.name
        assert address not in firewall(lb.container), lb.name
    docker("rm", "-f", new)
    assert len(vip_holders(stack)) == 1


def grown_host(lab: labtool.Lab, name: str) -> StackHost:
    host = lab.host(name)
    return StackHost(host.name, host.container, host.address, frozenset(host.groups))
