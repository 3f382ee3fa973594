"""Pure logic of the end-to-end tests (tests/lib/webinfra_e2e.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from webinfra_e2e import (
    failure_tests_enabled,
    figure,
    group_members,
    lab_dir,
    parse_figures,
    parse_listening,
    parse_stack,
    public_ports,
    time_to_recover,
)

LAB: dict[str, Any] = {
    "_meta": {
        "hostvars": {
            "lb-01": {
                "ansible_host": "webinfra-lab-lb-01",
                "webinfra_address": "172.31.250.11",
                "lab_vip": "172.31.250.10",
            },
            "web-01": {
                "ansible_host": "webinfra-lab-web-01",
                "webinfra_address": "172.31.250.21",
                "lab_vip": "172.31.250.10",
            },
            "db-01": {
                "ansible_host": "webinfra-lab-db-01",
                "webinfra_address": "172.31.250.31",
                "lab_vip": "172.31.250.10",
            },
            "acme-01": {
                "ansible_host": "webinfra-lab-acme",
                "webinfra_address": "172.31.250.5",
                "lab_vip": "172.31.250.10",
            },
        }
    },
    "all": {"children": ["ungrouped", "loadbalancers", "webservers", "databases", "acme"]},
    "loadbalancers": {"hosts": ["lb-01"]},
    "webservers": {"hosts": ["web-01"]},
    "databases": {"children": ["db_primary", "db_replicas"]},
    "db_primary": {"hosts": ["db-01"]},
    "db_replicas": {},
    "acme": {"hosts": ["acme-01"]},
}

# What molecule's ephemeral inventory looks like: container names, no addresses.
SCENARIO: dict[str, Any] = {
    "_meta": {
        "hostvars": {
            "webinfra-site-lb-01": {"lab_vip": "172.30.10.10"},
            "webinfra-site-db-01": {"lab_vip": "172.30.10.10"},
        }
    },
    "all": {"children": ["ungrouped", "loadbalancers", "databases"]},
    "loadbalancers": {"hosts": ["webinfra-site-lb-01"]},
    "databases": {"children": ["db_primary"]},
    "db_primary": {"hosts": ["webinfra-site-db-01"]},
}


def test_group_members_include_the_children_groups() -> None:
    assert group_members(LAB, "databases") == {"db-01"}
    assert group_members(LAB, "all") == {"lb-01", "web-01", "db-01", "acme-01"}
    assert group_members(LAB, "missing") == set()


def test_the_lab_is_read_from_its_inventory_without_the_acme_host() -> None:
    stack = parse_stack(
        LAB, kind="lab", inventory_path="inv", network="webinfra-lab", address_of={}
    )
    assert stack.vip == "172.31.250.10"
    assert [h.name for h in stack.hosts] == ["db-01", "lb-01", "web-01"]
    db = stack.one("db_primary")
    assert db.container == "webinfra-lab-db-01"
    assert db.address == "172.31.250.31"
    assert db.groups == frozenset({"databases", "db_primary"})
    assert stack.by_name("webinfra-lab-lb-01").name == "lb-01"
    assert stack.group("db_replicas") == []


def test_the_acme_ca_and_the_domain_are_read_when_the_inventory_has_them() -> None:
    with_domain: dict[str, Any] = {
        **LAB,
        "_meta": {
            "hostvars": {
                name: {**variables, "lab_domain": "www.webinfra.test"}
                for name, variables in LAB["_meta"]["hostvars"].items()
            }
        },
    }
    stack = parse_stack(with_domain, kind="lab", inventory_path="inv", network="n", address_of={})
    assert stack.acme is not None
    assert (stack.acme.container, stack.acme.address) == ("webinfra-lab-acme", "172.31.250.5")
    assert stack.domain == "www.webinfra.test"
    assert "acme-01" not in [h.name for h in stack.hosts]


def test_a_stack_without_a_ca_says_so_by_none() -> None:
    addresses = {"webinfra-site-lb-01": "172.30.10.11", "webinfra-site-db-01": "172.30.10.31"}
    stack = parse_stack(
        SCENARIO, kind="scenario", inventory_path="inv", network="n", address_of=addresses
    )
    assert stack.acme is None
    assert stack.domain == ""


def test_a_scenario_takes_addresses_from_its_containers() -> None:
    addresses = {"webinfra-site-lb-01": "172.30.10.11", "webinfra-site-db-01": "172.30.10.31"}
    stack = parse_stack(
        SCENARIO, kind="scenario", inventory_path="inv", network="n", address_of=addresses
    )
    assert stack.one("loadbalancers").address == "172.30.10.11"
    assert stack.one("loadbalancers").container == "webinfra-site-lb-01"
    with pytest.raises(LookupError, match="no webinfra_address"):
        parse_stack(SCENARIO, kind="scenario", inventory_path="inv", network="n", address_of={})


def test_a_stack_needs_exactly_one_virtual_ip() -> None:
    broken: dict[str, Any] = {**SCENARIO, "_meta": {"hostvars": {"webinfra-site-lb-01": {}}}}
    with pytest.raises(LookupError, match="lab_vip"):
        parse_stack(
            broken,
            kind="scenario",
            inventory_path="inv",
            network="n",
            address_of={"webinfra-site-lb-01": "a", "webinfra-site-db-01": "b"},
        )


def test_a_clustered_tier_gives_its_write_vip_and_the_fencing_gateway_is_left_out() -> None:
    clustered: dict[str, Any] = {
        **LAB,
        "_meta": {
            "hostvars": {
                **{
                    name: {**v, "db_cluster_enabled": True, "lab_db_write_vip": "172.31.250.30"}
                    for name, v in LAB["_meta"]["hostvars"].items()
                },
                "fence-01": {
                    "ansible_host": "webinfra-lab-fence",
                    "webinfra_address": "172.31.250.6",
                    "lab_vip": "172.31.250.10",
                },
            }
        },
        "all": {"children": [*LAB["all"]["children"], "webinfra_unmanaged"]},
        "webinfra_unmanaged": {"children": ["fence_gateway"]},
        "fence_gateway": {"hosts": ["fence-01"]},
    }
    stack = parse_stack(clustered, kind="lab", inventory_path="inv", network="n", address_of={})
    assert stack.write_vip == "172.31.250.30"
    assert "fence-01" not in [h.name for h in stack.hosts]
    # The same inventory without db_cluster_enabled is not clustered.
    plain = parse_stack(LAB, kind="lab", inventory_path="inv", network="n", address_of={})
    assert plain.write_vip == ""


def test_lookups_name_what_is_missing() -> None:
    stack = parse_stack(LAB, kind="lab", inventory_path="inv", network="n", address_of={})
    with pytest.raises(LookupError, match="monitoring"):
        stack.one("monitoring")
    with pytest.raises(LookupError, match="mon-09"):
        stack.by_name("mon-09")


def test_public_ports_follow_the_groups() -> None:
    assert public_ports(frozenset({"loadbalancers"})) == {80, 443}
    # Prometheus and Alertmanager answer the operator network only.
    assert public_ports(frozenset({"webservers", "monitoring"})) == set()
    assert public_ports(frozenset({"databases", "db_primary"})) == set()


def test_listening_ports_leave_loopback_out() -> None:
    ss = (
        "LISTEN 0 4096 127.0.0.1:8080 0.0.0.0:*\n"
        "LISTEN 0 4096 0.0.0.0:80 0.0.0.0:*\n"
        "LISTEN 0 4096 172.30.10.10:443 0.0.0.0:*\n"
        "LISTEN 0 4096 [::1]:9000 [::]:*\n"
        "LISTEN 0 4096 [::]:9100 [::]:*\n"
        "LISTEN 0 4096 *:3306 *:*\n"
        "garbage\n"
    )
    assert parse_listening(ss) == {80, 443, 9100, 3306}


@pytest.mark.parametrize(
    ("environ", "kind", "expected"),
    [
        ({}, "scenario", True),
        ({"WEBINFRA_DISTRO": "12"}, "scenario", True),
        ({"WEBINFRA_DISTRO": "13"}, "scenario", False),
        ({}, "lab", False),
        ({"WEBINFRA_E2E_FAILURE": "1"}, "lab", True),
        ({"WEBINFRA_E2E_FAILURE": "1", "WEBINFRA_DISTRO": "13"}, "scenario", True),
        ({"WEBINFRA_E2E_FAILURE": "0"}, "scenario", False),
    ],
)
def test_failure_tests_run_where_chosen(environ: dict[str, str], kind: str, expected: bool) -> None:
    assert failure_tests_enabled(environ, kind) is expected


def test_a_wrong_failure_switch_is_refused() -> None:
    with pytest.raises(ValueError, match="WEBINFRA_E2E_FAILURE"):
        failure_tests_enabled({"WEBINFRA_E2E_FAILURE": "yes"}, "scenario")


def test_figures_round_trip() -> None:
    lines = "\n".join(
        [
            figure("vip_outage", 412, "ms"),
            "noise E2E-FIGURE in the middle",
            figure("db_writes_back_after", 7.25, "s"),
            "E2E-FIGURE broken=abc ms",
        ]
    )
    assert "E2E-FIGURE vip_outage=412 ms" in lines
    assert parse_figures(lines) == {
        "vip_outage": (412.0, "ms"),
        "db_writes_back_after": (7.25, "s"),
    }


def test_figure_names_are_single_words() -> None:
    with pytest.raises(ValueError, match="figure names"):
        figure("vip outage", 1, "ms")


def test_time_to_recover_counts_from_the_failure() -> None:
    attempts = [(10.0, True), (11.0, False), (12.5, False), (14.0, True), (15.0, True)]
    assert time_to_recover(attempts, since=11.0) == 3.0
    assert time_to_recover(attempts, since=10.5) == 3.5
    assert time_to_recover(attempts, since=16.0) is None
    assert time_to_recover([(12.0, False)], since=11.0) is None


def test_a_success_before_the_failure_took_effect_is_not_a_recovery() -> None:
    attempts = [(10.1, True), (10.2, False), (11.0, False), (13.0, True)]
    assert time_to_recover(attempts, since=10.0) == 3.0


def test_the_attempt_in_flight_at_the_failure_counts_when_it_fails() -> None:
    # A sequential writer's request hung through the failover and failed;
    # the next one, started later, succeeded: writes were back only then.
    attempts = [(9.0, True), (9.9, False), (16.0, True)]
    assert time_to_recover(attempts, since=10.0) == 6.0


def test_no_failure_after_the_event_means_no_outage() -> None:
    assert time_to_recover([(10.1, True), (10.2, True)], since=10.0) == 0.0


def test_lab_dir_is_dot_lab_or_the_scenario_s_ephemeral_lab() -> None:
    root = Path("/repo")
    assert lab_dir("lab", root, {}) == Path("/repo/.lab")
    env = {"MOLECULE_EPHEMERAL_DIRECTORY": "/tmp/molecule/site"}
    assert lab_dir("scenario", root, env) == Path("/tmp/molecule/site/lab")
