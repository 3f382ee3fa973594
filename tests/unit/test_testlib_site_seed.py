"""The pure helpers the site_seed scenario's tests rely on."""

from __future__ import annotations

from webinfra_firewall import Target, accepted_ports


def test_accepted_ports_keeps_only_the_tcp_ports_that_answered() -> None:
    answers: dict[Target, bool] = {
        ("10.0.0.1", "tcp", 80): True,
        ("10.0.0.1", "tcp", 3306): False,
        ("10.0.0.1", "udp", 53): True,
        ("10.0.0.1", "tcp", 443): True,
    }
    assert accepted_ports(answers) == {80, 443}


def test_accepted_ports_is_empty_when_nothing_answered() -> None:
    assert accepted_ports({("10.0.0.1", "tcp", 22): False}) == set()
    assert accepted_ports({}) == set()
