"""Unit tests of the benchmark's pure logic (tools/bench.py); no container."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from webinfra_alerts import Alert, Notification

from tools.bench_failures import FAILURE_KEYS, first_critical, kills_summary
from tools.bench_figures import (
    ProbeSample,
    Target,
    evaluate_targets,
    lost_writes,
    memory_in_use,
    parse_count,
    parse_duration_ms,
    parse_probe,
    parse_wrk,
    percentile,
    ratio,
    select_failures,
    timeline_summary,
    write_outage,
    writes_back_after_kill,
)
from tools.bench_report import figures_of, render_markdown

WRK_OUTPUT = """Running 15s test @ https://172.31.250.10/
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.34ms    5.67ms 210.00ms   90.12%
    Req/Sec   650.12     80.00     1.01k    70.00%
  Latency Distribution
     50%   11.20ms
     75%   14.00ms
     90%  850.00us
     99%    1.02s
  19456 requests in 15.01s, 4.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 7
Requests/sec:   1296.20
Transfer/sec:    307.00KB
"""


def test_parse_duration_units() -> None:
    assert parse_duration_ms("850.00us") == pytest.approx(0.85)
    assert parse_duration_ms("11.20ms") == pytest.approx(11.2)
    assert parse_duration_ms("1.02s") == pytest.approx(1020.0)
    assert parse_duration_ms("1.50m") == pytest.approx(90000.0)
    with pytest.raises(ValueError, match="not a wrk duration"):
        parse_duration_ms("12 parsecs")


def test_parse_count_units() -> None:
    assert parse_count("1.01k") == pytest.approx(1010.0)
    assert parse_count("650.12") == pytest.approx(650.12)
    assert parse_count("2M") == pytest.approx(2e6)


def test_parse_wrk_reads_rate_percentiles_and_errors() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests == 19456
    assert result.seconds == pytest.approx(15.01)
    assert result.rps == pytest.approx(1296.2)
    assert result.latency_ms == pytest.approx({"50": 11.2, "75": 14.0, "90": 0.85, "99": 1020.0})
    assert result.socket_errors == 5
    assert result.non_2xx_3xx == 7
    assert result.failed == 12


def test_parse_wrk_without_errors_counts_zero() -> None:
    text = WRK_OUTPUT.replace("  Socket errors: connect 0, read 2, write 0, timeout 3\n", "")
    text = text.replace("  Non-2xx or 3xx responses: 7\n", "")
    assert parse_wrk(text).failed == 0


def test_parse_wrk_refuses_output_without_latency_distribution() -> None:
    text = "\n".join(line for line in WRK_OUTPUT.splitlines() if "%   " not in line)
    with pytest.raises(ValueError, match="--latency"):
        parse_wrk(text)
    with pytest.raises(ValueError, match="no wrk summary"):
        parse_wrk("unable to connect to 172.31.250.10:443 Connection refused")


def test_percentile_interpolates() -> None:
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0], 100) == 3.0
    assert percentile([5.0], 99) == 5.0
    assert math.isnan(percentile([], 50))


def test_ratio_guards_zero() -> None:
    assert ratio(3.0, 4.0) == 0.75
    assert math.isnan(ratio(1.0, 0.0))


def test_memory_in_use_leaves_out_inactive_page_cache() -> None:
    stat_v1 = "cache 100\ntotal_rss 700\ntotal_inactive_file 300\n"
    assert memory_in_use(1000, stat_v1) == 700
    assert memory_in_use(1000, "anon 600\ninactive_file 250\n") == 750  # cgroup v2
    assert memory_in_use(1000, "") == 1000


def test_target_verdicts_say_by_how_much() -> None:
    assert Target("t", 0.8, 0.75, True).verdict == "met"
    missed = Target("t", 0.6, 0.75, True)
    assert not missed.met
    assert missed.verdict == "MISSED by 0.15x (20% of the target)"
    assert Target("t", 3.0, 2.0, False).verdict == "MISSED by 1x (50% of the target)"
    assert Target("t", math.nan, 2.0, False).verdict == "not measured"
    assert not Target("t", math.nan, 2.0, False).met


def test_evaluate_targets_uses_each_figure() -> None:
    figures = {
        "ratio_vip_to_nginx": 0.5,
        "ratio_p99_half_vip_to_nginx": 1.5,
        "ratio_vip_to_stock": 2.0,
        "ratio_rerun_to_converge": 0.3,
        "lab_memory_bytes": 3 * 1024**3,
    }
    verdicts = [t.met for t in evaluate_targets(figures)]
    assert verdicts == [False, True, True, False, True]
    assert [t.measured for t in evaluate_targets({})] == [False] * 5


def _report(vip_rps: float) -> dict[str, object]:
    def path(rps: float, p99_half: float) -> dict[str, object]:
        latency = {"50": 1.0, "75": 2.0, "90": 3.0, "99": 4.0}
        return {
            "label": "x",
            "peak": {"rps": rps, "latency_ms": latency, "socket_errors": 0, "non_2xx_3xx": 0},
            "half": {"rps": rps / 2, "latency_ms": {**latency, "99": p99_half}},
        }

    return {
        "paths": {"gunicorn": path(1000, 2), "nginx": path(800, 3), "vip": path(vip_rps, 9)},
        "converge": {"converge_s": 400.0, "rerun_s": 80.0, "create_s": 20.0, "rerun_changed": 0},
        "memory": {"lab_bytes": 2.0 * 1024**3, "bench_bytes": 1e7, "containers": {}},
    }


def test_figures_of_a_report() -> None:
    figures = figures_of(_report(400))
    assert figures["ratio_vip_to_gunicorn"] == pytest.approx(0.4)
    assert figures["ratio_vip_to_nginx"] == pytest.approx(0.5)
    assert figures["ratio_nginx_to_gunicorn"] == pytest.approx(0.8)
    assert figures["ratio_p99_half_vip_to_nginx"] == pytest.approx(3.0)
    assert figures["ratio_rerun_to_converge"] == pytest.approx(0.2)
    assert math.isnan(figures["ratio_vip_to_stock"])


_MACHINE: dict[str, object] = {
    "started": "2026-11-26T08:00:00+00:00",
    "machine": {
        "git_commit": "abc1234",
        "cpu_model": "Test CPU",
        "cpu_count": 2,
        "memory_gib": 24.0,
        "kernel": "6.1",
        "loadavg_before": ["1.0", "1.0", "1.0"],
        "containers_running": 3,
    },
    "wrk": {"threads": 2, "connections": 16, "duration": 15, "rounds": 2},
    "targets": [],
}


def test_render_markdown_reports_missed_targets() -> None:
    report = _report(400)
    report.update(_MACHINE)
    report.update(not_measured=["the stock stack"])
    targets = evaluate_targets(figures_of(report))
    report["targets"] = [
        {"name": t.name, "value": t.value, "limit": t.limit,
         "higher_is_better": t.higher_is_better, "verdict": t.verdict}
        for t in targets
    ]  # fmt: skip
    text = render_markdown(report)
    assert "Test CPU x 2" in text
    assert "MISSED by 0.25x" in text  # 0.5 against 0.75
    assert "| one gunicorn" not in text  # labels come from the report
    assert "- the stock stack" in text
    assert "not measured" in text  # the stock ratio


def test_parse_probe_and_timeline_summary() -> None:
    lines = [
        {"t": 10.2, "ms": 5.0, "status": 200, "error": ""},
        {"t": 10.0, "ms": 4.0, "status": 200, "error": ""},
        {"t": 10.4, "ms": 100.0, "status": 0, "error": "ConnectionRefusedError"},
        {"t": 10.6, "ms": 50.0, "status": 503, "error": ""},
        {"t": 10.8, "ms": 6.0, "status": 200, "error": ""},
    ]
    text = "noise\n" + "\n".join(json.dumps(line) for line in lines) + "\n"
    samples = parse_probe(text)
    assert [s.t for s in samples] == [10.0, 10.2, 10.4, 10.6, 10.8]
    summary = timeline_summary(samples)
    assert summary["requests"] == 5
    assert summary["achieved_rate"] == pytest.approx(5 / 0.8)
    assert summary["failed"] == 2
    assert summary["max_ms"] == 6.0
    assert summary["longest_failing_s"] == pytest.approx(0.25)  # 10.4 -> 10.6 + 50 ms
    assert ProbeSample(0, 1, 301, "").ok


def _write(t: float, status: int, text: str = "") -> ProbeSample:
    return ProbeSample(t, 10.0, status, "" if status else "TimeoutError", text)


def test_write_outage_from_first_failure_to_writes_again() -> None:
    samples = [
        _write(9.0, 201),  # before the kill: not counted
        _write(10.5, 201),  # in flight as the primary died: still acknowledged
        _write(11.0, 0),
        _write(12.0, 503),
        _write(40.0, 201),
        _write(40.5, 0),  # a flicker after the first success
        _write(41.0, 201),
    ]
    outage = write_outage(samples, since=10.0)
    assert outage["first_failed_at"] == 11.0
    assert outage["back_s"] == pytest.approx(29.0)
    assert outage["steady_s"] == pytest.approx(30.0)


def test_write_outage_without_failures_or_without_recovery() -> None:
    assert write_outage([_write(11.0, 201)], since=10.0)["back_s"] == 0.0
    never = write_outage([_write(11.0, 201), _write(12.0, 0)], since=10.0)
    assert math.isnan(never["back_s"]) and math.isnan(never["steady_s"])


def test_lost_writes_are_acknowledged_notes_the_database_lacks() -> None:
    samples = [
        _write(1.0, 201, "t-0"),
        _write(2.0, 201, "t-1"),
        _write(3.0, 0, "t-2"),  # never acknowledged: may or may not be stored
        _write(4.0, 201, "t-3"),
    ]
    assert lost_writes(samples, ["t-0", "t-3", "t-2"]) == ["t-1"]
    assert lost_writes(samples, ["t-0", "t-1", "t-3"]) == []
    assert not ProbeSample(0, 1, 301, "").acknowledged


def test_parse_probe_keeps_the_text_of_a_write() -> None:
    line = {"t": 1.0, "ms": 2.0, "status": 201, "error": "", "text": "bench-x-7"}
    assert parse_probe(json.dumps(line))[0].text == "bench-x-7"


def test_select_failures_keeps_run_order_and_refuses_unknown_keys() -> None:
    assert select_failures("all", FAILURE_KEYS) == list(FAILURE_KEYS)
    assert select_failures("db-failover,kill-web", FAILURE_KEYS) == ["kill-web", "db-failover"]
    assert FAILURE_KEYS[-1] == "db-failover"  # it leaves the lab on the replica: last
    with pytest.raises(ValueError, match=r"unknown failure.*kill-db.*choose from all"):
        select_failures("kill-db", FAILURE_KEYS)
    with pytest.raises(ValueError, match="none given"):
        select_failures(",", FAILURE_KEYS)


def test_the_scale_ratio_and_its_report() -> None:
    report = _report(400)
    report["scale"] = {"web_servers": 4, "converge_s": 600.0, "create_s": 30.0, "lab_ca_s": 20.0}
    report["converge"] = {**report["converge"], "web_servers": 2}  # type: ignore[dict-item]
    figures = figures_of(report)
    assert figures["ratio_converge_4_to_2_web"] == pytest.approx(1.5)
    assert math.isnan(figures_of(_report(400))["ratio_converge_4_to_2_web"])
    report["figures"] = figures
    report.update(_MACHINE)
    text = render_markdown(report)
    assert "Lab with 4 web servers" in text and "Lab with 2 web servers" in text
    assert "site.yml with 4 web servers / with 2: 1.5" in text


def test_the_db_failover_report_says_where_the_lab_runs() -> None:
    report = _report(400)
    report.update(_MACHINE)
    report["db_failover"] = {
        "new_primary": "db-02",
        "attempted": 400,
        "acknowledged": 120,
        "failed": 280,
        "lost": 0,
        "stored_rows_of_this_run": 130,
        "back_s": 31.5,
        "steady_s": 31.5,
        "lab_state": "the lab runs on the promoted replica db-02",
    }
    text = render_markdown(report)
    assert "acknowledged (2xx): 120" in text
    assert "missing on the new primary db-02 (SELECT after the run): 0" in text
    assert "writes succeed again: 31.5 s" in text
    assert "130 (10 of them stored although the client saw the write fail" in text
    assert "runs on the promoted replica db-02" in text


def test_the_cluster_kills_report_gives_the_median_the_worst_and_every_kill() -> None:
    def kill(back: float, lost: int) -> dict[str, Any]:
        return {
            "new_primary": "db-02",
            "attempted": 200,
            "acknowledged": 150,
            "failed": 50,
            "lost": lost,
            "stored_rows_of_this_run": 150,
            "back_after_kill_s": back,
            "back_s": back,
            "steady_s": back,
            "lab_state": "x",
        }

    summary = kills_summary([kill(6.0, 0), kill(9.5, 1), kill(5.0, 0)])
    assert summary["median_back_after_kill_s"] == 6.0
    assert summary["worst_back_after_kill_s"] == 9.5
    assert summary["lost_in_all_kills"] == 1
    report = _report(400)
    report.update(_MACHINE)
    report["db_failover"] = {**summary, "lab_state": "every database host runs again"}
    text = render_markdown(report)
    assert "3 times (the cluster fails over by itself)" in text
    assert "median 6 s, worst 9.5 s" in text, text
    assert "| 2 | db-02 | 200 | 150 | 50 | 1 | 9.5 |" in text
    assert "all kills: 1" in text


def test_writes_are_back_when_the_first_acknowledged_write_after_the_failures_is_answered() -> None:
    def write(t: float, ms: float, status: int) -> ProbeSample:
        return ProbeSample(t=t, ms=ms, status=status, error="")

    samples = [
        write(99.5, 20, 201),  # before the kill
        write(100.2, 2000, 503),
        write(100.5, 20, 201),  # a flicker: writes are not back yet
        write(101.0, 2000, 503),
        write(101.5, 3000, 201),  # started during the failover, answered at 104.5
        write(102.0, 20, 201),
    ]
    assert writes_back_after_kill(samples, 100.0) == pytest.approx(4.5)
    assert writes_back_after_kill(samples[:1], 100.0) == 0.0
    assert math.isnan(writes_back_after_kill(samples[:4], 100.0))


def test_the_database_failures_report_their_writes_in_one_table() -> None:
    report = _report(400)
    report.update(_MACHINE)
    report["probe_rate"] = 50
    summary = {"requests": 300, "achieved_rate": 10.0, "failed": 40, "longest_failing_s": 8.1,
               "p99_ms": 900.0, "max_ms": 2100.0}  # fmt: skip
    writes = {"primary": "db-02", "attempted": 300, "acknowledged": 260, "failed": 40,
              "lost": 0, "back_after_failure_s": 8.4}  # fmt: skip
    report["failures"] = {
        "cut the database primary off the network during writes": {
            "description": "d", "summary": summary, "plot": "p.png", "writes": writes,
        },
        "kill web-01": {"description": "d", "summary": summary, "plot": "w.png"},
    }  # fmt: skip
    text = render_markdown(report)
    assert (
        "| cut the database primary off the network during writes | 300 | 260 | 40 | 0 "
        "| 8.4 | db-02 |" in text
    )
    assert "| kill web-01 | 300 | 260" not in text
    assert FAILURE_KEYS.index("db-quorum-lost") < FAILURE_KEYS.index("db-failover")


def test_each_timeline_gets_its_first_critical_mail_between_its_start_and_the_next() -> None:
    def note(at: float, *alerts: tuple[str, str, str]) -> Notification:
        return Notification(
            delivered=at,
            subject="",
            alerts=tuple(
                Alert(status, name, "web-01", severity) for status, name, severity in alerts
            ),
        )

    notes = [
        note(1000.0, ("firing", "InstanceDown", "critical")),  # before the failure
        note(1020.0, ("firing", "HTTP5xxRatioHigh", "warning")),  # not critical
        note(1030.0, ("resolved", "InstanceDown", "critical")),  # not firing
        note(1041.0, ("firing", "InstanceDown", "critical"), ("firing", "X", "warning")),
        note(1200.0, ("firing", "NginxDown", "critical")),  # the next failure's
    ]
    assert first_critical(notes, 1010.5, 1100.0) == {
        "after_s": 31.0,
        "alerts": ["InstanceDown on web-01"],
    }
    assert first_critical(notes, 1050.0, 1100.0) is None
    report = _report(400)
    report.update(_MACHINE)
    report["probe_rate"] = 50
    summary = {"requests": 100, "failed": 0, "longest_failing_s": 0.0, "p99_ms": 5.0, "max_ms": 9.0}
    report["failures"] = {
        "kill web-01": {"description": "d", "plot": "p.png", "summary": summary,
                        "notified": first_critical(notes, 1010.5, 1100.0)},
        "reload nginx x20": {"description": "d", "plot": "q.png", "summary": summary,
                             "notified": None},
    }  # fmt: skip
    text = render_markdown(report)
    assert "| 31 s: InstanceDown on web-01 |" in text
    assert "| reload nginx x20 | 100 |" in text and "| none |" in text
