"""The reload helper of gunicorn_app (roles/gunicorn_app/files/gunicorn_reload.py)."""

from __future__ import annotations

import http.server
import signal
import socket
import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from roles.gunicorn_app.files.gunicorn_reload import (
    UnixHTTPConnection,
    answers,
    children,
    loopback_for,
    main,
    parent_of,
    reload,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def stat_line(pid: int, name: str, ppid: int) -> str:
    return f"{pid} ({name}) S {ppid} {pid} {pid} 0 -1 4194560 100 0 0 0\n"


def test_parent_of_reads_past_a_name_with_spaces_and_parentheses() -> None:
    assert parent_of(stat_line(42, "gunicorn: worker [web) app]", 7)) == 7


def test_children_lists_the_processes_of_one_parent(tmp_path: Path) -> None:
    for pid, ppid in ((10, 1), (11, 10), (12, 10), (13, 11)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text(stat_line(pid, "gunicorn", ppid))
    (tmp_path / "self").mkdir()  # not a PID
    (tmp_path / "99").mkdir()  # exited: no stat file any more
    assert children(10, tmp_path) == {11, 12}
    assert children(12, tmp_path) == set()


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"), ("::", "::1"), ("10.0.0.5", "10.0.0.5"),
     ("[fd00::5]", "fd00::5")],
)  # fmt: skip
def test_a_tcp_listener_is_reached_on_loopback_unless_bound_elsewhere(
    bind: str, expected: str
) -> None:
    assert loopback_for(bind) == expected


class Master:
    """A fake gunicorn master: HUP replaces workers {1, 2} by {3, 4} after `lag` polls."""

    def __init__(self, lag: int = 2, old_stay: bool = False) -> None:
        self.signals: list[int] = []
        self.polls_after_hup = 0
        self.lag = lag
        self.old_stay = old_stay

    def kill(self, pid: int, sig: int) -> None:
        assert pid == 100
        self.signals.append(sig)

    def workers_of(self, pid: int) -> set[int]:
        if not self.signals:
            return {1, 2}
        self.polls_after_hup += 1
        if self.old_stay or self.polls_after_hup <= self.lag:
            return {1, 2, 3, 4}
        return {3, 4}


def test_reload_returns_once_the_old_workers_left_and_a_new_one_answers() -> None:
    master, clock = Master(), FakeClock()
    answers_left = iter([False, False, True])
    message = reload(100, lambda: next(answers_left), 60, master.workers_of, master.kill,
                     clock, clock.sleep)  # fmt: skip
    assert master.signals == [signal.SIGHUP]
    assert master.polls_after_hup >= 3  # waited for the old workers to go
    assert "2 old worker(s) gone" in message
    assert clock.now == pytest.approx(0.4)  # 2 polls for the workers, 2 for an answer


def test_reload_fails_when_the_old_workers_never_leave() -> None:
    master, clock = Master(old_stay=True), FakeClock()
    with pytest.raises(TimeoutError, match=r"old workers \[1, 2\] still running after 5 s"):
        reload(100, lambda: True, 5, master.workers_of, master.kill, clock, clock.sleep)


def test_reload_fails_when_no_new_worker_answers() -> None:
    master, clock = Master(), FakeClock()
    with pytest.raises(TimeoutError, match="no new worker answered within 5 s"):
        reload(100, lambda: False, 5, master.workers_of, master.kill, clock, clock.sleep)


class Unavailable(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class UnixHTTPServer(socketserver.UnixStreamServer):
    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        request, _ = super().get_request()
        return request, ("local", 0)  # BaseHTTPRequestHandler wants a (host, port)


@pytest.fixture
def unix_server(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "app.sock")
    server = UnixHTTPServer(path, Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield path
    server.shutdown()
    server.server_close()


def test_any_http_answer_on_the_unix_socket_counts_even_503(unix_server: str) -> None:
    assert answers(lambda: UnixHTTPConnection(unix_server, timeout=2), "/healthz")


def test_nobody_listening_is_no_answer(tmp_path: Path) -> None:
    missing = str(tmp_path / "none.sock")
    assert not answers(lambda: UnixHTTPConnection(missing, timeout=2), "/healthz")


def test_without_a_running_master_it_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--pid", "0", "--socket", "/nonexistent"]) == 1
    assert "no running master (MAINPID=0)" in capsys.readouterr().err


def test_a_master_that_is_gone_fails_the_reload(capsys: pytest.CaptureFixture[str]) -> None:
    # PID 2**22 + 1 is above the kernel's pid_max: no such process.
    assert main(["--pid", str(2**22 + 1), "--port", "1", "--timeout", "1"]) == 1
    assert "gunicorn-reload:" in capsys.readouterr().err
