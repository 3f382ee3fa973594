"""Load through the stack: bursts of HTTP(S) requests, background load, and
which server answered (round robin).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BurstResult:
    """What a client saw during a bounded burst of requests."""

    sent: int = 0
    failed: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    served_by: dict[str, int] = field(default_factory=dict)
    # Wall-clock time (time.time()) at which each failed request was sent.
    failed_at: list[float] = field(default_factory=list)

    def record(
        self,
        status: int | None,
        served_by: str | None,
        error: str | None,
        sent_at: float | None = None,
    ) -> None:
        self.sent += 1
        if status is not None:
            self.statuses[status] = self.statuses.get(status, 0) + 1
        if served_by:
            self.served_by[served_by] = self.served_by.get(served_by, 0) + 1
        if error is not None or status is None or status >= 500:
            self.failed += 1
            self.failed_at.append(time.time() if sent_at is None else sent_at)
            if len(self.errors) < 20:
                self.errors.append(error or f"HTTP {status}")


def burst(
    url: str,
    *,
    count: int = 400,
    duration: float = 30.0,
    interval: float = 0.02,
    verify: bool | str = False,
    request_timeout: float = 5.0,
    stop: threading.Event | None = None,
    keep_alive: bool = True,
) -> BurstResult:
    """Send at most `count` GETs, one every `interval` s, for at most `duration` s.

    Stops early when `stop` is set. Bounded in count and time by design.
    A request that gets no answer within `request_timeout` s counts as failed.
    With `keep_alive` false every request opens a connection of its own and
    asks the server to close it. A client that reuses an idle connection can
    always meet the server closing it at the same moment (a graceful reload
    closes idle keep-alive connections); RFC 9112 section 9.3.1 has the
    client retry then, as browsers and HAProxy (retry-on empty-response) do.
    A test of the server alone uses fresh connections, where that race
    cannot occur and every failure is the server's.
    """
    import requests  # imported here so the module imports without it

    result = BurstResult()
    deadline = time.monotonic() + duration
    headers = {} if keep_alive else {"Connection": "close"}
    session = requests.Session()
    try:
        while result.sent < count and time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                break
            sent_at = time.time()
            try:
                response = session.get(
                    url,
                    timeout=request_timeout,
                    verify=verify,
                    allow_redirects=False,
                    headers=headers,
                )
                result.record(
                    response.status_code, response.headers.get("X-Served-By"), None, sent_at
                )
            except requests.RequestException as exc:
                result.record(None, None, f"{type(exc).__name__}: {exc}", sent_at)
            if not keep_alive:
                # The client closes its side itself: a server that does not
                # answer "Connection: close" leaves the socket in the pool, and
                # reusing it would race the server's close.
                session.close()
                session = requests.Session()
            time.sleep(interval)
    finally:
        session.close()
    return result


class BackgroundBurst:
    """Run `burst` in a thread around a disruptive action:

    with BackgroundBurst(url) as load:
        docker("kill", "web-01")
    assert load.result.failed == 0
    """

    def __init__(self, url: str, **kwargs: Any) -> None:
        self._stop = threading.Event()
        self._kwargs = kwargs
        self._url = url
        self.result = BurstResult()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.result = burst(self._url, stop=self._stop, **self._kwargs)

    def __enter__(self) -> BackgroundBurst:
        self._thread.start()
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.5)
        self._stop.set()
        self._thread.join(timeout=60)


def alternates(sequence: list[str]) -> bool:
    """True when no two consecutive items are equal and more than one value occurs."""
    if len(set(sequence)) < 2:
        return False
    return all(a != b for a, b in itertools.pairwise(sequence))


def alternating_sample(sample: Callable[[], list[str]], attempts: int = 5) -> list[str]:
    """The first of up to `attempts` samples (X-Served-By values) that alternates.

    Other clients of the same load balancer take turns in its round robin
    too (the monitoring host probes the application through the virtual IP),
    so one sample may show a server twice in a row; a round robin that is
    broken never alternates. Raises AssertionError with every sample.
    """
    samples: list[list[str]] = []
    for _ in range(attempts):
        seen = sample()
        if alternates(seen):
            return seen
        samples.append(seen)
    raise AssertionError(f"none of {attempts} samples alternated: {samples}")


def patient_tls_burst(url: str, **kwargs: Any) -> BurstResult:
    """burst() by a client that waits as long as a browser would (60 s a request).

    For HTTPS through a load balancer (self-signed certificate unless
    `verify` names a CA). Bounded like burst().
    """
    kwargs.setdefault("request_timeout", 60.0)
    kwargs.setdefault("duration", 60.0)
    return burst(url, **kwargs)


class PatientTlsBackgroundBurst(BackgroundBurst):
    """BackgroundBurst running patient_tls_burst."""

    def _run(self) -> None:
        self.result = patient_tls_burst(self._url, stop=self._stop, **self._kwargs)


# A burst whose client waits as long as a browser would. During a gunicorn
# restart, systemd keeps the listening socket and connections wait in its
# backlog until the new master accepts them: no request is lost, but on a
# loaded machine one may wait longer than burst()'s 5 s, which would turn a
# delay into a "failure" (a wall-clock assertion in disguise).
def patient_burst(url: str, **kwargs: Any) -> BurstResult:
    """burst() with a per-request timeout of 60 s (see above). Bounded like burst()."""
    kwargs.setdefault("request_timeout", 60.0)
    kwargs.setdefault("duration", 60.0)
    return burst(url, **kwargs)


class PatientBackgroundBurst(BackgroundBurst):
    """BackgroundBurst running patient_burst (see above)."""

    def _run(self) -> None:
        self.result = patient_burst(self._url, stop=self._stop, **self._kwargs)


def served_by(url: str, count: int = 8, timeout: float = 10.0) -> list[str]:
    """X-Served-By of `count` GET requests to `url`, in order ("" when missing).

    Certificates are not verified: the scenarios serve self-signed or test-CA ones.
    """
    import requests  # imported here so the module imports without it

    return [
        requests.get(url, verify=False, timeout=timeout).headers.get("X-Served-By", "")
        for _ in range(count)
    ]
