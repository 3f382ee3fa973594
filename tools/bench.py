"""`make bench`: measure the lab and write a report (markdown, JSON, PNG plots).

    python tools/bench.py [--converge full|rerun|none] [--no-scale] [--skip-stock]
                          [--skip-failures | --failures all|KEY,KEY]

Phases, in this order (each one optional except the throughput one):

1. scale (with --converge full, unless --no-scale): `make demo-down`, then
   the lab plus web-03 and web-04 (an inventory overlay written into the
   output directory, inventory/lab unchanged): containers created (timed),
   the lab's ACME CA, then site.yml from bare containers (timed); then that
   lab is removed, whatever happens;
2. converge (--converge full): the same with the lab as inventory/lab
   describes it (2 web servers), then site.yml again (the idempotent re-run,
   timed, must report changed=0); the 4 / 2 web servers converge ratio;
3. throughput: wrk (Debian's 4.1.0) in a bench client container on the lab
   network, side by side with the same connections and duration against
   (a) one gunicorn straight (a TCP listener the bench adds to web-01's
   gunicorn socket unit for the run), (b) nginx on web-01, (c) https://VIP
   through HAProxy + TLS + nginx; peak rate and latency percentiles, then the
   p99 at half of each path's peak (wrk paced by a Lua script); the lab's
   memory (cgroups, as docker stats counts it) is sampled under the HTTPS load;
4. failures: an open-loop fixed-rate probe (tools/bench_probe.py, in the
   client) records every request's latency while the bench kills web-01,
   kills the MASTER load balancer, reloads haproxy/nginx/gunicorn 20 times
   and runs deploy_app.yml; last, a write probe (POST /api/notes, each note
   unique) runs while the bench kills the database primary and runs
   db_failover.yml, then reads every acknowledged note back on the promoted
   replica. One PNG timeline per failure. The database failover leaves the
   lab on the promoted replica (the bench says so; `make demo-down demo`
   restores it).

Every lab change the bench makes for a measurement (a ufw rule and the TCP
listener on web-01) is reverted in a finally block, and every bench
container (label webinfra.scenario=bench) is removed at the end, also on
failure. Output: .cache/bench/<UTC timestamp>/report.{md,json}, *.png and
the output of every ansible-playbook run (ansible-*.log; with
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks they hold the task
timings).
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "lib"))
sys.path.insert(0, str(ROOT))

from webinfra_testlib import play_recap, wait_for  # noqa: E402

from tools import lab as labtool  # noqa: E402

SCENARIO_LABEL = "webinfra.scenario=bench"
CLIENT = "webinfra-bench-client"
# An address of the lab network no lab host uses (hosts.yml: .5 - .41).
CLIENT_ADDRESS = "172.31.250.61"
GUNICORN_BENCH_PORT = 8001
SOCKET_DROPIN = "/etc/systemd/system/webapp.socket.d/zz-bench.conf"
PACE_LUA = """-- wrk pacing: each connection waits so the total rate is about RATE/s.
local wait_ms = 0
function init(args)
  local rate = tonumber(args[1])
  local connections = tonumber(args[2])
  wait_ms = math.floor(connections * 1000 / rate)
end
function delay()
  return wait_ms
end
"""

# --- pure logic (unit-tested in tests/unit/test_bench.py) --------------------

_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
_COUNT_UNITS = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def parse_duration_ms(text: str) -> float:
    """wrk's '1.23ms', '456.00us', '2.01s' or '1.50m' in milliseconds."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_count(text: str) -> float:
    """wrk's '4.00k' or '1.2M' as a number."""
    match = re.fullmatch(r"([0-9.]+)([kMG]?)", text.strip())
    if not match:
        raise ValueError(f"not a wrk count: {text!r}")
    return float(match.group(1)) * _COUNT_UNITS[match.group(2)]


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]  # "50", "75", "90", "99" -> ms
    socket_errors: int
    non_2xx_3xx: int

    @property
    def failed(self) -> int:
        return self.socket_errors + self.non_2xx_3xx


