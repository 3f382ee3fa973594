"""The stack as the end-to-end tests see it, and the pure logic they share.

tests/e2e runs against the lab (inventory/lab) or a molecule scenario (its
ephemeral inventory). Both are read with `ansible-inventory --list`: the
groups say which host plays which part, `lab_vip` is the virtual IP, and
`webinfra_address` (or the container's address on the stack's network) is
where each host answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Groups whose hosts are not part of the stack: `acme` (the lab's test CA)
# and whatever site.yml leaves alone (the lab's fencing gateway, for one).
NOT_STACK = frozenset({"acme", "webinfra_unmanaged"})

# Ports a client that belongs to no group may reach, by group. Everything
# else a host listens on must be closed to it (tests/e2e/test_stack.py).
# Prometheus and Alertmanager (9090, 9093) answer the operator network only.
PUBLIC_PORTS: dict[str, frozenset[int]] = {
    "loadbalancers": frozenset({80, 443}),
}

FIGURE_PREFIX = "E2E-FIGURE"


@dataclass(frozen=True)
class StackHost:
    name: str
    container: str
    address: str
    groups: frozenset[str]


@dataclass(frozen=True)
class Stack:
    """What the tests target: a lab or a scenario."""

    kind: str  # "lab" or "scenario"
    network: str
    vip: str
    inventory: str
    hosts: tuple[StackHost, ...]
    # The lab's ACME CA (the `acme` group; not part of the stack) and the
    # name its certificates are for (lab_domain); None / "" when absent.
    acme: StackHost | None = None
    domain: str = ""
    # The database cluster's write virtual IP (lab_db_write_vip of a stack
    # with db_cluster_enabled); "" when the tier is not clustered.
    write_vip: str = ""

    def group(self, name: str) -> list[StackHost]:
        return [h for h in self.hosts if name in h.groups]

    def one(self, group: str) -> StackHost:
        members = self.group(group)
        if len(members) != 1:
            raise LookupError(f"expected one host in {group}, found {[h.name for h in members]}")
        return members[0]

    def by_name(self, name: str) -> StackHost:
        for host in self.hosts:
            if name in (host.name, host.container):
                return host
        raise LookupError(f"no host {name} in the stack")


def group_members(inventory: Mapping[str, Any], group: str) -> set[str]:
    """Hosts of `group` and of all its descendants in `ansible-inventory --list` output."""
    entry = inventory.get(group, {})
    members = set(entry.get("hosts", []))
    for child in entry.get("children", []):
        members |= group_members(inventory, child)
    return members


def parse_stack(
    inventory: Mapping[str, Any],
    *,
    kind: str,
    inventory_path: str,
    network: str,
    address_of: Mapping[str, str],
) -> Stack:
    """Build the Stack from `ansible-inventory --list` output.

    `address_of` maps container names to their address on `network`; it is
    used for hosts without `webinfra_address` (molecule's inventory).
    """
    hostvars: dict[str, dict[str, Any]] = inventory.get("_meta", {}).get("hostvars", {})
    groups = [g for g in inventory if g not in ("_meta", "all", "ungrouped")]
    excluded: set[str] = set()
    for group in NOT_STACK:
        excluded |= group_members(inventory, group)
    hosts: list[StackHost] = []
    vips: set[str] = set()
    for name in sorted(group_members(inventory, "all") - excluded):
        variables = hostvars.get(name, {})
        container = str(variables.get("ansible_host") or name)
        address = variables.get("webinfra_address") or address_of.get(container)
        if not address:
            raise LookupError(f"{name}: no webinfra_address and no address on {network}")
        if "lab_vip" in variables:
            vips.add(str(variables["lab_vip"]))
        member_of = frozenset(g for g in groups if name in group_members(inventory, g))
        hosts.append(StackHost(name, container, str(address), member_of))
    if len(vips) != 1:
        raise LookupError(f"expected one lab_vip for the stack's hosts, found {sorted(vips)}")
    acme: StackHost | None = None
    for name in sorted(group_members(inventory, "acme"))[:1]:
        variables = hostvars.get(name, {})
        container = str(variables.get("ansible_host") or name)
        address = (
            variables.get("webinfra_address")
            or variables.get("lab_acme_address")
            or address_of.get(container)
        )
        if address:
            acme = StackHost(name, container, str(address), frozenset({"acme"}))
    domains = {str(v["lab_domain"]) for v in hostvars.values() if v.get("lab_domain")}
    domain = domains.pop() if len(domains) == 1 else ""
    write_vips = {
        str(v["lab_db_write_vip"])
        for v in hostvars.values()
        if v.get("lab_db_write_vip") and str(v.get("db_cluster_enabled")).lower() == "true"
    }
    if len(write_vips) > 1:
        raise LookupError(f"expected one lab_db_write_vip, found {sorted(write_vips)}")
    write_vip = write_vips.pop() if write_vips else ""
    return Stack(kind, network, vips.pop(), inventory_path, tuple(hosts), acme, domain, write_vip)


def lab_dir(kind: str, root: Path, environ: Mapping[str, str]) -> Path:
    """Where the target keeps its generated secrets and CAs (its `lab_dir`):
    .lab/ for the lab, the scenario's ephemeral directory's lab/ for a
    scenario composed like the lab (molecule/site)."""
    if kind == "lab":
        return root / ".lab"
    return Path(environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "lab"


def public_ports(groups: frozenset[str]) -> set[int]:
    """The ports of a host in `groups` that any client may reach."""
    ports: set[int] = set()
    for group in groups:
        ports |= PUBLIC_PORTS.get(group, frozenset())
    return ports


def parse_listening(ss_output: str) -> set[int]:
    """TCP ports from `ss -Hltn` bound to an address other clients can reach.

    Loopback listeners (127.0.0.0/8, ::1) are left out: no firewall is needed
    to keep them private.
    """
    ports: set[int] = set()
    for line in ss_output.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        local = fields[3]
        address, _, port = local.rpartition(":")
        address = address.strip("[]")
        if address.startswith("127.") or address == "::1" or not port.isdigit():
            continue
        ports.add(int(port))
    return ports


def failure_tests_enabled(environ: Mapping[str, str], kind: str) -> bool:
    """Whether the destructive failure tests run.

    WEBINFRA_E2E_FAILURE=1 or 0 decides. Unset: they run in a scenario on
    Debian 12 (WEBINFRA_DISTRO unset or 12), never against the lab (they
    kill its hosts and fail its database over).
    """
    choice = environ.get("WEBINFRA_E2E_FAILURE", "").strip()
    if choice in ("1", "0"):
        return choice == "1"
    if choice:
        raise ValueError(f"WEBINFRA_E2E_FAILURE must be 1 or 0, not {choice!r}")
    return kind == "scenario" and environ.get("WEBINFRA_DISTRO", "12") in ("", "12")


def figure(name: str, value: float, unit: str) -> str:
    """A measured figure as one parseable line: `E2E-FIGURE name=value unit`."""
    if not name.replace("_", "").isalnum():
        raise ValueError(f"figure names are [A-Za-z0-9_]: {name!r}")
    text = f"{value:.0f}" if float(value).is_integer() else f"{value:.3f}"
    return f"{FIGURE_PREFIX} {name}={text} {unit}"


def parse_figures(text: str) -> dict[str, tuple[float, str]]:
    """Every `E2E-FIGURE name=value unit` line of `text`: name -> (value, unit)."""
    figures: dict[str, tuple[float, str]] = {}
    for line in text.splitlines():
        fields = line.strip().split()
        if len(fields) != 3 or fields[0] != FIGURE_PREFIX or "=" not in fields[1]:
            continue
        name, _, value = fields[1].partition("=")
        try:
            figures[name] = (float(value), fields[2])
        except ValueError:
            continue
    return figures


def time_to_recover(attempts: list[tuple[float, bool]], since: float) -> float | None:
    """Seconds from `since` (a failure) until writes succeed again.

    `attempts` are (start time, succeeded). The recovery is the first success
    that follows a failed attempt: one started at or after `since`, or the
    attempt in flight when the failure came (the last one started before
    it), which a sequential writer waits out before it tries again. An
    attempt that began just before the failure took effect may still
    succeed; it does not count. 0.0 when nothing failed from the failure on
    but something succeeded; None while no success followed the last failure.
    """
    before = [ok for started, ok in sorted(attempts) if started < since]
    failed_seen = bool(before) and not before[-1]
    succeeded = False
    for started, ok in sorted(attempts):
        if started < since:
            continue
        if not ok:
            failed_seen = True
        elif failed_seen:
            return started - since
        else:
            succeeded = True
    return 0.0 if succeeded and not failed_seen else None
