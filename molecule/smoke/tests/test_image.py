"""The base image boots systemd cleanly and can install packages."""

from __future__ import annotations

import os

from testinfra.host import Host
from webinfra_testlib import failed_units, os_release

EXPECTED_VERSION = os.environ.get("WEBINFRA_DISTRO", "12")


def test_systemd_is_pid_one(host: Host) -> None:
    assert host.run("cat /proc/1/comm").stdout.strip() == "systemd"


def test_no_unit_failed(host: Host) -> None:
    state = host.run("systemctl is-system-running").stdout.strip()
    assert failed_units(host) == [], f"system state is {state}"
    assert state == "running"


def test_distribution_is_the_one_asked_for(host: Host) -> None:
    release = os_release(host)
    assert release["ID"] == "debian"
    assert release["VERSION_ID"] == EXPECTED_VERSION


def test_python3_runs(host: Host) -> None:
    result = host.run("python3 -c 'import apt, sys; print(sys.version_info[0])'")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_apt_installed_the_package(host: Host) -> None:
    pkg = host.package("lsb-release")
    assert pkg.is_installed
    assert host.run("lsb_release -is").stdout.strip() == "Debian"
