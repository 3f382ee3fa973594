"""nginx in front of the gunicorn demo application, as a user sees it.

web-01 runs nginx + gunicorn_app, db-01 a MariaDB, lb-01 stands for a load
balancer (a host of the loadbalancers group, trusted for X-Forwarded-For).
Requests come from the controller (an untrusted client) or from lb-01.
"""

from __future__ import annotations

import gzip
import json
import os
import time
import uuid

import requests
from testinfra.host import Host
from webinfra_load import PatientBackgroundBurst
from webinfra_testlib import ansible_playbook, docker, wait_for

testinfra_hosts = ["webinfra-nginx-web-01"]

WEB = "webinfra-nginx-web-01"
DB = "webinfra-nginx-db-01"
LB = "webinfra-nginx-lb-01"
URL = "http://172.30.3.10"
NGINX_ONLY = os.path.join(os.environ.get("MOLECULE_SCENARIO_DIRECTORY", ""), "nginx_only.yml")


def get(path: str, **kwargs: object) -> requests.Response:
    return requests.get(URL + path, timeout=10, **kwargs)  # type: ignore[arg-type]


def conf_checksum(host: Host) -> str:
    return str(host.run("sha256sum /etc/nginx/nginx.conf").stdout.split()[0])


def test_root_names_the_serving_host() -> None:
    response = get("/")
    assert response.status_code == 200
    assert response.headers["X-Served-By"] == WEB
    assert f"Hello from {WEB}" in response.text


def test_every_response_has_served_by_and_security_headers() -> None:
    for path in ["/", "/healthz", "/static/missing.css", "/no/such/page"]:
        response = get(path)
        assert response.headers.get("X-Served-By") == WEB, path
        assert response.headers.get("X-Content-Type-Options") == "nosniff", path
        assert response.headers.get("X-Frame-Options") == "SAMEORIGIN", path
        assert response.headers.get("Server") == "nginx", f"{path}: version leaks"


def test_text_responses_are_compressed() -> None:
    response = requests.get(
        URL + "/healthz", headers={"Accept-Encoding": "gzip"}, timeout=10, stream=True
    )
    assert response.headers.get("Content-Encoding") == "gzip"
    body = json.loads(gzip.decompress(response.raw.read()))
    assert body["app"]["host"] == WEB


def test_nginx_serves_static_files_itself(host: Host) -> None:
    token = uuid.uuid4().hex
    path = f"/var/www/webinfra/static/probe-{token}.txt"
    host.run(f"echo {token} > {path}")
    try:
        response = get(f"/static/probe-{token}.txt")
        assert response.status_code == 200
        assert response.text.strip() == token
        assert "max-age=3600" in response.headers.get("Cache-Control", "")
    finally:
        host.run(f"rm -f {path}")


def test_a_missing_static_file_gets_the_custom_error_page() -> None:
    response = get("/static/missing.css")
    assert response.status_code == 404
    assert "could not answer this request" in response.text
    assert WEB in response.text


def test_stub_status_answers_on_loopback_only(host: Host) -> None:
    local = host.run("curl -s http://127.0.0.1:8080/stub_status")
    assert "Active connections" in local.stdout
    try:
        requests.get("http://172.30.3.10:8080/stub_status", timeout=3)
    except requests.ConnectionError:
        pass
    else:
        raise AssertionError("stub_status answers on the network address")
    assert "Active connections" not in get("/stub_status").text


def _last_access_log_client(host: Host, marker: str) -> str:
    def find() -> str:
        out = host.run(f"grep -F '{marker}' /var/log/nginx/access.log | tail -n 1").stdout
        return out.split(" ", 1)[0] if out else ""

    return wait_for(find, timeout=10)


def test_client_address_from_x_forwarded_for_only_via_load_balancers(host: Host) -> None:
    trusted = f"/?trusted-{uuid.uuid4().hex}"
    done = docker(
        "exec", LB, "curl", "-s", "-o", "/dev/null", "-H", "X-Forwarded-For: 203.0.113.7",
        f"{URL}{trusted}",
    )  # fmt: skip
    assert done.returncode == 0
    assert _last_access_log_client(host, trusted) == "203.0.113.7"

    spoofed = f"/?spoofed-{uuid.uuid4().hex}"
    get(spoofed, headers={"X-Forwarded-For": "203.0.113.9"})
    assert _last_access_log_client(host, spoofed) != "203.0.113.9"


def test_a_note_posted_can_be_read_back() -> None:
    text = f"note {uuid.uuid4().hex}"
    posted = requests.post(URL + "/api/notes", json={"text": text}, timeout=10)
    assert posted.status_code == 201, posted.text
    assert posted.json()["written_to"].startswith("primary 172.30.3.20")
    listed = get("/api/notes")
    assert listed.status_code == 200
    body = listed.json()
    assert text in [note["text"] for note in body["notes"]]
    # The configured replica does not answer: the read fell back to the primary.
    assert body["read_from"].startswith("primary 172.30.3.20")


