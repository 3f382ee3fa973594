"""Pure helpers of the certbot scenario's tests."""

from __future__ import annotations

from webinfra_tls import hsts_max_age, pem_blocks

CERT_A = "-----BEGIN CERTIFICATE-----\nQUFB\nQkJC\n-----END CERTIFICATE-----"
CERT_B = "-----BEGIN CERTIFICATE-----\nQ0ND\n-----END CERTIFICATE-----"
KEY = "-----BEGIN EC PRIVATE KEY-----\nS0VZ\n-----END EC PRIVATE KEY-----"


def test_pem_blocks_finds_certificates_in_order() -> None:
    bundle = f"{CERT_A}\n{KEY}\n{CERT_B}\n"
    assert pem_blocks(bundle) == [CERT_A + "\n", CERT_B + "\n"]


def test_pem_blocks_of_another_kind() -> None:
    assert pem_blocks(f"{CERT_A}\n{KEY}\n", "EC PRIVATE KEY") == [KEY + "\n"]


def test_pem_blocks_none() -> None:
    assert pem_blocks("no pem here") == []


def test_hsts_max_age_parses_directives() -> None:
    assert hsts_max_age("max-age=63072000") == 63072000
    assert hsts_max_age("includeSubDomains; max-age=300; preload") == 300
    assert hsts_max_age('max-age="10"') == 10


def test_hsts_max_age_absent_or_malformed() -> None:
    assert hsts_max_age(None) is None
    assert hsts_max_age("") is None
    assert hsts_max_age("includeSubDomains") is None
    assert hsts_max_age("max-age=soon") is None
