"""Reading Alertmanager's mails out of the lab's mbox (tests/lib/webinfra_alerts.py)."""

from __future__ import annotations

import time
from email.message import EmailMessage

import pytest
import webinfra_alerts
from webinfra_alerts import first_delivery, first_firing_alert, parse_mailbox, wait_for_mail


def _message(delivered: str, subject: str, text: str) -> str:
    """An mbox entry shaped like exim4's delivery of an Alertmanager mail."""
    message = EmailMessage()
    message["Delivery-date"] = delivered
    message["Subject"] = subject
    message["From"] = "alertmanager@localhost"
    message["To"] = "alerts@localhost"
    message.set_content(text, cte="quoted-printable")
    message.add_alternative("<html><body><p>From the HTML part</p></body></html>", subtype="html")
    return f"From alertmanager@localhost Sun Dec 06 19:00:00 2026\n{message.as_string()}\n"


FIRING = _message(
    "Sun, 06 Dec 2026 19:00:30 +0000",
    "[FIRING:1] web-02 (NginxDown nginx critical)",
    "[FIRING] NginxDown on web-02 (critical)\n"
    "  nginx on web-02 does not answer its stub_status page\n"
    "  Runbook: On web-02: systemctl status nginx\n",
)
TWO_HOSTS = _message(
    "Sun, 06 Dec 2026 19:00:41 +0000",
    "[FIRING:2] lb-02",
    "[FIRING] InstanceDown on lb-02 (critical)\n  node target lb-02\n  Runbook: x\n"
    "[RESOLVED] HAProxyServerDown on web-01 (critical)\n  Web server web-01\n  Runbook: y\n",
)
RESOLVED = _message(
    "Sun, 06 Dec 2026 19:02:00 +0000",
    "[RESOLVED] web-02 (NginxDown nginx critical)",
    "[RESOLVED] NginxDown on web-02 (critical)\n  nginx on web-02\n  Runbook: z\n",
)
# 2026-12-06 19:00:00 UTC
T0 = 1796583600.0


def test_each_message_of_the_mbox_is_read_with_its_alerts_and_delivery_time() -> None:
    notes = parse_mailbox(FIRING + TWO_HOSTS + RESOLVED)
    assert [n.delivered - T0 for n in notes] == [30.0, 41.0, 120.0]
    assert notes[0].subject.startswith("[FIRING:1] web-02")
    assert [(a.status, a.name, a.instance, a.severity) for a in notes[1].alerts] == [
        ("firing", "InstanceDown", "lb-02", "critical"),
        ("resolved", "HAProxyServerDown", "web-01", "critical"),
    ]
    assert notes[1].instances == {"lb-02", "web-01"}


def test_firing_and_resolved_are_per_instance() -> None:
    first, both, last = parse_mailbox(FIRING + TWO_HOSTS + RESOLVED)
    assert first.firing("web-02") and not first.resolved("web-02")
    assert both.firing("lb-02") and both.resolved("web-01") and not both.firing("web-01")
    assert last.resolved("web-02") and not last.firing("web-02")
    assert not last.resolved("lb-02")  # names no alert of lb-02


def test_first_delivery_skips_older_mail_and_other_hosts() -> None:
    notes = parse_mailbox(FIRING + TWO_HOSTS + RESOLVED)
    assert first_delivery(notes, "web-02", T0) is notes[0]
    assert first_delivery(notes, "web-02", T0 + 31) is None
    assert first_delivery(notes, "web-02", T0, resolved=True) is notes[2]
    assert first_delivery(notes, "lb-02", T0) is notes[1]
    assert first_delivery(notes, "db-01", T0) is None


def test_an_empty_mailbox_has_no_notification() -> None:
    assert parse_mailbox("") == []


def test_only_firing_critical_alerts_page() -> None:
    first, both, last = parse_mailbox(FIRING + TWO_HOSTS + RESOLVED)
    assert [a.name for a in first.critical_firing] == ["NginxDown"]
    assert [a.instance for a in both.critical_firing] == ["lb-02"]
    assert last.critical_firing == []


def test_an_alert_is_found_by_name_firing_after_a_time() -> None:
    notes = parse_mailbox(FIRING + TWO_HOSTS + RESOLVED)
    assert first_firing_alert(notes, "InstanceDown", T0) is notes[1]
    assert first_firing_alert(notes, "InstanceDown", T0 + 42) is None
    # Resolved only: not firing.
    assert first_firing_alert(notes, "HAProxyServerDown", T0) is None


def test_wait_for_mail_reads_the_mailbox_until_the_condition_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    boxes = iter(["", FIRING, FIRING + TWO_HOSTS])
    monkeypatch.setattr(webinfra_alerts, "read_mailbox", lambda c: parse_mailbox(next(boxes)))
    monkeypatch.setattr(time, "sleep", lambda s: None)
    notes = wait_for_mail("mon", accept=lambda ns: len(ns) == 2, timeout=60)
    assert [n.delivered - T0 for n in notes] == [30.0, 41.0]
