"""The bench's report: markdown, JSON and PNG plots from the figures."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tools.bench_alerts import alerts_markdown
from tools.bench_figures import ProbeSample, evaluate_targets, ratio


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
            "| p99 ms | max ms | first critical mail |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, data in failures.items():
            s = data["summary"]
            lines.append(
                f"| {name} | {s['requests']:.0f} | {fmt(s.get('achieved_rate', math.nan))} "
                f"| {s['failed']:.0f} "
                f"| {s['longest_failing_s']:.2f} | {fmt(s['p99_ms'])} | {fmt(s['max_ms'])} "
                f"| {notified_cell(data)} |"
            )
        lines += [
            "",
            "First critical mail: the first notification with a firing critical alert "
            "delivered to the lab's mailbox (mon-01, /var/mail/alerts) between the "
            "failure's start and the next failure's, seconds after the start; none "
            "is right for the planned work (reloads, the deploy) and for a failure "
            "healed within the alerts' pending time.",
            "",
        ]
        lines += database_failures_markdown(failures)
        for name, data in failures.items():
            lines.append(f"### {name}\n\n{data['description']}\n\n![{name}]({data['plot']})\n")
    db = report.get("db_failover")
    if db and db.get("kills"):
        lines += cluster_kills_markdown(db)
    elif db:
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
    if report.get("alerts"):
        lines += alerts_markdown(report["alerts"])
    if report.get("lab_state") and not db:
        lines += ["## State of the lab", "", f"After this run {report['lab_state']}.", ""]
    lines += ["## Not measured in this run", ""]
    lines += [f"- {item}" for item in report.get("not_measured", [])] or ["- (nothing)"]
    lines.append("")
    return "\n".join(lines)


def notified_cell(data: dict[str, Any]) -> str:
    if "notified" not in data:
        return "not read"
    note = data["notified"]
    if note is None:
        return "none"
    return f"{note['after_s']:.0f} s: {', '.join(note['alerts'])}"


def database_failures_markdown(failures: dict[str, Any]) -> list[str]:
    """The writes of the database failures other than the primary kill."""
    rows = [(name, data["writes"]) for name, data in failures.items() if "writes" in data]
    if not rows:
        return []
    lines = [
        "Writes during the database failures (acknowledged notes looked up on the "
        "primary once the failure healed; back after: from the failure until the "
        "answer to the first acknowledged write after the last failed one):",
        "",
        "| failure | writes | acknowledged | failed | lost | back after s | primary after |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, w in rows:
        lines.append(
            f"| {name} | {w['attempted']} | {w['acknowledged']} | {w['failed']} | {w['lost']} "
            f"| {fmt(w['back_after_failure_s'])} | {w['primary']} |"
        )
    return [*lines, ""]


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


def cluster_kills_markdown(db: dict[str, Any]) -> list[str]:
    """The clustered tier's kills of the primary: each one, the median and the worst."""
    kills = db["kills"]
    lines = [
        f"## Database primary killed during writes, {len(kills)} times (the cluster fails over "
        "by itself)",
        "",
        f"- writes back after a kill: median {fmt(db['median_back_after_kill_s'])} s, worst "
        f"{fmt(db['worst_back_after_kill_s'])} s (from the kill until the answer to the first "
        "acknowledged write after the last failed one)",
        f"- acknowledged writes missing on the new primary, all kills: {db['lost_in_all_kills']}",
        "",
        "| kill | new primary | attempted | acknowledged | failed | lost | writes back after s |",
        "|---|---|---|---|---|---|---|",
    ]
    for turn, kill in enumerate(kills, start=1):
        lines.append(
            f"| {turn} | {kill['new_primary']} | {kill['attempted']} | {kill['acknowledged']} "
            f"| {kill['failed']} | {kill['lost']} | {fmt(kill['back_after_kill_s'])} |"
        )
    lines += ["", f"After the run {db['lab_state']}.", ""]
    return lines
