"""Jinja tests that validate IPv4 input before a role writes any configuration.

``"192.0.2.10" is webinfra.stack.ipv4_address`` and
``"192.0.2.100/24" is webinfra.stack.ipv4_interface`` (an address with an
explicit prefix length, as keepalived and ``ip addr`` expect).
"""

from __future__ import annotations

import ipaddress
from typing import Any


def ipv4_address(value: object) -> bool:
    """True when value is one IPv4 address without a prefix."""
    if not isinstance(value, str) or "/" in value:
        return False
    try:
        ipaddress.IPv4Address(value.strip())
    except ValueError:
        return False
    return value == value.strip()


def ipv4_interface(value: object) -> bool:
    """True when value is an IPv4 address with a prefix length (0-32), e.g. 192.0.2.100/24.

    The network and broadcast addresses of the prefix are refused (except for /31
    and /32, which have none), since a host cannot hold them.
    """
    if not isinstance(value, str) or value != value.strip():
        return False
    address, slash, prefix = value.partition("/")
    if not slash or not prefix.isdigit() or not ipv4_address(address):
        return False
    try:
        interface = ipaddress.IPv4Interface(value)
    except ValueError:
        return False
    network = interface.network
    if network.prefixlen >= 31:
        return True
    return interface.ip not in (network.network_address, network.broadcast_address)


__all__ = ["TestModule", "ipv4_address", "ipv4_interface"]


class TestModule:
    """webinfra.stack IPv4 tests."""

    def tests(self) -> dict[str, Any]:
        return {"ipv4_address": ipv4_address, "ipv4_interface": ipv4_interface}
