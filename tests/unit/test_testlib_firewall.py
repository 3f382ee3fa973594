"""The reachability script of the firewall helpers, run against loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading

import pytest
from webinfra_firewall import REACH_SCRIPT, Target, parse_reach


def _serve_once(sock: socket.socket) -> None:
    conn, _ = sock.accept()
    conn.sendall(b"open\n")
    conn.close()


def test_open_and_closed_ports_are_told_apart() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    open_port = listener.getsockname()[1]
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    closed_port = closed.getsockname()[1]  # bound, never listening: refused
    thread = threading.Thread(target=_serve_once, args=(listener,), daemon=True)
    thread.start()
    targets: list[Target] = [
        ("127.0.0.1", "tcp", open_port),
        ("127.0.0.1", "tcp", closed_port),
        ("127.0.0.1", "udp", closed_port),
    ]
    payload = json.dumps([list(t) for t in targets])
    done = subprocess.run(
        [sys.executable, "-c", REACH_SCRIPT, payload, "0.5"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    thread.join(timeout=5)
    listener.close()
    closed.close()
    assert parse_reach(targets, done.stdout) == {
        targets[0]: True,
        targets[1]: False,
        targets[2]: False,
    }


def test_parse_reach_refuses_a_short_answer() -> None:
    with pytest.raises(ValueError, match="expected 2 answers"):
        parse_reach([("a", "tcp", 1), ("b", "tcp", 2)], "[true]")
