"""The lab's model: its hosts, read from inventory/lab with ansible-inventory.

Pure data and parsing (unit-tested in tests/unit/test_lab.py); tools/lab.py
boots, deploys and removes what this describes.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
INVENTORY = ROOT / "inventory" / "lab"
DOCKER_SOCKET = "/var/run/docker.sock"


class LabError(Exception):
    """A problem the user can fix; printed without a stack trace."""


@dataclass(frozen=True)
class LabHost:
    name: str
    container: str
    address: str
    groups: tuple[str, ...]
    published_ports: tuple[str, ...] = ()

    @property
    def sysctls(self) -> dict[str, str]:
        # HAProxy and keepalived bind the virtual IP on the backup too.
        if "loadbalancers" in self.groups:
            return {"net.ipv4.ip_nonlocal_bind": "1"}
        return {}

    @property
    def shm_size(self) -> str | None:
        # Pacemaker and Corosync talk over shared memory (libqb): Docker's
        # 64 MB /dev/shm runs out on the database cluster's members.
        return "256m" if "databases" in self.groups else None

    @property
    def volumes(self) -> tuple[str, ...]:
        # The fencing gateway alone holds the Docker engine's socket.
        if "fence_gateway" in self.groups:
            return (f"{DOCKER_SOCKET}:{DOCKER_SOCKET}",)
        return ()


@dataclass(frozen=True)
class Lab:
    network: str
    subnet: str
    vip: str
    hosts: tuple[LabHost, ...] = field(default_factory=tuple)
    # The database cluster's write virtual IP; "" when the tier is not
    # clustered (no db_cluster_enabled).
    db_write_vip: str = ""

    def host(self, name: str) -> LabHost:
        for host in self.hosts:
            if host.name == name:
                return host
        raise LabError(f"the lab inventory has no host {name}")

    def first_in(self, group: str) -> LabHost | None:
        return next((h for h in self.hosts if group in h.groups), None)


def expand_env(value: str, env: dict[str, str] | None = None) -> str:
    """Expand ${NAME:-default} and ${NAME} the way a shell would."""
    env = dict(os.environ) if env is None else env

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(3)
        return env.get(name) or (default if default is not None else "")

    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}", replace, value)


def parse_inventory(data: dict[str, Any], env: dict[str, str] | None = None) -> Lab:
    """Build the lab description from `ansible-inventory --list` output."""
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    membership: dict[str, set[str]] = {name: set() for name in hostvars}

    def walk(group: str, parents: tuple[str, ...]) -> None:
        entry = data.get(group, {})
        for name in entry.get("hosts", []):
            membership.setdefault(name, set()).update((group, *parents))
        for child in entry.get("children", []):
            walk(child, (group, *parents))

    walk("all", ())
    if not hostvars:
        raise LabError(f"no hosts found in {INVENTORY}")
    sample = next(iter(hostvars.values()))
    for key in ("lab_network", "lab_subnet", "lab_vip"):
        if key not in sample:
            raise LabError(f"{INVENTORY}/hosts.yml must set {key} under all.vars")
    subnet = ipaddress.ip_network(sample["lab_subnet"])
    hosts = []
    for name, hv in hostvars.items():
        address = hv.get("webinfra_address")
        if not address or ipaddress.ip_address(address) not in subnet:
            raise LabError(f"host {name}: webinfra_address must be an address in {subnet}")
        hosts.append(
            LabHost(
                name=name,
                container=str(hv.get("ansible_host", f"webinfra-lab-{name}")),
                address=str(address),
                groups=tuple(sorted(membership.get(name, set()) - {"all", "ungrouped"})),
                published_ports=tuple(
                    expand_env(p, env) for p in hv.get("lab_published_ports", [])
                ),
            )
        )
    clustered = str(sample.get("db_cluster_enabled", "")).lower() == "true"
    write_vip = str(sample.get("lab_db_write_vip", "")) if clustered else ""
    return Lab(sample["lab_network"], str(subnet), sample["lab_vip"], tuple(hosts), write_vip)


def inventory_args(overlays: Sequence[Path] = (), inventory: Path = INVENTORY) -> list[str]:
    """`-i` options for the lab inventory and then each overlay (later ones win)."""
    args = ["-i", str(inventory)]
    for overlay in overlays:
        args += ["-i", str(overlay)]
    return args


def overlay_inventory(
    group: str, hosts: Sequence[tuple[str, str]], lab_dir: Path = ROOT / ".lab"
) -> dict[str, Any]:
    """An inventory that adds `hosts` ((name, address) pairs) to `group` of the lab.

    Each host gets the lab's container naming and an explicit `lab_dir`: the
    lab's own is relative to `inventory_dir`, which for a host of the overlay
    is the overlay's directory, and every host must read the same secrets.
    """
    return {
        "all": {
            "children": {
                group: {
                    "hosts": {
                        name: {
                            "ansible_host": f"webinfra-lab-{name}",
                            "webinfra_address": address,
                            "lab_dir": str(lab_dir),
                        }
                        for name, address in hosts
                    }
                }
            }
        }
    }


def retired_inventory(
    data: dict[str, Any], names: Sequence[str], lab_dir: Path = ROOT / ".lab"
) -> dict[str, Any]:
    """The lab's hosts.yml (`data`) without the hosts `names`, as an operator
    takes a server out of its groups. An overlay can only add, so this is a
    copy: it sets `lab_dir` explicitly, its own directory being elsewhere.
    """
    unknown = set(names) - set(_hosts_of(data.get("all", {})))
    if unknown:
        raise LabError(f"the lab inventory has no host {', '.join(sorted(unknown))}")

    def without(group: dict[str, Any]) -> dict[str, Any]:
        kept = dict(group)
        if "hosts" in group:
            kept["hosts"] = {n: v for n, v in (group["hosts"] or {}).items() if n not in names}
        if "children" in group:
            kept["children"] = {n: without(c or {}) for n, c in group["children"].items()}
        return kept

    copy = without(data["all"])
    copy["vars"] = {**copy.get("vars", {}), "lab_dir": str(lab_dir)}
    return {"all": copy}


def _hosts_of(group: dict[str, Any]) -> list[str]:
    found = list((group.get("hosts") or {}).keys())
    for child in (group.get("children") or {}).values():
        found += _hosts_of(child or {})
    return found
