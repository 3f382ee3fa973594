"""Filters that turn inventory groups into the addresses roles configure.

Every role derives its peers from inventory groups (HAProxy backends from
`webservers`, firewall sources from `loadbalancers`, ...). These filters are
the one place that decides which address stands for a host:

1. ``webinfra_address`` when the host sets it (the address the stack's own
   traffic should use, for hosts with several interfaces);
2. ``ansible_host`` when it is an IP address;
3. the default IPv4 address from the host's gathered facts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only without ansible installed
    AnsibleFilterError = ValueError  # type: ignore[misc,assignment,unused-ignore]


def _is_ip(value: object) -> bool:
    try:
        ipaddress.ip_address(str(value))
    except ValueError:
        return False
    return True


def host_address(hostname: str, hostvars: Mapping[str, Mapping[str, Any]]) -> str:
    """Return the address other hosts of the stack use to reach ``hostname``."""
    if hostname not in hostvars:
        raise AnsibleFilterError(f"host_address: '{hostname}' is not in the inventory")
    hv = hostvars[hostname]
    explicit = hv.get("webinfra_address")
    if explicit:
        if not _is_ip(explicit):
            raise AnsibleFilterError(
                f"webinfra_address of '{hostname}' must be an IP address, got '{explicit}'"
            )
        return str(explicit)
    ansible_host = hv.get("ansible_host")
    if ansible_host and _is_ip(ansible_host):
        return str(ansible_host)
    facts = hv.get("ansible_default_ipv4") or {}
    address = facts.get("address") if isinstance(facts, Mapping) else None
    if address:
        return str(address)
    raise AnsibleFilterError(
        f"host_address: no address known for '{hostname}': set webinfra_address for it, "
        "give it an IP address as ansible_host, or gather its facts first"
    )


def host_addresses(
    hostnames: Iterable[str], hostvars: Mapping[str, Mapping[str, Any]]
) -> list[str]:
    """Map a list of inventory hostnames (a group) to their addresses, in order."""
    if isinstance(hostnames, str):
        raise AnsibleFilterError("host_addresses expects a list of hostnames, not a string")
    return [host_address(name, hostvars) for name in hostnames]


__all__ = ["AnsibleFilterError", "FilterModule", "host_address", "host_addresses"]


class FilterModule:
    """webinfra.stack address filters."""

    def filters(self) -> dict[str, Any]:
        return {"host_address": host_address, "host_addresses": host_addresses}
