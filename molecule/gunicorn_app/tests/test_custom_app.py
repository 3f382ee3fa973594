"""gunicorn_app with a user's own application (app-02).

The code is a directory on the controller, its dependency a wheel built on
the controller and installed on the target without a package index; it
listens on TCP port 8000.
"""

from __future__ import annotations

import io
import os
import tarfile
import time
import uuid
from pathlib import Path

import requests
from testinfra.host import Host
from webinfra_load import BackgroundBurst, PatientBackgroundBurst
from webinfra_testlib import ansible_playbook, wait_for

CUSTOM = "webinfra-gunicorn_app-app-02"
testinfra_hosts = [CUSTOM]
CUSTOM_URL = "http://172.30.2.11:8000/"
SCENARIO = Path(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", "."))


def _main_pid(host: Host, unit: str) -> str:
    return str(host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip())


def test_user_application_uses_its_shipped_wheel(host: Host) -> None:
    response = requests.get(CUSTOM_URL, timeout=10)
    assert response.status_code == 200
    assert response.text.strip() == f"Hello from {CUSTOM} (webinfra-greeting 1.0)"
    freeze = host.run("/srv/greeter/venv/bin/python3 -m pip freeze --local").stdout
    assert "webinfra-greeting==1.0" in freeze


def test_reloads_under_load_fail_no_request(host: Host) -> None:
    master = _main_pid(host, "greeter")
    with PatientBackgroundBurst(CUSTOM_URL, count=400, duration=60) as load:
        for _ in range(3):
            assert host.run("systemctl reload greeter").rc == 0
            time.sleep(1.5)
    assert _main_pid(host, "greeter") == master
    assert load.result.sent >= 20
    assert load.result.failed == 0, load.result.errors


def _workers(host: Host, master: str) -> set[str]:
    return set(host.run(f"ps -o pid= --ppid {master}").stdout.split())


def test_twenty_reloads_back_to_back_wait_for_new_workers_and_fail_no_request(
    host: Host,
) -> None:
    # No pause between reloads: each systemctl reload returns only once the
    # old workers are gone and a new one answers, so no reload ever kills
    # workers that are still booting.
    master = _main_pid(host, "greeter")
    with BackgroundBurst(CUSTOM_URL, count=3000, duration=180, request_timeout=5) as load:
        for attempt in range(20):
            before = _workers(host, master)
            assert host.run("systemctl reload greeter").rc == 0
            after = _workers(host, master)
            assert len(after) == 3, f"reload {attempt + 1}: workers {after}"
            assert not before & after, f"reload {attempt + 1} returned before old workers left"
    assert _main_pid(host, "greeter") == master
    assert load.result.sent >= 20
    assert load.result.failed == 0, load.result.errors


def test_a_restart_loses_no_connection(host: Host) -> None:
    master = _main_pid(host, "greeter")
    with PatientBackgroundBurst(CUSTOM_URL, count=400, duration=60) as load:
        assert host.run("systemctl restart greeter").rc == 0
        time.sleep(1)
    assert _main_pid(host, "greeter") != master
    assert load.result.sent >= 10
    assert load.result.failed == 0, load.result.errors


def test_workers_run_as_the_configured_user_and_count(host: Host) -> None:
    master = _main_pid(host, "greeter")
    workers = host.run(f"ps -o user= --ppid {master}").stdout.split()
    assert workers == ["greeter"] * 3
    assert host.run(f"ps -o user= -p {master}").stdout.strip() == "greeter"


def _archive_with_new_code(marker: str) -> Path:
    """A .tar.gz of the greeter whose answer ends with `marker` (new code)."""
    source = SCENARIO / "files" / "greeter_app" / "greeter"
    target = (
        Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp")) / f"greeter-{marker}.tar.gz"
    )
    with tarfile.open(target, "w:gz") as archive:
        for path in sorted(source.glob("*.py")):
            data = path.read_bytes()
            if path.name == "wsgi.py":
                data = data.replace(b'(body + "\\n")', f'(body + " {marker}\\n")'.encode())
                assert marker.encode() in data, "the code change did not apply"
            info = tarfile.TarInfo(f"greeter/{path.name}")
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    return target


def test_new_code_from_an_archive_is_served_after_a_graceful_reload(host: Host) -> None:
    # Runs last: deploys changed code from an archive over the directory copy.
    marker = f"build-{uuid.uuid4().hex[:8]}"
    archive = _archive_with_new_code(marker)
    master = _main_pid(host, "greeter")
    outcome = ansible_playbook(
        str(SCENARIO / "converge.yml"), {"gunicorn_app_source": str(archive)}, limit=CUSTOM
    )
    assert outcome.rc == 0, outcome.stdout[-3000:]
    assert "Reload gunicorn gracefully" in outcome.stdout
    response = wait_for(
        lambda: requests.get(CUSTOM_URL, timeout=10),
        timeout=30,
        accept=lambda r: r.text.strip().endswith(marker),
    )
    assert response.text.startswith(f"Hello from {CUSTOM}")
    assert _main_pid(host, "greeter") == master, "new code must not need a restart"
