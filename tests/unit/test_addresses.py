"""Unit tests of the address filters (plugins/filter/addresses.py)."""

from __future__ import annotations

from typing import Any

import pytest

from plugins.filter.addresses import AnsibleFilterError, FilterModule, host_address, host_addresses

HOSTVARS: dict[str, dict[str, Any]] = {
    "web-01": {"ansible_host": "10.0.0.21"},
    "web-02": {"ansible_host": "web-02.example", "ansible_default_ipv4": {"address": "10.0.0.22"}},
    "lb-01": {"ansible_host": "10.0.0.11", "webinfra_address": "192.168.5.11"},
    "db-01": {"ansible_host": "db-01"},
    "bad": {"webinfra_address": "not-an-ip"},
}


def test_explicit_address_wins() -> None:
    assert host_address("lb-01", HOSTVARS) == "192.168.5.11"


def test_ip_ansible_host_is_used() -> None:
    assert host_address("web-01", HOSTVARS) == "10.0.0.21"


def test_facts_are_used_when_ansible_host_is_a_name() -> None:
    assert host_address("web-02", HOSTVARS) == "10.0.0.22"


def test_group_keeps_inventory_order() -> None:
    assert host_addresses(["web-02", "web-01"], HOSTVARS) == ["10.0.0.22", "10.0.0.21"]


def test_unknown_host_is_named_in_the_error() -> None:
    with pytest.raises(AnsibleFilterError, match="'nope' is not in the inventory"):
        host_address("nope", HOSTVARS)


def test_host_without_any_address_says_what_to_set() -> None:
    with pytest.raises(AnsibleFilterError, match="set webinfra_address"):
        host_address("db-01", HOSTVARS)


def test_malformed_explicit_address_is_refused() -> None:
    with pytest.raises(AnsibleFilterError, match="must be an IP address"):
        host_address("bad", HOSTVARS)


def test_a_string_is_not_a_group() -> None:
    with pytest.raises(AnsibleFilterError, match="list of hostnames"):
        host_addresses("web-01", HOSTVARS)


def test_filters_are_registered() -> None:
    assert set(FilterModule().filters()) == {"host_address", "host_addresses"}
