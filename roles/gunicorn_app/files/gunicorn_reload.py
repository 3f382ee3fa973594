"""Reload a gunicorn master and return once its new workers serve.

systemd runs this as the ExecReload of a gunicorn_app service. A HUP makes
gunicorn fork new workers and stop the old ones at once, before the new ones
have imported the application; until they have, requests wait in the
socket's backlog. Another HUP in that window kills the booting workers too,
so a quick series of reloads (a deploy, a configuration loop, an operator's
script) could leave no worker up for many seconds and every health check
failing. Returning only once the old workers are gone and a new one has
answered makes `systemctl reload` last as long as the reload really does,
and systemd runs one reload of a unit at a time: reloads in a row queue up
instead of piling onto booting workers.

Standard library only (it runs with the target's python3).

    gunicorn_reload.py --pid MAINPID (--socket PATH | --port N [--address A])
                       [--path /healthz] [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import http.client
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PROC = Path("/proc")


def parent_of(stat_line: str) -> int:
    """The parent PID in a /proc/PID/stat line (the name may hold spaces and ')')."""
    fields = stat_line[stat_line.rindex(")") + 2 :].split()
    return int(fields[1])


def children(pid: int, proc: Path = PROC) -> set[int]:
    """PIDs whose parent is `pid` (gunicorn's workers of this master)."""
    found: set[int] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # it exited meanwhile
            continue
        if parent_of(stat) == pid:
            found.add(int(entry.name))
    return found


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a unix socket (gunicorn behind nginx listens on one)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.socket_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.socket_path)
        self.sock = sock


def loopback_for(address: str) -> str:
    """Where to reach a TCP listener bound to `address` from the same host."""
    if address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if address == "::":
        return "::1"
    return address.strip("[]")


def answers(connect: Callable[[], http.client.HTTPConnection], path: str) -> bool:
    """True once a worker sends any HTTP response to GET `path`.

    Any status counts: the question is whether a new worker is serving, not
    whether the application is healthy (its database may well be down).
    """
    conn = connect()
    try:
        conn.request("GET", path, headers={"User-Agent": "gunicorn-reload"})
        conn.getresponse().read()
        return True
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_until(
    condition: Callable[[], bool],
    deadline: float,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    step: float = 0.1,
) -> bool:
    """Poll `condition` until it holds (True) or the deadline passes (False)."""
    while True:
        if condition():
            return True
        if clock() >= deadline:
            return False
        sleep(step)


def reload(
    pid: int,
    probe: Callable[[], bool],
    timeout: float,
    workers_of: Callable[[int], set[int]] = children,
    kill: Callable[[int, int], None] = os.kill,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """HUP `pid`, wait for its old workers to go and a new one to answer.

    Returns what happened, for the journal; raises TimeoutError naming the
    step that did not finish in time.
    """
    start = clock()
    deadline = start + timeout
    old = workers_of(pid)
    kill(pid, signal.SIGHUP)
    if not wait_until(lambda: not (old & workers_of(pid)), deadline, clock, sleep):
        left = sorted(old & workers_of(pid))
        raise TimeoutError(f"old workers {left} still running after {timeout:.0f} s")
    if not wait_until(probe, deadline, clock, sleep):
        raise TimeoutError(f"no new worker answered within {timeout:.0f} s")
    return (
        f"reloaded: {len(old)} old worker(s) gone, new workers answer after {clock() - start:.1f} s"
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pid", type=int, required=True, help="the gunicorn master ($MAINPID)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="unix socket the workers accept on")
    where.add_argument("--port", type=int, help="TCP port the workers accept on")
    parser.add_argument("--address", default="127.0.0.1", help="bind address of the TCP port")
    parser.add_argument("--path", default="/", help="path to GET (any HTTP answer counts)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds in all")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.pid <= 1:
        print(f"gunicorn-reload: no running master (MAINPID={args.pid})", file=sys.stderr)
        return 1

    def connect() -> http.client.HTTPConnection:
        if args.socket:
            return UnixHTTPConnection(args.socket, timeout=2.0)
        return http.client.HTTPConnection(loopback_for(args.address), args.port, timeout=2.0)

    try:
        print(reload(args.pid, lambda: answers(connect, args.path), args.timeout), flush=True)
    except (TimeoutError, ProcessLookupError) as exc:
        print(f"gunicorn-reload: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
