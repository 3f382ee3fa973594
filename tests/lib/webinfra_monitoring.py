"""Prometheus and Alertmanager as an operator reaches them: HTTPS, verified
against the monitoring role's CA, with a basic-auth login.

Used by the monitoring scenario, tests/e2e and the tools: every query of
Prometheus or Alertmanager goes through a WebLogin.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where the monitoring role keeps the CA that signed the host's certificate
# (a copy of the controller's ca.crt) and the ports it listens on.
HOST_CA_FILE = "/etc/prometheus/tls/ca.crt"
PROMETHEUS_PORT = 9090
ALERTMANAGER_PORT = 9093
# Names of the password lookup files (under a secrets folder) the lab and
# the scenarios generate for the two logins.
PROMETHEUS_SECRET = "monitoring_prometheus"
ALERTMANAGER_SECRET = "monitoring_alertmanager"


def https_base_url(address: str, port: int) -> str:
    """https://address:port, with an IPv6 address in brackets."""
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}:{port}"


def lookup_file_secret(text: str) -> str:
    """The password in a file written by ansible's password lookup.

    The file holds the password, optionally followed by ` salt=...`.
    """
    words = text.split()
    if not words:
        raise ValueError("the password file is empty")
    return words[0]


def read_secret(folder: Path, name: str) -> str:
    """The password the lookup generated as `folder/name`."""
    return lookup_file_secret((folder / name).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class WebLogin:
    """One daemon's web endpoint and the login it takes."""

    base_url: str
    user: str
    password: str
    # CA bundle that signed the daemon's certificate (verification is never off).
    ca_file: str

    def get(
        self,
        path: str,
        params: dict[str, str] | None = None,
        *,
        login: bool = True,
        password: str | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """GET base_url + path over verified TLS; a requests.Response.

        With `login` false no credentials are sent; `password` replaces this
        login's password (to try a wrong one).
        """
        import requests

        auth = (self.user, self.password if password is None else password) if login else None
        return requests.get(
            f"{self.base_url}{path}",
            params=params,
            auth=auth,
            verify=self.ca_file,
            timeout=timeout,
        )

    def json(self, path: str, params: dict[str, str] | None = None, timeout: float = 10.0) -> Any:
        response = self.get(path, params, timeout=timeout)
        response.raise_for_status()
        return response.json()

    def post_json(self, path: str, body: Any, timeout: float = 10.0) -> None:
        """POST `body` as JSON to base_url + path, logged in; raise on an error status."""
        import requests

        response = requests.post(
            f"{self.base_url}{path}",
            json=body,
            auth=(self.user, self.password),
            verify=self.ca_file,
            timeout=timeout,
        )
        response.raise_for_status()


@dataclass(frozen=True)
class MonitoringLogins:
    """Both daemons of one monitoring host."""

    prometheus: WebLogin
    alertmanager: WebLogin


def prometheus_query(
    prometheus: WebLogin, expr: str, timeout: float = 10.0
) -> list[dict[str, Any]]:
    """Instant query against Prometheus' HTTP API; returns the result vector."""
    body: dict[str, Any] = prometheus.json("/api/v1/query", {"query": expr}, timeout)
    if body.get("status") != "success":
        raise RuntimeError(f"query {expr!r} failed: {body}")
    return list(body["data"]["result"])


def prometheus_targets(prometheus: WebLogin, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Prometheus' active scrape targets (labels, health, lastError)."""
    body: dict[str, Any] = prometheus.json("/api/v1/targets", timeout=timeout)
    return list(body["data"]["activeTargets"])


def alertmanager_alerts(alertmanager: WebLogin, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The alerts Alertmanager holds as active (API v2, resolved ones excluded)."""
    params = {"active": "true", "silenced": "true", "inhibited": "true"}
    alerts: list[dict[str, Any]] = alertmanager.json("/api/v2/alerts", params, timeout)
    return alerts


def post_alerts(
    alertmanager: WebLogin, labels: list[dict[str, str]], starts: float, ends: float
) -> None:
    """Send alerts to Alertmanager's API v2 as Prometheus would: each with
    these labels, active from `starts` until `ends` (epoch seconds; an end
    in the past resolves them)."""
    from datetime import UTC, datetime

    def stamp(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, UTC).isoformat()

    body = [{"labels": each, "startsAt": stamp(starts), "endsAt": stamp(ends)} for each in labels]
    alertmanager.post_json("/api/v2/alerts", body)


def inhibited_by(alerts: list[dict[str, Any]], alertname: str, **labels: str) -> list[str]:
    """The fingerprints inhibiting the one Alertmanager alert with this name
    and labels (empty when it is not inhibited); KeyError when it is absent."""
    found = alerts_named(alerts, alertname, **labels)
    if len(found) != 1:
        raise KeyError(f"{len(found)} alerts {alertname} {labels} in Alertmanager")
    return list(found[0].get("status", {}).get("inhibitedBy") or [])


def login_statuses(login: WebLogin, path: str) -> dict[str, int]:
    """HTTP status of `path` without credentials, with a wrong password and
    with the right login, each over verified TLS."""
    return {
        "anonymous": int(login.get(path, login=False).status_code),
        "wrong password": int(login.get(path, password=login.password + "-wrong").status_code),
        "login": int(login.get(path).status_code),
    }


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
