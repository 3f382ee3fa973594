"""Fixtures of the haproxy scenario's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

LB = "webinfra-haproxy-lb"
LB_IP = "172.30.4.10"
WEB = ("webinfra-haproxy-web-01", "webinfra-haproxy-web-02")


@pytest.fixture(scope="session")
def stats_password() -> str:
    """The generated stats password (the scenario's password lookup file)."""
    path = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secrets" / "haproxy_stats_password"
    return path.read_text(encoding="utf-8").split()[0]


@pytest.fixture(scope="session")
def lb_playbook() -> str:
    """Runs the haproxy role alone (the load balancer's part of converge.yml)."""
    return str(Path(__file__).resolve().parents[1] / "lb_only.yml")


@pytest.fixture(scope="session")
def deploy_playbook() -> str:
    return str(Path(__file__).resolve().parents[3] / "playbooks" / "deploy_app.yml")
