"""Helpers shared by the testinfra tests of every molecule scenario.

Scenarios put this directory on PYTHONPATH (see .config/molecule/config.yml),
so a test module does `from webinfra_testlib import ...`.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
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
        key, _, value = line.partition("=")
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


def docker(*args: str, check: bool = True, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI on the controller."""
    return subprocess.run(
        ["docker", *args], check=check, capture_output=True, text=True, timeout=timeout
    )


def container_ip(name: str, network: str) -> str:
    """The IPv4 address of container `name` on docker network `network`."""
    out = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", name).stdout
    networks: dict[str, dict[str, Any]] = json.loads(out)
    return str(networks[network]["IPAddress"])
