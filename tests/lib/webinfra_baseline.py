"""The OS baseline as a user meets it: SSH logins from the controller,
the settings sshd really uses, and Lynis' verdict."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from webinfra_testlib import RunOutcome

# The client never asks anything and never remembers the test host's key.
SSH_BATCH = [
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "ConnectTimeout=10",
    "-o",
    "LogLevel=INFO",
]
_DENIED = re.compile(r"Permission denied \((?P<methods>[^)]*)\)")


def ssh_command(
    address: str,
    user: str,
    command: str,
    key: Path | None = None,
    password_only: bool = False,
) -> list[str]:
    """An ssh client command line for one non-interactive login.

    With `key`, only that key is offered. With `password_only`, the client
    offers no key and asks for the password method only (BatchMode keeps it
    from prompting, so the server's list of methods decides the answer).
    """
    args = ["ssh", *SSH_BATCH]
    if key is not None:
        args += ["-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
    if password_only:
        args += [
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PreferredAuthentications=password,keyboard-interactive",
        ]
    return [*args, f"{user}@{address}", command]


def ssh_run(command: list[str], timeout: float = 30.0) -> RunOutcome:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    return RunOutcome(done.returncode, done.stdout, done.stderr)


def denied_methods(stderr: str) -> list[str] | None:
    """The methods the server offered when it refused a login, or None when it did not refuse."""
    match = _DENIED.search(stderr)
    if match is None:
        return None
    return [m for m in match.group("methods").split(",") if m]


def sshd_settings(text: str) -> dict[str, str]:
    """`sshd -T` output as keyword -> value (keywords are lower case there).

    A keyword sshd prints once per value (allowgroups, hostkey) gets its
    values joined by spaces, in order.
    """
    settings: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.strip().partition(" ")
        if key:
            settings[key] = f"{settings[key]} {value}" if key in settings else value
    return settings


def lynis_report(text: str) -> dict[str, list[str]]:
    """/var/log/lynis-report.dat as key -> values (keys with [] repeat)."""
    report: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" not in line or line.startswith("#"):
            continue
        key, value = line.split("=", 1)
        report.setdefault(key.removesuffix("[]"), []).append(value)
    return report


def hardening_index(report: dict[str, list[str]]) -> int:
    """Lynis' hardening index (0-100) from a parsed report."""
    return int(report["hardening_index"][0])


def login_defs(text: str) -> dict[str, str]:
    """/etc/login.defs settings (first word, rest of the line), comments left out."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2 and not parts[0].startswith("#"):
            values[parts[0]] = parts[1].strip()
    return values


# The target for every stack unit's sandbox (0 safe, 10 unsafe).
MAX_EXPOSURE = 5.0
_EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")


def parse_exposure(text: str) -> float:
    """The overall exposure in `systemd-analyze security UNIT`'s output."""
    match = _EXPOSURE.search(text)
    if match is None:
        raise ValueError(f"no exposure level in: {text[-500:]!r}")
    return float(match.group(1))
