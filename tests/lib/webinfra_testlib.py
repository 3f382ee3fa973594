"""The core of the test helpers: docker, waiting, playbook runs, containers.

Scenarios put this directory on PYTHONPATH (see .config/molecule/config.yml),
so a test module does `from webinfra_testlib import ...`. The helpers of one
subject live beside it (webinfra_load, webinfra_haproxy, webinfra_vrrp,
webinfra_firewall, webinfra_database, webinfra_tls, webinfra_monitoring, ...;
docs/developing.md lists them).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar


class RunResult(Protocol):
    rc: int
    stdout: str
    stderr: str


class Host(Protocol):
    def run(self, command: str, *args: Any) -> RunResult: ...


T = TypeVar("T")


def failed_units(host: Host) -> list[str]:
    """Names of the systemd units in the failed state."""
    out = host.run("systemctl list-units --state=failed --plain --no-legend --no-pager").stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def os_release(host: Host) -> dict[str, str]:
    """/etc/os-release as a dictionary."""
    return parse_os_release(host.run("cat /etc/os-release").stdout)


def parse_os_release(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        if "=" not in line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip().strip('"')
    return values


def wait_for(
    probe: Callable[[], T],
    *,
    timeout: float = 30.0,
    interval: float = 0.25,
    accept: Callable[[T], bool] = bool,
) -> T:
    """Call probe until accept(result) holds; return that result.

    Raises TimeoutError with the last result when timeout seconds pass.
    """
    deadline = time.monotonic() + timeout
    last: T = probe()
    while not accept(last):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"condition not met within {timeout} s; last result: {last!r}")
        time.sleep(interval)
        last = probe()
    return last


def docker(
    *args: str, check: bool = True, timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI on the controller."""
    return subprocess.run(
        ["docker", *args], check=check, capture_output=True, text=True, timeout=timeout
    )


def container_ip(name: str, network: str) -> str:
    """The IPv4 address of container `name` on docker network `network`."""
    out = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name).stdout
    networks: dict[str, dict[str, Any]] = json.loads(out)
    return str(networks[network]["IPAddress"])


def scenario_name() -> str:
    """The molecule scenario being verified."""
    return os.environ.get("MOLECULE_SCENARIO_NAME", "adhoc")


@dataclass(frozen=True)
class RunOutcome:
    rc: int
    stdout: str
    stderr: str


def start_probe(name: str, network: str, ip: str | None = None, image: str | None = None) -> str:
    """Start a plain container on `network` for client-side checks.

    It carries the scenario label, so the shared destroy playbook removes it
    even when the test fails. Returns the container name.
    """
    image = image or os.environ.get("WEBINFRA_IMAGE", "webinfra/systemd-debian:12")
    docker("rm", "-f", name, check=False)
    args = ["run", "-d", "--name", name, "--network", network]
    args += ["--label", f"webinfra.scenario={scenario_name()}", "--label", "owner=molecule"]
    if ip:
        args += ["--ip", ip]
    docker(*args, image, "sleep", "3600")
    return name


def probe_exec(name: str, command: list[str], timeout: float = 60.0) -> RunOutcome:
    """Run a command in a probe container; never raises on a non-zero exit."""
    done = docker("exec", name, *command, check=False, timeout=timeout)
    return RunOutcome(done.returncode, done.stdout, done.stderr)


def ansible_playbook(
    playbook: str,
    extra_vars: dict[str, Any] | None = None,
    limit: str | None = None,
    timeout: float = 900.0,
    check: bool = False,
    inventory: str | None = None,
    tags: str | None = None,
) -> RunOutcome:
    """Run a playbook against the scenario's inventory (or the given one), as
    molecule would.

    Used by tests that prove a wrong variable stops the play, that run a
    day-2 playbook (deploy_app.yml, db_failover.yml) during a test, or (with
    `check`) that dry-run one with --check --diff. `tags` runs only those
    tags, as an operator would for one change.
    """
    args = ["ansible-playbook", "-i", inventory or os.environ["MOLECULE_INVENTORY_FILE"], playbook]
    if check:
        args += ["--check", "--diff"]
    if extra_vars is not None:
        args += ["-e", json.dumps(extra_vars)]
    if limit:
        args += ["--limit", limit]
    if tags:
        args += ["--tags", tags]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    return RunOutcome(done.returncode, done.stdout, done.stderr)


