"""Unit tests of the pure parts of the shared testinfra helpers."""

from __future__ import annotations

import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from webinfra_load import BurstResult, burst
from webinfra_testlib import changed_tasks, parse_os_release, wait_for


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
    result.record(503, "web-02", None, sent_at=7.0)
    result.record(None, None, "ConnectionError: refused", sent_at=8.5)
    assert (result.sent, result.failed) == (4, 2)
    assert result.failed_at == [7.0, 8.5]
    assert result.served_by == {"web-01": 1, "web-02": 1}
    assert result.statuses == {200: 1, 301: 1, 503: 1}
    assert result.errors == ["HTTP 503", "ConnectionError: refused"]


class _PortRecorder(BaseHTTPRequestHandler):
    """Answers 200 over HTTP/1.1 and notes the client port of each request."""

    protocol_version = "HTTP/1.1"
    ports: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        self.ports.append(self.client_address[1])
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize(("keep_alive", "connections"), [(True, 1), (False, 4)])
def test_burst_reuses_a_connection_only_with_keep_alive(keep_alive: bool, connections: int) -> None:
    _PortRecorder.ports = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PortRecorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        result = burst(url, count=4, interval=0, keep_alive=keep_alive)
    finally:
        server.shutdown()
        server.server_close()
    assert (result.sent, result.failed) == (4, 0), result.errors
    assert len(set(_PortRecorder.ports)) == connections


def test_changed_tasks_name_the_task_and_host_of_each_change() -> None:
    stdout = (
        "TASK [haproxy : configure | Render haproxy.cfg] ****\n"
        "ok: [lb-01]\n"
        "\x1b[0;33mchanged: [lb-02]\x1b[0m\n"
        "RUNNING HANDLER [webinfra.stack.haproxy : webinfra haproxy reload] ****\n"
        "changed: [lb-02] => (item=x)\n"
        "TASK [nginx : service | Start nginx] ****\n"
        "skipping: [web-01]\n"
    )
    assert changed_tasks(stdout) == [
        "haproxy : configure | Render haproxy.cfg: lb-02",
        "webinfra.stack.haproxy : webinfra haproxy reload: lb-02",
    ]
    assert changed_tasks("TASK [a] ***\nok: [h]\n") == []
