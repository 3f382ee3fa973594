"""What the whole-stack failure tests share: the client's view (URLs, a
note writer), container restarts, and the database tier's roles.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

import requests
from webinfra_cluster import ClusterState, parse_crm_mon
from webinfra_database import mysql_replica_status, mysql_sql, read_only, write_vip_holders
from webinfra_e2e import Stack, StackHost, time_to_recover
from webinfra_haproxy import haproxy_server_status
from webinfra_load import alternating_sample
from webinfra_testlib import docker, wait_for

# A measured figure: name, value, unit (the `report` fixture prints it).
Report = Callable[[str, float, str], None]
BACKEND = "web"  # the haproxy role's backend of the web servers


def url(stack: Stack, path: str = "/") -> str:
    return f"https://{stack.vip}{path}"


def vip_holders(stack: Stack) -> list[str]:
    return [
        lb.container
        for lb in stack.group("loadbalancers")
        if running(lb.container)
        and f" {stack.vip}/"
        in docker("exec", lb.container, "ip", "-o", "-4", "addr", "show", check=False).stdout
    ]


def backends_up(stack: Stack) -> bool:
    return all(
        haproxy_server_status(lb.container, BACKEND, web.name) == "UP"
        for lb in stack.group("loadbalancers")
        for web in stack.group("webservers")
    )


def served_by(stack: Stack, count: int) -> list[str]:
    return [
        requests.get(url(stack), verify=False, timeout=10).headers.get("X-Served-By", "")
        for _ in range(count)
    ]


def assert_healthy(stack: Stack) -> None:
    """One VIP holder, every web server UP on every load balancer, round robin."""
    wait_for(lambda: vip_holders(stack), timeout=60, accept=lambda hs: len(hs) == 1)
    wait_for(lambda: backends_up(stack), timeout=120, interval=1)
    alternating_sample(partial(served_by, stack, 6))


def running(container: str) -> bool:
    state = docker("inspect", "-f", "{{.State.Running}}", container, check=False).stdout
    return state.strip() == "true"


def restart(container: str, *units: str) -> None:
    """Start a killed container and wait until systemd and `units` are up."""
    if not running(container):
        docker("start", container)

    def state() -> str:
        done = docker(
            "exec", container, "systemctl", "is-system-running", "--wait", check=False, timeout=150
        )
        return done.stdout.strip()

    wait_for(state, timeout=150, interval=1, accept=lambda s: s in ("running", "degraded"))
    for unit in units:
        wait_for(partial(unit_state, container, unit), timeout=60, accept=lambda s: s == "active")


def unit_state(container: str, unit: str) -> str:
    return docker("exec", container, "systemctl", "is-active", unit, check=False).stdout.strip()


class NoteWriter:
    """POST notes through the VIP until stopped; bounded in count and time.

    Records (start time, acknowledged) per attempt, and the acknowledged texts.
    """

    def __init__(self, stack: Stack, tag: str, count: int = 4000, duration: float = 420) -> None:
        self.url = url(stack, "/api/notes")
        self.tag = tag
        self.count = count
        self.duration = duration
        self.attempts: list[tuple[float, bool]] = []
        self.acked: list[str] = []
        self._stop = threading.Event()
        # Held for each attempt; between_writes takes it to hold the writer.
        self._turn = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + self.duration
        with requests.Session() as session:
            for index in range(self.count):
                with self._turn:
                    if self._stop.is_set() or time.monotonic() > deadline:
                        return
                    text = f"{self.tag}-{index}"
                    started = time.time()
                    try:
                        answer = session.post(
                            self.url, json={"text": text}, verify=False, timeout=10
                        )
                        ok = answer.status_code == 201
                    except requests.RequestException:
                        ok = False
                    self.attempts.append((started, ok))
                    if ok:
                        self.acked.append(text)
                time.sleep(0.05)

    @contextmanager
    def between_writes(self) -> Iterator[None]:
        """Hold the next write until the block ends, once the one in flight
        has its answer: a failure injected here meets no write half done."""
        if not self._turn.acquire(timeout=30):
            raise TimeoutError("the write in flight got no answer within 30 s")
        try:
            yield
        finally:
            self._turn.release()

    def __enter__(self) -> NoteWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def wait_writes_back(writer: NoteWriter, since: float, settle: float = 1) -> float:
    """Wait until writes succeed again after a failure at `since` (at most
    120 s), then `settle` s more; the seconds from `since` until they did."""
    wait_for(
        lambda: time_to_recover(writer.attempts, since),
        timeout=120,
        accept=lambda t: t is not None,
    )
    time.sleep(settle)
    recovery = time_to_recover(writer.attempts, since)
    assert recovery is not None
    return recovery


def current_primary(stack: Stack) -> StackHost:
    """The server that accepts writes: on a clustered tier, whichever holds
    the write VIP; otherwise the inventory's db_primary."""
    if not stack.write_vip:
        return stack.one("db_primary")
    holders = write_vip_holders(stack)
    assert len(holders) == 1, [h.name for h in holders]
    return holders[0]


