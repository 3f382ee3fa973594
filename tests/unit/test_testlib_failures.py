"""Unit tests of the failure tests' note writer (tests/lib/webinfra_failures.py)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
import requests
from webinfra_failures import NoteWriter


class SlowSession:
    """A requests.Session stand-in: each POST takes 0.2 s and is recorded."""

    calls: ClassVar[list[tuple[float, float]]] = []
    lock = threading.Lock()

    def __enter__(self) -> SlowSession:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def post(self, url: str, **kwargs: Any) -> SimpleNamespace:
        began = time.time()
        time.sleep(0.2)
        with self.lock:
            self.calls.append((began, time.time()))
        return SimpleNamespace(status_code=201)


def test_between_writes_waits_for_the_write_in_flight_and_holds_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    SlowSession.calls = []
    monkeypatch.setattr(requests, "Session", SlowSession)
    stack: Any = SimpleNamespace(vip="192.0.2.10")
    with NoteWriter(stack, "t", count=100, duration=10) as writer:
        deadline = time.time() + 5
        while not writer.attempts and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # most likely inside the second POST now
        with writer.between_writes():
            entered = time.time()
            time.sleep(0.5)
            left = time.time()
        time.sleep(0.3)
    calls = list(SlowSession.calls)
    # Every write ended before the block began or started after it ended.
    assert all(end <= entered or began >= left for began, end in calls), calls
    assert any(began >= left for began, _ in calls), "the writer did not resume"
    assert len(writer.acked) == len(writer.attempts) == len(calls)