def parse_vertical(text: str) -> list[dict[str, str]]:
    """Rows of `mariadb ... \\G` output ("*** 1. row ***" then "key: value")."""
    rows: list[dict[str, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("***") and "row" in stripped:
            rows.append({})
            continue
        if not rows or ":" not in stripped:
            continue
        key, _, value = stripped.partition(":")
        rows[-1][key.strip()] = value.strip()
    return rows


def play_recap(stdout: str) -> dict[str, dict[str, int]]:
    """The PLAY RECAP of an ansible-playbook run: host -> {ok, changed, failed, ...}."""
    recap: dict[str, dict[str, int]] = {}
    in_recap = False
    for line in re.sub(r"\x1b\[[0-9;]*m", "", stdout).splitlines():
        if line.startswith("PLAY RECAP"):
            in_recap = True
            continue
        if not in_recap or ":" not in line:
            continue
        host, _, counters = line.partition(":")
        values: dict[str, int] = {}
        for item in counters.split():
            name, sep, number = item.partition("=")
            if sep and number.isdigit():
                values[name] = int(number)
        if values:
            recap[host.strip()] = values
    return recap


# A task's line in the summary of the profile_tasks callback:
# "role : name ----- 17.61s".
PROFILE_LINE = re.compile(r"^(?P<task>.+?) -+ (?P<seconds>[0-9]+\.[0-9]+)s\s*$")


def task_seconds(stdout: str, name: str) -> float:
    """Seconds of the tasks whose name contains `name`, summed from the
    summary the ansible.posix.profile_tasks callback prints."""
    total = 0.0
    for line in stdout.splitlines():
        found = PROFILE_LINE.match(line.strip())
        if found and name in found["task"]:
            total += float(found["seconds"])
    return round(total, 2)


def changed_tasks(stdout: str) -> list[str]:
    """'TASK name: host' for each result an ansible-playbook run reported as changed."""
    found: list[str] = []
    task = ""
    for line in re.sub(r"\x1b\[[0-9;]*m", "", stdout).splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line[line.index("[") + 1 : line.rindex("]")]
        elif line.startswith("changed: ["):
            host = line[len("changed: [") : line.index("]")]
            found.append(f"{task}: {host}")
    return found


def scenario_secret(name: str) -> str:
    """A password the scenario generated with ansible's password lookup."""
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "secrets", name)
    with open(path, encoding="utf-8") as handle:
        return handle.read().split()[0]


def copy_between(source: str, source_path: str, dest: str, dest_path: str) -> None:
    """Copy one file from container `source` to container `dest` (parents created)."""
    with tempfile.TemporaryDirectory() as tmp:
        docker("cp", f"{source}:{source_path}", f"{tmp}/file")
        docker("exec", dest, "mkdir", "-p", os.path.dirname(dest_path))
        docker("cp", f"{tmp}/file", f"{dest}:{dest_path}")


def start_systemd_host(name: str, network: str, ip: str) -> str:
    """Start an extra systemd container like the scenario's own platforms.

    Same flags as molecule/resources/playbooks/create.yml, labelled with the
    scenario so destroy removes it; waits until systemd has booted.
    """
    image = os.environ.get("WEBINFRA_IMAGE", "webinfra/systemd-debian:12")
    docker("rm", "-f", "-v", name, check=False)
    docker(
        "run", "-d", "--name", name, "--hostname", name, "--network", network, "--ip", ip,
        "--label", f"webinfra.scenario={scenario_name()}", "--label", "owner=molecule",
        "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
        "--security-opt", "seccomp=unconfined", "--cgroupns", "host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--stop-signal", "SIGRTMIN+3", image, "/lib/systemd/systemd",
    )  # fmt: skip
    wait_for(
        lambda: docker("exec", name, "systemctl", "is-system-running", check=False).stdout.strip(),
        accept=lambda state: state in ("running", "degraded"),
        timeout=60,
    )
    return name


def failed_units_in(containers: list[str]) -> dict[str, list[str]]:
    """The failed systemd units of each container that has any."""
    failed: dict[str, list[str]] = {}
    for name in containers:
        out = docker("exec", name, "systemctl", "--failed", "--plain", "--no-legend").stdout
        units = [line.split()[0] for line in out.splitlines() if line.strip()]
        if units:
            failed[name] = units
    return failed
