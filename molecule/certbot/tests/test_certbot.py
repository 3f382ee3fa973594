"""certbot on the keepalived pair, against a real ACME CA (pebble).

The tests run in file order and share the containers: the certificate
obtained by converge is checked on both load balancers and through the
virtual IP, then renewed by Debian's certbot.service under load, then
scanned with sslyze. Each test leaves both load balancers running with
keepalived up.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from webinfra_load import BackgroundBurst
from webinfra_testlib import ansible_playbook, docker, play_recap, wait_for
from webinfra_tls import (
    ServedCertificate,
    fetch_pebble_root,
    hsts_max_age,
    https_get,
    pem_blocks,
    served_certificate,
    sslyze_compliant,
    sslyze_mozilla_intermediate,
)

NETWORK = "webinfra-certbot"
ACME = "webinfra-certbot-acme"
ACME_IP = "172.30.7.10"
LB1 = "webinfra-certbot-lb1"
LB2 = "webinfra-certbot-lb2"
LB_IPS = {LB1: "172.30.7.11", LB2: "172.30.7.12"}
LBS = [LB1, LB2]
VIP = "172.30.7.100"
DOMAINS = ["www.webinfra.test", "webinfra.test"]
CERT_NAME = DOMAINS[0]
HAPROXY_PEM = f"/etc/haproxy/certs/{CERT_NAME}.pem"
RENEWAL_CONF = f"/etc/letsencrypt/renewal/{CERT_NAME}.conf"
CERTBOT_ONLY = str(Path(__file__).resolve().parents[1] / "certbot_only.yml")


def acme_server_ca() -> str:
    """The CA of pebble's own TLS certificate, written by lab_acme.yml."""
    return os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "acme-ca.pem")


