"""Names and addresses of the monitoring scenario, shared by its tests."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from webinfra_monitoring import (
    ALERTMANAGER_PORT,
    ALERTMANAGER_SECRET,
    PROMETHEUS_PORT,
    PROMETHEUS_SECRET,
    WebLogin,
    https_base_url,
    read_secret,
)

NETWORK = "webinfra-monitoring"
MON = "webinfra-monitoring-mon-01"
LB = "webinfra-monitoring-lb-01"
WEB = "webinfra-monitoring-web-01"
DB = "webinfra-monitoring-db-01"
ADDRESSES = {MON: "172.30.9.10", LB: "172.30.9.11", WEB: "172.30.9.12", DB: "172.30.9.13"}
# converge.yml: the operator network is the controller (the network's gateway).
OPERATOR = "172.30.9.1"


def _ephemeral() -> Path:
    return Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])


def ca_file() -> str:
    """The monitoring CA converge.yml created on the controller."""
    return str(_ephemeral() / "monitoring-ca" / "ca.crt")


@cache
def prometheus() -> WebLogin:
    return WebLogin(
        https_base_url(ADDRESSES[MON], PROMETHEUS_PORT),
        "admin",
        read_secret(_ephemeral() / "secrets", PROMETHEUS_SECRET),
        ca_file(),
    )


@cache
def alertmanager() -> WebLogin:
    return WebLogin(
        https_base_url(ADDRESSES[MON], ALERTMANAGER_PORT),
        "admin",
        read_secret(_ephemeral() / "secrets", ALERTMANAGER_SECRET),
        ca_file(),
    )


def haproxy_stats_password() -> str:
    return read_secret(_ephemeral() / "secrets", "haproxy_stats")
