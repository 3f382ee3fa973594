"""Flask application factory of the demo application."""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from flask import Flask, Response, jsonify, request

from .db import (
    ConnectFactory,
    Connection,
    DatabaseUnavailable,
    is_missing_table,
    is_write_refused,
    pymysql_connect,
)
from .settings import DbEndpoint, Settings, from_environ

MAX_NOTE_LENGTH = 1000
NOTES_LIMIT = 100
CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS notes ("
    " id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,"
    " body VARCHAR(1000) NOT NULL,"
    " served_by VARCHAR(255) NOT NULL,"
    " created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP"
    ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
)


@contextmanager
def _connection(
    connect: ConnectFactory, endpoint: DbEndpoint, settings: Settings
) -> Iterator[Connection]:
    conn = connect(endpoint, settings)
    try:
        yield conn
    finally:
        conn.close()


def replica_order(settings: Settings) -> list[DbEndpoint]:
    """Replicas in the order this host tries them.

    Each web server starts at a different replica (derived from its name),
    so reads spread over the replicas, and moves on when one does not answer.
    """
    replicas = list(settings.replicas)
    if not replicas:
        return []
    start = zlib.crc32(settings.hostname.encode()) % len(replicas)
    return replicas[start:] + replicas[:start]


def check_endpoint(
    connect: ConnectFactory, endpoint: DbEndpoint, settings: Settings
) -> dict[str, Any]:
    """State of one database server as reported by /healthz."""
    state: dict[str, Any] = {"address": endpoint.label, "role": endpoint.role}
    try:
        with _connection(connect, endpoint, settings) as conn:
            cur = conn.cursor()
            try:
                cur.execute("SELECT 1")
                cur.fetchall()
            finally:
                cur.close()
    except Exception as exc:
        state.update(status="unreachable", error=str(exc) or type(exc).__name__)
    else:
        state["status"] = "ok"
    return state


def _read_notes(conn: Connection) -> list[dict[str, Any]]:
    cur = conn.cursor()
    try:
        try:
            cur.execute(
                "SELECT id, body, served_by FROM notes ORDER BY id DESC LIMIT %s",
                (NOTES_LIMIT,),
            )
        except Exception as exc:
            if is_missing_table(exc):
                return []
            raise
        rows = cur.fetchall()
    finally:
        cur.close()
    return [{"id": int(r[0]), "text": str(r[1]), "served_by": str(r[2])} for r in rows]


def create_app(
    settings: Settings | None = None,
    connect: ConnectFactory | None = None,
    environ: Mapping[str, str] | None = None,
) -> Flask:
    """Build the application.

    settings default to the WEBINFRA_* environment variables; connect
    defaults to PyMySQL. Tests pass their own of both.
    """
    cfg = settings if settings is not None else from_environ(environ or os.environ)
    open_db: ConnectFactory = connect if connect is not None else pymysql_connect
    app = Flask(__name__)
    app.config["WEBINFRA_SETTINGS"] = cfg

    def error(status: int, message: str) -> tuple[Response, int]:
        return jsonify(error=message, served_by=cfg.hostname), status

    @app.get("/")
    def index() -> Response:
        version = f" (version {cfg.version})" if cfg.version else ""
        text = f"Hello from {cfg.hostname}{version}\n"
        return Response(text, mimetype="text/plain")

    @app.get("/livez")
    def livez() -> Response:
        """The worker serves: no database is asked (the load balancers' check).

        Every web server shares the same primary: a check that followed it
        would take them all out of rotation when it fails, and pages and
        reads from the replicas would go down with the writes.
        """
        return jsonify(status="ok", host=cfg.hostname, version=cfg.version)

    @app.get("/healthz")
    def healthz() -> tuple[Response, int]:
        database: dict[str, Any] = {"configured": cfg.database_configured}
        status, code = "ok", 200
        if cfg.primary is not None:
            primary = check_endpoint(open_db, cfg.primary, cfg)
            replicas = [check_endpoint(open_db, r, cfg) for r in cfg.replicas]
            database.update(primary=primary, replicas=replicas)
            if primary["status"] != "ok":
                status, code = "fail", 503
            elif any(r["status"] != "ok" for r in replicas):
                status = "degraded"
        body = {
            "status": status,
            "app": {"status": "ok", "host": cfg.hostname, "version": cfg.version},
            "database": database,
        }
        return jsonify(body), code

    @app.post("/api/notes")
    def add_note() -> tuple[Response, int]:
        if cfg.primary is None:
            return error(503, "no database is configured")
        payload = request.get_json(silent=True)
        text = payload.get("text") if isinstance(payload, dict) else None
        if not isinstance(text, str) or not text.strip():
            return error(400, 'send JSON like {"text": "a note"}')
        if len(text) > MAX_NOTE_LENGTH:
            return error(400, f"a note holds at most {MAX_NOTE_LENGTH} characters")
        try:
            with _connection(open_db, cfg.primary, cfg) as conn:
                cur = conn.cursor()
                try:
                    cur.execute(CREATE_TABLE)
                    cur.execute(
                        "INSERT INTO notes (body, served_by) VALUES (%s, %s)",
                        (text, cfg.hostname),
                    )
                    note_id = int(getattr(cur, "lastrowid", 0) or 0)
                finally:
                    cur.close()
                conn.commit()
        except DatabaseUnavailable as exc:
            return error(503, f"primary database unreachable: {exc}")
        except Exception as exc:
            # A primary demoted under the connection (quorum lost, a
            # switchover) refuses the write: the client may retry later.
            if not is_write_refused(exc):
                raise
            return error(503, f"primary database refused the write: {exc}")
        body = {
            "id": note_id,
            "text": text,
            "served_by": cfg.hostname,
            "written_to": f"primary {cfg.primary.label}",
        }
        return jsonify(body), 201

    @app.get("/api/notes")
    def list_notes() -> tuple[Response, int]:
        if cfg.primary is None:
            return error(503, "no database is configured")
        tried: list[str] = []
        for endpoint in [*replica_order(cfg), cfg.primary]:
            try:
                with _connection(open_db, endpoint, cfg) as conn:
                    notes = _read_notes(conn)
            except DatabaseUnavailable as exc:
                tried.append(str(exc))
                continue
            body = {
                "notes": notes,
                "read_from": f"{endpoint.role} {endpoint.label}",
                "served_by": cfg.hostname,
                "unavailable": tried,
            }
            return jsonify(body), 200
        return error(503, "no database answered: " + "; ".join(tried))

    return app
