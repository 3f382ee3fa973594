"""Unit tests of the virtual IP helpers in tests/lib/webinfra_vrrp.py."""

from __future__ import annotations

from webinfra_vrrp import (
    AddressSample,
    change_spans,
    holder_violations,
    known_intervals,
    outside_spans,
    parse_address_samples,
    state_changes,
)


def _addr(*points: tuple[float, bool]) -> list[AddressSample]:
    """Samples that each take 10 ms, starting at the given times."""
    return [AddressSample(t, t + 0.01, held) for t, held in points]


def test_parse_address_samples() -> None:
    assert parse_address_samples("1.0 1.01 1\nbad line\n2.0 2.02 0\n") == [
        AddressSample(1.0, 1.01, True),
        AddressSample(2.0, 2.02, False),
    ]


def test_known_intervals_join_equal_runs_and_leave_changes_unknown() -> None:
    samples = _addr((0.0, True), (0.1, True), (0.2, True), (0.3, False), (0.4, False))
    assert known_intervals(samples, True) == [(0.01, 0.2)]
    assert known_intervals(samples, False) == [(0.31, 0.4)]


def test_a_clean_handover_is_no_violation() -> None:
    # lb1 gives the address up between 1.0 and 1.1; lb2 takes it between 1.05 and 1.15.
    lb1 = _addr((0.0, True), (0.5, True), (1.0, True), (1.1, False), (2.0, False))
    lb2 = _addr((0.02, False), (0.52, False), (1.05, False), (1.15, True), (2.02, True))
    assert holder_violations({"lb1": lb1, "lb2": lb2}) == ([], [])


def test_both_holding_is_found() -> None:
    lb1 = _addr((0.0, True), (1.0, True), (2.0, True))
    lb2 = _addr((0.0, False), (0.5, True), (1.5, True), (2.0, False))
    both, neither = holder_violations({"lb1": lb1, "lb2": lb2})
    assert both == [("lb1", "lb2", (0.51, 1.5))]
    assert neither == []


def test_nobody_holding_is_found() -> None:
    lb1 = _addr((0.0, True), (1.0, False), (2.0, False), (3.0, False))
    lb2 = _addr((0.0, False), (1.0, False), (2.0, False), (2.5, True))
    both, neither = holder_violations({"lb1": lb1, "lb2": lb2})
    assert both == []
    assert neither == [(1.01, 2.0)]


def test_change_spans_cover_each_take_and_give_up() -> None:
    lb1 = _addr((0.0, True), (1.0, True), (1.1, False), (2.0, False))
    lb2 = _addr((0.05, False), (1.05, False), (1.15, True), (2.05, True))
    assert change_spans({"lb1": lb1, "lb2": lb2}) == [(1.0, 1.11), (1.05, 1.16)]
    assert change_spans({"lb1": _addr((0.0, True), (1.0, True))}) == []


def test_outside_spans_keeps_only_what_no_move_explains() -> None:
    spans = [(10.0, 10.2)]
    assert outside_spans([9.5, 10.1, 11.0, 11.3, 30.0], spans, margin=1.0) == [11.3, 30.0]
    assert outside_spans([5.0], [], margin=1.0) == [5.0]


def test_state_changes_keeps_only_the_vrrp_transitions() -> None:
    journal = (
        "2026-12-07T20:01:02.123456+0000 lb-01 Keepalived_vrrp[81]: (VI_1) Entering BACKUP STATE\n"
        "2026-12-07T20:01:02.200000+0000 lb-01 Keepalived_vrrp[81]: (VI_1) lower prio\n"
        "2026-12-07T20:01:02.400000+0000 lb-01 Keepalived_vrrp[81]: (VI_1) Entering MASTER STATE\n"
    )
    assert state_changes(journal) == [
        "2026-12-07T20:01:02.123456+0000 lb-01 Keepalived_vrrp[81]: (VI_1) Entering BACKUP STATE",
        "2026-12-07T20:01:02.400000+0000 lb-01 Keepalived_vrrp[81]: (VI_1) Entering MASTER STATE",
    ]
    assert state_changes("-- No entries --") == []
