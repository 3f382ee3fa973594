"""Open-loop, fixed-rate HTTP(S) probe for `make bench` failure timelines.

Standard library only: tools/bench.py copies this file into the bench's
client container (Debian's python3) and runs it there. Every `1/rate`
seconds it starts one request on a new connection, whatever the earlier
requests are doing (open loop, so a stall shows as latency instead of
silently lowering the rate), and prints one JSON line per request:
{"t": start (epoch s), "ms": latency, "status": HTTP status or 0, "error": text}.

    python3 bench_probe.py [--post TAG] URL RATE DURATION [TIMEOUT]

With --post, request number N is a POST of the JSON {"text": "TAG-N"} (a
note for the demo app's /api/notes: each one unique, so the bench can read
back which acknowledged writes the database kept), and its line also
carries "text".
"""

from __future__ import annotations

import argparse
import http.client
import json
import ssl
import sys
import threading
import time
from urllib.parse import urlsplit


def one_request(url: str, timeout: float, body: bytes | None = None) -> tuple[int, str]:
    """(status, error) of one GET (POST of JSON `body`) on a fresh connection.

    The status is 0 when no HTTP answer came (connection refused, time-out).
    """
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
        if body is None:
            conn.request("GET", parts.path or "/")
        else:
            headers = {"Content-Type": "application/json"}
            conn.request("POST", parts.path or "/", body=body, headers=headers)
        response = conn.getresponse()
        response.read()
        return response.status, ""
    except (OSError, http.client.HTTPException) as exc:
        return 0, f"{type(exc).__name__}: {exc}"[:200]
    finally:
        conn.close()


def note_body(tag: str, index: int) -> tuple[str, bytes]:
    """The unique text of write number `index` and its JSON request body."""
    text = f"{tag}-{index}"
    return text, json.dumps({"text": text}).encode()


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(usage=__doc__)
    parser.add_argument("--post", metavar="TAG", help="POST unique notes TAG-0, TAG-1, ...")
    parser.add_argument("url")
    parser.add_argument("rate", type=float)
    parser.add_argument("duration", type=float)
    parser.add_argument("timeout", type=float, nargs="?", default=5.0)
    return parser.parse_args(argv[1:])


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    url, rate, duration, timeout = args.url, args.rate, args.duration, args.timeout
    lock = threading.Lock()

    def worker(index: int) -> None:
        record: dict[str, object] = {}
        body = None
        if args.post is not None:
            text, body = note_body(args.post, index)
            record["text"] = text
        started = time.time()
        t0 = time.monotonic()
        status, error = one_request(url, timeout, body)
        record.update(
            {
                "t": round(started, 4),
                "ms": round((time.monotonic() - t0) * 1000, 3),
                "status": status,
                "error": error,
            }
        )
        line = json.dumps(record)
        with lock:
            print(line, flush=True)

    threads: list[threading.Thread] = []
    begin = time.monotonic()
    count = int(rate * duration)
    for index in range(count):
        delay = begin + index / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        thread = threading.Thread(target=worker, args=(index,), daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
