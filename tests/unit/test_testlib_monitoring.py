"""Pure helpers the monitoring scenario's tests rely on."""

from __future__ import annotations

import json

from webinfra_monitoring import alerts_named, console_rows, notified, webhook_notifications

PAGE = """
<table id="load">
<tr><th>host</th><th>load</th></tr>
<tr data-section="load" data-instance="web-01"><td>web-01</td><td class="value">0.52</td></tr>
<tr data-section="load" data-instance="db-01"><td>db-01</td>
<td class="value">1.50</td></tr>
</table>
<table><tr data-section="targets" data-job="node"><td>node</td><td>1</td></tr></table>
"""


def test_console_rows_reads_attributes_and_cells_of_one_section() -> None:
    rows = console_rows(PAGE, "load")
    assert [r.attrs["instance"] for r in rows] == ["web-01", "db-01"]
    assert [r.cells for r in rows] == [["web-01", "0.52"], ["db-01", "1.50"]]
    assert rows[0].attrs["section"] == "load"


def test_console_rows_ignores_other_sections_and_header_rows() -> None:
    assert [r.attrs["job"] for r in console_rows(PAGE, "targets")] == ["node"]
    assert console_rows(PAGE, "absent") == []


def test_alerts_named_matches_name_and_labels() -> None:
    alerts = [
        {"labels": {"alertname": "NginxDown", "instance": "web-01"}},
        {"labels": {"alertname": "NginxDown", "instance": "web-02"}},
        {"labels": {"alertname": "InstanceDown", "instance": "web-01"}},
    ]
    assert len(alerts_named(alerts, "NginxDown")) == 2
    assert alerts_named(alerts, "NginxDown", instance="web-02") == [alerts[1]]
    assert alerts_named(alerts, "MariaDBDown") == []


def test_notified_finds_firing_and_resolved_notifications() -> None:
    firing = {
        "status": "firing",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "NginxDown", "instance": "web-01"}}
        ],
    }
    resolved = {
        "status": "resolved",
        "alerts": [
            {"status": "resolved", "labels": {"alertname": "NginxDown", "instance": "web-01"}}
        ],
    }
    log = json.dumps(firing) + "\n\n" + json.dumps(resolved) + "\n"
    notifications = webhook_notifications(log)
    assert len(notifications) == 2
    assert notified(notifications, "NginxDown", "firing", instance="web-01")
    assert notified(notifications, "NginxDown", "resolved")
    assert not notified(notifications[:1], "NginxDown", "resolved")
    assert not notified(notifications, "NginxDown", "firing", instance="web-02")
