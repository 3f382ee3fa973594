"""Unit tests of the bench's probe (tools/bench_probe.py) against a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from tools.bench_probe import note_body, one_request, parse_args


class _Notes(BaseHTTPRequestHandler):
    received: ClassVar[list[object]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        payload = json.loads(self.rfile.read(length))
        _Notes.received.append((self.headers["Content-Type"], payload))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Notes)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/api/notes"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_each_write_is_a_unique_note() -> None:
    assert note_body("run1", 7) == ("run1-7", b'{"text": "run1-7"}')
    assert note_body("run1", 7)[0] != note_body("run1", 8)[0]


def test_post_mode_sends_json_notes(server: str) -> None:
    _Notes.received.clear()
    text, body = note_body("t", 0)
    assert one_request(server, 5.0, body) == (201, "")
    assert _Notes.received == [("application/json", {"text": text})]
    assert one_request(server, 5.0) == (200, "")  # GET mode as before


def test_a_refused_connection_is_status_zero() -> None:
    status, error = one_request("http://127.0.0.1:1/", 2.0)
    assert status == 0 and "ConnectionRefusedError" in error


def test_arguments_with_and_without_post() -> None:
    args = parse_args(["p", "--post", "tag", "https://vip/api/notes", "10", "60"])
    assert (args.post, args.url, args.rate, args.duration, args.timeout) == (
        "tag",
        "https://vip/api/notes",
        10.0,
        60.0,
        5.0,
    )
    assert parse_args(["p", "https://vip/", "40", "600", "3"]).post is None