def rejoins_as_a_replica(old: StackHost, new: StackHost, report: Report) -> None:
    """The killed primary, started again, follows the new one by itself, read-only,
    with the same GTID history once it has caught up."""
    started = time.time()
    restart(old.container)
    try:
        status = wait_for(
            partial(replica_status, old.container),
            timeout=180,
            interval=2,
            accept=lambda st: (
                st.get("Slave_IO_Running") == "Yes" and st.get("Slave_SQL_Running") == "Yes"
            ),
        )
    except TimeoutError as exc:
        raise AssertionError(
            f"{old.name} does not replicate from {new.name} 180 s after its start\n"
            + rejoin_diagnosis(old, new)
        ) from exc
    report("db_old_primary_replicating_after", round(time.time() - started, 1), "s")
    assert status["Master_Host"] == new.address, status
    assert read_only(old.container) == "1"
    # No errant transaction: once caught up, both hold the same GTID history.
    servers = (old.container, new.container)
    wait_for(
        lambda: {c: mysql_sql(c, "SELECT @@GLOBAL.gtid_current_pos") for c in servers},
        timeout=30,
        accept=lambda p: len(set(p.values())) == 1,
    )


def rejoin_diagnosis(old: StackHost, new: StackHost) -> str:
    """What a failed rejoin leaves behind: the cluster's view with its fail
    counts, and the old primary's recent cluster and MariaDB messages."""
    commands = {
        f"crm_mon on {new.name}": (new.container, "crm_mon", "-1", "--failcounts"),
        f"messages on {old.name}": (
            old.container, "journalctl", "--no-pager", "-n", "60", "-p", "notice",
        ),
        # An errant transaction shows here as MariaDB error 1236 (db_reseed.yml).
        f"MariaDB's error log on {old.name}": (
            old.container, "tail", "-n", "30", "/var/log/mysql/error.log",
        ),
        f"GTID positions on {old.name}": (
            old.container, "mariadb", "-e",
            "SELECT @@GLOBAL.gtid_current_pos, @@GLOBAL.gtid_slave_pos, @@GLOBAL.read_only",
        ),
        f"GTID position on {new.name}": (
            new.container, "mariadb", "-e", "SELECT @@GLOBAL.gtid_current_pos",
        ),
    }  # fmt: skip
    parts = []
    for title, (container, *command) in commands.items():
        done = docker("exec", container, *command, check=False, timeout=30)
        parts.append(f"--- {title}\n{done.stdout}{done.stderr}")
    return "\n".join(parts)


def replica_status(container: str) -> dict[str, str]:
    """SHOW SLAVE STATUS, or {} while the server is not up yet."""
    try:
        return mysql_replica_status(container)
    except subprocess.CalledProcessError:
        return {}


def node_name(host: StackHost) -> str:
    """A database host's cluster node name (its container's host name)."""
    return docker("inspect", "-f", "{{.Config.Hostname}}", host.container).stdout.strip()


def cluster_state(stack: Stack) -> ClusterState | None:
    """crm_mon as the first running database host answers it (None if none does)."""
    for db in stack.group("databases"):
        if not running(db.container):
            continue
        done = docker("exec", db.container, "crm_mon", "--one-shot", "--output-as=xml", check=False)
        if done.returncode == 0:
            return parse_crm_mon(done.stdout)
    return None


def replicating(container: str) -> bool:
    status = replica_status(container)
    return status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes"


def semi_sync_clients(container: str) -> int:
    """Replicas the primary in `container` waits for (0 while semi-sync is off).

    After a replica was away the primary writes asynchronously until the
    replica has caught up: a failure in that window may lose acknowledged
    writes, so a failure test starts only once semi-sync is on again.
    """
    rows = dict(
        line.split("\t", 1)
        for line in mysql_sql(
            container,
            "SHOW GLOBAL STATUS WHERE Variable_name IN "
            "('Rpl_semi_sync_master_status', 'Rpl_semi_sync_master_clients')",
        ).splitlines()
    )
    if rows.get("Rpl_semi_sync_master_status") != "ON":
        return 0
    return int(rows.get("Rpl_semi_sync_master_clients", "0"))


def semi_sync_on(stack: Stack, primary: str, replicas: int) -> bool:
    """Whether the primary waits for all `replicas` again. It switches back
    only when a replica acknowledges a write: one note is written if not."""
    if semi_sync_clients(primary) == replicas:
        return True
    try:
        requests.post(url(stack, "/api/notes"), json={"text": "steady"}, verify=False, timeout=10)
    except requests.RequestException:
        return False
    return semi_sync_clients(primary) == replicas


def healthy_tier(stack: Stack, timeout: float = 240) -> tuple[StackHost, list[StackHost]]:
    """Wait until the cluster is whole: quorate, every member online, one
    promoted holding the write VIP, every other one replicating.
    Returns the primary and the replicas."""
    databases = stack.group("databases")
    names = {node_name(db): db for db in databases}

    def whole(state: ClusterState | None) -> bool:
        return (
            state is not None
            and state.quorate
            and sorted(state.online) == sorted(names)
            and not state.pending
            and len(state.promoted) == 1
            and state.started.get("write-vip") == state.promoted
            and all(replicating(names[n].container) for n in state.unpromoted)
            and semi_sync_on(stack, names[state.promoted[0]].container, len(names) - 1)
        )

    state = wait_for(partial(cluster_state, stack), timeout=timeout, interval=2, accept=whole)
    assert state is not None
    primary = names[state.promoted[0]]
    return primary, [db for db in databases if db != primary]


def stored_notes(container: str, tag: str) -> set[str]:
    """The notes of one test (their text starts with `tag`-) on a server."""
    rows = mysql_sql(container, f"SELECT body FROM webinfra.notes WHERE body LIKE '{tag}-%'")
    return set(rows.split())
