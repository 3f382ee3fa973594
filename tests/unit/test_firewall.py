"""Unit tests of the firewall filters (plugins/filter/firewall.py)."""

from __future__ import annotations

from typing import Any

import pytest

from plugins.filter.firewall import (
    AnsibleFilterError,
    FilterModule,
    firewall_rule_errors,
    ufw_desired_rules,
    ufw_managed_rules,
)

PUBLISHED: dict[str, list[dict[str, Any]]] = {
    "haproxy": [
        {"port": 80, "proto": "tcp", "from": ["any"], "comment": "HTTP"},
        {"port": 443, "proto": "tcp", "from": ["any"], "comment": "HTTPS"},
    ],
    "keepalived": [{"proto": "vrrp", "from": ["10.0.0.12"], "comment": "VRRP"}],
    "nginx": [{"port": "8080", "proto": "tcp", "from": ["10.0.0.11", "10.0.0.12/32"]}],
}


def test_valid_rules_have_no_errors() -> None:
    assert firewall_rule_errors(PUBLISHED, "webinfra_firewall_rules") == []
    assert firewall_rule_errors([{"port": "6000:6007", "proto": "udp"}], "ufw_rules") == []
    assert firewall_rule_errors([{"port": 53, "from": ["2001:db8::/32"]}], "ufw_rules") == []


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"port": "80x", "proto": "tcp"}, "ufw_rules[0].port must be a number"),
        ({"port": 0, "proto": "tcp"}, "within 1-65535"),
        ({"port": 70000}, "within 1-65535"),
        ({"port": "90:80"}, "low < high"),
        ({"port": True}, "port must be a number"),
        ({"proto": "tcp"}, "port must be a number"),
        ({"port": 80, "proto": "icmp"}, "ufw_rules[0].proto must be one of tcp, udp, vrrp"),
        ({"port": 112, "proto": "vrrp"}, "port must be left out for proto vrrp"),
        ({"port": 80, "from": ["10.0.0.0/33"]}, "ufw_rules[0].from[0]"),
        ({"port": 80, "from": ["10.0.0.300"]}, "'10.0.0.300'"),
        ({"port": 80, "from": "any"}, "from must be a non-empty list"),
        ({"port": 80, "from": []}, "from must be a non-empty list"),
        ({"port": 80, "comment": "it's"}, "comment must be plain text"),
        ({"port": 80, "form": ["any"]}, "unknown keys ['form']"),
        ("80/tcp", "must be a dictionary"),
    ],
)
def test_malformed_rules_are_named(rule: Any, fragment: str) -> None:
    errors = firewall_rule_errors([rule], "ufw_rules")
    assert errors, rule
    assert any(fragment in e for e in errors), errors


def test_errors_name_the_publishing_role() -> None:
    errors = firewall_rule_errors({"mysql": [{"port": "3306/tcp"}]}, "ufw_published_rules")
    assert errors == [
        "ufw_published_rules['mysql'][0].port must be a number 1-65535 or a range "
        "'low:high', got '3306/tcp'"
    ]


def test_a_rules_value_must_be_a_list() -> None:
    assert "must be a list" in firewall_rule_errors({"x": "80"}, "r")[0]


def test_desired_rules_expand_one_command_per_source() -> None:
    desired = ufw_desired_rules(PUBLISHED, [], 22, ["any"])
    by_comment = {d["comment"]: d["args"] for d in desired}
    assert by_comment["webinfra:ssh [limit 22/tcp from any]"][:9] == [
        "limit", "proto", "tcp", "from", "any", "to", "any", "port", "22",
    ]  # fmt: skip
    assert "webinfra:keepalived VRRP [allow vrrp from 10.0.0.12]" in by_comment
    vrrp = by_comment["webinfra:keepalived VRRP [allow vrrp from 10.0.0.12]"]
    assert vrrp[:5] == ["allow", "proto", "vrrp", "from", "10.0.0.12"]
    assert "port" not in vrrp
    # a /32 and a bare address are the same source
    assert "webinfra:nginx [allow 8080/tcp from 10.0.0.12]" in by_comment
    assert "webinfra:nginx [allow 8080/tcp from 10.0.0.11]" in by_comment
    assert len(desired) == 6
    assert desired[0]["comment"] == "webinfra:ssh [limit 22/tcp from any]"
    for item in desired:
        assert item["args"][-2:] == ["comment", item["comment"]]


def test_without_ssh_sources_no_ssh_rule_is_desired() -> None:
    """The ufw role passes no sources where no sshd runs (ufw_ssh_rule: auto)."""
    desired = ufw_desired_rules(PUBLISHED, [], 22, [])
    assert len(desired) == 5
    assert not [d for d in desired if "ssh" in d["comment"] or "22" in d["args"]]


def test_identical_rules_from_two_roles_become_one_rule() -> None:
    published = {
        "b_role": [{"port": 80, "from": ["any"], "comment": "web"}],
        "a_role": [{"port": 80, "from": ["any"], "comment": "also web"}],
    }
    desired = ufw_desired_rules(published, [{"port": 80}], 22, [], ssh_limit=True)
    assert [d["comment"] for d in desired] == [
        "webinfra:a_role also web, b_role web, ufw_rules [allow 80/tcp from any]"
    ]


def test_ssh_sources_and_plain_allow() -> None:
    desired = ufw_desired_rules({}, [], 2222, ["10.9.0.0/16", "10.8.0.1"], ssh_limit=False)
    assert [d["comment"] for d in desired] == [
        "webinfra:ssh [allow 2222/tcp from 10.8.0.1]",
        "webinfra:ssh [allow 2222/tcp from 10.9.0.0/16]",
    ]


def test_desired_rules_refuse_malformed_input() -> None:
    with pytest.raises(AnsibleFilterError, match="extra rules"):
        ufw_desired_rules({}, [{"port": "x"}], 22, ["any"])


SHOW_ADDED = (
    "Added user rules (see 'ufw status' for running firewall):\n"
    "ufw allow 6000:6007/udp comment 'someone else'\n"
    "ufw allow from 10.0.0.11 to any port 8080 proto tcp"
    " comment 'webinfra:nginx [allow 8080/tcp from 10.0.0.11]'\n"
    """ufw limit 22/tcp comment 'webinfra:ssh [limit 22/tcp from any]'
ufw allow 9999/tcp
ufw allow from 10.0.0.12 proto vrrp comment 'webinfra:keepalived VRRP [allow vrrp from 10.0.0.12]'
ufw allow 1/tcp comment 'broken
"""
)


def test_managed_rules_are_read_back_by_comment() -> None:
    managed = ufw_managed_rules(SHOW_ADDED)
    assert sorted(managed) == [
        "webinfra:keepalived VRRP [allow vrrp from 10.0.0.12]",
        "webinfra:nginx [allow 8080/tcp from 10.0.0.11]",
        "webinfra:ssh [limit 22/tcp from any]",
    ]
    assert managed["webinfra:ssh [limit 22/tcp from any]"] == [
        "limit", "22/tcp", "comment", "webinfra:ssh [limit 22/tcp from any]",
    ]  # fmt: skip


def test_no_rules_means_nothing_managed() -> None:
    assert ufw_managed_rules("Added user rules (see 'ufw status' for running firewall):\n") == {}


def test_filters_are_registered() -> None:
    assert set(FilterModule().filters()) == {
        "firewall_rule_errors",
        "ufw_desired_rules",
        "ufw_managed_rules",
    }