@pytest.fixture(scope="module")
def pebble_root(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Pebble's issuing root, fetched now: pebble makes a new one at each start."""
    dest = tmp_path_factory.mktemp("pebble") / "root.pem"
    return fetch_pebble_root(ACME_IP, acme_server_ca(), str(dest))


def holds_vip(container: str) -> bool:
    out = docker("exec", container, "ip", "-o", "-4", "addr", "show", check=False).stdout
    return any(f" {VIP}/" in line for line in out.splitlines())


def single_holder() -> str:
    found = wait_for(
        lambda: [lb for lb in LBS if holds_vip(lb)], timeout=30, accept=lambda hs: len(hs) == 1
    )
    return found[0]


def other(lb: str) -> str:
    return LB2 if lb == LB1 else LB1


@pytest.fixture()
def keepalived_running() -> Iterator[None]:
    yield
    for lb in LBS:
        docker("exec", lb, "systemctl", "start", "keepalived", check=False)
    single_holder()


def certs_of(address: str, root: str) -> list[ServedCertificate]:
    return [served_certificate(address, name, root) for name in DOMAINS]


def test_both_load_balancers_serve_the_issued_certificate(pebble_root: str) -> None:
    for lb in LBS:
        served = certs_of(LB_IPS[lb], pebble_root)
        # Valid for every name under pebble's root (verified by the helper),
        # the same certificate for both names.
        assert {cert.serial for cert in served} == {served[0].serial}
        assert sorted(served[0].subject_alt_names) == sorted(DOMAINS)
        assert "Pebble" in served[0].issuer


def test_each_load_balancer_has_its_own_lineage_renewed_by_the_timer() -> None:
    for lb in LBS:
        assert docker("exec", lb, "test", "-f", RENEWAL_CONF, check=False).returncode == 0
        timer = docker("exec", lb, "systemctl", "is-active", "certbot.timer", check=False)
        assert timer.stdout.strip() == "active"
        env = docker("exec", lb, "systemctl", "show", "-p", "Environment", "certbot.service")
        assert "REQUESTS_CA_BUNDLE=/etc/letsencrypt/webinfra-acme-ca.pem" in env.stdout


def test_haproxy_pem_is_private_and_replaced_the_self_signed_one() -> None:
    for lb in LBS:
        stat = docker("exec", lb, "stat", "-c", "%a %U %G", HAPROXY_PEM).stdout.split()
        assert stat == ["600", "root", "root"]
        listing = docker("exec", lb, "ls", "/etc/haproxy/certs").stdout.split()
        assert listing == [f"{CERT_NAME}.pem"]
        pem = docker("exec", lb, "cat", HAPROXY_PEM).stdout
        assert len(pem_blocks(pem)) >= 2  # leaf and intermediate (full chain)
        assert len(pem_blocks(pem, "PRIVATE KEY")) + len(pem_blocks(pem, "EC PRIVATE KEY")) == 1


def test_https_through_the_vip_has_hsts(pebble_root: str) -> None:
    answer = https_get(VIP, DOMAINS[0], pebble_root)
    assert answer.status == 200
    max_age = hsts_max_age(answer.headers.get("strict-transport-security"))
    assert max_age is not None and max_age >= 63072000


def test_http_answers_301_to_https() -> None:
    answer = requests.get(
        f"http://{VIP}/some/page?x=1",
        headers={"Host": DOMAINS[0]},
        allow_redirects=False,
        timeout=5,
        verify=False,
    )
    assert answer.status_code == 301
    assert answer.headers["Location"] == f"https://{DOMAINS[0]}/some/page?x=1"


def test_the_other_load_balancer_serves_a_valid_certificate_when_it_holds_the_vip(
    pebble_root: str, keepalived_running: None
) -> None:
    first = single_holder()
    through_first = https_get(VIP, DOMAINS[0], pebble_root)
    assert through_first.body.decode().strip() == first
    docker("exec", first, "systemctl", "stop", "keepalived")
    second = wait_for(single_holder, timeout=30, accept=lambda lb: lb != first)
    assert second == other(first)
    for name in DOMAINS:
        answer = https_get(VIP, name, pebble_root)
        assert answer.status == 200
        assert answer.body.decode().strip() == second


def renew_by_certbot_service(lb: str) -> None:
    """Run Debian's certbot.service (what the timer starts), with the
    certificate made due for renewal, and put the renewal window back."""
    docker("exec", lb, "sed", "-i", "1i renew_before_expiry = 3650 days", RENEWAL_CONF)
    try:
        docker("exec", lb, "systemctl", "start", "certbot.service", timeout=180)
    finally:
        docker("exec", lb, "sed", "-i", "/^renew_before_expiry = 3650 days$/d", RENEWAL_CONF)


def is_renewed(old: ServedCertificate, new: ServedCertificate) -> bool:
    return new.serial != old.serial


def test_renewal_by_the_timer_service_changes_the_served_serial_hitlessly(
    pebble_root: str,
) -> None:
    before = {lb: served_certificate(LB_IPS[lb], DOMAINS[0], pebble_root) for lb in LBS}
    for lb in LBS:
        with BackgroundBurst(f"https://{LB_IPS[lb]}/", count=2000, duration=90) as load:
            renew_by_certbot_service(lb)
        assert load.result.sent > 20
        assert load.result.failed == 0, load.result.errors
        # The reload's new workers take over within moments.
        after = wait_for(
            functools.partial(served_certificate, LB_IPS[lb], DOMAINS[0], pebble_root),
            timeout=15,
            accept=functools.partial(is_renewed, before[lb]),
        )
        assert sorted(after.subject_alt_names) == sorted(DOMAINS)
    # Both load balancers have their new certificate, whichever holds the VIP.
    for lb in LBS:
        assert served_certificate(LB_IPS[lb], DOMAINS[1], pebble_root).serial != before[lb].serial


def test_sslyze_mozilla_intermediate_passes(pebble_root: str) -> None:
    outcome = sslyze_mozilla_intermediate(DOMAINS[0], VIP, pebble_root)
    assert sslyze_compliant(outcome, DOMAINS[0]), outcome.stdout + outcome.stderr


def test_first_deploy_without_dns_keeps_the_self_signed_fallback_and_goes_on(
    pebble_root: str,
) -> None:
    # This name resolves to a host that is not a load balancer (nothing
    # listens on its port 80): HTTP-01 cannot succeed, as when DNS does not
    # point at the load balancers yet.
    name = "notyet.webinfra.test"
    requests.post(
        f"http://{ACME_IP}:8055/add-a",
        json={"host": name, "addresses": [ACME_IP]},
        timeout=5,
    ).raise_for_status()
    before = {lb: served_certificate(LB_IPS[lb], DOMAINS[0], pebble_root) for lb in LBS}
    run = ansible_playbook(CERTBOT_ONLY, {"certbot_domains": [name]})
    assert run.rc == 0, run.stdout + run.stderr
    assert "keeps serving its self-signed certificate" in run.stdout
    for lb in LBS:
        assert f"{name}.conf" not in tls_files(lb)
        assert served_certificate(LB_IPS[lb], DOMAINS[0], pebble_root).serial == before[lb].serial


def tls_files(lb: str) -> str:
    """Listing (names, sizes, times) of certbot's and HAProxy's files."""
    command = "ls -lR --time-style=full-iso /etc/letsencrypt /etc/haproxy"
    return docker("exec", lb, "sh", "-c", command).stdout


@pytest.mark.parametrize(
    ("extra_vars", "named"),
    [
        ({"certbot_enabled": True, "certbot_domains": []}, "certbot_domains"),
        (
            {"certbot_acme_directory_url": "acme.example.org/directory"},
            "certbot_acme_directory_url",
        ),
        ({"certbot_eab_kid": "kid-1"}, "certbot_eab_hmac_key"),
    ],
)
def test_wrong_variables_stop_the_play_before_any_change(
    extra_vars: dict[str, object], named: str
) -> None:
    before = {lb: tls_files(lb) for lb in LBS}
    run = ansible_playbook(CERTBOT_ONLY, extra_vars)
    assert run.rc != 0
    assert named in run.stdout + run.stderr, run.stdout + run.stderr
    recap = play_recap(run.stdout)
    for lb in LBS:
        assert recap[lb]["failed"] >= 1
        assert recap[lb]["changed"] == 0
        assert tls_files(lb) == before[lb]
