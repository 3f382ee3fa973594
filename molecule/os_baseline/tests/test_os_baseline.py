"""The OS baseline as a user and an auditor meet it.

SSH logins go from the controller to the container over the scenario's
network: a key works, a password and root do not. Lynis (Debian's 3.0.8)
audits the converged host and its hardening index is printed.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from testinfra.host import Host
from webinfra_baseline import (
    denied_methods,
    hardening_index,
    login_defs,
    lynis_report,
    ssh_command,
    ssh_run,
    sshd_settings,
)
from webinfra_testlib import RunOutcome, ansible_playbook, docker

HOST = "webinfra-os-baseline"
ADDRESS = "172.30.13.10"
CONVERGE = str(Path(__file__).resolve().parents[1] / "converge.yml")
# The index issue 15 asks for on every host of the stack.
LYNIS_TARGET = 80

testinfra_hosts = [f"docker://{HOST}"]


def plain(text: str) -> str:
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def user_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A key pair on the controller, authorized for deploy (in sshusers; beside
    the key Ansible connects with) and for outsider (not in it)."""
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    public = key.with_suffix(".pub").read_text(encoding="utf-8").strip()
    script = (
        "id outsider >/dev/null 2>&1 || useradd -m -s /bin/bash outsider; "
        "for u in deploy outsider; do install -d -m 700 -o $u -g $u /home/$u/.ssh; "
        f"grep -qxF '{public}' /home/$u/.ssh/authorized_keys 2>/dev/null "
        f"|| echo '{public}' >> /home/$u/.ssh/authorized_keys; "
        "chown $u:$u /home/$u/.ssh/authorized_keys; chmod 600 /home/$u/.ssh/authorized_keys; done"
    )
    docker("exec", HOST, "sh", "-c", script)
    yield key


def test_sshd_runs_with_the_hardened_settings(host: Host) -> None:
    settings = sshd_settings(host.check_output("sshd -T"))
    assert settings["permitrootlogin"] == "no"
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["maxauthtries"] == "3"
    assert settings["allowtcpforwarding"] == "no"
    assert settings["allowagentforwarding"] == "no"
    assert settings["x11forwarding"] == "no"
    assert settings["allowgroups"] == "sshusers"
    assert settings["kexalgorithms"].split(",")[0].startswith(("sntrup761", "mlkem768"))
    for weak in ("diffie-hellman-group1-sha1", "diffie-hellman-group14-sha1"):
        assert weak not in settings["kexalgorithms"]
    assert not any(c.endswith("-cbc") for c in settings["ciphers"].split(","))
    assert all("-etm@" in m for m in settings["macs"].split(","))
    assert host.service("ssh").is_running


def test_a_key_login_works_and_shows_the_banner(user_key: Path) -> None:
    login = ssh_run(ssh_command(ADDRESS, "deploy", "id -un", key=user_key))
    assert login.rc == 0, login.stderr
    assert login.stdout.strip() == "deploy"
    assert "Authorised access only" in login.stderr


def test_a_password_login_is_refused_and_not_even_offered() -> None:
    login = ssh_run(ssh_command(ADDRESS, "deploy", "true", password_only=True))
    assert login.rc == 255
    assert denied_methods(login.stderr) == ["publickey"], login.stderr


def test_root_cannot_log_in_even_with_its_key(user_key: Path) -> None:
    public = user_key.with_suffix(".pub").read_text(encoding="utf-8").strip()
    keys = "/root/.ssh/authorized_keys"
    docker("exec", HOST, "sh", "-c", f"grep -qxF '{public}' {keys} || echo '{public}' >> {keys}")
    login = ssh_run(ssh_command(ADDRESS, "root", "true", key=user_key))
    assert login.rc == 255
    assert denied_methods(login.stderr) is not None, login.stderr


def test_a_user_outside_the_allowed_groups_is_refused(user_key: Path) -> None:
    login = ssh_run(ssh_command(ADDRESS, "outsider", "true", key=user_key))
    assert login.rc == 255
    assert denied_methods(login.stderr) is not None, login.stderr


def test_a_login_session_can_write_no_core_file_and_times_out(user_key: Path, host: Host) -> None:
    shell = "bash -lc 'ulimit -Hc; ulimit -Sc; echo $TMOUT'"
    login = ssh_run(ssh_command(ADDRESS, "deploy", shell, key=user_key))
    assert login.stdout.split() == ["0", "0", "900"], login.stderr
    coredump = host.check_output("systemd-analyze cat-config systemd/coredump.conf")
    assert "Storage=none" in coredump
    assert "ProcessSizeMax=0" in coredump


