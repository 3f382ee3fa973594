"""Helpers shared by the testinfra tests of every molecule scenario.

Scenarios put this directory on PYTHONPATH (see .config/molecule/config.yml),
so a test module does `from webinfra_testlib import ...`.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
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
    request_timeout: float = 5.0,
    stop: threading.Event | None = None,
) -> BurstResult:
    """Send at most `count` GETs, one every `interval` s, for at most `duration` s.

    Stops early when `stop` is set. Bounded in count and time by design.
    A request that gets no answer within `request_timeout` s counts as failed.
    """
    import requests  # imported here so the module imports without it

    result = BurstResult()
    deadline = time.monotonic() + duration
    with requests.Session() as session:
        while result.sent < count and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                break
            try:
                response = session.get(
                    url, timeout=request_timeout, verify=verify, allow_redirects=False
                )
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


# --- haproxy: runtime API and load-balancing helpers -------------------------


def parse_haproxy_stat(csv_text: str) -> dict[tuple[str, str], dict[str, str]]:
    """Parse the runtime API's `show stat` CSV into {(proxy, server): fields}."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    header: list[str] = []
    for line in csv_text.splitlines():
        if line.startswith("# "):
            header = line[2:].rstrip(",").split(",")
            continue
        if not line.strip() or not header:
            continue
        values = line.split(",")
        fields = dict(zip(header, values, strict=False))
        rows[(fields["pxname"], fields["svname"])] = fields
    return rows


def haproxy_stat(container: str, socket: str = "/run/haproxy/admin.sock") -> str:
    """`show stat` of the HAProxy in `container`, through its runtime API."""
    done = docker(
        "exec", container, "sh", "-c", f"echo 'show stat' | socat stdio {socket}", timeout=30
    )
    return done.stdout


def haproxy_server_status(container: str, backend: str, server: str) -> str:
    """Status of one server as HAProxy sees it: UP, DOWN, DRAIN, MAINT, ..."""
    rows = parse_haproxy_stat(haproxy_stat(container))
    return rows.get((backend, server), {}).get("status", "")


def alternates(sequence: list[str]) -> bool:
    """True when no two consecutive items are equal and more than one value occurs."""
    if len(set(sequence)) < 2:
        return False
    return all(a != b for a, b in itertools.pairwise(sequence))


def alternating_sample(sample: Callable[[], list[str]], attempts: int = 5) -> list[str]:
    """The first of up to `attempts` samples (X-Served-By values) that alternates.

    Other clients of the same load balancer take turns in its round robin
    too (the monitoring host probes the application through the virtual IP),
    so one sample may show a server twice in a row; a round robin that is
    broken never alternates. Raises AssertionError with every sample.
    """
    samples: list[list[str]] = []
    for _ in range(attempts):
        seen = sample()
        if alternates(seen):
            return seen
        samples.append(seen)
    raise AssertionError(f"none of {attempts} samples alternated: {samples}")


def patient_tls_burst(url: str, **kwargs: Any) -> BurstResult:
    """burst() by a client that waits as long as a browser would (60 s a request).

    For HTTPS through a load balancer (self-signed certificate unless
    `verify` names a CA). Bounded like burst().
    """
    kwargs.setdefault("request_timeout", 60.0)
    kwargs.setdefault("duration", 60.0)
    return burst(url, **kwargs)


class PatientTlsBackgroundBurst(BackgroundBurst):
    """BackgroundBurst running patient_tls_burst."""

    def _run(self) -> None:
        self.result = patient_tls_burst(self._url, stop=self._stop, **self._kwargs)


# --- webserver (nginx, gunicorn_app) -----------------------------------------
# A burst whose client waits as long as a browser would. During a gunicorn
# restart, systemd keeps the listening socket and connections wait in its
# backlog until the new master accepts them: no request is lost, but on a
# loaded machine one may wait longer than burst()'s 5 s, which would turn a
# delay into a "failure" (a wall-clock assertion in disguise).


def patient_burst(url: str, **kwargs: Any) -> BurstResult:
    """burst() with a per-request timeout of 60 s (see above). Bounded like burst()."""
    kwargs.setdefault("request_timeout", 60.0)
    kwargs.setdefault("duration", 60.0)
    return burst(url, **kwargs)


class PatientBackgroundBurst(BackgroundBurst):
    """BackgroundBurst running patient_burst (see above)."""

    def _run(self) -> None:
        self.result = patient_burst(self._url, stop=self._stop, **self._kwargs)


# ---------------------------------------------------------------------------
# keepalived: outage through a virtual IP, and who holds it over time.
# ---------------------------------------------------------------------------

