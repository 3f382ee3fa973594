"""Helpers shared by the testinfra tests of every molecule scenario.

Scenarios put this directory on PYTHONPATH (see .config/molecule/config.yml),
so a test module does `from webinfra_testlib import ...`.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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
) -> RunOutcome:
    """Run a playbook against the scenario's inventory, as molecule would.

    Used by tests that prove a wrong variable stops the play, or that run a
    day-2 playbook (deploy_app.yml, db_failover.yml) during a test.
    """
    inventory = os.environ["MOLECULE_INVENTORY_FILE"]
    args = ["ansible-playbook", "-i", inventory, playbook]
    if extra_vars is not None:
        args += ["-e", json.dumps(extra_vars)]
    if limit:
        args += ["--limit", limit]
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    return RunOutcome(done.returncode, done.stdout, done.stderr)


@dataclass
class BurstResult:
    """What a client saw during a bounded burst of requests."""

    sent: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)

    def record(self, status: int | None, served_by: str | None, error: str | None) -> None:
        self.sent += 1
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if served_by:
            self.served_by[served_by] = self.served_by.get(served_by, 0) + 1
        if error is not None or status is None or status >= 500:
            self.failed += 1
            if len(self.errors) < 20:
                self.errors.append(error or f"HTTP {status}")


def burst(
    url: str,
    *,
    count: int = 400,
    duration: float = 30.0,
    interval: float = 0.02,
    verify: bool | str = False,
    stop: threading.Event | None = None,
) -> BurstResult:
    """Send at most `count` GETs, one every `interval` s, for at most `duration` s.

    Stops early when `stop` is set. Bounded in count and time by design.
    """
    import requests  # imported here so the module imports without it

    result = BurstResult()
    deadline = time.monotonic() + duration
    with requests.Session() as session:
        while result.sent < count and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                break
            try:
                response = session.get(url, timeout=5, verify=verify, allow_redirects=False)
                result.record(response.status_code, response.headers.get("X-Served-By"), None)
            except requests.RequestException as exc:
                result.record(None, None, f"{type(exc).__name__}: {exc}")
            time.sleep(interval)
    return result


class BackgroundBurst:
    """Run `burst` in a thread around a disruptive action:

    with BackgroundBurst(url) as load:
        docker("kill", "web-01")
    assert load.result.failed == 0
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._stop = threading.Event()
        self._kwargs = kwargs
        self._url = url
        self.result = BurstResult()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.result = burst(self._url, stop=self._stop, **self._kwargs)

    def __enter__(self) -> BackgroundBurst:
        self._thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)
        self._stop.set()
        self._thread.join(timeout=60)


# --- Monitoring (Prometheus, Alertmanager, console pages) -------------------


def prometheus_query(base_url: str, expr: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Instant query against Prometheus' HTTP API; returns the result vector."""
    import requests

    response = requests.get(f"{base_url}/api/v1/query", params={"query": expr}, timeout=timeout)
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    if body.get("status") != "success":
        raise RuntimeError(f"query {expr!r} failed: {body}")
    return list(body["data"]["result"])


def prometheus_targets(base_url: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Prometheus' active scrape targets (labels, health, lastError)."""
    import requests

    response = requests.get(f"{base_url}/api/v1/targets", timeout=timeout)
    response.raise_for_status()
    return list(response.json()["data"]["activeTargets"])


def alertmanager_alerts(base_url: str, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds as active (API v2, resolved ones excluded)."""
    import requests

    response = requests.get(
        f"{base_url}/api/v2/alerts",
        params={"active": "true", "silenced": "true", "inhibited": "true"},
        timeout=timeout,
    )
    response.raise_for_status()
    alerts: list[dict[str, Any]] = response.json()
    return alerts


def alerts_named(
    alerts: list[dict[str, Any]], alertname: str, **labels: str
) -> list[dict[str, Any]]:
    """The alerts (Alertmanager or Prometheus format) with this name and labels."""
    wanted = {"alertname": alertname, **labels}
    return [
        alert
        for alert in alerts
        if all(alert.get("labels", {}).get(key) == value for key, value in wanted.items())
    ]


def webhook_notifications(lines: str) -> list[dict[str, Any]]:
    """Parse the JSON-lines log of Alertmanager webhook notifications."""
    return [json.loads(line) for line in lines.splitlines() if line.strip()]


def notified(
    notifications: list[dict[str, Any]], alertname: str, status: str, **labels: str
) -> bool:
    """Whether some notification carried this alert with this status."""
    for notification in notifications:
        for alert in alerts_named(list(notification.get("alerts", [])), alertname, **labels):
            if alert.get("status") == status:
                return True
    return False


@dataclass(frozen=True)
class ConsoleRow:
    """One table row of a console page: its data-* attributes and cell texts."""

    attrs: dict[str, str]
    cells: list[str]


def console_rows(html: str, section: str) -> list[ConsoleRow]:
    """Rows of a console page whose <tr> carries data-section=`section`."""
    from html.parser import HTMLParser

    rows: list[ConsoleRow] = []

    class _Parser(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.row: ConsoleRow | None = None
            self.cell: list[str] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            values = {key: value or "" for key, value in attrs}
            if tag == "tr" and values.get("data-section") == section:
                data = {k[5:]: v for k, v in values.items() if k.startswith("data-")}
                self.row = ConsoleRow(data, [])
            elif tag == "td" and self.row is not None:
                self.cell = []

        def handle_data(self, data: str) -> None:
            if self.cell is not None:
                self.cell.append(data)

        def handle_endtag(self, tag: str) -> None:
            if tag == "td" and self.row is not None and self.cell is not None:
                self.row.cells.append("".join(self.cell).strip())
                self.cell = None
            elif tag == "tr" and self.row is not None:
                rows.append(self.row)
                self.row = None

    parser = _Parser()
    parser.feed(html)
    parser.close()
    return rows