def test_healthz_follows_the_database() -> None:
    assert get("/healthz").status_code == 200
    docker("exec", DB, "systemctl", "stop", "mariadb")
    try:
        down = wait_for(lambda: get("/healthz"), timeout=20, accept=lambda r: r.status_code == 503)
        assert down.json()["database"]["primary"]["status"] == "unreachable"
        assert down.headers["X-Served-By"] == WEB
    finally:
        docker("exec", DB, "systemctl", "start", "mariadb")
    up = wait_for(lambda: get("/healthz"), timeout=30, accept=lambda r: r.status_code == 200)
    assert up.json()["database"]["primary"]["status"] == "ok"


def _main_pid(host: Host, unit: str) -> str:
    return str(host.run(f"systemctl show -p MainPID --value {unit}").stdout.strip())


def test_gunicorn_reloads_under_load_fail_no_request(host: Host) -> None:
    master = _main_pid(host, "webapp")
    with PatientBackgroundBurst(URL + "/", count=400, duration=60) as load:
        for _ in range(3):
            assert host.run("systemctl reload webapp").rc == 0
            time.sleep(1.5)
    assert _main_pid(host, "webapp") == master, "a reload must not restart the master"
    assert load.result.sent >= 20
    assert load.result.failed == 0, load.result.errors
    assert load.result.served_by == {WEB: load.result.sent}


def test_a_gunicorn_restart_loses_no_connection(host: Host) -> None:
    # systemd keeps the socket open while the service restarts: requests
    # wait in its backlog (patiently, like a browser) instead of failing.
    master = _main_pid(host, "webapp")
    with PatientBackgroundBurst(URL + "/", count=400, duration=60) as load:
        assert host.run("systemctl restart webapp").rc == 0
        time.sleep(1)
    assert _main_pid(host, "webapp") != master, "the restart did not happen"
    assert load.result.failed == 0, load.result.errors
    assert load.result.sent >= 10


def test_nginx_reloads_under_load_fail_no_request(host: Host) -> None:
    # A connection of its own per request: a reload closes idle keep-alive
    # connections, and a client reusing one may send its request as it
    # closes (the race every HTTP/1.1 client retries, HAProxy included, see
    # webinfra_load.burst). Across the reload the listener, the requests in
    # flight and every new connection must be served.
    with PatientBackgroundBurst(URL + "/", count=400, duration=60, keep_alive=False) as load:
        for _ in range(3):
            assert host.run("systemctl reload nginx").rc == 0
            time.sleep(1)
    assert load.result.sent >= 20
    assert load.result.failed == 0, load.result.errors


def test_a_broken_directive_fails_the_play_and_the_old_config_keeps_serving(host: Host) -> None:
    before = conf_checksum(host)
    outcome = ansible_playbook(
        NGINX_ONLY, {"nginx_extra_http_directives": ["this_is_not_a_directive on;"]}
    )
    output = outcome.stdout + outcome.stderr
    assert outcome.rc != 0
    assert "nginx -t refused the generated configuration" in output
    assert 'unknown directive "this_is_not_a_directive"' in output
    assert conf_checksum(host) == before
    assert host.run("nginx -t").rc == 0
    response = get("/")
    assert response.status_code == 200
    assert response.headers["X-Served-By"] == WEB


def test_a_wrong_port_stops_the_play_before_any_change(host: Host) -> None:
    before = conf_checksum(host)
    outcome = ansible_playbook(NGINX_ONLY, {"nginx_listen_port": 70000})
    output = outcome.stdout + outcome.stderr
    assert outcome.rc != 0
    assert "nginx_listen_port" in output
    assert "changed=0" in output
    assert conf_checksum(host) == before
    assert get("/").status_code == 200


def test_a_vhost_with_an_unknown_key_is_refused(host: Host) -> None:
    before = conf_checksum(host)
    outcome = ansible_playbook(
        NGINX_ONLY, {"nginx_vhosts": [{"name": "shop", "listen_prot": 8081}]}
    )
    output = outcome.stdout + outcome.stderr
    assert outcome.rc != 0
    assert "nginx_vhosts item 'shop' is invalid" in output
    assert conf_checksum(host) == before


def test_published_firewall_rules_admit_only_the_load_balancers() -> None:
    ephemeral = os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]
    with open(os.path.join(ephemeral, f"firewall_rules_{WEB}.json"), encoding="utf-8") as handle:
        rules = json.load(handle)
    assert rules["nginx"] == [
        {"port": 80, "proto": "tcp", "from": ["172.30.3.30"], "comment": "nginx"}
    ]
    # gunicorn listens on a unix socket: nothing to open.
    assert rules["gunicorn_app"] == []
