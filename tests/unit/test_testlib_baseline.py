"""The parsers and command lines of the OS baseline test helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from webinfra_baseline import (
    denied_methods,
    hardening_index,
    login_defs,
    lynis_report,
    parse_exposure,
    ssh_command,
    sshd_settings,
)


def test_a_key_login_offers_that_key_only() -> None:
    cmd = ssh_command("192.0.2.1", "deploy", "id -un", key=Path("/tmp/k"))
    assert cmd[-2:] == ["deploy@192.0.2.1", "id -un"]
    assert cmd[cmd.index("-i") + 1] == "/tmp/k"
    assert "IdentitiesOnly=yes" in cmd
    assert "BatchMode=yes" in cmd


def test_a_password_login_offers_no_key() -> None:
    cmd = ssh_command("192.0.2.1", "deploy", "true", password_only=True)
    assert "PubkeyAuthentication=no" in cmd
    assert "-i" not in cmd


def test_the_refused_methods_are_read_from_the_client_error() -> None:
    assert denied_methods("deploy@192.0.2.1: Permission denied (publickey).\r\n") == ["publickey"]
    assert denied_methods("Permission denied (publickey,password).") == ["publickey", "password"]
    assert denied_methods("Connection refused") is None


def test_sshd_t_output_becomes_a_dictionary() -> None:
    text = (
        "port 22\npermitrootlogin no\nciphers a,b\nsubsystem sftp /usr/lib/sftp-server\n"
        "allowgroups sshusers\nallowgroups root\n"
    )
    assert sshd_settings(text) == {
        "port": "22",
        "allowgroups": "sshusers root",
        "permitrootlogin": "no",
        "ciphers": "a,b",
        "subsystem": "sftp /usr/lib/sftp-server",
    }


def test_the_hardening_index_is_read_from_the_report() -> None:
    report = lynis_report("# Lynis\nhardening_index=81\nsuggestion[]=A|x\nsuggestion[]=B|y\n")
    assert hardening_index(report) == 81
    assert report["suggestion"] == ["A|x", "B|y"]


def test_login_defs_comments_are_left_out() -> None:
    text = "# PASS_MAX_DAYS 1\nPASS_MAX_DAYS\t180\nUMASK\t\t027\n\n"
    assert login_defs(text) == {"PASS_MAX_DAYS": "180", "UMASK": "027"}


def test_the_exposure_is_read_from_systemd_analyze_security() -> None:
    output = (
        "  NAME                      DESCRIPTION                          EXPOSURE\n"
        "✗ PrivateNetwork=          Service has access to the host's network  0.5\n"
        "\n→ Overall exposure level for nginx.service: 2.5 OK :-)\n"
    )
    assert parse_exposure(output) == 2.5


def test_an_output_without_an_exposure_is_refused() -> None:
    with pytest.raises(ValueError, match="no exposure level"):
        parse_exposure("Unit nginx.service not found.")
