"""Unit tests of the plugins the keepalived role validates its input with."""

from __future__ import annotations

import pytest

from plugins.filter.duplicates import FilterModule, duplicates
from plugins.filter.vrrp import FilterModule as VrrpFilters
from plugins.filter.vrrp import vrrp_state
from plugins.test.ipv4 import TestModule as Ipv4Tests
from plugins.test.ipv4 import ipv4_address, ipv4_interface


@pytest.mark.parametrize("value", ["192.0.2.10", "10.0.0.1", "0.0.0.0", "255.255.255.255"])
def test_ipv4_address_accepts_addresses(value: str) -> None:
    assert ipv4_address(value)


@pytest.mark.parametrize(
    "value", ["192.0.2.10/24", "192.0.2.256", "lb-01", "", " 192.0.2.10", "::1", "1.2.3", None, 17]
)
def test_ipv4_address_refuses_the_rest(value: object) -> None:
    assert not ipv4_address(value)


@pytest.mark.parametrize("value", ["192.0.2.100/24", "10.1.2.3/8", "192.0.2.1/32", "192.0.2.0/31"])
def test_ipv4_interface_accepts_addresses_with_prefix(value: str) -> None:
    assert ipv4_interface(value)


@pytest.mark.parametrize(
    "value",
    [
        "192.0.2.100",  # no prefix
        "192.0.2.100/33",
        "192.0.2.100/",
        "192.0.2.100/24/1",
        "192.0.2.100/255.255.255.0",  # a netmask, not a prefix length
        "192.0.2.0/24",  # the network address
        "192.0.2.255/24",  # the broadcast address
        "not-an-ip/24",
        "2001:db8::1/64",
        " 192.0.2.100/24",
        None,
    ],
)
def test_ipv4_interface_refuses_the_rest(value: object) -> None:
    assert not ipv4_interface(value)


def test_duplicates_names_each_repeated_item_once() -> None:
    assert duplicates([51, 52, 51, 53, 52, 51]) == [51, 52]
    assert duplicates(["a", "b"]) == []
    assert duplicates([]) == []


def test_plugins_are_registered() -> None:
    assert FilterModule().filters()["duplicates"] is duplicates
    tests = Ipv4Tests().tests()
    assert tests["ipv4_address"] is ipv4_address
    assert tests["ipv4_interface"] is ipv4_interface


def test_vrrp_state_is_the_last_state_logged_for_the_instance() -> None:
    lines = [
        "Starting VRRP child process, pid=155",
        "(web) Entering BACKUP STATE (init)",
        "(api) Entering MASTER STATE",
        "(web) Entering MASTER STATE",
        "(web) Master received advert from 172.30.8.11 with higher priority 200, ours 190",
        "(web) Entering BACKUP STATE",
    ]
    assert vrrp_state("web", lines) == "BACKUP"
    assert vrrp_state("api", lines) == "MASTER"
    assert vrrp_state("db", lines) == "UNKNOWN"
    assert VrrpFilters().filters()["vrrp_state"] is vrrp_state
