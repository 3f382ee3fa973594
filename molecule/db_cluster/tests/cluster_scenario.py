"""The db_cluster scenario's hosts and the moves its tests make on them.

A primary (db-01) and a replica (db-02) under Pacemaker with the write
virtual IP, the quorum device on mon-01, fencing through fence_docker, and
web-01 writing through the virtual IP (vip_writer.py, a new connection per
write at 10/s). Figures print as `CLUSTER-FIGURE name=value unit` lines.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from webinfra_cluster import (
    ClusterState,
    ReadOnlySample,
    Write,
    parse_crm_mon,
    parse_writes,
    writes_back_after,
)
from webinfra_database import ReadOnlyWatch, mysql_sql
from webinfra_testlib import ansible_playbook, docker, scenario_secret, wait_for

DB = {"webinfra-dbcluster-db-01": "172.30.12.31", "webinfra-dbcluster-db-02": "172.30.12.32"}
CLIENT = "webinfra-dbcluster-web-01"
VIP = "172.30.12.30"
NETWORK = "webinfra-dbcluster"
WRITER = Path(__file__).with_name("vip_writer.py")
# Where vip_writer.py finds the tier's CA (its CA_FILE).
WRITER_CA = "/usr/local/share/webinfra-tests/db-ca.crt"
SCENARIO = Path(__file__).resolve().parents[1]
# A bound far from the noise: the target for writes after a kill.
WRITES_BACK_WITHIN = 10.0


def figure(name: str, value: float, unit: str) -> None:
    print(f"\nCLUSTER-FIGURE {name}={value} {unit}", flush=True)


def running(container: str) -> bool:
    out = docker("inspect", "-f", "{{.State.Running}}", container, check=False).stdout
    return out.strip() == "true"


def state(via: str | None = None) -> ClusterState:
    """crm_mon as seen from a running member."""
    members = [via] if via else [c for c in DB if running(c)]
    for member in members:
        done = docker("exec", member, "crm_mon", "--one-shot", "--output-as=xml", check=False)
        if done.returncode == 0:
            return parse_crm_mon(done.stdout)
    raise AssertionError(f"no member answered crm_mon: {members}")


def healthy() -> ClusterState:
    """Both members online, one promoted, the other following it, the VIP on the primary."""

    def probe() -> ClusterState | None:
        try:
            return state()
        except AssertionError:
            return None

    def ok(s: ClusterState | None) -> bool:
        return (
            s is not None
            and s.quorate
            and len(s.online) == 2
            and len(s.promoted) == 1
            and len(s.unpromoted) == 1
            and s.started.get("write-vip") == s.promoted
        )

    found = wait_for(probe, timeout=180, interval=2, accept=ok)
    assert found is not None
    return found


def rejoined(old: str) -> ClusterState:
    """healthy() after `old` came back; a failure says why it did not rejoin."""
    try:
        return healthy()
    except TimeoutError as error:
        survivor = next(c for c in DB if c != old)
        failcounts = docker("exec", survivor, "crm_mon", "-1", "--failcounts", check=False)
        log = docker("exec", old, "tail", "-n", "25", "/var/log/mysql/error.log", check=False)
        raise AssertionError(
            f"{old} did not rejoin: {error}\n{failcounts.stdout}\n{old}'s error log:\n{log.stdout}"
        ) from error


def start(container: str) -> None:
    if not running(container):
        docker("start", container)
    wait_for(
        lambda: docker(
            "exec", container, "systemctl", "is-system-running", "--wait", check=False, timeout=150
        ).stdout.strip(),
        timeout=150,
        interval=1,
        accept=lambda s: s in ("running", "degraded"),
    )


class Writer:
    """vip_writer.py in the client container, for at most `duration` seconds."""

    def __init__(self, tag: str, duration: float = 150, interval: float = 0.1) -> None:
        self.tag = tag
        self.proc = subprocess.Popen(
            [
                "docker",
                "exec",
                "-i",
                "-e",
                f"DB_PASSWORD={scenario_secret('app')}",
                CLIENT,
                "python3",
                "-",
                VIP,
                tag,
                str(duration),
                str(interval),
            ],
            stdin=WRITER.open(encoding="utf-8"),
            stdout=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def writes(self) -> list[Write]:
        return parse_writes("".join(self.lines))

    def stop(self) -> list[Write]:
        # Killing `docker exec` leaves the writer running in the container.
        docker("exec", CLIENT, "pkill", "-f", f"python3 - {VIP} {self.tag} ", check=False)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return self.writes


def container_of(node: str) -> str:
    """Cluster node name (the container's host name) -> container."""
    return f"webinfra-dbcluster-{node}"


def stored(container: str, tag: str) -> set[str]:
    rows = mysql_sql(container, f"SELECT body FROM app.notes WHERE body LIKE '{tag}-%'")
    return set(rows.split())


def run_playbook(playbook: str, extra_vars: dict[str, object]) -> str:
    """playbooks/`playbook` with the scenario's settings, as converge.yml loads them."""
    plays = [
        {
            "name": "Load the scenario's settings",
            "hosts": "all",
            "gather_facts": False,
            "tasks": [
                {
                    "name": "Settings",
                    "ansible.builtin.include_vars": str(SCENARIO / "vars" / "scenario.yml"),
                    "no_log": True,
                }
            ],
        },
        {
            "name": "Run",
            "ansible.builtin.import_playbook": str(SCENARIO.parents[1] / "playbooks" / playbook),
        },
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.json"
        path.write_text(json.dumps(plays), encoding="utf-8")
        outcome = ansible_playbook(str(path), extra_vars=extra_vars, timeout=600)
    output = outcome.stdout + outcome.stderr
    assert outcome.rc == 0, output[-6000:]
    return output


def fail_primary_under_writes(
    tag: str, fail: Callable[[str], object]
) -> tuple[str, str, float, list[Write], list[ReadOnlySample]]:
    """fail(primary container) while writing; wait until writes come back.

    Returns the old and the new primary, seconds from the failure (the
    return of the docker command that caused it) to the first write after
    the last failed one, the writes and read_only samples.
    """
    s = healthy()
    old, new = container_of(s.promoted[0]), container_of(s.unpromoted[0])
    with ReadOnlyWatch(list(DB)) as watch:
        writer = Writer(tag)
        wait_for(lambda: sum(w.ok for w in writer.writes), timeout=30, accept=lambda n: n >= 20)
        began = time.time()
        fail(old)
        # The daemon kills or cuts off the container just before the docker
        # command returns; the command itself took from 0.3 s to several
        # seconds to get there on a loaded machine. The clock starts at its
        # return, and the command's own time is reported beside the figure.
        failed_at = time.time()
        figure("docker_command_before_the_clock", round(failed_at - began, 2), "s")
        wait_for(
            lambda: writes_back_after(writer.writes, failed_at),
            timeout=60,
            interval=0.5,
            accept=lambda t: t is not None and any(w.t > failed_at + t + 2 for w in writer.writes),
        )
        writes = writer.stop()
    recovery = writes_back_after(writes, failed_at)
    assert recovery is not None
    return old, new, recovery, writes, watch.samples


def kill(container: str) -> object:
    return docker("kill", container)


def cut_off(container: str) -> object:
    """Cut the primary off between two writes, as the whole-stack partition
    test does: a write in flight at the cut would wait the semi-sync time-out
    and then commit on the cut-off primary alone, an errant transaction that
    keeps it from rejoining until db_reseed.yml (test_rejoin.py covers that
    path). The writer is stopped for half a second, which lets the server
    finish the write it has, and resumes after the cut.
    """
    writer = ["pkill", "-f", f"python3 - {VIP} "]
    docker("exec", CLIENT, writer[0], "-STOP", *writer[1:], check=False)
    try:
        time.sleep(0.5)
        return docker("network", "disconnect", NETWORK, container)
    finally:
        docker("exec", CLIENT, writer[0], "-CONT", *writer[1:], check=False)


def kill_mid_commit(container: str) -> object:
    """Kill the primary while writes wait for the replica's acknowledgement.

    The replica never gets them: the primary's replication stream to it is
    dropped (iptables in the container's network namespace, from the host:
    the images carry no firewall tool), and the semi-sync time-out raised so
    the writes keep waiting, binary-logged and prepared, instead of
    committing alone. They are the transactions crash recovery must roll
    back for the killed primary to follow the new one.
    """
    replica = next(c for c in DB if c != container)
    pid = docker("inspect", "-f", "{{.State.Pid}}", container).stdout.strip()
    mysql_sql(container, "SET GLOBAL rpl_semi_sync_master_timeout = 120000")
    subprocess.run(
        [
            "nsenter",
            "-t",
            pid,
            "-n",
            "iptables",
            "-I",
            "OUTPUT",
            "-p",
            "tcp",
            "--sport",
            "3306",
            "-d",
            DB[replica],
            "-j",
            "DROP",
        ],
        check=True,
        timeout=30,
    )

    def ahead() -> int:
        # One GTID domain (0): the sequence numbers count transactions.
        logged = mysql_sql(container, "SELECT @@GLOBAL.gtid_binlog_pos")
        applied = mysql_sql(replica, "SELECT @@GLOBAL.gtid_current_pos")
        return int(logged.rsplit("-", 1)[-1]) - int(applied.rsplit("-", 1)[-1])

    waiting = wait_for(ahead, timeout=15, interval=0.2, accept=lambda n: n > 0)
    figure("unacknowledged_at_kill", waiting, "transactions or more")
    return docker("kill", container)


def same_history(servers: tuple[str, ...], timeout: float = 10) -> None:
    """Both servers hold the same GTID history once the replica caught up:
    no errant transaction on either."""
    try:
        wait_for(
            lambda: {c: mysql_sql(c, "SELECT @@GLOBAL.gtid_current_pos") for c in servers},
            timeout=timeout,
            accept=lambda p: len(set(p.values())) == 1,
        )
    except TimeoutError as error:
        positions = {
            c: mysql_sql(c, "SELECT @@GLOBAL.gtid_binlog_pos, @@GLOBAL.gtid_slave_pos")
            for c in servers
        }
        raise AssertionError(f"{error}; binlog/slave: {positions}") from error