def test_login_defs_holds_the_password_rules(host: Host) -> None:
    values = login_defs(host.file("/etc/login.defs").content_string)
    assert values["PASS_MAX_DAYS"] == "180"
    assert values["PASS_MIN_DAYS"] == "1"
    assert values["PASS_WARN_AGE"] == "14"
    assert values["UMASK"] == "027"
    assert values["ENCRYPT_METHOD"] == "YESCRYPT"
    assert values["SHA_CRYPT_MIN_ROUNDS"] == values["SHA_CRYPT_MAX_ROUNDS"] == "65536"


def test_passwords_go_through_pwquality_and_sessions_get_a_private_tmpdir(host: Host) -> None:
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string
    assert "pam_tmpdir.so" in host.file("/etc/pam.d/common-session").content_string
    rules = host.file("/etc/security/pwquality.conf.d/50-webinfra-baseline.conf").content_string
    assert "minlen = 14" in rules


def test_unattended_upgrades_takes_the_security_suite_only(host: Host) -> None:
    release = host.system_info.codename
    policy = host.check_output("apt-cache policy")
    assert f"{release}-security" in policy
    dry_run = host.run("unattended-upgrade --dry-run --debug")
    assert dry_run.rc == 0, dry_run.stderr
    allowed = re.search(r"^Allowed origins are: (.*)$", dry_run.stdout + dry_run.stderr, re.M)
    assert allowed is not None, dry_run.stdout + dry_run.stderr
    origins = allowed.group(1).strip().split(", ")
    assert origins == [
        f"origin=Debian,codename={release}-security,label=Debian-Security",
        f"origin=Debian,codename={release},label=Debian-Security",
    ]
    assert host.service("apt-daily-upgrade.timer").is_enabled
    # The play ran unattended-upgrade once: nothing from the security suite is left to install.
    pending = host.check_output("apt list --upgradable 2>/dev/null")
    assert f"{release}-security" not in pending


def test_file_and_package_integrity_tools_are_ready(host: Host) -> None:
    assert host.file("/var/lib/aide/aide.db").exists
    assert "CRON_CHECK=weekly" in host.file("/etc/default/debsums").content_string


def test_kernel_parameters_are_kept_for_the_next_boot(host: Host) -> None:
    saved = host.file("/etc/sysctl.d/90-webinfra-baseline.conf").content_string
    assert "kernel.kptr_restrict = 2" in saved
    assert "net.ipv4.tcp_syncookies = 1" in saved


def test_a_kernel_parameter_that_cannot_be_set_stops_the_play_when_asked() -> None:
    """Inside this container /proc/sys is read-only: with os_baseline_sysctl_unsettable=fail
    the play stops and names the parameters; it never skips them silently."""
    run = ansible_playbook(CONVERGE, {"os_baseline_sysctl_unsettable": "fail"})
    out = plain(run.stdout + run.stderr)
    assert run.rc != 0
    assert "could not be set" in out
    assert "kernel.kptr_restrict" in out


def assert_refused(run: RunOutcome, account: str, variable: str) -> None:
    """The play stopped before any change, naming the account and the variable."""
    out = plain(run.stdout + run.stderr)
    assert run.rc != 0
    assert f"would lock {account}" in out
    assert variable in out
    assert "changed=0" in out


def test_the_play_refuses_to_lock_out_the_account_it_logs_in_as() -> None:
    """Over SSH as deploy (the converge's connection), an AllowGroups list
    without deploy's groups is refused before anything changes."""
    run = ansible_playbook(CONVERGE, {"os_baseline_ssh_allow_groups": ["admins"]})
    assert_refused(run, "deploy", "os_baseline_ssh_allow_groups")


def test_the_play_refuses_to_turn_passwords_off_for_an_account_with_no_key(host: Host) -> None:
    """Root, reached without SSH (the container's own connection), has its
    keys moved aside: turning passwords off would leave it no way in."""
    keys = "/root/.ssh/authorized_keys"
    docker("exec", HOST, "mv", keys, f"{keys}.aside")
    inside = {
        "ansible_connection": "community.docker.docker",
        "ansible_host": HOST,
        "ansible_user": "root",
    }
    try:
        run = ansible_playbook(CONVERGE, inside)
    finally:
        docker("exec", HOST, "mv", f"{keys}.aside", keys)
    assert_refused(run, "root", "os_baseline_ssh_password_authentication")


def test_lynis_hardening_index(host: Host) -> None:
    audit = host.run("lynis audit system --quick --no-colors")
    assert audit.rc == 0, audit.stderr
    report = lynis_report(host.file("/var/log/lynis-report.dat").content_string)
    index = hardening_index(report)
    print(f"\nLynis {report.get('lynis_version', ['?'])[0]} hardening index: {index}")
    for line in report.get("suggestion", []):
        print(f"  suggestion: {line}")
    for line in report.get("warning", []):
        print(f"  warning: {line}")
    assert index >= LYNIS_TARGET
