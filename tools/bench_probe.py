"""Open-loop, fixed-rate HTTP(S) probe for `make bench` failure timelines.

Standard library only: tools/bench.py copies this file into the bench's
client container (Debian's python3) and runs it there. Every `1/rate`
seconds it starts one request on a new connection, whatever the earlier
requests are doing (open loop, so a stall shows as latency instead of
silently lowering the rate), and prints one JSON line per request:
{"t": start (epoch s), "ms": latency, "status": HTTP status or 0, "error": text}.

    python3 bench_probe.py URL RATE DURATION [TIMEOUT]
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit


def one_request(url: str, timeout: float) -> tuple[int, str]:
    """(status, error) of one GET on a fresh connection; status 0 on error."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the lab's certificate: -k semantics
        conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        response = conn.getresponse()
        response.read()
        return response.status, ""
    except (OSError, http.client.HTTPException) as exc:
        return 0, f"{type(exc).__name__}: {exc}"[:200]
    finally:
        conn.close()


def main(argv: list[str]) -> int:
    if len(argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    url, rate, duration = argv[1], float(argv[2]), float(argv[3])
    timeout = float(argv[4]) if len(argv) == 5 else 5.0
    lock = threading.Lock()

    def worker() -> None:
        started = time.time()
        t0 = time.monotonic()
        status, error = one_request(url, timeout)
        line = json.dumps(
            {
                "t": round(started, 4),
                "ms": round((time.monotonic() - t0) * 1000, 3),
                "status": status,
                "error": error,
            }
        )
        with lock:
            print(line, flush=True)

    threads: list[threading.Thread] = []
    begin = time.monotonic()
    count = int(rate * duration)
    for index in range(count):
        delay = begin + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=worker, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
