"""Database access behind a small protocol, so tests inject a fake."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from .settings import DbEndpoint, Settings


class Cursor(Protocol):
    def execute(self, query: str, args: Sequence[Any] | None = None) -> Any: ...

    def fetchall(self) -> Sequence[Sequence[Any]]: ...

    def close(self) -> None: ...


class Connection(Protocol):
    def cursor(self) -> Cursor: ...

    def commit(self) -> None: ...

    def close(self) -> None: ...


ConnectFactory = Callable[[DbEndpoint, Settings], Connection]


class DatabaseUnavailable(Exception):
    """No connection could be made to a database server."""


def tls_arguments(settings: Settings) -> dict[str, Any]:
    """PyMySQL's TLS arguments: verified TLS when a CA is set, none otherwise."""
    if not settings.db_ssl_ca:
        return {}
    return {
        "ssl_ca": settings.db_ssl_ca,
        "ssl_verify_cert": True,
        "ssl_verify_identity": settings.db_ssl_verify_identity,
    }


def pymysql_connect(endpoint: DbEndpoint, settings: Settings) -> Connection:
    """Open a PyMySQL connection; raise DatabaseUnavailable when it fails."""
    import pymysql  # imported here: the unit tests run without a server

    try:
        conn: Connection = pymysql.connect(
            host=endpoint.host,
            port=endpoint.port,
            user=settings.db_user,
            password=settings.db_password,
            database=settings.db_name,
            connect_timeout=settings.connect_timeout,
            read_timeout=10,
            write_timeout=10,
            charset="utf8mb4",
            autocommit=False,
            **tls_arguments(settings),
        )
    except pymysql.err.MySQLError as exc:
        raise DatabaseUnavailable(f"{endpoint.label}: {exc}") from exc
    return conn


# MySQL errors that mean "this server does not take writes now", not "the
# request is wrong": read-only (a demoted primary: 1290, 1792), shutting
# down or killed (1053, 1927), and the connection lost mid-query (2006, 2013).
WRITE_REFUSED_ERRORS = frozenset({1053, 1290, 1792, 1927, 2006, 2013})


def is_write_refused(exc: BaseException) -> bool:
    """True for a MySQL error of WRITE_REFUSED_ERRORS (its first argument)."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return len(args) > 0 and args[0] in WRITE_REFUSED_ERRORS


def is_missing_table(exc: BaseException) -> bool:
    """True for MySQL error 1146 (table does not exist)."""
    args: tuple[Any, ...] = tuple(getattr(exc, "args", ()))
    return len(args) > 0 and args[0] == 1146
