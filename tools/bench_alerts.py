"""The bench's alert phase: the alert tests of tests/e2e/failure, run against
the lab as `WEBINFRA_E2E_FAILURE=1 make e2e` runs them, and every time to
notify and to resolve they measured, in the report.

The bench does not inflict these failures itself: the tests already do
(one mechanism), and they print each figure as an `E2E-FIGURE` line
(webinfra_e2e.figure), which this phase reads back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from webinfra_e2e import parse_figures

from tools.bench_run import BenchError, log
from tools.lab import ROOT

ALERT_TESTS = "tests/e2e/failure/test_alerts.py"
# The test's figures: alert_notified_<AlertName> and alert_resolved_<AlertName>.
_KINDS = {"alert_notified_": "notified_s", "alert_resolved_": "resolved_s"}


def alert_times(figures: dict[str, tuple[float, str]]) -> dict[str, dict[str, float]]:
    """Alert name -> {notified_s, resolved_s} from the test's figures (seconds)."""
    times: dict[str, dict[str, float]] = {}
    for name, (value, unit) in figures.items():
        for prefix, key in _KINDS.items():
            if name.startswith(prefix):
                if unit != "s":
                    raise ValueError(f"figure {name} is in {unit!r}, not seconds")
                times.setdefault(name.removeprefix(prefix), {})[key] = value
    return times


def alerts_phase(outdir: Path, report: dict[str, Any]) -> None:
    """Run the alert tests against the lab; their times go to report["alerts"].

    A failing test stops the bench with an error once its times are recorded.
    """
    log(f"alert phase: {ALERT_TESTS} against the lab")
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", ALERT_TESTS, "--target", "lab", "-v",
         "-p", "no:cacheprovider"],
        cwd=ROOT,
        env={**os.environ, "WEBINFRA_E2E_FAILURE": "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )  # fmt: skip
    (outdir / "pytest-alerts.log").write_text(done.stdout + done.stderr)
    report["alerts"] = {
        "tests": ALERT_TESTS,
        "passed": done.returncode == 0,
        "seconds": time.monotonic() - started,
        "log": "pytest-alerts.log",
        "times": alert_times(parse_figures(done.stdout)),
    }
    log(f"alert phase: {len(report['alerts']['times'])} alerts timed")
    if done.returncode != 0:
        raise BenchError(f"the alert tests failed (pytest exit {done.returncode}): see "
                         f"{outdir / 'pytest-alerts.log'}")  # fmt: skip


def alerts_markdown(alerts: dict[str, Any]) -> list[str]:
    """The report's section: one row per alert the tests timed."""
    lines = [
        "## Time to notify",
        "",
        f"The alert tests (`{alerts['tests']}`) against the lab "
        f"({'passed' if alerts['passed'] else 'FAILED'}, {alerts['seconds']:.0f} s; "
        f"output in {alerts['log']}): from the failure to the mail delivered in mon-01's "
        "mailbox (exim4's Delivery-date), and from the repair to the resolved mail. "
        "The tests assert at most 60 s to notify. The database failover's mail is in the "
        "failure timelines' first critical mail column.",
        "",
        "| alert | notified after s | resolved mail after s |",
        "|---|---|---|",
    ]
    for name, data in sorted(alerts["times"].items()):
        notified = data.get("notified_s")
        resolved = data.get("resolved_s")
        lines.append(
            f"| {name} | {'n/a' if notified is None else f'{notified:.0f}'} "
            f"| {'n/a' if resolved is None else f'{resolved:.0f}'} |"
        )
    return [*lines, ""]
