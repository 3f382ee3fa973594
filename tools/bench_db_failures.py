"""The bench's failures of a clustered database tier besides the primary
kill: a replica killed, the primary cut off from the lab network, and quorum
lost. Each one is injected under the write probe and healed again (the
members it stopped back as replicas), so that the timeline shows the outage
and the recovery. The pass/fail versions are tests/e2e/failure/
test_failures_database.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from webinfra_cluster import ClusterState, parse_crm_mon
from webinfra_testlib import wait_for

from tools import lab as labtool
from tools.bench_figures import ProbeSample, lost_writes, writes_back_after_kill
from tools.bench_run import BenchError, dexec, sh

Marks = list[tuple[float, str]]
Inject = Callable[[Marks], None]


def holder(lab: labtool.Lab, group: str, address: str) -> labtool.LabHost:
    """The running host of `group` that holds the virtual IP `address`."""
    for host in lab.hosts:
        if group not in host.groups or labtool.container_state(host.container) != "running":
            continue
        out = dexec(host.container, "ip", "-4", "-o", "addr", "show", check=False)
        if f" {address}/" in out:
            return host
    raise BenchError(f"no host of {group} holds the virtual IP {address}")


def write_vip_holder(lab: labtool.Lab) -> labtool.LabHost:
    """The database host holding the cluster's write virtual IP."""
    return holder(lab, "databases", lab.db_write_vip)


def wait_replicating(host: labtool.LabHost, timeout: float = 240) -> None:
    """A restarted cluster member is back as a replica (both threads running)."""
    labtool.wait_booted(host, timeout)

    def threads() -> str:
        out = dexec(host.container, "mariadb", "-e", "SHOW SLAVE STATUS\\G", check=False)
        return " ".join(
            line.split(":", 1)[1].strip()
            for line in out.splitlines()
            if line.strip().startswith(("Slave_IO_Running:", "Slave_SQL_Running:"))
        )

    wait_for(threads, accept=lambda seen: seen == "Yes Yes", timeout=timeout, interval=2)


def cluster_state(lab: labtool.Lab) -> ClusterState | None:
    """crm_mon of the first running database host that answers."""
    for host in lab.hosts:
        if "databases" in host.groups and labtool.container_state(host.container) == "running":
            out = dexec(host.container, "crm_mon", "--one-shot", "--output-as=xml", check=False)
            if out.startswith("<"):
                return parse_crm_mon(out)
    return None


def a_replica(lab: labtool.Lab, primary: labtool.LabHost) -> labtool.LabHost:
    replicas = [h for h in lab.hosts if "databases" in h.groups and h != primary]
    if not replicas:
        raise BenchError("the database failures need a second database host")
    return replicas[0]


def wait_new_primary(lab: labtool.Lab, old: labtool.LabHost, timeout: float = 120) -> str:
    """Wait until a database host other than `old` holds the write VIP; its name."""

    def other() -> str:
        try:
            return write_vip_holder(lab).name
        except BenchError:
            return ""

    found = wait_for(other, timeout=timeout, interval=0.5, accept=lambda n: n not in ("", old.name))
    return str(found)


def kill_and_start(
    marks: Marks,
    host: labtool.LabHost,
    down_s: float,
    ready: Callable[[labtool.LabHost], None],
    role: str = "",
    ready_as: str = "healthy",
) -> None:
    """docker kill `host`, start it `down_s` later and wait until `ready`."""
    marks.append((time.time(), f"docker kill {host.name}{f' ({role})' if role else ''}"))
    sh("docker", "kill", host.container)
    time.sleep(down_s)
    marks.append((time.time(), f"docker start {host.name}"))
    sh("docker", "start", host.container)
    ready(host)
    marks.append((time.time(), f"{host.name} {ready_as}"))


def kill_replica(lab: labtool.Lab) -> Inject:
    def inject(marks: Marks) -> None:
        victim = a_replica(lab, write_vip_holder(lab))
        kill_and_start(marks, victim, 10, wait_replicating, "replica", "replicating")

    return inject


def cut_off_primary(lab: labtool.Lab) -> Inject:
    def inject(marks: Marks) -> None:
        victim = write_vip_holder(lab)
        marks.append((time.time(), f"{victim.name} (primary) disconnected from {lab.network}"))
        sh("docker", "network", "disconnect", lab.network, victim.container)
        new = wait_new_primary(lab, victim)
        marks.append((time.time(), f"write VIP on {new}"))
        time.sleep(5)
        sh("docker", "network", "connect", "--ip", victim.address, lab.network, victim.container)
        # The majority fenced it (fence_docker stopped its container).
        marks.append((time.time(), f"{victim.name} reconnected and started"))
        if labtool.container_state(victim.container) != "running":
            sh("docker", "start", victim.container)
        wait_replicating(victim)
        marks.append((time.time(), f"{victim.name} replicating"))

    return inject


def qnetd_host(lab: labtool.Lab) -> labtool.LabHost:
    for host in lab.hosts:
        state = dexec(host.container, "systemctl", "is-active", "corosync-qnetd", check=False)
        if state.strip() == "active":
            return host
    raise BenchError("no lab host runs corosync-qnetd")


def lose_quorum(lab: labtool.Lab) -> Inject:
    def inject(marks: Marks) -> None:
        primary = write_vip_holder(lab)
        victim, device = a_replica(lab, primary), qnetd_host(lab)
        marks.append((time.time(), f"corosync-qnetd stopped on {device.name}"))
        dexec(device.container, "systemctl", "stop", "corosync-qnetd")
        time.sleep(2)
        marks.append((time.time(), f"docker kill {victim.name} (replica): no quorum"))
        sh("docker", "kill", victim.container)
        time.sleep(15)
        marks.append((time.time(), f"corosync-qnetd started on {device.name}"))
        dexec(device.container, "systemctl", "start", "corosync-qnetd")
        # Quorate again, the primary fences the lost replica and is promoted
        # again; the replica starts only after that.
        node = dexec(victim.container, "hostname", check=False).strip() or victim.name
        wait_for(
            lambda: cluster_state(lab),
            timeout=120,
            interval=1,
            accept=lambda s: s is not None and len(s.promoted) == 1 and node not in s.unclean,
        )
        marks.append((time.time(), f"{primary.name} promoted again"))
        sh("docker", "start", victim.container)
        wait_replicating(victim)
        marks.append((time.time(), f"{victim.name} replicating"))

    return inject


def stored_notes(host: labtool.LabHost, tag: str) -> list[str]:
    """The notes of one probe run (their text starts with `tag`-) on a server."""
    query = f"SELECT body FROM webinfra.notes WHERE body LIKE '{tag}-%'"
    return dexec(host.container, "mariadb", "-N", "-B", "-e", query).split()


def writes_outcome(
    lab: labtool.Lab, samples: list[ProbeSample], marks: Marks, tag: str
) -> dict[str, Any]:
    """Acknowledged writes looked up on the primary after the failure healed."""
    primary = write_vip_holder(lab)
    stored = stored_notes(primary, tag)
    acked = sum(1 for s in samples if s.acknowledged)
    return {
        "primary": primary.name,
        "attempted": len(samples),
        "acknowledged": acked,
        "failed": len(samples) - acked,
        "lost": len(lost_writes(samples, stored)),
        "back_after_failure_s": writes_back_after_kill(samples, marks[0][0]),
    }
