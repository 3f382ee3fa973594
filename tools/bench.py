"""`make bench`: measure the lab and write a report (markdown, JSON, PNG plots).

    python tools/bench.py [--converge full|rerun|none] [--no-scale] [--skip-stock]
                          [--skip-failures | --failures all|KEY,KEY] [--skip-alerts]

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
   and runs deploy_app.yml; then, on a clustered tier, a write probe (POST
   /api/notes, each note unique) runs while the bench kills a database
   replica, cuts the primary off the lab network and takes the quorum away
   (each healed again, the acknowledged notes read back on the primary);
   last, the write probe runs while the bench kills the database primary,
   then reads every acknowledged note back on the new primary. On a
   clustered tier (the lab's) the cluster fails over by itself: five kills, the killed host
   started again as a replica after each, the median and the worst time
   until writes are back. Without a cluster the bench runs db_failover.yml
   once, which leaves the lab on the promoted replica (`make demo-down demo`
   restores it). One PNG timeline per failure.
5. alerts (unless --skip-alerts): the alert tests of tests/e2e/failure run
   against the lab (bench_alerts); the time from each failure to its mail,
   and from the repair to the resolved mail, for every alert they time.

Every lab change the bench makes for a measurement (a ufw rule and the TCP
listener on web-01) is reverted in a finally block, and every bench
container (label webinfra.scenario=bench) is removed at the end, also on
failure. Output: .cache/bench/<UTC timestamp>/report.{md,json}, *.png and
the output of every ansible-playbook run (ansible-*.log; with
ANSIBLE_CALLBACKS_ENABLED=ansible.posix.profile_tasks they hold the task
timings).

This module holds the phases and main(); beside it: bench_run (shell,
docker and ansible-playbook calls), bench_figures (the arithmetic, no side
effect), bench_report (markdown and plots), bench_stock (the hand-built
stock stack), bench_failures (the failure phase), bench_db_failures (the
database tier's failures besides the primary kill), bench_alerts (the alert
phase) and bench_probe (the probe that runs in the client container).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Iterator, Sequence
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
from tools.bench_alerts import alerts_phase  # noqa: E402
from tools.bench_failures import FAILURE_KEYS, failure_phase  # noqa: E402
from tools.bench_figures import WrkResult, parse_wrk, select_failures  # noqa: E402
from tools.bench_report import write_report  # noqa: E402
from tools.bench_run import (  # noqa: E402
    CLIENT,
    CLIENT_ADDRESS,
    SCENARIO_LABEL,
    BenchError,
    ansible_playbook,
    apt_proxy_line,
    container_memory,
    dexec,
    lab_gateway,
    log,
    machine_info,
    remove_bench_containers,
    sh,
)
from tools.bench_stock import build_stock_stack  # noqa: E402

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
    log("the lab is not running: bringing it up (python -m tools.lab up)")
    labtool.up()


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
    parser.add_argument(
        "--skip-alerts", action="store_true", help="do not run the alert tests against the lab"
    )
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
        if args.skip_alerts:
            report["not_measured"].append("time to notify per alert (--skip-alerts)")
        else:
            alerts_phase(outdir, report)
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
