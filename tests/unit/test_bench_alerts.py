"""The bench's alert phase: reading the alert tests' figures into a table."""

from __future__ import annotations

import pytest
from webinfra_e2e import figure, parse_figures

from tools.bench_alerts import alert_times, alerts_markdown


def test_the_times_of_each_alert_are_read_from_the_tests_figure_lines() -> None:
    output = "\n".join(
        [
            "tests/e2e/failure/test_alerts.py::test_each PASSED",
            figure("alert_notified_NginxDown", 31, "s"),
            figure("alert_resolved_NginxDown", 24, "s"),
            figure("alert_notified_VirtualIPHeldByNoLoadBalancer", 38, "s"),
            figure("posted_alert_notified", 12, "s"),
            figure("vip_outage", 412, "ms"),
        ]
    )
    assert alert_times(parse_figures(output)) == {
        "NginxDown": {"notified_s": 31.0, "resolved_s": 24.0},
        "VirtualIPHeldByNoLoadBalancer": {"notified_s": 38.0},
    }


def test_a_time_in_another_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="alert_notified_NginxDown"):
        alert_times({"alert_notified_NginxDown": (31000.0, "ms")})


def test_the_report_has_a_row_per_alert_and_says_when_the_tests_failed() -> None:
    lines = alerts_markdown(
        {
            "tests": "tests/e2e/failure/test_alerts.py",
            "passed": False,
            "seconds": 301.4,
            "log": "pytest-alerts.log",
            "times": {
                "NginxDown": {"notified_s": 31.0, "resolved_s": 24.0},
                "AppHealthFailing": {"notified_s": 29.0},
            },
        }
    )
    text = "\n".join(lines)
    assert "FAILED, 301 s" in text
    assert "| AppHealthFailing | 29 | n/a |" in lines
    assert "| NginxDown | 31 | 24 |" in lines
