"""Pure parts of the monitoring logins: the role's bcrypt helper
(roles/monitoring/files/bcrypt_hashes.py) and tests/lib/webinfra_monitoring.py."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from webinfra_monitoring import WebLogin, https_base_url, lookup_file_secret, read_secret

ROOT = Path(__file__).resolve().parents[2]


def _bcrypt_helper() -> ModuleType:
    path = ROOT / "roles" / "monitoring" / "files" / "bcrypt_hashes.py"
    spec = importlib.util.spec_from_file_location("bcrypt_hashes", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fake_matches(password: str, known: str) -> bool:
    return known == f"hash-of-{password}"


def test_a_hash_that_still_matches_is_kept() -> None:
    made: list[str] = []

    def new_hash(password: str) -> str:
        made.append(password)
        return f"hash-of-{password}"

    hashes = _bcrypt_helper().web_hashes(
        {"admin": "secret"}, {"admin": "hash-of-secret"}, _fake_matches, new_hash
    )
    assert hashes == {"admin": "hash-of-secret"}
    assert made == []


def test_a_changed_password_or_a_new_user_gets_a_new_hash() -> None:
    hashes = _bcrypt_helper().web_hashes(
        {"admin": "new-secret", "ops": "other"},
        {"admin": "hash-of-old-secret"},
        _fake_matches,
        lambda password: f"fresh-{password}",
    )
    assert hashes == {"admin": "fresh-new-secret", "ops": "fresh-other"}


def test_users_no_longer_configured_are_dropped() -> None:
    hashes = _bcrypt_helper().web_hashes(
        {"admin": "secret"},
        {"admin": "hash-of-secret", "gone": "hash-of-x"},
        _fake_matches,
        lambda password: f"fresh-{password}",
    )
    assert hashes == {"admin": "hash-of-secret"}


def test_https_base_url_brackets_ipv6() -> None:
    assert https_base_url("172.31.250.41", 9090) == "https://172.31.250.41:9090"
    assert https_base_url("fd00::41", 9093) == "https://[fd00::41]:9093"


def test_lookup_file_secret_reads_the_password_and_ignores_the_salt() -> None:
    assert lookup_file_secret("s3cretPassw0rd\n") == "s3cretPassw0rd"
    assert lookup_file_secret("s3cretPassw0rd salt=abcdef\n") == "s3cretPassw0rd"
    with pytest.raises(ValueError, match="empty"):
        lookup_file_secret("\n")


def test_read_secret_reads_the_lookup_file(tmp_path: Path) -> None:
    (tmp_path / "monitoring_prometheus").write_text("abc123XYZ\n", encoding="utf-8")
    assert read_secret(tmp_path, "monitoring_prometheus") == "abc123XYZ"


def test_web_login_sends_the_login_verifies_against_the_ca(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import requests

    calls: list[dict[str, object]] = []

    def fake_get(url: str, **kwargs: object) -> str:
        calls.append({"url": url, **kwargs})
        return "response"

    monkeypatch.setattr(requests, "get", fake_get)
    login = WebLogin("https://mon:9090", "admin", "pw", "/ca.crt")
    login.get("/api/v1/query", {"query": "up"})
    login.get("/api/v1/query", login=False)
    login.get("/api/v1/query", password="wrong")
    assert [c["auth"] for c in calls] == [("admin", "pw"), None, ("admin", "wrong")]
    assert {c["verify"] for c in calls} == {"/ca.crt"}
    assert calls[0]["url"] == "https://mon:9090/api/v1/query"
    assert calls[0]["params"] == {"query": "up"}
