"""Unit tests of the pure parts of the shared testinfra helpers."""

from __future__ import annotations

import itertools

import pytest
from webinfra_load import BurstResult
from webinfra_testlib import parse_os_release, wait_for


def test_parse_os_release_strips_quotes() -> None:
    text = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
    assert parse_os_release(text) == {
        "PRETTY_NAME": "Debian GNU/Linux 12 (bookworm)",
        "ID": "debian",
        "VERSION_ID": "12",
    }


def test_wait_for_returns_the_first_accepted_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter), timeout=5, interval=0, accept=lambda n: n >= 3) == 3


def test_wait_for_times_out_with_the_last_value() -> None:
    with pytest.raises(TimeoutError, match="last result: 0"):
        wait_for(lambda: 0, timeout=0.05, interval=0.01)


def test_burst_result_counts_5xx_and_errors_as_failures() -> None:
    result = BurstResult()
    result.record(200, "web-01", None)
    result.record(301, None, None)
    result.record(503, "web-02", None)
    result.record(None, None, "ConnectionError: refused")
    assert (result.sent, result.failed) == (4, 2)
    assert result.served_by == {"web-01": 1, "web-02": 1}
    assert result.statuses == {200: 1, 301: 1, 503: 1}
    assert result.errors == ["HTTP 503", "ConnectionError: refused"]
