"""HAProxy in front of two web servers: what a client of the stack sees."""

from __future__ import annotations

import re
import time

import pytest
import requests
import urllib3
from conftest import LB, LB_IP, WEB
from testinfra.host import Host
from webinfra_haproxy import haproxy_server_status
from webinfra_load import BackgroundBurst, PatientTlsBackgroundBurst, alternates
from webinfra_testlib import RunOutcome, ansible_playbook, docker, wait_for

testinfra_hosts = [LB]
urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

HTTPS = f"https://{LB_IP}"
HTTP = f"http://{LB_IP}"
CONFIG = "/etc/haproxy/haproxy.cfg"


def plain_output(outcome: RunOutcome) -> str:
    """stdout and stderr of a play, without colours and line wrapping."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", outcome.stdout + "\n" + outcome.stderr)
    return " ".join(text.split())


def served_by(count: int) -> list[str]:
    """X-Served-By of `count` consecutive requests, each on a new connection."""
    return [
        requests.get(f"{HTTPS}/", verify=False, timeout=5).headers.get("X-Served-By", "")
        for _ in range(count)
    ]


def all_servers_up() -> bool:
    return all(server_status(name) == "UP" for name in WEB)


def test_requests_alternate_between_the_web_servers() -> None:
    seen = served_by(8)
    assert set(seen) == set(WEB), seen
    assert alternates(seen), seen


def test_http_redirects_to_https_keeping_the_path() -> None:
    response = requests.get(f"{HTTP}/notes?page=2", allow_redirects=False, timeout=5)
    assert response.status_code == 301
    assert response.headers["Location"] == f"{HTTPS}/notes?page=2"


def test_acme_challenges_reach_the_local_responder(host: Host) -> None:
    token = "webinfra-test-token"
    host.run(
        "mkdir -p /tmp/acme/.well-known/acme-challenge && echo %s > "
        "/tmp/acme/.well-known/acme-challenge/%s",
        token,
        token,
    )
    started = host.run(
        "systemd-run --unit webinfra-test-acme python3 -m http.server 8402 "
        "--bind 127.0.0.1 --directory /tmp/acme"
    )
    assert started.rc == 0, started.stderr
    try:
        url = f"{HTTP}/.well-known/acme-challenge/{token}"
        response = wait_for(
            lambda: requests.get(url, allow_redirects=False, timeout=5),
            accept=lambda r: r.status_code == 200,
            timeout=15,
        )
        assert response.text.strip() == token
    finally:
        host.run("systemctl stop webinfra-test-acme")


def test_https_sends_hsts_for_two_years() -> None:
    response = requests.get(f"{HTTPS}/", verify=False, timeout=5)
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=63072000"


@pytest.mark.parametrize(
    ("options", "accepted"),
    [
        ("-tls1_3", True),
        ("-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256", True),
        ("-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305", True),
        ("-tls1_1 -cipher DEFAULT@SECLEVEL=0", False),
        ("-tls1 -cipher DEFAULT@SECLEVEL=0", False),
        ("-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA256", False),  # CBC, not AEAD
        ("-tls1_2 -cipher AES128-GCM-SHA256", False),  # no ECDHE: no forward secrecy
    ],
)
def test_tls_is_mozilla_intermediate(host: Host, options: str, accepted: bool) -> None:
    result = host.run(
        f"openssl s_client -connect 127.0.0.1:443 -servername lb {options} </dev/null"
    )
    handshake_done = result.rc == 0 and "Cipher is (NONE)" not in result.stdout
    assert handshake_done == accepted, result.stdout[-800:] + result.stderr[-800:]


def test_stats_page_requires_the_password(stats_password: str) -> None:
    url = f"http://{LB_IP}:8404/stats"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=("admin", "wrong-password"), timeout=5).status_code == 401
    page = requests.get(url, auth=("admin", stats_password), timeout=5)
    assert page.status_code == 200
    assert all(name in page.text for name in WEB)


def test_prometheus_endpoint_requires_the_stats_password_and_reports_the_backends(
    stats_password: str,
) -> None:
    url = f"http://{LB_IP}:8404/metrics"
    assert requests.get(url, timeout=5).status_code == 401
    assert requests.get(url, auth=("admin", "wrong-password"), timeout=5).status_code == 401
    response = requests.get(url, auth=("admin", stats_password), timeout=5)
    assert response.status_code == 200
    metrics = response.text
    for name in WEB:
        assert f'haproxy_server_status{{proxy="web",server="{name}",state="UP"}} 1' in metrics


def runtime_api(host: Host, command: str) -> str:
    result = host.run(f"echo '{command}' | socat stdio /run/haproxy/admin.sock")
    assert result.rc == 0, result.stderr
    return str(result.stdout)


def server_status(server: str) -> str:
    return haproxy_server_status(LB, "web", server)


def test_runtime_api_is_admin_level(host: Host) -> None:
    server = f"web/{WEB[1]}"
    drained = runtime_api(host, f"set server {server} state drain")
    try:
        assert drained.strip() == "", drained
        wait_for(lambda: server_status(WEB[1]), accept=lambda s: s == "DRAIN")
        assert set(served_by(6)) == {WEB[0]}
    finally:
        runtime_api(host, f"set server {server} state ready")
    wait_for(all_servers_up)


def test_a_web_server_dying_under_load_fails_no_request() -> None:
    victim = WEB[1]
    with BackgroundBurst(f"{HTTPS}/", count=3000, duration=60, interval=0.01) as load:
        docker("exec", victim, "systemctl", "stop", "nginx")
        wait_for(lambda: server_status(victim), accept=lambda s: s.startswith("DOWN"))
        time.sleep(1)
        docker("exec", victim, "systemctl", "start", "nginx")
        wait_for(lambda: server_status(victim), accept=lambda s: s == "UP", timeout=30)
        time.sleep(1)
    result = load.result
    assert result.sent > 200, result
    assert result.failed == 0, result.errors
    assert result.served_by.get(victim, 0) > 0, result.served_by
    assert alternates(served_by(6))


def test_a_note_written_through_haproxy_is_read_back() -> None:
    text = f"note {time.time_ns()}"
    written = requests.post(f"{HTTPS}/api/notes", json={"text": text}, verify=False, timeout=10)
    assert written.status_code == 201, written.text
    assert written.json()["text"] == text
    listed = requests.get(f"{HTTPS}/api/notes", verify=False, timeout=10)
    assert listed.status_code == 200, listed.text
    assert text in [note["text"] for note in listed.json()["notes"]]


def test_losing_the_database_fails_the_writes_but_not_the_pages() -> None:
    # web-01 holds the database (prepare.yml). HAProxy checks the servers'
    # liveness (/livez), not the database they all share, so both stay in
    # rotation and only what needs the database fails.
    database = WEB[0]
    docker("exec", database, "systemctl", "stop", "mariadb")
    try:
        written = requests.post(
            f"{HTTPS}/api/notes", json={"text": "no database"}, verify=False, timeout=10
        )
        assert written.status_code == 503, written.text
        # Longer than HAProxy takes to mark a failing server down (2 checks, 1 s apart).
        deadline = time.monotonic() + 4
        statuses = []
        while time.monotonic() < deadline:
            statuses.append(requests.get(f"{HTTPS}/", verify=False, timeout=10).status_code)
            time.sleep(0.2)
        assert set(statuses) == {200}, statuses
        assert all_servers_up()
    finally:
        docker("exec", database, "systemctl", "start", "mariadb")
    written = wait_for(
        lambda: requests.post(
            f"{HTTPS}/api/notes", json={"text": "database back"}, verify=False, timeout=10
        ),
        timeout=60,
        accept=lambda r: r.status_code == 201,
    )
    assert written.json()["text"] == "database back"


def test_gunicorn_reloads_under_load_fail_no_request() -> None:
    # While gunicorn starts its new workers, requests wait in the socket's
    # backlog: on a loaded machine longer than burst()'s 5 s. A slow answer
    # is not a failed one, so this client waits as a browser would.
    with PatientTlsBackgroundBurst(
        f"{HTTPS}/", count=3000, duration=60, interval=0.01, verify=False
    ) as load:
        for _ in range(2):
            for web in WEB:
                docker("exec", web, "systemctl", "reload", "webapp")
                time.sleep(2)
    result = load.result
    assert result.sent > 50, result
    assert result.failed == 0, result.errors


def test_deploy_app_is_safe_to_re_run(host: Host, deploy_playbook: str) -> None:
    # A run interrupted between drain and ready leaves a server drained; the
    # next run (same version: nothing to deploy) must put it back.
    current = requests.get(f"{HTTPS}/", verify=False, timeout=5).text.strip()
    version = current.partition("(version ")[2].rstrip(")")
    runtime_api(host, f"set server web/{WEB[1]} state drain")
    wait_for(lambda: server_status(WEB[1]), accept=lambda s: s == "DRAIN")
    with BackgroundBurst(f"{HTTPS}/", count=20000, duration=300, interval=0.01) as load:
        outcome = ansible_playbook(deploy_playbook, extra_vars={"gunicorn_app_version": version})
    assert outcome.rc == 0, plain_output(outcome)[-3000:]
    assert load.result.failed == 0, load.result.errors
    assert all_servers_up()
    pages = [requests.get(f"{HTTPS}/", verify=False, timeout=5) for _ in range(4)]
    assert {page.headers["X-Served-By"] for page in pages} == set(WEB)
    assert all(f"(version {version})" in page.text for page in pages), [p.text for p in pages]


def test_haproxy_reloads_under_load_fail_no_request(host: Host) -> None:
    def main_pid() -> str:
        return str(host.run("systemctl show -p MainPID --value haproxy").stdout).strip()

    before = main_pid()
    with BackgroundBurst(f"{HTTPS}/", count=3000, duration=60, interval=0.01) as load:
        for _ in range(10):
            assert host.run("systemctl reload haproxy").rc == 0
            time.sleep(0.5)
    result = load.result
    assert main_pid() == before, "a reload must not restart the master process"
    assert result.sent > 200, result
    assert result.failed == 0, result.errors


def test_a_broken_configuration_is_refused_and_the_old_one_keeps_serving(
    host: Host, lb_playbook: str
) -> None:
    before = host.file(CONFIG).sha256sum
    outcome = ansible_playbook(
        lb_playbook, extra_vars={"haproxy_backend_extra": ["no-such-directive on"]}
    )
    output = plain_output(outcome)
    assert outcome.rc != 0
    assert "haproxy -c refused the new configuration" in output
    assert "no-such-directive" in output
    assert host.file(CONFIG).sha256sum == before
    assert alternates(served_by(4))


@pytest.mark.parametrize(
    ("extra_vars", "variable"),
    [
        ({"haproxy_https_port": 70000}, "haproxy_https_port"),
        ({"haproxy_http_port": "eighty"}, "haproxy_http_port"),
        ({"haproxy_balance": "fastest"}, "haproxy_balance"),
        ({"haproxy_backend_servers": []}, "haproxy_backend_servers"),
    ],
    ids=["port-out-of-range", "port-not-a-number", "unknown-balance", "no-backend"],
)
def test_a_wrong_variable_stops_the_play_before_any_change(
    host: Host, lb_playbook: str, extra_vars: dict[str, object], variable: str
) -> None:
    before = host.file(CONFIG).sha256sum
    outcome = ansible_playbook(lb_playbook, extra_vars=extra_vars)
    output = plain_output(outcome)
    assert outcome.rc != 0
    assert variable in output
    recap = output.split("PLAY RECAP")[-1]
    assert re.search(r"webinfra-haproxy-lb : ok=\d+ changed=0 ", recap), recap
    assert host.file(CONFIG).sha256sum == before