# Runs inside a probe container (python3 of the base image, no requests):
# one fresh connection every `interval` s for `duration` s, each with a short
# timeout, printing "<time> <1|0> <body or error>" per request. Arguments:
# host port duration interval timeout [https] (https skips certificate checks).
PROBE_LOOP_SCRIPT = """
import http.client, ssl, sys, time
url_host, port = sys.argv[1], int(sys.argv[2])
duration, interval, timeout = map(float, sys.argv[3:6])
https = len(sys.argv) > 6 and sys.argv[6] == "https"
context = ssl._create_unverified_context()
end = time.time() + duration
while time.time() < end:
    start = time.time()
    try:
        if https:
            conn = http.client.HTTPSConnection(url_host, port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPConnection(url_host, port, timeout=timeout)
        conn.request("GET", "/")
        resp = conn.getresponse()
        body = resp.read().decode().strip().replace(" ", "_") or "-"
        conn.close()
        ok = 1 if resp.status == 200 else 0
    except Exception as exc:
        ok, body = 0, type(exc).__name__
    print(f"{start:.6f} {ok} {body}", flush=True)
    time.sleep(max(0.0, interval - (time.time() - start)))
"""

# Runs inside a load balancer: samples `ip -o -4 addr show` until the stop
# file appears (or `limit` s pass), printing "<before> <after> <1|0>" where
# 1 means the address was present at some instant between the two times.
ADDRESS_SAMPLER_SCRIPT = """
import os, subprocess, sys, time
address, stop_file, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.time() + limit
while time.time() < end and not os.path.exists(stop_file):
    before = time.time()
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    after = time.time()
    held = any(f" {address}/" in line for line in out.splitlines())
    print(f"{before:.6f} {after:.6f} {int(held)}", flush=True)
    time.sleep(0.005)  # leave the CPU to keepalived
"""


@dataclass(frozen=True)
class ProbeSample:
    """One request of the probe loop: when it started, whether it got a 200, the body."""

    time: float
    ok: bool
    body: str


def parse_probe_samples(text: str) -> list[ProbeSample]:
    samples: list[ProbeSample] = []
    for line in text.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[1] in ("0", "1"):
            samples.append(ProbeSample(float(parts[0]), parts[1] == "1", parts[2]))
    return samples


def longest_outage(samples: list[ProbeSample]) -> float:
    """Longest time between two successful requests with failures in between.

    0.0 when no request failed. When the run ends (or starts) with failures
    the outage lasts to the end (from the start) of the run: it never
    recovered within the measurement, which is at least that long.
    """
    if not samples:
        raise ValueError("no samples")
    longest = 0.0
    last_ok: float | None = None
    failing_since: float | None = None
    for sample in samples:
        if sample.ok:
            if failing_since is not None:
                begin = last_ok if last_ok is not None else failing_since
                longest = max(longest, sample.time - begin)
                failing_since = None
            last_ok = sample.time
        elif failing_since is None:
            failing_since = sample.time
    if failing_since is not None:
        begin = last_ok if last_ok is not None else failing_since
        longest = max(longest, samples[-1].time - begin)
    return longest


@dataclass(frozen=True)
class AddressSample:
    """One `ip addr` sample: the address was (or was not) held at an instant in [before, after]."""

    before: float
    after: float
    held: bool


def parse_address_samples(text: str) -> list[AddressSample]:
    samples: list[AddressSample] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in ("0", "1"):
            samples.append(AddressSample(float(parts[0]), float(parts[1]), parts[2] == "1"))
    return samples


Interval = tuple[float, float]


def known_intervals(samples: list[AddressSample], held: bool) -> list[Interval]:
    """Time spans in which a host surely held (held=True) or surely lacked the address.

    Between two consecutive samples that saw the same value the value is
    taken as known; spans between samples that differ are unknown (the
    change happened somewhere in there). Sampling must be fast compared to
    the changes looked for: a flip and back between two samples is missed.
    """
    spans: list[Interval] = []
    for first, second in itertools.pairwise(samples):
        if first.held == held and second.held == held:
            start, end = first.after, second.before
            if spans and spans[-1][1] >= first.before:
                spans[-1] = (spans[-1][0], end)
            elif end > start:
                spans.append((start, end))
    return spans


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a_start, a_end in left:
        for b_start, b_end in right:
            start, end = max(a_start, b_start), min(a_end, b_end)
            if end > start:
                out.append((start, end))
    return sorted(out)


def holder_violations(
    timelines: dict[str, list[AddressSample]],
) -> tuple[list[tuple[str, str, Interval]], list[Interval]]:
    """Where the samples prove the address was held by two hosts, or by none.

    Returns (both, neither): `both` lists (host, host, span) for every span in
    which two hosts surely held the address; `neither` lists spans in which
    every host surely lacked it, within the time all samplers ran.
    """
    names = sorted(timelines)
    both: list[tuple[str, str, Interval]] = []
    for index, left in enumerate(names):
        for right in names[index + 1 :]:
            for span in _intersect(
                known_intervals(timelines[left], True), known_intervals(timelines[right], True)
            ):
                both.append((left, right, span))
    neither: list[Interval] = []
    if names:
        common = known_intervals(timelines[names[0]], False)
        for name in names[1:]:
            common = _intersect(common, known_intervals(timelines[name], False))
        neither = common
    return both, neither


