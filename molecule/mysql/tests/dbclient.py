"""A tiny MySQL client run INSIDE a scenario container (python3 + pymysql).

The tests pipe this file into `python3 -` on the web server container, so
the connection comes from the address the grants name. One JSON argument
in, one JSON document out:

    {"action": "query", "host": ..., "user": ..., "sql": [...]}
        -> {"ok": true, "rows": [...]} or {"ok": false, "code": 1045, "error": "..."}
    {"action": "replicate", "primary": ..., "replicas": [...], "user": ...,
     "table": "app.probe", "timeout": 1.0}
        -> {"ok": true, "seen_after": {"replica": seconds or null}}

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


def _connect(host: str, user: str) -> Any:
    return pymysql.connect(
        host=host,
        user=user,
        password=os.environ["DB_PASSWORD"],
        connect_timeout=5,
        autocommit=True,
    )


def query(host: str, user: str, statements: list[str]) -> dict[str, Any]:
    try:
        conn = _connect(host, user)
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


def main(argv: list[str]) -> int:
    request: dict[str, Any] = json.loads(argv[1])
    if request["action"] == "query":
        result = query(request["host"], request["user"], list(request["sql"]))
    elif request["action"] == "replicate":
        result = replicate(
            request["primary"],
            list(request["replicas"]),
            request["user"],
            request["table"],
            float(request["timeout"]),
        )
    else:
        result = {"ok": False, "code": -1, "error": f"unknown action {request['action']}"}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
