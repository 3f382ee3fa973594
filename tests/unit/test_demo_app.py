"""The demo application (roles/gunicorn_app/files/webinfra_demo), without containers.

An in-process fake stands for MariaDB: each endpoint has its own table of
notes, and an endpoint can be marked down, so the tests see which server a
request wrote to or read from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask.testing import FlaskClient

from roles.gunicorn_app.files.webinfra_demo import DbEndpoint, Settings, create_app
from roles.gunicorn_app.files.webinfra_demo.app import replica_order
from roles.gunicorn_app.files.webinfra_demo.db import DatabaseUnavailable, tls_arguments
from roles.gunicorn_app.files.webinfra_demo.settings import (
    from_environ,
    parse_endpoint,
    parse_flag,
)


class ReadOnly(Exception):
    def __init__(self) -> None:
        super().__init__(1290, "The MariaDB server is running with the --read-only option")


class MissingTable(Exception):
    def __init__(self) -> None:
        super().__init__(1146, "Table 'webinfra.notes' doesn't exist")


@dataclass
class FakeServer:
    notes: list[tuple[int, str, str]] = field(default_factory=list)
    has_table: bool = False
    up: bool = True
    read_only: bool = False
    connections: int = 0
    commits: int = 0


class FakeCursor:
    def __init__(self, server: FakeServer, conn: FakeConnection) -> None:
        self._server = server
        self._conn = conn
        self._rows: list[tuple[Any, ...]] = []
        self.lastrowid = 0

    def execute(self, query: str, args: Sequence[Any] | None = None) -> int:
        q = " ".join(query.split()).upper()
        if q == "SELECT 1":
            self._rows = [(1,)]
        elif q.startswith("CREATE TABLE IF NOT EXISTS NOTES"):
            self._conn.pending_table = True
        elif q.startswith("INSERT INTO NOTES"):
            assert args is not None
            if self._server.read_only:
                raise ReadOnly()
            self._conn.pending.append((str(args[0]), str(args[1])))
            self.lastrowid = len(self._server.notes) + len(self._conn.pending)
        elif q.startswith("SELECT ID, BODY, SERVED_BY FROM NOTES"):
            if not self._server.has_table:
                raise MissingTable()
            limit = int(args[0]) if args else 100
            self._rows = list(reversed(self._server.notes))[:limit]
        else:  # pragma: no cover - a query the fake does not know is a test bug
            raise AssertionError(f"unexpected query {query!r}")
        return 0

    def fetchall(self) -> Sequence[Sequence[Any]]:
        return self._rows

    def close(self) -> None:
        pass


class FakeConnection:
    def __init__(self, server: FakeServer) -> None:
        self._server = server
        self.pending: list[tuple[str, str]] = []
        self.pending_table = False
        self.closed = False

    def cursor(self) -> FakeCursor:
        return FakeCursor(self._server, self)

    def commit(self) -> None:
        self._server.commits += 1
        if self.pending_table:
            self._server.has_table = True
        for body, host in self.pending:
            self._server.notes.append((len(self._server.notes) + 1, body, host))
        self.pending.clear()

    def close(self) -> None:
        self.closed = True


class FakeCluster:
    """The connect factory the app receives: one FakeServer per host."""

    def __init__(self, *hosts: str) -> None:
        self.servers = {h: FakeServer() for h in hosts}
        self.opened: list[FakeConnection] = []

    def __call__(self, endpoint: DbEndpoint, settings: Settings) -> FakeConnection:
        server = self.servers[endpoint.host]
        if not server.up:
            raise DatabaseUnavailable(f"{endpoint.label}: Can't connect (fake down)")
        server.connections += 1
        conn = FakeConnection(server)
        self.opened.append(conn)
        return conn

    def replicate(self, primary: str, replica: str) -> None:
        src, dst = self.servers[primary], self.servers[replica]
        dst.notes, dst.has_table = list(src.notes), src.has_table


def make_settings(replicas: Sequence[str] = ("db-02",), primary: str | None = "db-01") -> Settings:
    return Settings(
        hostname="web-01",
        version="1.2.3",
        primary=DbEndpoint(primary) if primary else None,
        replicas=tuple(DbEndpoint(r, role="replica") for r in replicas),
        db_password="secret",
    )


@pytest.fixture
def cluster() -> FakeCluster:
    return FakeCluster("db-01", "db-02", "db-03")


@pytest.fixture
def client(cluster: FakeCluster) -> FlaskClient:
    return create_app(make_settings(), cluster).test_client()


def test_index_names_the_serving_host_and_version(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Hello from web-01 (version 1.2.3)\n"


def test_livez_answers_without_asking_any_database(
    client: FlaskClient, cluster: FakeCluster
) -> None:
    for server in cluster.servers.values():
        server.up = False
    response = client.get("/livez")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "host": "web-01", "version": "1.2.3"}
    assert cluster.opened == []


def test_healthz_is_ok_when_every_database_answers(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["app"] == {"status": "ok", "host": "web-01", "version": "1.2.3"}
    assert body["database"]["primary"]["status"] == "ok"
    assert [r["status"] for r in body["database"]["replicas"]] == ["ok"]


def test_healthz_is_503_when_the_primary_is_unreachable(
    client: FlaskClient, cluster: FakeCluster
) -> None:
    cluster.servers["db-01"].up = False
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "fail"
    assert body["database"]["primary"]["status"] == "unreachable"
    assert "fake down" in body["database"]["primary"]["error"]


def test_healthz_reports_a_down_replica_as_degraded_but_serving(
    client: FlaskClient, cluster: FakeCluster
) -> None:
    cluster.servers["db-02"].up = False
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["status"] == "degraded"


def test_healthz_without_a_database_reports_it_unconfigured(cluster: FakeCluster) -> None:
    client = create_app(make_settings(replicas=(), primary=None), cluster).test_client()
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json()["database"] == {"configured": False}
    assert cluster.opened == []


def test_post_writes_to_the_primary_only(client: FlaskClient, cluster: FakeCluster) -> None:
    response = client.post("/api/notes", json={"text": "hello"})
    assert response.status_code == 201
    body = response.get_json()
    assert body["text"] == "hello"
    assert body["written_to"] == "primary db-01:3306"
    assert cluster.servers["db-01"].notes == [(1, "hello", "web-01")]
    assert cluster.servers["db-02"].notes == []
    assert all(c.closed for c in cluster.opened)


def test_get_reads_from_the_replica(client: FlaskClient, cluster: FakeCluster) -> None:
    client.post("/api/notes", json={"text": "first"})
    client.post("/api/notes", json={"text": "second"})
    cluster.replicate("db-01", "db-02")
    cluster.servers["db-01"].notes.append((3, "not replicated yet", "web-01"))
    response = client.get("/api/notes")
    assert response.status_code == 200
    body = response.get_json()
    assert body["read_from"] == "replica db-02:3306"
    assert [n["text"] for n in body["notes"]] == ["second", "first"]


def test_get_falls_back_to_the_primary_when_no_replica_answers(
    client: FlaskClient, cluster: FakeCluster
) -> None:
    client.post("/api/notes", json={"text": "kept"})
    cluster.servers["db-02"].up = False
    response = client.get("/api/notes")
    assert response.status_code == 200
    body = response.get_json()
    assert body["read_from"] == "primary db-01:3306"
    assert [n["text"] for n in body["notes"]] == ["kept"]
    assert len(body["unavailable"]) == 1


def test_get_tries_the_next_replica_before_the_primary(cluster: FakeCluster) -> None:
    settings = make_settings(replicas=("db-02", "db-03"))
    client = create_app(settings, cluster).test_client()
    first = replica_order(settings)[0].host
    other = "db-03" if first == "db-02" else "db-02"
    cluster.servers[first].up = False
    assert client.get("/api/notes").get_json()["read_from"] == f"replica {other}:3306"


def test_get_on_a_fresh_database_returns_no_notes(client: FlaskClient) -> None:
    response = client.get("/api/notes")
    assert response.status_code == 200
    assert response.get_json()["notes"] == []


def test_notes_answer_503_when_no_database_answers(
    client: FlaskClient, cluster: FakeCluster
) -> None:
    for server in cluster.servers.values():
        server.up = False
    assert client.get("/api/notes").status_code == 503
    post = client.post("/api/notes", json={"text": "lost"})
    assert post.status_code == 503
    assert "primary database unreachable" in post.get_json()["error"]


def test_a_write_refused_by_a_read_only_primary_answers_503_with_the_reason(
    client: FlaskClient, cluster: FakeCluster
) -> None:
    cluster.servers["db-01"].read_only = True
    post = client.post("/api/notes", json={"text": "refused"})
    assert post.status_code == 503
    assert "primary database refused the write" in post.get_json()["error"]
    assert "read-only" in post.get_json()["error"]
    assert cluster.servers["db-01"].notes == []


@pytest.mark.parametrize("payload", [None, {}, {"text": ""}, {"text": 5}, {"text": "x" * 1001}])
def test_post_refuses_a_bad_note(client: FlaskClient, cluster: FakeCluster, payload: Any) -> None:
    response = client.post("/api/notes", json=payload)
    assert response.status_code == 400
    assert cluster.servers["db-01"].notes == []


def test_notes_without_a_database_answer_503(cluster: FakeCluster) -> None:
    client = create_app(make_settings(replicas=(), primary=None), cluster).test_client()
    assert client.get("/api/notes").status_code == 503
    assert client.post("/api/notes", json={"text": "x"}).status_code == 503


def test_replica_order_spreads_hosts_but_keeps_every_replica() -> None:
    replicas = ("a", "b", "c")
    starts = set()
    for n in range(20):
        settings = Settings(hostname=f"web-{n:02}", replicas=tuple(DbEndpoint(r) for r in replicas))
        order = [e.host for e in replica_order(settings)]
        assert sorted(order) == list(replicas)
        starts.add(order[0])
    assert len(starts) > 1


def test_settings_from_the_environment() -> None:
    settings = from_environ(
        {
            "WEBINFRA_HOSTNAME": "web-02",
            "WEBINFRA_APP_VERSION": "2",
            "WEBINFRA_DB_PRIMARY": "10.0.0.5",
            "WEBINFRA_DB_REPLICAS": "10.0.0.6:3307, [fd00::7]:3308,",
            "WEBINFRA_DB_PORT": "3310",
            "WEBINFRA_DB_USER": "app",
            "WEBINFRA_DB_PASSWORD": "pw",
            "WEBINFRA_DB_NAME": "notes",
        }
    )
    assert settings.hostname == "web-02"
    assert settings.primary == DbEndpoint("10.0.0.5", 3310, "primary")
    assert settings.replicas == (
        DbEndpoint("10.0.0.6", 3307, "replica"),
        DbEndpoint("fd00::7", 3308, "replica"),
    )
    assert (settings.db_user, settings.db_password, settings.db_name) == ("app", "pw", "notes")
    assert "pw" not in repr(settings)


def test_settings_without_a_database() -> None:
    settings = from_environ({"WEBINFRA_HOSTNAME": "web-01"})
    assert settings.primary is None
    assert settings.replicas == ()
    assert not settings.database_configured
    assert tls_arguments(settings) == {}


def test_a_ca_gives_verified_tls_with_the_name_checked() -> None:
    settings = from_environ(
        {"WEBINFRA_DB_PRIMARY": "10.0.0.5", "WEBINFRA_DB_SSL_CA": "/etc/webapp/db-ca.crt"}
    )
    assert tls_arguments(settings) == {
        "ssl_ca": "/etc/webapp/db-ca.crt",
        "ssl_verify_cert": True,
        "ssl_verify_identity": True,
    }


def test_the_name_check_can_be_turned_off_but_not_the_certificate_check() -> None:
    settings = from_environ(
        {
            "WEBINFRA_DB_PRIMARY": "10.0.0.5",
            "WEBINFRA_DB_SSL_CA": "/etc/webapp/db-ca.crt",
            "WEBINFRA_DB_SSL_VERIFY_IDENTITY": "false",
        }
    )
    arguments = tls_arguments(settings)
    assert arguments["ssl_verify_cert"] is True
    assert arguments["ssl_verify_identity"] is False


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("Yes", True), ("on", True), ("0", False), ("FALSE", False), ("off", False)],
)
def test_parse_flag(value: str, expected: bool) -> None:
    assert parse_flag(value) is expected


def test_parse_flag_refuses_anything_else() -> None:
    with pytest.raises(ValueError):
        parse_flag("maybe")


@pytest.mark.parametrize("value", ["", "host:0", "host:70000", "host:abc"])
def test_parse_endpoint_refuses_bad_values(value: str) -> None:
    with pytest.raises(ValueError):
        parse_endpoint(value, "primary")
