"""MariaDB as the tests read it: SQL through the unix socket of a container."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from webinfra_cluster import ReadOnlySample
from webinfra_e2e import Stack, StackHost
from webinfra_testlib import docker, parse_vertical


def mysql_sql(container: str, statement: str) -> str:
    """Run SQL as root through the unix socket in `container`.

    Returns tab-separated rows without a header; raises on an SQL error.
    """
    done = docker("exec", container, "mariadb", "-N", "-B", "-e", statement, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{container}: {statement!r} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def mysql_replica_status(container: str) -> dict[str, str]:
    """SHOW SLAVE STATUS of `container` as a dictionary ({} when not a replica)."""
    out = docker("exec", container, "mariadb", "-e", "SHOW SLAVE STATUS\\G").stdout
    rows = parse_vertical(out)
    return rows[0] if rows else {}


def read_only(container: str) -> str:
    """@@GLOBAL.read_only of the server in `container`: "0", "1" or "down"."""
    done = docker(
        "exec", container, "mariadb", "-N", "-B", "-e", "SELECT @@GLOBAL.read_only",
        check=False, timeout=5,
    )  # fmt: skip
    return done.stdout.strip() if done.returncode == 0 else "down"


class ReadOnlyWatch:
    """Samples read_only on every server every 0.5 s while the block runs,
    for at most `limit` seconds: who accepted writes, and when."""

    def __init__(self, containers: Sequence[str], limit: float = 300) -> None:
        self.containers = tuple(containers)
        self.samples: list[ReadOnlySample] = []
        self._stop = threading.Event()
        self._limit = limit
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self._limit
        while not self._stop.is_set() and time.monotonic() < deadline:
            t = time.time()
            writable = tuple(c for c in self.containers if read_only(c) == "0")
            self.samples.append(ReadOnlySample(t, writable))
            self._stop.wait(0.5)

    def __enter__(self) -> ReadOnlyWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def write_vip_holders(stack: Stack) -> list[StackHost]:
    """The database servers holding the cluster's write virtual IP (one when healthy)."""
    return [
        db
        for db in stack.group("databases")
        if f" {stack.write_vip}/"
        in docker("exec", db.container, "ip", "-o", "-4", "addr", "show", check=False).stdout
    ]
