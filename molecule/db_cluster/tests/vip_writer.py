"""Write notes through the write virtual IP; run INSIDE the client container.

    python3 - VIP TAG DURATION INTERVAL < vip_writer.py   (DB_PASSWORD in env)

Each attempt opens a new connection (as a web request would), over TLS with
the server's certificate and name (the VIP) verified against CA_FILE, as the
demo application connects; it inserts one row with autocommit and prints
one JSON line: {"t": unix time, "ok": bool, "text": ..., "server": server_id
or null, "cipher": TLS cipher, "error": ...}. Bounded by DURATION seconds;
every connection and statement times out after 1 s.
"""

from __future__ import annotations

import json
import os
import sys
import time

import pymysql

CA_FILE = "/usr/local/share/webinfra-tests/db-ca.crt"


def attempt(host: str, text: str) -> dict[str, object]:
    started = time.time()
    try:
        conn = pymysql.connect(
            host=host,
            user="app",
            password=os.environ["DB_PASSWORD"],
            database="app",
            connect_timeout=1,
            read_timeout=2,
            write_timeout=2,
            autocommit=True,
            ssl_ca=CA_FILE,
            ssl_verify_cert=True,
            ssl_verify_identity=True,
        )
        try:
            with conn.cursor() as cur:
                cur.execute("INSERT INTO notes (body) VALUES (%s)", (text,))
                cur.execute(
                    "SELECT @@server_id, VARIABLE_VALUE FROM information_schema.SESSION_STATUS"
                    " WHERE VARIABLE_NAME = 'SSL_CIPHER'"
                )
                row = cur.fetchone()
        finally:
            conn.close()
        server, cipher = (row[0], row[1]) if row else (None, None)
        return {"t": started, "ok": True, "text": text, "server": server, "cipher": cipher}
    except Exception as exc:
        return {"t": started, "ok": False, "text": text, "server": None, "error": str(exc)[:200]}


def main() -> None:
    host, tag, duration, interval = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
    deadline = time.time() + duration
    index = 0
    while time.time() < deadline:
        began = time.time()
        print(json.dumps(attempt(host, f"{tag}-{index}")), flush=True)
        index += 1
        time.sleep(max(0.0, interval - (time.time() - began)))


if __name__ == "__main__":
    main()
