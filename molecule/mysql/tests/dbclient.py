"""A tiny MySQL client run INSIDE a scenario container (python3 + pymysql).

The tests pipe this file into `python3 -` on the web server container, so
the connection comes from the address the grants name. One JSON argument
in, one JSON document out:

    {"action": "query", "host": ..., "user": ..., "sql": [...]}
        -> {"ok": true, "rows": [...]} or {"ok": false, "code": 1045, "error": "..."}
    {"action": "replicate", "primary": ..., "replicas": [...], "user": ...,
     "table": "app.probe", "timeout": 1.0}
        -> {"ok": true, "seen_after": {"replica": seconds or null}}
    {"action": "stream", "primary": ..., "user": ..., "table": ..., "duration": 5,
     "tag": "run1", "interval": 0.1, "stop_file": "/tmp/stop-run1"}
        -> {"ok": true, "acked": ["run1-0", ...], "error": "..." or null,
            "latency_ms": {"p50": ..., "p99": ..., "max": ...}}
    (interval and stop_file are optional: the pause between two writes, and
    a file whose appearance ends the stream before its duration)

Every connection uses TLS and verifies the server's certificate and name
against the CA the tests copy to CA_FILE, as the demo application does; a
query request with "tls": false connects in plain text instead.

The password comes from the environment (DB_PASSWORD), never from argv.
"""

from __future__ import annotations

import json
import os
import sys
import time
import uuid
from typing import Any

import pymysql

CA_FILE = "/usr/local/share/webinfra-tests/db-ca.crt"


def _connect(host: str, user: str, tls: bool = True) -> Any:
    verified = {"ssl_ca": CA_FILE, "ssl_verify_cert": True, "ssl_verify_identity": True}
    return pymysql.connect(
        host=host,
        user=user,
        password=os.environ["DB_PASSWORD"],
        connect_timeout=5,
        read_timeout=10,
        write_timeout=10,
        autocommit=True,
        **(verified if tls else {}),
    )


def query(host: str, user: str, statements: list[str], tls: bool = True) -> dict[str, Any]:
    try:
        conn = _connect(host, user, tls)
        rows: list[Any] = []
        with conn.cursor() as cur:
            for sql in statements:
                cur.execute(sql)
                rows = [list(r) for r in cur.fetchall()]
        conn.close()
    except pymysql.MySQLError as exc:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else -1
        return {"ok": False, "code": code, "error": str(exc)}
    return {"ok": True, "rows": json.loads(json.dumps(rows, default=str))}


def replicate(
    primary: str, replicas: list[str], user: str, table: str, timeout: float
) -> dict[str, Any]:
    """Insert one token on the primary; time until each replica returns it."""
    readers = {name: _connect(name, user) for name in replicas}
    writer = _connect(primary, user)
    token = uuid.uuid4().hex
    with writer.cursor() as cur:
        cur.execute(f"INSERT INTO {table} (token) VALUES (%s)", (token,))
    start = time.monotonic()
    seen: dict[str, float | None] = {name: None for name in replicas}
    while time.monotonic() - start < timeout and None in seen.values():
        for name, conn in readers.items():
            if seen[name] is not None:
                continue
            with conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {table} WHERE token = %s", (token,))
                row = cur.fetchone()
                if row is not None and int(row[0]) == 1:
                    seen[name] = round(time.monotonic() - start, 4)
        time.sleep(0.01)
    return {"ok": True, "token": token, "seen_after": seen}


def stream(
    primary: str,
    user: str,
    table: str,
    duration: float,
    tag: str,
    interval: float = 0.0,
    stop_file: str = "",
) -> dict[str, Any]:
    """Insert rows one by one, `interval` seconds apart, until `duration`
    passes, `stop_file` exists or the primary fails.

    Returns the tokens whose commit the primary acknowledged.
    """
    acked: list[str] = []
    took: list[float] = []
    error = None
    conn = _connect(primary, user)
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline and not (stop_file and os.path.exists(stop_file)):
        token = f"{tag}-{len(acked)}"
        start = time.monotonic()
        try:
            with conn.cursor() as cur:
                cur.execute(f"INSERT INTO {table} (token) VALUES (%s)", (token,))
        except pymysql.MySQLError as exc:
            error = str(exc)
            break
        took.append(time.monotonic() - start)
        acked.append(token)
        time.sleep(interval)
    took.sort()
    latency_ms = (
        {
            name: round(took[min(len(took) - 1, int(q * len(took)))] * 1000, 1)
            for name, q in (("p50", 0.5), ("p99", 0.99), ("max", 1.0))
        }
        if took
        else {}
    )
    return {"ok": True, "acked": acked, "error": error, "latency_ms": latency_ms}


def main(argv: list[str]) -> int:
    request: dict[str, Any] = json.loads(argv[1])
    if request["action"] == "query":
        result = query(
            request["host"], request["user"], list(request["sql"]), bool(request.get("tls", True))
        )
    elif request["action"] == "replicate":
        result = replicate(
            request["primary"],
            list(request["replicas"]),
            request["user"],
            request["table"],
            float(request["timeout"]),
        )
    elif request["action"] == "stream":
        result = stream(
            request["primary"],
            request["user"],
            request["table"],
            float(request["duration"]),
            request["tag"],
            float(request.get("interval", 0.0)),
            str(request.get("stop_file", "")),
        )
    else:
        result = {"ok": False, "code": -1, "error": f"unknown action {request['action']}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