def parse_wrk(text: str) -> WrkResult:
    """Parse `wrk --latency` output."""
    done = re.search(r"(\d+) requests in ([0-9.]+\w+),", text)
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    if not done or not rps:
        raise ValueError(f"no wrk summary in:\n{text}")
    latency = {
        m.group(1): parse_duration_ms(m.group(2))
        for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", text, re.MULTILINE)
    }
    if set(latency) != {"50", "75", "90", "99"}:
        raise ValueError(f"no latency distribution (run wrk with --latency) in:\n{text}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=parse_duration_ms(done.group(2)) / 1000.0,
        rps=float(rps.group(1)),
        latency_ms=latency,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx_3xx=int(non_ok.group(1)) if non_ok else 0,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, nan when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else math.nan


def memory_in_use(usage: int, stat_text: str) -> float:
    """What docker stats shows as used: usage less the inactive page cache."""
    stats = dict(line.split() for line in stat_text.splitlines() if len(line.split()) == 2)
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", "0"))
    return float(usage - int(inactive))


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


@dataclass(frozen=True)
class Target:
    """One target of the issue, evaluated on this run's figures."""

    name: str
    value: float
    limit: float
    higher_is_better: bool
    unit: str = "x"

    @property
    def measured(self) -> bool:
        return not math.isnan(self.value)

    @property
    def met(self) -> bool:
        if not self.measured:
            return False
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    @property
    def verdict(self) -> str:
        if not self.measured:
            return "not measured"
        if self.met:
            return "met"
        miss = (self.limit - self.value) if self.higher_is_better else (self.value - self.limit)
        relative = abs(miss) / self.limit * 100 if self.limit else math.inf
        return f"MISSED by {abs(miss):.3g}{self.unit} ({relative:.0f}% of the target)"


def evaluate_targets(figures: dict[str, float]) -> list[Target]:
    """The issue's targets from the figures of one run (nan where not measured)."""
    nan = math.nan
    mem = figures.get("lab_memory_bytes", nan)
    return [
        Target(
            "HTTPS path req/s / nginx->gunicorn req/s",
            figures.get("ratio_vip_to_nginx", nan),
            0.75,
            True,
        ),
        Target(
            "HTTPS p99 at half its peak / nginx->gunicorn p99 at half its peak",
            figures.get("ratio_p99_half_vip_to_nginx", nan),
            2.0,
            False,
        ),
        Target(
            "HTTPS path req/s / stock-configuration stack req/s",
            figures.get("ratio_vip_to_stock", nan),
            1.5,
            True,
        ),
        Target(
            "idempotent re-run time / first converge time",
            figures.get("ratio_rerun_to_converge", nan),
            0.25,
            False,
        ),
        Target("lab memory under load (GiB)", mem / 1024**3, 4.0, False, " GiB"),
    ]


@dataclass(frozen=True)
class ProbeSample:
    t: float
    ms: float
    status: int
    error: str
    text: str = ""  # the note a write probe (--post) sent

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def acknowledged(self) -> bool:
        """A write the application confirmed (2xx)."""
        return 200 <= self.status < 300


def parse_probe(text: str) -> list[ProbeSample]:
    """The JSON lines of tools/bench_probe.py, in start order."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        data = json.loads(line)
        samples.append(
            ProbeSample(
                float(data["t"]),
                float(data["ms"]),
                int(data["status"]),
                str(data["error"]),
                str(data.get("text", "")),
            )
        )
    return sorted(samples, key=lambda s: s.t)


def timeline_summary(samples: Sequence[ProbeSample]) -> dict[str, float]:
    """Request count, failures, latency percentiles and the longest failing stretch."""
    latencies = [s.ms for s in samples if s.ok]
    longest = 0.0
    first_bad: float | None = None
    for sample in samples:
        if not sample.ok:
            first_bad = sample.t if first_bad is None else first_bad
            longest = max(longest, sample.t + sample.ms / 1000 - first_bad)
        else:
            first_bad = None
    span = samples[-1].t - samples[0].t if len(samples) > 1 else 0.0
    return {
        "requests": float(len(samples)),
        "achieved_rate": len(samples) / span if span > 0 else math.nan,
        "failed": float(sum(1 for s in samples if not s.ok)),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else math.nan,
        "longest_failing_s": longest,
    }


def write_outage(samples: Sequence[ProbeSample], since: float) -> dict[str, float]:
    """When writes failed after `since` (the kill) and when they succeeded again.

    `back_s`: from the first failed write started at or after `since` to the
    first acknowledged write started after it; `steady_s`: to the first
    acknowledged write started after the last failed one (the same unless
    writes flickered). nan where there is no such write.
    """
    nan = math.nan
    after = [s for s in samples if s.t >= since]
    failed = [s for s in after if not s.acknowledged]
    if not failed:
        return {"first_failed_at": nan, "back_s": 0.0 if after else nan, "steady_s": 0.0}
    first, last = failed[0].t, failed[-1].t
    back = next((s.t for s in after if s.acknowledged and s.t > first), nan)
    steady = next((s.t for s in after if s.acknowledged and s.t > last), nan)
    return {"first_failed_at": first, "back_s": back - first, "steady_s": steady - first}


def lost_writes(samples: Sequence[ProbeSample], stored: Sequence[str]) -> list[str]:
    """The acknowledged notes that the database does not hold, in write order."""
    kept = set(stored)
    return [s.text for s in samples if s.acknowledged and s.text not in kept]


def select_failures(text: str, known: Sequence[str]) -> list[str]:
    """The failure timelines chosen with --failures ('all' or KEY,KEY), in run order."""
    if text.strip() == "all":
        return list(known)
    wanted = {item.strip() for item in text.split(",") if item.strip()}
    unknown = sorted(wanted - set(known))
    if unknown or not wanted:
        raise ValueError(
            f"unknown failure(s) {', '.join(unknown) or '(none given)'}: "
            f"choose from all, {', '.join(known)}"
        )
    return [key for key in known if key in wanted]


def fmt(value: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}g}"


def render_markdown(report: dict[str, Any]) -> str:
    """report.md from the report.json structure."""
    machine = report["machine"]
    lines = [
        "# webinfra.stack benchmark",
        "",
        f"Run {report['started']} on commit `{machine['git_commit']}`. Figures are ratios "
        "from this one run; absolute numbers depend on the machine and its load.",
        "",
        "## Machine",
        "",
        f"- CPU: {machine['cpu_model']} x {machine['cpu_count']}",
        f"- Memory: {machine['memory_gib']:.1f} GiB; kernel {machine['kernel']}",
        f"- Load average (1, 5, 15 min) before the run: {' '.join(machine['loadavg_before'])}",
        f"- Load average after the run: {' '.join(machine.get('loadavg_after', ['n/a']))}",
        f"- Docker containers running at the start (other projects' too): "
        f"{machine['containers_running']}",
        "",
        "## Targets",
        "",
        "| target | measured | limit | verdict |",
        "|---|---|---|---|",
    ]
    for target in report["targets"]:
        op = ">=" if target["higher_is_better"] else "<="
        lines.append(
            f"| {target['name']} | {fmt(target['value'])} | {op} {target['limit']} "
            f"| {target['verdict']} |"
        )
    paths = report.get("paths", {})
    if paths:
        settings = report["wrk"]
        lines += [
            "",
            "## Throughput and latency (wrk)",
            "",
            f"wrk {settings['threads']} threads, {settings['connections']} connections, "
            f"{settings['duration']} s per run, same client container for every path, "
            f"best of {settings['rounds']} interleaved rounds. URL path `/` (the demo app, "
            "no database). Half-peak runs pace wrk with a Lua `delay()` per connection.",
            "",
            "| path | req/s | ratio to gunicorn | p50 ms | p90 ms | p99 ms | failed "
            "| half-peak req/s | p99 ms at half peak |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        base = paths.get("gunicorn", {}).get("peak", {}).get("rps", math.nan)
        for data in paths.values():
            peak, half = data["peak"], data.get("half", {})
            lat = peak["latency_ms"]
            lines.append(
                f"| {data['label']} | {peak['rps']:.0f} | {fmt(ratio(peak['rps'], base))} "
                f"| {lat['50']:.2f} | {lat['90']:.2f} | {lat['99']:.2f} "
                f"| {peak['socket_errors'] + peak['non_2xx_3xx']} "
                f"| {half.get('rps', math.nan):.0f} "
                f"| {half.get('latency_ms', {}).get('99', math.nan):.2f} |"
            )
        lines += ["", "![throughput](throughput.png)", ""]
    converge = report.get("converge")
    scale = report.get("scale")
    if converge or scale:
        nan = math.nan
        lines += ["## Converge", ""]
        for data in (scale, converge):
            if not data or "converge_s" not in data:
                continue
            webs = data.get("web_servers", "?")
            lines += [
                f"Lab with {webs} web servers, from bare containers:",
                "",
                f"- creating the containers and booting systemd in them: "
                f"{fmt(float(data.get('create_s', nan)))} s (not counted in the converge)",
                f"- the lab's ACME CA (playbooks/lab_acme.yml, test infrastructure): "
                f"{fmt(float(data.get('lab_ca_s', nan)))} s (not counted)",
                f"- site.yml: {fmt(float(data['converge_s']))} s",
                "",
            ]
        figures = report.get("figures", {})
        growth = float(figures.get("ratio_converge_4_to_2_web", nan))
        if not math.isnan(growth):
            lines += [f"site.yml with 4 web servers / with 2: {fmt(growth)}", ""]
        if converge and "rerun_s" in converge:
            first = float(converge.get("converge_s", nan))
            lines += [
                f"Idempotent re-run of site.yml on the 2-web-server lab: "
                f"{converge['rerun_s']:.0f} s, changed tasks {converge['rerun_changed']} "
                f"(ratio to the first converge: {fmt(ratio(converge['rerun_s'], first))})",
                "",
            ]
    memory = report.get("memory")
    if memory:
        lines += [
            "## Memory under load",
            "",
            f"Sum of the memory the lab containers use (their cgroups, as docker stats "
            f"counts it) at the worst sample during the HTTPS "
            f"peak run: {memory['lab_bytes'] / 1024**3:.2f} GiB "
            f"(bench client: {memory['bench_bytes'] / 1024**2:.0f} MiB, not counted).",
            "",
            "| container | MiB |",
            "|---|---|",
        ]
        for name, value in sorted(memory["containers"].items()):
            lines.append(f"| {name} | {value / 1024**2:.0f} |")
        lines.append("")
    failures = report.get("failures", {})
    if failures:
        lines += [
            "## Failure timelines",
            "",
            f"Open-loop probe at {report['probe_rate']} req/s to https://VIP/ "
            "(a new connection per request, 5 s timeout), from the client container; "
            "the achieved rate is lower when the client itself gets too little CPU.",
            "",
            "| failure | requests | achieved req/s | failed | longest failing stretch s "
            "| p99 ms | max ms |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, data in failures.items():
            s = data["summary"]
            lines.append(
                f"| {name} | {s['requests']:.0f} | {fmt(s.get('achieved_rate', math.nan))} "
                f"| {s['failed']:.0f} "
                f"| {s['longest_failing_s']:.2f} | {fmt(s['p99_ms'])} | {fmt(s['max_ms'])} |"
            )
        lines.append("")
        for name, data in failures.items():
            lines.append(f"### {name}\n\n{data['description']}\n\n![{name}]({data['plot']})\n")
    db = report.get("db_failover")
    if db:
        lines += [
            "## Database primary killed during writes, then db_failover.yml",
            "",
            f"- writes attempted: {db['attempted']}, acknowledged (2xx): {db['acknowledged']}, "
            f"failed: {db['failed']}",
            f"- acknowledged writes missing on the new primary {db['new_primary']} "
            f"(SELECT after the run): {db['lost']}",
            f"- notes of this run in the new primary's table: {db['stored_rows_of_this_run']} "
            f"({db['stored_rows_of_this_run'] - db['acknowledged'] + db['lost']} of them stored "
            "although the client saw the write fail or time out)",
            f"- from the first failed write until writes succeed again: {fmt(db['back_s'])} s "
            f"(until the first success after the last failed write: {fmt(db['steady_s'])} s; "
            "start times of the writes)",
            f"- after the run {db['lab_state']}",
            "",
        ]
    if report.get("lab_state") and not db:
        lines += ["## State of the lab", "", f"After this run {report['lab_state']}.", ""]
    lines += ["## Not measured in this run", ""]
    lines += [f"- {item}" for item in report.get("not_measured", [])] or ["- (nothing)"]
    lines.append("")
    return "\n".join(lines)


# --- running things ------------------------------------------------------------


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
) -> tuple[float, str]:
    """(seconds, stdout) of one ansible-playbook run against the lab (and `overlays`).

    The output goes to `log_file` too (with ANSIBLE_CALLBACKS_ENABLED=
    ansible.posix.profile_tasks in the environment it holds the task timings).
    """
    start = time.monotonic()
    done = subprocess.run(
        [labtool.tool("ansible-playbook"), *labtool.inventory_args(overlays), playbook, *extra],
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


def build_from_bare(
    lab: labtool.Lab, outdir: Path, tag: str, overlays: Sequence[Path] = ()
) -> dict[str, float]:
    """Remove the lab, create its containers, run the lab CA playbook and site.yml.

    Returns the seconds of each step: creating and booting the containers,
    the lab's own ACME CA (test infrastructure, not the stack) and site.yml.
    """
    log(f"{tag}: removing the lab (make demo-down)")
    labtool.down()
    labtool.preflight(lab)
    start = time.monotonic()
    labtool.ensure_network(lab)
    labtool.ensure_hosts(lab)
    create_s = time.monotonic() - start
    log(f"{tag}: {len(lab.hosts)} containers created and booted in {create_s:.0f} s")
    ca_s = 0.0
    for playbook in labtool.lab_playbooks():
        seconds, _ = ansible_playbook(
            playbook,
            overlays=overlays,
            log_file=outdir / f"ansible-{tag}-{Path(playbook).stem}.log",
        )
        ca_s += seconds
    log(f"{tag}: the lab CA took {ca_s:.0f} s; running site.yml")
    converge_s, _ = ansible_playbook(
        "playbooks/site.yml", overlays=overlays, log_file=outdir / f"ansible-{tag}-site.log"
    )
    log(f"{tag}: site.yml from bare containers took {converge_s:.0f} s")
    return {"create_s": create_s, "lab_ca_s": ca_s, "converge_s": converge_s}


# Two more web servers for the scale phase: addresses free in inventory/lab.
SCALE_WEBS = (("web-03", "172.31.250.23"), ("web-04", "172.31.250.24"))


def scale_phase(outdir: Path) -> dict[str, Any]:
    """Converge time of the lab with 4 web servers (an overlay adds web-03/04).

    The lab is removed afterwards whatever happens, extra hosts included.
    """
    overlay = outdir / "overlay-4-web.yml"
    overlay.write_text(
        "---\n# The bench's scale phase: the lab plus two web servers.\n"
        + json.dumps(labtool.overlay_inventory("webservers", SCALE_WEBS), indent=2)
        + "\n"
    )
    try:
        lab4 = labtool.load_lab((overlay,))
        webs = [h.name for h in lab4.hosts if "webservers" in h.groups]
        log(f"scale: the lab with {len(webs)} web servers ({', '.join(webs)})")
        result = build_from_bare(lab4, outdir, "scale-4-web", (overlay,))
        return {"web_servers": len(webs), "overlay": overlay.name, **result}
    finally:
        log("scale: removing the 4-web-server lab")
        labtool.down()


def converge_phase(lab: labtool.Lab, outdir: Path) -> dict[str, Any]:
    result = build_from_bare(lab, outdir, "converge")
    webs = sum(1 for h in lab.hosts if "webservers" in h.groups)
    log("converge: re-running site.yml")
    return {"web_servers": webs, **result, **rerun_phase(outdir)}


def rerun_phase(outdir: Path) -> dict[str, float]:
    """Time the idempotent re-run of site.yml on a converged lab."""
    rerun_s, out = ansible_playbook(
        "playbooks/site.yml", log_file=outdir / "ansible-rerun-site.log"
    )
    changed = sum(host.get("changed", 0) for host in play_recap(out).values())
    log(f"converge: the re-run took {rerun_s:.0f} s with {changed} changed task(s)")
    return {"rerun_s": rerun_s, "rerun_changed": changed}


def ensure_lab_up(lab: labtool.Lab) -> None:
    if all(labtool.container_state(h.container) == "running" for h in lab.hosts):
        return
    log("the lab is not running: bringing it up (tools/lab.py up)")
    labtool.up()


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


def start_client(lab: labtool.Lab) -> None:
    """The load generator: a bench container with wrk and the probe script."""
    sh("docker", "rm", "-f", CLIENT, check=False)
    sh(
        "docker", "run", "-d", "--name", CLIENT, "--network", lab.network,
        "--ip", CLIENT_ADDRESS, "--label", SCENARIO_LABEL, labtool.lab_image(),
        "sleep", "infinity",
    )  # fmt: skip
    proxy = apt_proxy_line(lab_gateway(lab))
    if proxy:
        dexec(CLIENT, "sh", "-c", f"printf '%s' '{proxy}' > /etc/apt/apt.conf.d/01bench-proxy")
    log("client: installing wrk from Debian")
    dexec(CLIENT, "sh", "-c", "apt-get update -qq && apt-get install -y -qq wrk netbase >/dev/null")
    sh("docker", "cp", str(ROOT / "tools" / "bench_probe.py"), f"{CLIENT}:/root/bench_probe.py")
    dexec(CLIENT, "sh", "-c", f"cat > /root/pace.lua <<'EOF'\n{PACE_LUA}EOF")


@contextmanager
def direct_access(web: labtool.LabHost) -> Iterator[None]:
    """Let the client reach web-01's nginx and a TCP listener of its gunicorn.

    A ufw rule for the client's address, and a systemd drop-in that adds a TCP
    ListenStream to gunicorn's socket unit (gunicorn takes every socket
    systemd hands it). Both are removed afterwards, whatever happens.
    """
    rule = [
        "ufw", "allow", "proto", "tcp", "from", CLIENT_ADDRESS,
        "to", "any", "port", f"80,{GUNICORN_BENCH_PORT}",
    ]  # fmt: skip
    restart = "systemctl stop webapp.service webapp.socket && systemctl start webapp.socket"
    try:
        dexec(web.container, *rule)
        dexec(
            web.container,
            "sh",
            "-c",
            f"mkdir -p {Path(SOCKET_DROPIN).parent} && printf '[Socket]\\nListenStream="
            f"0.0.0.0:{GUNICORN_BENCH_PORT}\\n' > {SOCKET_DROPIN} && systemctl daemon-reload "
            f"&& {restart}",
        )
        wait_for(
            lambda: dexec(
                CLIENT,
                "sh",
                "-c",
                f"curl -s -o /dev/null -w '%{{http_code}}' http://{web.address}:"
                f"{GUNICORN_BENCH_PORT}/",
                check=False,
            ),
            accept=lambda code: code == "200",
            timeout=60,
        )
        yield
    finally:
        dexec(web.container, "ufw", "delete", *rule[1:], check=False)
        dexec(
            web.container,
            "sh",
            "-c",
            f"rm -f {SOCKET_DROPIN} && systemctl daemon-reload && {restart} "
            "&& systemctl start webapp.service",
            check=False,
        )


def run_wrk(url: str, threads: int, connections: int, duration: int, rate: float = 0) -> WrkResult:
    args = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--latency"]
    args += ["--timeout", "5s"]
    if rate > 0:
        args += ["-s", "/root/pace.lua", url, "--", str(rate), str(connections)]
    else:
        args.append(url)
    return parse_wrk(dexec(CLIENT, *args, timeout=duration + 60))


class MemorySampler:
    """Samples the memory of the lab and bench containers in a thread."""

    def __init__(self) -> None:
        self.samples: list[dict[str, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(3.0):
            done = sh(
                "docker", "ps", "--no-trunc", "--format", "{{.ID}} {{.Names}}",
                check=False, timeout=60,
            )  # fmt: skip
            sample = {}
            for line in done.stdout.splitlines():
                cid, _, name = line.partition(" ")
                if name.startswith(("webinfra-lab-", "webinfra-bench-")):
                    used = container_memory(cid)
                    if used is not None:
                        sample[name] = used
            if sample:
                self.samples.append(sample)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=90)

    def peak(self) -> dict[str, Any]:
        def lab_total(sample: dict[str, float]) -> float:
            return sum(v for k, v in sample.items() if k.startswith("webinfra-lab-"))

        if not self.samples:
            return {}
        worst = max(self.samples, key=lab_total)
        return {
            "lab_bytes": lab_total(worst),
            "bench_bytes": sum(v for k, v in worst.items() if k.startswith("webinfra-bench-")),
            "containers": worst,
            "samples": len(self.samples),
        }


@dataclass
class WrkSettings:
    threads: int = 2
    connections: int = 16
    duration: int = 15
    rounds: int = 2


@dataclass
class PathSpec:
    key: str
    label: str
    url: str
    results: list[WrkResult] = field(default_factory=list)

    def best(self) -> WrkResult:
        return max(self.results, key=lambda r: r.rps)


def throughput_phase(
    lab: labtool.Lab, settings: WrkSettings, report: dict[str, Any], stock_url: str | None
) -> None:
    web = lab.host("web-01")
    paths = [
        PathSpec("gunicorn", "one gunicorn (web-01, TCP)", f"http://{web.address}:8001/"),
        PathSpec("nginx", "nginx -> gunicorn (web-01)", f"http://{web.address}/"),
        PathSpec("vip", "HTTPS VIP -> HAProxy -> nginx -> gunicorn", f"https://{lab.vip}/"),
    ]
    if stock_url:
        paths.append(
            PathSpec("stock", "stock Debian configs: HAProxy -> nginx -> gunicorn", stock_url)
        )
    with direct_access(web):
        for round_no in range(settings.rounds):
            for path in paths:
                log(f"wrk round {round_no + 1}: {path.label}")
                if path.key == "vip" and round_no == 0:
                    with MemorySampler() as sampler:
                        path.results.append(
                            run_wrk(
                                path.url, settings.threads, settings.connections, settings.duration
                            )
                        )
                    report["memory"] = sampler.peak()
                else:
                    path.results.append(
                        run_wrk(path.url, settings.threads, settings.connections, settings.duration)
                    )
        for path in paths:
            half = path.best().rps / 2
            log(f"wrk paced at {half:.0f} req/s: {path.label}")
            half_result = run_wrk(
                path.url, settings.threads, settings.connections, settings.duration, rate=half
            )
            report["paths"][path.key] = {
                "label": path.label,
                "url": path.url,
                "peak": asdict(path.best()),
                "rounds": [asdict(r) for r in path.results],
                "half": asdict(half_result),
                "half_target_rps": half,
            }


# The stock stack: what a user assembles by hand from Debian's packages, with
# each daemon's packaged configuration plus the few lines needed to connect
# them. Plain HTTP (no TLS anywhere, which only favours the stock side).
STOCK_LB = ("webinfra-bench-stock-lb", "172.31.250.71")
STOCK_WEBS = (("webinfra-bench-stock-web-1", "172.31.250.72"),
              ("webinfra-bench-stock-web-2", "172.31.250.73"))  # fmt: skip
STOCK_NGINX_SITE = """server {
    listen 80 default_server;
    location / {
        proxy_pass http://127.0.0.1:8000;
    }
}
"""
STOCK_HAPROXY_APPEND = """
frontend web
    bind *:80
    default_backend web

