"""Unit tests of the demanding VIP client (tests/lib/webinfra_vip_probe.py)."""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from webinfra_vip_probe import (
    VIP_PROBE_SCRIPT,
    VipRequest,
    describe,
    failures_by_kind,
    longest_gap,
    parse_vip_requests,
)


def _req(start: float, end: float, ok: bool, client: int = 0, detail: str = "lb1") -> VipRequest:
    return VipRequest(start, end, client, ok, detail if ok else "ConnectionRefusedError")


def test_parse_sorts_by_end_and_skips_noise() -> None:
    text = "2.0 2.5 1 0 TimeoutError\nnoise\n1.0 1.1 0 1 lb1\n1.0 x 0 1 lb1\n3 4 0 2 lb1\n"
    assert parse_vip_requests(text) == [
        VipRequest(1.0, 1.1, 0, True, "lb1"),
        VipRequest(2.0, 2.5, 1, False, "TimeoutError"),
    ]


def test_no_failure_gives_the_spacing_of_answers() -> None:
    requests = [_req(0.0, 0.02, True), _req(0.02, 0.05, True), _req(0.05, 0.06, True)]
    assert longest_gap(requests) == pytest.approx(0.03)


def test_gap_runs_between_answers_of_any_client() -> None:
    # Client 0 answers at 1.0 and 2.2; client 1 waits out a timeout but
    # another answer at 1.5 splits the gap: 0.7 is the longest.
    requests = [
        _req(0.9, 1.0, True, 0),
        _req(1.0, 1.2, False, 0),
        _req(1.0, 2.0, False, 1),
        _req(1.4, 1.5, True, 2),
        _req(1.2, 2.2, True, 0),
    ]
    assert longest_gap(requests) == pytest.approx(0.7)


def test_failures_that_never_recover_count_to_the_end() -> None:
    requests = [_req(0.0, 0.1, True), _req(0.1, 0.2, False), _req(0.2, 3.1, False)]
    assert longest_gap(requests) == pytest.approx(3.0)


def test_a_run_without_any_answer_is_one_gap() -> None:
    assert longest_gap([_req(1.0, 2.0, False), _req(1.5, 2.5, False)]) == pytest.approx(1.5)


def test_empty_run_is_an_error() -> None:
    with pytest.raises(ValueError, match="no requests"):
        longest_gap([])


def test_failures_are_counted_by_kind() -> None:
    requests = [_req(0, 1, False), _req(0, 1, False), VipRequest(0, 1, 1, False, "TimeoutError")]
    assert failures_by_kind(requests) == {"ConnectionRefusedError": 2, "TimeoutError": 1}
    assert "3 failed (ConnectionRefusedError 2, TimeoutError 1)" in describe(requests)


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"lb-test\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _run_script(port: int, clients: int) -> list[VipRequest]:
    args = ["127.0.0.1", str(port), "0.3", str(clients), "1.0", "http"]
    done = subprocess.run(
        [sys.executable, "-c", VIP_PROBE_SCRIPT, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return parse_vip_requests(done.stdout)


def test_the_script_runs_every_client_with_a_fresh_connection(loopback_server: int) -> None:
    requests = _run_script(loopback_server, clients=3)
    assert {r.client for r in requests} == {0, 1, 2}
    assert len(requests) > 10
    assert all(r.ok and r.detail == "lb-test" for r in requests)


def test_the_script_reports_a_refused_connection() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    requests = _run_script(port, clients=1)
    assert requests
    assert failures_by_kind(requests).keys() == {"ConnectionRefusedError"}
