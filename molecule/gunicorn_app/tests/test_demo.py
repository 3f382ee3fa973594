"""gunicorn_app with its defaults: the bundled demo on the unix socket (app-01)."""

from __future__ import annotations

import json
import os
import re
import uuid

from testinfra.host import Host
from webinfra_testlib import ansible_playbook

DEMO = "webinfra-gunicorn_app-app-01"
testinfra_hosts = [DEMO]
CONVERGE = os.path.join(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", ""), "converge.yml")


def _demo(host: Host, path: str) -> tuple[int, str]:
    out = host.run(
        f"curl -s -w '\\n%{{http_code}}' --unix-socket /run/webapp/gunicorn.sock http://localhost{path}"
    ).stdout
    body, _, code = out.rpartition("\n")
    return int(code or 0), body


def _main_pid(host: Host, unit: str) -> str:
    return str(host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip())


def test_demo_answers_with_the_host_name_on_the_unix_socket(host: Host) -> None:
    status, body = _demo(host, "/")
    assert status == 200
    assert body.startswith(f"Hello from {DEMO}")


def test_demo_healthz_without_a_database(host: Host) -> None:
    status, body = _demo(host, "/healthz")
    assert status == 200
    data = json.loads(body)
    assert data["app"]["status"] == "ok"
    assert data["database"] == {"configured": False}
    status, _ = _demo(host, "/api/notes")
    assert status == 503


def test_only_the_web_server_group_may_use_the_socket(host: Host) -> None:
    sock = host.file("/run/webapp/gunicorn.sock")
    assert sock.is_socket
    assert (sock.user, sock.group, sock.mode) == ("root", "www-data", 0o660)
    refused = host.run(
        "runuser -u nobody -- curl -s --unix-socket /run/webapp/gunicorn.sock http://localhost/"
    )
    assert refused.rc != 0


def test_a_wrong_variable_stops_the_play_before_any_change(host: Host) -> None:
    before = host.run("sha256sum /etc/webapp/gunicorn.conf.py /etc/webapp/app.env").stdout
    outcome = ansible_playbook(CONVERGE, {"gunicorn_app_port": 70000, "gunicorn_app_version": "9"})
    output = outcome.stdout + outcome.stderr
    assert outcome.rc != 0
    assert "gunicorn_app_port: must be 0 (unix socket) or a TCP port" in output
    assert re.search(r"changed=[1-9]", output) is None
    assert host.run("sha256sum /etc/webapp/gunicorn.conf.py /etc/webapp/app.env").stdout == before


def test_workers_run_unprivileged_and_follow_the_cpu_count(host: Host) -> None:
    master = _main_pid(host, "webapp")
    workers = host.run(f"ps -o user= --ppid {master}").stdout.split()
    cpus = int(host.run("nproc").stdout)
    assert workers == ["webapp"] * min(2 * cpus + 1, 16)
    assert host.run(f"ps -o user= -p {master}").stdout.strip() == "webapp"


def test_gunicorn_logs_to_the_journal(host: Host) -> None:
    assert "Booting worker" in host.run("journalctl -u webapp --no-pager -o cat").stdout


def test_settings_are_readable_by_the_application_only(host: Host) -> None:
    settings = host.file("/etc/webapp/app.env")
    assert (settings.user, settings.group, settings.mode) == ("root", "webapp", 0o640)
    denied = host.run("runuser -u nobody -- cat /etc/webapp/app.env")
    assert denied.rc != 0


def _workers(host: Host, master: str) -> set[str]:
    return set(host.run(f"ps -o pid= --ppid {master}").stdout.split())


def test_a_reload_returns_once_new_workers_answer_on_the_unix_socket(host: Host) -> None:
    master = _main_pid(host, "webapp")
    before = _workers(host, master)
    assert host.run("systemctl reload webapp").rc == 0
    after = _workers(host, master)
    assert after, "no worker after the reload"
    assert not before & after, "systemctl reload returned while old workers still ran"
    assert _demo(host, "/healthz")[0] in (200, 503)
    journal = host.run("journalctl -u webapp -n 20 --no-pager -o cat").stdout
    assert f"reloaded: {len(before)} old worker(s) gone" in journal


def test_a_settings_change_reloads_without_a_restart(host: Host) -> None:
    # Runs last on app-01 and leaves a new version label deployed.
    version = f"v{uuid.uuid4().hex[:8]}"
    master = _main_pid(host, "webapp")
    outcome = ansible_playbook(CONVERGE, {"gunicorn_app_version": version}, limit=DEMO)
    assert outcome.rc == 0, outcome.stdout[-3000:]
    assert "Reload gunicorn gracefully" in outcome.stdout
    assert "Restart gunicorn" not in outcome.stdout
    # The reload handler returns once the new workers answer: no waiting here.
    status, body = _demo(host, "/")
    assert status == 200
    assert f"(version {version})" in body
    assert _main_pid(host, "webapp") == master, "a settings change must not restart gunicorn"