backend web
    balance roundrobin
{servers}"""
NO_START = (
    "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d"
)


def stock_container(lab: labtool.Lab, name: str, address: str, packages: str) -> None:
    sh("docker", "rm", "-f", name, check=False)
    sh(
        "docker", "run", "-d", "--name", name, "--hostname", name, "--network", lab.network,
        "--ip", address, "--label", SCENARIO_LABEL, labtool.lab_image(), "sleep", "infinity",
    )  # fmt: skip
    proxy = apt_proxy_line(lab_gateway(lab))
    if proxy:
        dexec(name, "sh", "-c", f"printf '%s' '{proxy}' > /etc/apt/apt.conf.d/01bench-proxy")
    dexec(
        name,
        "sh",
        "-c",
        f"{NO_START} && apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
        f"apt-get install -y -qq {packages} >/dev/null",
    )


def build_stock_stack(lab: labtool.Lab) -> str:
    """Build the stock stack in bench containers; return its URL."""
    app = ROOT / "roles" / "gunicorn_app" / "files" / "webinfra_demo"
    lb, lb_address = STOCK_LB
    log("stock stack: installing haproxy, nginx and gunicorn from Debian (3 containers)")
    installs = [(lb, lb_address, "haproxy")] + [
        (name, address, "nginx gunicorn python3-flask") for name, address in STOCK_WEBS
    ]
    errors: list[BaseException] = []

    def install(name: str, address: str, packages: str) -> None:
        try:
            stock_container(lab, name, address, packages)
        except BaseException as exc:  # reported after the join
            errors.append(exc)

    threads = [threading.Thread(target=install, args=item) for item in installs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"the stock stack could not be built: {errors[0]}")
    for name, _ in STOCK_WEBS:
        dexec(name, "mkdir", "-p", "/srv/app")
        sh("docker", "cp", str(app), f"{name}:/srv/app/webinfra_demo")
        dexec(name, "sh", "-c", f"cat > /etc/nginx/sites-available/default <<'EOF'\n"
              f"{STOCK_NGINX_SITE}EOF")  # fmt: skip
        dexec(name, "nginx", "-t")
        dexec(name, "nginx")
        # gunicorn's defaults: one sync worker on 127.0.0.1:8000.
        dexec(name, "sh", "-c", f"cd /srv/app && WEBINFRA_HOSTNAME={name} gunicorn --daemon "
              "webinfra_demo.wsgi:application")  # fmt: skip
    servers = "".join(
        f"    server web{i} {address}:80 check\n" for i, (_, address) in enumerate(STOCK_WEBS)
    )
    dexec(lb, "sh", "-c", "cat >> /etc/haproxy/haproxy.cfg <<'EOF'\n"
          f"{STOCK_HAPROXY_APPEND.format(servers=servers)}EOF")  # fmt: skip
    dexec(lb, "haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg")
    dexec(lb, "mkdir", "-p", "/run/haproxy")
    dexec(lb, "haproxy", "-D", "-f", "/etc/haproxy/haproxy.cfg")
    url = f"http://{lb_address}/"
    wait_for(
        lambda: dexec(
            CLIENT, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", url, check=False
        ),
        accept=lambda code: code == "200",
        timeout=60,
    )
    return url


def vip_holder(lab: labtool.Lab) -> labtool.LabHost:
    for host in lab.hosts:
        if "loadbalancers" not in host.groups:
            continue
        out = dexec(host.container, "ip", "-4", "-o", "addr", "show", check=False)
        if f" {lab.vip}/" in out:
            return host
    raise BenchError(f"no load balancer holds the virtual IP {lab.vip}")


def wait_web_healthy(host: labtool.LabHost, timeout: float = 180) -> None:
    labtool.wait_booted(host, timeout)
    wait_for(
        lambda: dexec(
            host.container,
            "sh",
            "-c",
            "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1/",
            check=False,
        ),
        accept=lambda code: code == "200",
        timeout=timeout,
    )


def wait_lb_healthy(host: labtool.LabHost, timeout: float = 180) -> None:
    labtool.wait_booted(host, timeout)
    wait_for(
        lambda: dexec(
            host.container, "systemctl", "is-active", "haproxy", "keepalived", check=False
        ),
        accept=lambda out: out.split() == ["active", "active"],
        timeout=timeout,
    )


@dataclass
class Failure:
    key: str
    name: str
    description: str
    inject: Callable[[list[tuple[float, str]]], None]  # appends (epoch, label) marks
    post_tag: str | None = None  # a write probe: POST unique notes to /api/notes
    after_s: float = 5.0  # the probe goes on this long after the injection


# The keys of --failures, in the order the timelines run: the database
# failover is last, since it leaves the lab on the promoted replica.
FAILURE_KEYS = (
    "kill-web", "kill-master", "reload-haproxy", "reload-nginx", "reload-gunicorn", "deploy",
    "db-failover",
)  # fmt: skip
LAB_ON_REPLICA = (
    "the lab runs on the promoted replica {new} ({old} stays stopped, and site.yml "
    "with inventory/lab would treat it as the primary again): `make demo-down demo` "
    "restores the lab's layout"
)


def new_primary(lab: labtool.Lab) -> labtool.LabHost:
    """The one running database replica host that replicates from no one now."""
    found = []
    for host in lab.hosts:
        if "db_replicas" not in host.groups or labtool.container_state(host.container) != "running":
            continue
        status = dexec(host.container, "mariadb", "-N", "-B", "-e", "SHOW SLAVE STATUS")
        if not status.strip():
            found.append(host)
    if len(found) != 1:
        raise BenchError(f"expected one promoted replica, found {[h.name for h in found]}")
    return found[0]


def failure_phase(
    lab: labtool.Lab,
    outdir: Path,
    rate: float,
    write_rate: float,
    keys: Sequence[str],
    report: dict[str, Any],
) -> None:
    web1, web2 = lab.host("web-01"), lab.host("web-02")
    webs = [web1, web2]

    def kill_web(marks: list[tuple[float, str]]) -> None:
        marks.append((time.time(), "docker kill web-01"))
        sh("docker", "kill", web1.container)
        time.sleep(5)
        marks.append((time.time(), "docker start web-01"))
        sh("docker", "start", web1.container)
        wait_web_healthy(web1)
        marks.append((time.time(), "web-01 healthy"))

    def kill_master(marks: list[tuple[float, str]]) -> None:
        master = vip_holder(lab)
        marks.append((time.time(), f"docker kill {master.name} (MASTER)"))
        sh("docker", "kill", master.container)
        time.sleep(5)
        marks.append((time.time(), f"docker start {master.name}"))
        sh("docker", "start", master.container)
        wait_lb_healthy(master)
        marks.append((time.time(), f"{master.name} healthy"))

    def reloads(service: str, hosts: list[labtool.LabHost]) -> Callable[..., None]:
        def inject(marks: list[tuple[float, str]]) -> None:
            marks.append((time.time(), f"first of 20 reloads of {service}"))
            for _ in range(20):
                for host in hosts:
                    dexec(host.container, "systemctl", "reload", service)
                time.sleep(0.5)
            marks.append((time.time(), f"last reload of {service}"))

        return inject

    def deploy(marks: list[tuple[float, str]]) -> None:
        marks.append((time.time(), "deploy_app.yml starts"))
        # The lab's own version: the rolling drain happens all the same, and
        # the lab is left as site.yml made it.
        ansible_playbook("playbooks/deploy_app.yml", log_file=outdir / "ansible-deploy_app.log")
        marks.append((time.time(), "deploy_app.yml done"))

    old_primary = lab.first_in("db_primary")
    replicas = [h for h in lab.hosts if "db_replicas" in h.groups]

    def fail_over_db(marks: list[tuple[float, str]]) -> None:
        if old_primary is None or not replicas:
            raise BenchError("the database failover needs a db_primary host and a replica")
        report["lab_state"] = (
            f"the database primary {old_primary.name} was killed and the failover may not "
            "have finished: `make demo-down demo` restores the lab's layout"
        )
        marks.append((time.time(), f"docker kill {old_primary.name} (primary)"))
        sh("docker", "kill", old_primary.container)
        # The same variables as the failover test of tests/e2e/failure.
        extra = {
            "db_failover_planned": False,
            "db_failover_old_primary": old_primary.name,
            "db_failover_replicas": [r.name for r in replicas],
        }
        marks.append((time.time(), "db_failover.yml starts"))
        ansible_playbook(
            "playbooks/db_failover.yml",
            "-e",
            json.dumps(extra),
            log_file=outdir / "ansible-db_failover.log",
        )
        marks.append((time.time(), "db_failover.yml done"))

    tag = f"bench-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    failures = [
        Failure("kill-web", "kill web-01", "docker kill of web-01 under load, docker start 5 s "
                "later, until nginx answers again.", kill_web),
        Failure("kill-master", "kill MASTER load balancer", "docker kill of the load balancer "
                "holding the VIP, docker start 5 s later, until haproxy and keepalived are "
                "active.", kill_master),
        Failure("reload-haproxy", "reload haproxy x20", "systemctl reload haproxy on both load "
                "balancers, 20 times, 0.5 s after each reload returned.",
                reloads("haproxy", [lab.host("lb-01"), lab.host("lb-02")])),
        Failure("reload-nginx", "reload nginx x20", "systemctl reload nginx on both web servers, "
                "20 times, 0.5 s after each reload returned.", reloads("nginx", webs)),
        Failure("reload-gunicorn", "reload gunicorn x20", "systemctl reload webapp (gunicorn "
                "HUP: new workers) on both web servers, 20 times, 0.5 s after each reload "
                "returned (the reload returns once the new workers answer).",
                reloads("webapp", webs)),
        Failure("deploy", "deploy_app.yml", "the rolling deploy playbook (drains each web "
                "server through the HAProxy runtime API, one at a time).", deploy),
        Failure("db-failover", "kill the database primary during writes, then db_failover.yml",
                f"a write probe POSTs unique notes to https://VIP/api/notes at {write_rate} "
                "writes/s; 3 s in, docker kill of the db_primary host, then "
                "playbooks/db_failover.yml (unplanned, the e2e failover test's variables), "
                "then 10 s more writes. Afterwards every acknowledged (2xx) note is looked up "
                "with SELECT on the promoted replica.", fail_over_db, post_tag=tag,
                after_s=10.0),
    ]  # fmt: skip
    assert [f.key for f in failures] == list(FAILURE_KEYS)
    report["probe_rate"] = rate
    for failure in failures:
        if failure.key not in keys:
            continue
        log(f"failure timeline: {failure.name}")
        if failure.post_tag is None:
            samples, marks = probe_during(f"https://{lab.vip}/", rate, failure.inject)
        else:
            samples, marks = probe_during(
                f"https://{lab.vip}/api/notes",
                write_rate,
                failure.inject,
                post_tag=failure.post_tag,
                after_s=failure.after_s,
            )
        plot = f"timeline-{failure.key}.png"
        plot_timeline(outdir / plot, failure.name, samples, marks)
        report["failures"][failure.name] = {
            "description": failure.description,
            "summary": timeline_summary(samples),
            "marks": marks,
            "plot": plot,
        }
        (outdir / f"{Path(plot).stem}.jsonl").write_text(
            "".join(json.dumps(asdict(s)) + "\n" for s in samples)
        )
        if failure.key == "db-failover":
            outcome = db_failover_outcome(lab, samples, marks, failure.post_tag)
            report["db_failover"] = outcome
            report["lab_state"] = outcome["lab_state"]


def db_failover_outcome(
    lab: labtool.Lab,
    samples: Sequence[ProbeSample],
    marks: Sequence[tuple[float, str]],
    tag: str | None,
) -> dict[str, Any]:
    """Read the acknowledged notes back on the promoted replica; say where the lab is."""
    old = lab.first_in("db_primary")
    new = new_primary(lab)
    stored = dexec(
        new.container,
        "mariadb",
        "-N",
        "-B",
        "-e",
        f"SELECT body FROM webinfra.notes WHERE body LIKE '{tag}-%'",
    ).split()
    lost = lost_writes(samples, stored)
    outage = write_outage(samples, marks[0][0])
    note = LAB_ON_REPLICA.format(new=new.name, old=old.name if old else "the old primary")
    acked = sum(1 for s in samples if s.acknowledged)
    log(
        f"db failover: {acked} acknowledged writes, {len(lost)} missing on {new.name}; "
        f"writes succeed again {fmt(outage['back_s'])} s after the first failed one"
    )
    return {
        "new_primary": new.name,
        "attempted": len(samples),
        "acknowledged": acked,
        "failed": len(samples) - acked,
        "lost": len(lost),
        "lost_examples": lost[:10],
        "stored_rows_of_this_run": len(stored),
        **outage,
        "lab_state": note,
    }


def probe_during(
    url: str,
    rate: float,
    inject: Callable[[list[tuple[float, str]]], None],
    post_tag: str | None = None,
    after_s: float = 5.0,
) -> tuple[list[ProbeSample], list[tuple[float, str]]]:
    """Run the probe, inject the failure 3 s in, stop the probe `after_s` after it."""
    pidfile = "/tmp/bench_probe.pid"
    post = f"--post {post_tag} " if post_tag else ""
    command = f"echo $$ > {pidfile}; exec python3 /root/bench_probe.py {post}{url} {rate} 600"
    proc = subprocess.Popen(
        ["docker", "exec", CLIENT, "sh", "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    marks: list[tuple[float, str]] = []
    try:
        time.sleep(3)
        inject(marks)
        time.sleep(after_s)
    finally:
        pid = dexec(CLIENT, "cat", pidfile, check=False).strip()
        if pid.isdigit():
            dexec(CLIENT, "kill", pid, check=False)
        out, _ = proc.communicate(timeout=30)
    return parse_probe(out), marks


def plot_timeline(
    path: Path, title: str, samples: Sequence[ProbeSample], marks: Sequence[tuple[float, str]]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = samples[0].t if samples else 0.0
    fig, ax = plt.subplots(figsize=(10, 4))
    ok = [s for s in samples if s.ok]
    bad = [s for s in samples if not s.ok]
    ax.plot([s.t - t0 for s in ok], [s.ms for s in ok], ".", markersize=3, label="latency (ok)")
    if bad:
        top = max([s.ms for s in samples] + [1.0])
        ax.plot([s.t - t0 for s in bad], [top] * len(bad), "rx", label=f"failed ({len(bad)})")
    for index, (when, label) in enumerate(marks):
        ax.axvline(when - t0, color="red" if index == 0 else "grey", linestyle="--")
        ax.annotate(label, (when - t0, 0.95 - 0.08 * index), xycoords=("data", "axes fraction"),
                    fontsize=8, rotation=0)  # fmt: skip
    ax.set_yscale("log")
    ax.set_xlabel("seconds")
    ax.set_ylabel("latency ms (log)")
    ax.set_title(f"{title}: {len(samples)} requests, {len(bad)} failed")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_throughput(path: Path, report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = report["paths"]
    labels = [data["label"] for data in paths.values()]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.barh(labels, [data["peak"]["rps"] for data in paths.values()])
    left.set_xlabel("requests per second (peak)")
    for index, key in enumerate(("50", "90", "99")):
        right.barh(
            [y + index * 0.25 for y in range(len(labels))],
            [data["peak"]["latency_ms"][key] for data in paths.values()],
            height=0.25,
            label=f"p{key} at peak",
        )
    right.barh(
        [y + 0.75 for y in range(len(labels))],
        [data["half"]["latency_ms"]["99"] for data in paths.values()],
        height=0.25,
        label="p99 at half peak",
    )
    right.set_yticks([y + 0.375 for y in range(len(labels))], labels)
    right.set_xlabel("latency ms")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def figures_of(report: dict[str, Any]) -> dict[str, float]:
    paths = report.get("paths", {})
    nan = math.nan

    def rps(key: str) -> float:
        return float(paths.get(key, {}).get("peak", {}).get("rps", nan))

    def half_p99(key: str) -> float:
        return float(paths.get(key, {}).get("half", {}).get("latency_ms", {}).get("99", nan))

    converge = report.get("converge") or {}
    scale = report.get("scale") or {}
    memory = report.get("memory") or {}
    return {
        "ratio_converge_4_to_2_web": ratio(
            float(scale.get("converge_s", nan)), float(converge.get("converge_s", nan))
        ),
        "ratio_nginx_to_gunicorn": ratio(rps("nginx"), rps("gunicorn")),
        "ratio_vip_to_gunicorn": ratio(rps("vip"), rps("gunicorn")),
        "ratio_vip_to_nginx": ratio(rps("vip"), rps("nginx")),
        "ratio_p99_half_vip_to_nginx": ratio(half_p99("vip"), half_p99("nginx")),
        "ratio_vip_to_stock": ratio(rps("vip"), rps("stock")),
        "ratio_rerun_to_converge": ratio(
            float(converge.get("rerun_s", nan)), float(converge.get("converge_s", nan))
        ),
        "lab_memory_bytes": float(memory.get("lab_bytes", nan)),
    }


def write_report(outdir: Path, report: dict[str, Any]) -> None:
    report["figures"] = figures_of(report)
    targets = evaluate_targets(report["figures"])
    report["targets"] = [{**asdict(t), "met": t.met, "verdict": t.verdict} for t in targets]
    if report.get("paths"):
        plot_throughput(outdir / "throughput.png", report)
    (outdir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (outdir / "report.md").write_text(render_markdown(report))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--converge",
        choices=("full", "rerun", "none"),
        default="full",
        help="full: remove the lab and time it from bare containers (default); "
        "rerun: keep a running lab and time only the idempotent re-run; none: keep it",
    )
    parser.add_argument(
        "--no-scale",
        action="store_true",
        help="with --converge full, skip the converge of the lab with 4 web servers",
    )
    parser.add_argument("--skip-failures", action="store_true")
    parser.add_argument(
        "--failures",
        default="all",
        help=f"the failure timelines to run: all (default) or some of {','.join(FAILURE_KEYS)}",
    )
    parser.add_argument("--skip-stock", action="store_true")
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--probe-rate", type=float, default=40.0)
    parser.add_argument(
        "--write-rate", type=float, default=10.0, help="writes/s of the database failover probe"
    )
    parser.add_argument("--output", type=Path, default=ROOT / ".cache" / "bench")
    args = parser.parse_args(argv)
    try:
        failure_keys = select_failures(args.failures, FAILURE_KEYS)
    except ValueError as exc:
        parser.error(f"--failures: {exc}")
    try:
        import matplotlib  # noqa: F401  (the plots; checked before any work)
    except ImportError:
        print(
            "ERROR: matplotlib is missing: .venv/bin/pip install matplotlib==3.11.2",
            file=sys.stderr,
        )
        return 1
    started = datetime.now(UTC)
    outdir = args.output / started.strftime("%Y%m%dT%H%M%SZ")
    outdir.mkdir(parents=True, exist_ok=True)
    settings = WrkSettings(connections=args.connections, duration=args.duration,
                           rounds=args.rounds)  # fmt: skip
    report: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "wrk": asdict(settings),
        "paths": {},
        "failures": {},
        "not_measured": ["converge time with 3 web servers (the bench times 2 and 4)"],
    }
    status = 0
    try:
        lab = labtool.load_lab()
        if args.converge != "full" or args.no_scale:
            report["not_measured"].append(
                "the converge with 4 web servers "
                + ("(--no-scale)" if args.no_scale else f"(run with --converge {args.converge})")
            )
        if args.converge != "full":
            report["not_measured"].append(
                f"the first converge from bare containers (run with --converge {args.converge})"
            )
            ensure_lab_up(lab)
            if args.converge == "rerun":
                report["converge"] = rerun_phase(outdir)
        else:
            if not args.no_scale:
                report["scale"] = scale_phase(outdir)
            report["converge"] = converge_phase(lab, outdir)
        start_client(lab)
        stock_url = None
        if args.skip_stock:
            report["not_measured"].append("the stock-configuration stack (--skip-stock)")
        else:
            stock_url = build_stock_stack(lab)
        throughput_phase(lab, settings, report, stock_url)
        if stock_url:
            remove_bench_containers(keep=CLIENT)
        if args.skip_failures:
            report["not_measured"].append("failure timelines (run with --skip-failures)")
        else:
            skipped = [key for key in FAILURE_KEYS if key not in failure_keys]
            if skipped:
                report["not_measured"].append(
                    f"failure timelines not chosen with --failures: {', '.join(skipped)}"
                )
            failure_phase(lab, outdir, args.probe_rate, args.write_rate, failure_keys, report)
    except (BenchError, labtool.LabError, TimeoutError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        report["error"] = str(exc)
        status = 1
    finally:
        remove_bench_containers()
        report["machine"]["loadavg_after"] = Path("/proc/loadavg").read_text().split()[:3]
        report["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
        write_report(outdir, report)
        if report.get("lab_state"):
            log(report["lab_state"])
        log(f"report: {outdir / 'report.md'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
