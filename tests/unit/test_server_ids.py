"""Unit tests of the server_ids filter (plugins/filter/server_ids.py)."""

from __future__ import annotations

from typing import Any

import pytest

from plugins.filter.server_ids import AnsibleFilterError, FilterModule, derived_id, server_ids

HOSTVARS: dict[str, dict[str, Any]] = {
    "db-01": {"mysql_primary_server_id": 0},
    "db-02": {"mysql_replica_server_id": 7},
    "db-03": {},
    "db-04": {"mysql_replica_server_id": "x"},
}


def test_ipv4_addresses_give_their_value() -> None:
    ids = server_ids(["db-01", "db-03"], ["10.0.0.1", "172.31.250.32"], HOSTVARS, ["db-01"])
    assert ids == {"db-01": 167772161, "db-03": 2887776800}


def test_set_ids_win_and_overrides_win_over_them() -> None:
    hosts = ["db-01", "db-02"]
    addresses = ["10.0.0.1", "10.0.0.2"]
    assert server_ids(hosts, addresses, HOSTVARS, ["db-01"])["db-02"] == 7
    assert server_ids(hosts, addresses, HOSTVARS, ["db-01"], {"db-02": 9})["db-02"] == 9
    assert server_ids(hosts, addresses, HOSTVARS, ["db-01"], {"db-01": "5"})["db-01"] == 5


def test_a_primary_reads_the_primary_setting_only() -> None:
    hostvars: dict[str, dict[str, Any]] = {"db-02": {"mysql_replica_server_id": 7}}
    assert server_ids(["db-02"], ["10.0.0.2"], hostvars, ["db-02"]) == {"db-02": 167772162}


def test_ipv6_addresses_hash_into_the_valid_range() -> None:
    value = derived_id("2001:db8::31")
    assert 1 <= value <= 4294967294
    assert value == derived_id("2001:db8::31")
    assert value != derived_id("2001:db8::32")


def test_duplicates_are_dropped_and_order_kept() -> None:
    ids = server_ids(["db-03", "db-01", "db-03"], ["10.0.0.3", "10.0.0.1", "10.0.0.3"], HOSTVARS)
    assert list(ids) == ["db-03", "db-01"]


def test_bad_input_is_refused_with_a_message() -> None:
    with pytest.raises(AnsibleFilterError, match="must be a number"):
        server_ids(["db-04"], ["10.0.0.4"], HOSTVARS)
    with pytest.raises(AnsibleFilterError, match="list of hostnames"):
        server_ids("db-01", ["10.0.0.1"], HOSTVARS)
    with pytest.raises(ValueError):
        server_ids(["db-01", "db-02"], ["10.0.0.1"], HOSTVARS)


def test_the_filter_is_registered() -> None:
    assert FilterModule().filters()["server_ids"] is server_ids
