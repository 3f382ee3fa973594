"""A demanding client of a virtual IP, for failover tests.

Several clients run at once inside a probe container; each opens a fresh
connection (and TLS session) for every GET and gives up after a short
timeout, as an impatient client or a health checker would. A failover that
refuses or drops connections for a moment shows up here even when a single
gentle client would not notice it (a lost SYN costs that client a whole
timeout, since the kernel only resends it after 1 s).

    proc = start_vip_probe("probe", "192.0.2.100", duration=6)
    ...  # break something
    requests = finish_vip_probe(proc)
    assert longest_gap(requests) < 1.0
"""

from __future__ import annotations

import itertools
import subprocess
from collections import Counter
from dataclasses import dataclass

# Runs inside a probe container (python3 of the base image, standard library
# only). Arguments: host port duration clients timeout [http|https]; https
# skips certificate checks. Prints one line per request:
# "<start> <end> <client> <1|0> <body, or the exception's class name>".
VIP_PROBE_SCRIPT = """
import http.client, ssl, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
duration, clients, timeout = float(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
https = len(sys.argv) <= 6 or sys.argv[6] == "https"
context = ssl._create_unverified_context()
end = time.time() + duration
lock = threading.Lock()
def client(number):
    while time.time() < end:
        start = time.time()
        try:
            if https:
                conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
            else:
                conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.request("GET", "/")
            resp = conn.getresponse()
            body = resp.read().decode().strip().replace(" ", "_") or "-"
            conn.close()
            ok = 1 if resp.status == 200 else 0
        except Exception as exc:
            ok, body = 0, type(exc).__name__
        with lock:
            print(f"{start:.6f} {time.time():.6f} {number} {ok} {body}", flush=True)
threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


@dataclass(frozen=True)
class VipRequest:
    """One request of one client: when it started and ended, and what it got."""

    start: float
    end: float
    client: int
    ok: bool
    detail: str  # the body of a 200, else the status body or the exception's class name


def parse_vip_requests(text: str) -> list[VipRequest]:
    """The probe's lines, sorted by end time; other lines are skipped."""
    requests: list[VipRequest] = []
    for line in text.splitlines():
        parts = line.split(" ", 4)
        if len(parts) != 5 or parts[3] not in ("0", "1"):
            continue
        try:
            start, end, client = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            continue
        requests.append(VipRequest(start, end, client, parts[3] == "1", parts[4]))
    return sorted(requests, key=lambda r: r.end)


def longest_gap(requests: list[VipRequest]) -> float:
    """Longest time in the run during which no client got a successful answer.

    Measured between the ends of successful requests (the moments a client
    had its answer), from the start of the first request to the end of the
    last: a run that never recovers counts to its end.
    """
    if not requests:
        raise ValueError("no requests")
    marks = [min(r.start for r in requests)]
    marks += sorted(r.end for r in requests if r.ok)
    marks.append(max(r.end for r in requests))
    return max(later - earlier for earlier, later in itertools.pairwise(marks))


def failures_by_kind(requests: list[VipRequest]) -> Counter[str]:
    """How many requests failed, by exception class name (or error body)."""
    return Counter(r.detail for r in requests if not r.ok)


def clients_seen(requests: list[VipRequest]) -> set[int]:
    return {r.client for r in requests}


def start_vip_probe(
    probe: str,
    host: str,
    *,
    duration: float,
    clients: int = 4,
    timeout: float = 1.0,
    port: int = 443,
    scheme: str = "https",
) -> subprocess.Popen[str]:
    """Start VIP_PROBE_SCRIPT in container `probe`; it stops after `duration` s."""
    args = [host, str(port), str(duration), str(clients), str(timeout), scheme]
    return subprocess.Popen(
        ["docker", "exec", probe, "python3", "-c", VIP_PROBE_SCRIPT, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )


def finish_vip_probe(proc: subprocess.Popen[str], timeout: float = 120.0) -> list[VipRequest]:
    """Wait for a probe started by start_vip_probe and parse what it printed."""
    try:
        out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        out = proc.communicate()[0]
    return parse_vip_requests(out)


def describe(requests: list[VipRequest]) -> str:
    """One line for test output: requests, failures by kind, longest gap."""
    kinds = ", ".join(f"{kind} {count}" for kind, count in failures_by_kind(requests).most_common())
    return (
        f"{len(requests)} requests from {len(clients_seen(requests))} clients, "
        f"{sum(1 for r in requests if not r.ok)} failed ({kinds or 'none'}), "
        f"longest gap without an answer {longest_gap(requests) * 1000:.0f} ms"
    )
