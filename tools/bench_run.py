"""What every phase of the bench runs things with: shell and docker calls,
ansible-playbook, the bench's containers, the machine it ran on.
"""

from __future__ import annotations

import ipaddress
import math
import os
import platform
import re
import socket
import subprocess
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tools import lab as labtool
from tools.bench_figures import memory_in_use
from tools.lab import ROOT

SCENARIO_LABEL = "webinfra.scenario=bench"


CLIENT = "webinfra-bench-client"


# An address of the lab network no lab host uses (hosts.yml: .5 - .41).
CLIENT_ADDRESS = "172.31.250.61"


def container_memory(container_id: str) -> float | None:
    """Memory a container uses, from its cgroup (v1 or v2) on this host.

    `docker stats` reads 0B for these containers (their systemd shares the
    host's cgroup namespace), so the bench reads the cgroup files itself.
    """
    for usage_file, stat_file in (
        (
            Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.usage_in_bytes"),
            Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.stat"),
        ),
        (
            Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.current"),
            Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/memory.stat"),
        ),
    ):
        try:
            usage = int(usage_file.read_text())
            return memory_in_use(usage, stat_file.read_text())
        except (OSError, ValueError):
            continue
    return None


class BenchError(Exception):
    """A problem that stops the bench; printed without a stack trace."""


def sh(*args: str, check: bool = True, timeout: float = 600.0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise BenchError(f"{' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


def dexec(container: str, *command: str, check: bool = True, timeout: float = 600.0) -> str:
    return sh("docker", "exec", container, *command, check=check, timeout=timeout).stdout


def log(message: str) -> None:
    print(f"[bench {datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def machine_info() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.+)", cpuinfo)
    meminfo = Path("/proc/meminfo").read_text()
    total = re.search(r"MemTotal:\s+(\d+) kB", meminfo)
    commit = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD", check=False).stdout
    dirty = sh("git", "-C", str(ROOT), "status", "--porcelain", check=False).stdout.strip()
    running = sh("docker", "ps", "-q", check=False).stdout.split()
    return {
        "cpu_model": model.group(1).strip() if model else platform.processor(),
        "cpu_count": os.cpu_count(),
        "memory_gib": int(total.group(1)) / 1024**2 if total else math.nan,
        "kernel": platform.release(),
        "loadavg_before": Path("/proc/loadavg").read_text().split()[:3],
        "git_commit": commit.strip() + ("+dirty" if dirty else ""),
        "containers_running": len(running),
        "python": platform.python_version(),
    }


def ansible_playbook(
    playbook: str,
    *extra: str,
    overlays: Sequence[Path] = (),
    log_file: Path | None = None,
    inventory: Path = labtool.INVENTORY,
) -> tuple[float, str]:
    """(seconds, stdout) of one ansible-playbook run against the lab (and `overlays`).

    `inventory` replaces inventory/lab, for a lab with servers taken out
    (see write_retired_inventory).

    The output goes to `log_file` too (with ANSIBLE_CALLBACKS_ENABLED=
    ansible.posix.profile_tasks in the environment it holds the task timings).
    """
    start = time.monotonic()
    done = subprocess.run(
        [
            labtool.tool("ansible-playbook"),
            *labtool.inventory_args(overlays, inventory),
            playbook,
            *extra,
        ],
        cwd=ROOT,
        env=labtool.ansible_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    elapsed = time.monotonic() - start
    if log_file is not None:
        log_file.write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-30:])
        raise BenchError(f"{playbook} failed (exit {done.returncode}):\n{tail}\n{done.stderr}")
    return elapsed, done.stdout


def remove_bench_containers(keep: str | None = None) -> None:
    """Remove every bench container (but `keep`)."""
    names = sh(
        "docker", "ps", "-a", "--format", "{{.Names}}", "--filter", f"label={SCENARIO_LABEL}"
    ).stdout.split()
    names = [name for name in names if name != keep]
    if names:
        sh("docker", "rm", "-f", "-v", *names, check=False)


def apt_proxy_line(gateway: str) -> str | None:
    """The apt proxy configuration when the host's apt-cacher-ng answers."""
    if os.environ.get("WEBINFRA_APT_PROXY", "on") == "off":
        return None
    try:
        with socket.create_connection((gateway, 3142), timeout=2):
            return f'Acquire::http::Proxy "http://{gateway}:3142";\n'
    except OSError:
        return None


def lab_gateway(lab: labtool.Lab) -> str:
    """The first address of the lab subnet: Docker's gateway, the host."""
    return str(next(ipaddress.ip_network(lab.subnet).hosts()))
