"""Alertmanager's notifications as they arrive in the lab's mailbox.

playbooks/lab_mail.yml delivers every notification into an mbox on the
monitoring host; exim4 stamps each message with a Delivery-date header. The
monitoring role's plain-text part has one block per alert whose first line
reads `[FIRING] NginxDown on web-02 (critical)`.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from functools import partial

from webinfra_testlib import docker, wait_for

MAILBOX = "/var/mail/alerts"
# The bound from a failure to its notification delivered in the mailbox.
NOTIFY_WITHIN = 60.0
_ALERT_LINE = re.compile(r"^\[(FIRING|RESOLVED)\] (\S+) on (\S*) \((\w*)\)\s*$", re.MULTILINE)
# An mbox separates messages with a line starting "From " after a blank line.
_SEPARATOR = re.compile(r"(?:^|\n)From \S+ [^\n]*\n")


@dataclass(frozen=True)
class Alert:
    status: str  # "firing" or "resolved"
    name: str
    instance: str
    severity: str


@dataclass(frozen=True)
class Notification:
    delivered: float  # epoch seconds, from exim4's Delivery-date
    subject: str
    alerts: tuple[Alert, ...]

    @property
    def instances(self) -> set[str]:
        return {alert.instance for alert in self.alerts}

    @property
    def critical_firing(self) -> list[Alert]:
        """The alerts of this mail that page: firing and critical."""
        return [a for a in self.alerts if a.status == "firing" and a.severity == "critical"]

    def firing(self, instance: str) -> bool:
        return any(a.status == "firing" and a.instance == instance for a in self.alerts)

    def fires(self, alertname: str) -> bool:
        return any(a.status == "firing" and a.name == alertname for a in self.alerts)

    def resolved(self, instance: str) -> bool:
        """Every alert of `instance` in it is resolved (and it names one)."""
        mine = [a for a in self.alerts if a.instance == instance]
        return bool(mine) and all(a.status == "resolved" for a in mine)


def _plain_text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    return "" if part is None else str(part.get_content())


def parse_message(raw: str) -> Notification:
    message = email.message_from_string(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    stamp = message["Delivery-date"] or message["Date"]
    alerts = tuple(
        Alert(status.lower(), name, instance, severity)
        for status, name, instance, severity in _ALERT_LINE.findall(_plain_text(message))
    )
    return Notification(
        delivered=parsedate_to_datetime(str(stamp)).timestamp(),
        subject=str(message["Subject"] or ""),
        alerts=alerts,
    )


def parse_mailbox(text: str) -> list[Notification]:
    """Every message of an mbox, oldest first."""
    chunks = [chunk for chunk in _SEPARATOR.split(text) if chunk.strip()]
    return [parse_message(chunk) for chunk in chunks]


def read_mailbox(container: str, path: str = MAILBOX) -> list[Notification]:
    """The notifications delivered so far (none before the first one)."""
    done = docker("exec", container, "cat", path, check=False)
    return parse_mailbox(done.stdout) if done.returncode == 0 else []


def wait_for_mail(
    container: str, accept: Callable[[list[Notification]], bool], timeout: float
) -> list[Notification]:
    """Read the mailbox every 2 s until `accept` holds of its notifications;
    TimeoutError after `timeout` seconds."""
    return wait_for(partial(read_mailbox, container), timeout=timeout, interval=2, accept=accept)


def first_delivery(
    notifications: list[Notification], instance: str, since: float, *, resolved: bool = False
) -> Notification | None:
    """The first notification after `since` firing (or resolving) `instance`."""
    for note in notifications:
        if note.delivered < since:
            continue
        if note.resolved(instance) if resolved else note.firing(instance):
            return note
    return None


def first_firing_alert(
    notifications: list[Notification], alertname: str, since: float
) -> Notification | None:
    """The first notification after `since` firing an alert called `alertname`."""
    return next((n for n in notifications if n.delivered >= since and n.fires(alertname)), None)