class AddressWatch:
    """Sample, inside each container, whether it holds `address`, around an action:

    with AddressWatch(["lb1", "lb2"], "192.0.2.100") as watch:
        docker("start", "lb1")
        watch.add("lb1")  # a container that was not running at the start
    both, neither = holder_violations(watch.timelines)
    """

    STOP_FILE = "/run/webinfra-address-watch.stop"

    def __init__(self, containers: list[str], address: str, limit: float = 120.0) -> None:
        self.address = address
        self.limit = limit
        self.timelines: dict[str, list[AddressSample]] = {}
        self._initial = list(containers)
        self._procs: dict[str, subprocess.Popen[str]] = {}

    def add(self, container: str) -> None:
        docker("exec", container, "rm", "-f", self.STOP_FILE, check=False)
        script = ADDRESS_SAMPLER_SCRIPT
        self._procs[container] = subprocess.Popen(
            [
                "docker",
                "exec",
                container,
                "python3",
                "-c",
                script,
                self.address,
                self.STOP_FILE,
                str(self.limit),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def __enter__(self) -> AddressWatch:
        for container in self._initial:
            self.add(container)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        for container in self._procs:
            docker("exec", container, "touch", self.STOP_FILE, check=False)
        for container, proc in self._procs.items():
            try:
                out = proc.communicate(timeout=self.limit + 30)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                out = proc.communicate()[0]
            self.timelines[container] = parse_address_samples(out)


# ---------------------------------------------------------------------------
# Database tier (mysql scenario): parsing what the mariadb client and
# ansible-playbook print.


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


# --- firewall (ufw) -------------------------------------------------------

# Runs inside a container (python3 only): argv[1] is a JSON list of
# [address, proto, port]; prints a JSON list of booleans: True when a TCP
# connection was accepted, or a UDP datagram was answered, within the timeout.
REACH_SCRIPT = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
TIMEOUT = float(sys.argv[2])
def reach(target):
    address, proto, port = target
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(TIMEOUT)
            if proto == "tcp":
                sock.connect((address, port))
                return True
            sock.sendto(b"ping", (address, port))
            return len(sock.recvfrom(16)[0]) > 0
    except OSError:
        return False
targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
    print(json.dumps(list(pool.map(reach, targets))))
"""

Target = tuple[str, str, int]


def reachable(source: str, targets: list[Target], timeout: float = 1.5) -> dict[Target, bool]:
    """From container `source`, which (address, proto, port) targets answer.

    TCP counts as open when the connection is accepted, UDP when the
    datagram is answered; refused, dropped (timed out) and unanswered all
    count as closed.
    All targets are tried in parallel, so the call takes about `timeout` s.
    """
    payload = json.dumps([list(t) for t in targets])
    done = docker("exec", source, "python3", "-c", REACH_SCRIPT, payload, str(timeout))
    return parse_reach(targets, done.stdout)


def parse_reach(targets: list[Target], stdout: str) -> dict[Target, bool]:
    answers = json.loads(stdout)
    if not isinstance(answers, list) or len(answers) != len(targets):
        raise ValueError(f"expected {len(targets)} answers, got {stdout!r}")
    return {target: bool(answer) for target, answer in zip(targets, answers, strict=True)}


# --- Monitoring (Prometheus, Alertmanager, console pages) -------------------


# prometheus_query, prometheus_targets and alertmanager_alerts log in over
# HTTPS: they live in webinfra_monitoring.


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


def scenario_secret(name: str) -> str:
    """A password the scenario generated with ansible's password lookup."""
    path = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "secrets", name)
    with open(path, encoding="utf-8") as handle:
        return handle.read().split()[0]


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


# --- site_seed (the design document's layout: several roles per host) --------


def open_ports(source: str, address: str, ports: list[int], timeout: float = 1.5) -> set[int]:
    """The TCP `ports` of `address` that accept a connection from container `source`."""
    return accepted_ports(reachable(source, [(address, "tcp", port) for port in ports], timeout))


def accepted_ports(answers: dict[Target, bool]) -> set[int]:
    """The ports of the TCP targets that answered, from reachable()'s result."""
    return {port for (_, proto, port), ok in answers.items() if ok and proto == "tcp"}


def served_by(url: str, count: int = 8, timeout: float = 10.0) -> list[str]:
    """X-Served-By of `count` GET requests to `url`, in order ("" when missing).

    Certificates are not verified: the scenarios serve self-signed or test-CA ones.
    """
    import requests  # imported here so the module imports without it

    return [
        requests.get(url, verify=False, timeout=timeout).headers.get("X-Served-By", "")
        for _ in range(count)
    ]


def failed_units_in(containers: list[str]) -> dict[str, list[str]]:
    """The failed systemd units of each container that has any."""
    failed: dict[str, list[str]] = {}
    for name in containers:
        out = docker("exec", name, "systemctl", "--failed", "--plain", "--no-legend").stdout
        units = [line.split()[0] for line in out.splitlines() if line.strip()]
        if units:
            failed[name] = units
    return failed


# --- certbot: served certificates, HTTPS by name to an address ----------------


@dataclass(frozen=True)
class ServedCertificate:
    """The leaf certificate a TLS server presented (already verified)."""

    serial: int
    subject_alt_names: tuple[str, ...]
    issuer: str


def pem_blocks(text: str, kind: str = "CERTIFICATE") -> list[str]:
    """The PEM blocks of type `kind` in `text`, in order, each with its armour."""
    pattern = rf"-----BEGIN {kind}-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END {kind}-----"
    return [match.group(0) + "\n" for match in re.finditer(pattern, text)]


def hsts_max_age(header: str | None) -> int | None:
    """max-age of a Strict-Transport-Security header value (None when absent)."""
    if not header:
        return None
    for directive in header.split(";"):
        name, _, value = directive.strip().partition("=")
        if name.strip().lower() == "max-age":
            value = value.strip().strip('"')
            return int(value) if value.isdigit() else None
    return None


def _verified_context(cafile: str) -> Any:
    import ssl

    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def served_certificate(
    address: str, server_name: str, cafile: str, port: int = 443, timeout: float = 5.0
) -> ServedCertificate:
    """Connect to address:port asking for `server_name` (SNI) and verify the
    chain against `cafile` and the name; return the leaf certificate.

    Raises ssl.SSLCertVerificationError when the certificate is not valid
    for that name under that root.
    """
    import socket

    from cryptography import x509

    context = _verified_context(cafile)
    with (
        socket.create_connection((address, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=server_name) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        names = tuple(san.value.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    return ServedCertificate(cert.serial_number, names, cert.issuer.rfc4514_string())


@dataclass(frozen=True)
class HttpsAnswer:
    status: int
    headers: dict[str, str]
    body: bytes


def https_get(
    address: str,
    server_name: str,
    cafile: str,
    path: str = "/",
    port: int = 443,
    timeout: float = 5.0,
) -> HttpsAnswer:
    """GET https://server_name:port/path from `address`, verifying the
    certificate against `cafile` (as a browser would after resolving the
    name to `address`)."""
    import http.client
    import socket

    context = _verified_context(cafile)

    class _Connection(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = socket.create_connection((address, port), timeout=timeout)
            self.sock = context.wrap_socket(raw, server_hostname=server_name)

    connection = _Connection(server_name, port, timeout=timeout, context=context)
    try:
        connection.request("GET", path, headers={"Host": server_name})
        response = connection.getresponse()
        headers = {name.lower(): value for name, value in response.getheaders()}
        return HttpsAnswer(response.status, headers, response.read())
    finally:
        connection.close()


# --- the lab's ACME CA (pebble): its issuing root, and sslyze against it ------


def fetch_pebble_root(acme_address: str, server_ca: str, dest: str, port: int = 15000) -> str:
    """Write pebble's issuing root to `dest` and return its path.

    Pebble makes a new root at every start, so it is fetched when needed,
    from its management API, trusting `server_ca` (the CA of pebble's own
    TLS certificate, made by playbooks/lab_acme.yml).
    """
    import requests

    answer = requests.get(f"https://{acme_address}:{port}/roots/0", verify=server_ca, timeout=10)
    answer.raise_for_status()
    roots = pem_blocks(answer.text)
    if len(roots) != 1:
        raise ValueError(f"expected one root from pebble, got: {answer.text[:500]}")
    with open(dest, "w", encoding="utf-8") as handle:
        handle.write(roots[0])
    return dest


def sslyze_mozilla_intermediate(
    server_name: str, address: str, ca_file: str, port: int = 443
) -> RunOutcome:
    """Run sslyze's Mozilla intermediate check against address:port by name."""
    done = subprocess.run(
        [
            sys.executable, "-m", "sslyze",
            "--mozilla_config=intermediate",
            f"--certinfo_ca_file={ca_file}",
            f"{server_name}:{port}{{{address}}}",
        ],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    return RunOutcome(done.returncode, done.stdout, done.stderr)


def sslyze_compliant(outcome: RunOutcome, server_name: str, port: int = 443) -> bool:
    """Whether sslyze reported the server compliant with the profile."""
    return outcome.rc == 0 and f"{server_name}:{port}: OK - Compliant." in outcome.stdout
