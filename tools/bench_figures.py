"""The bench's arithmetic, with no side effect (unit-tested in tests/unit/test_bench.py):
wrk's output, percentiles, ratios, memory, the targets, the probe's samples.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


_COUNT_UNITS = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}


def parse_duration_ms(text: str) -> float:
    """wrk's '1.23ms', '456.00us', '2.01s' or '1.50m' in milliseconds."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS[match.group(2)]


def parse_count(text: str) -> float:
    """wrk's '4.00k' or '1.2M' as a number."""
    match = re.fullmatch(r"([0-9.]+)([kMG]?)", text.strip())
    if not match:
        raise ValueError(f"not a wrk count: {text!r}")
    return float(match.group(1)) * _COUNT_UNITS[match.group(2)]


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run measured."""

    requests: int
    seconds: float
    rps: float
    latency_ms: dict[str, float]  # "50", "75", "90", "99" -> ms
    socket_errors: int
    non_2xx_3xx: int

    @property
    def failed(self) -> int:
        return self.socket_errors + self.non_2xx_3xx


def parse_wrk(text: str) -> WrkResult:
    """Parse `wrk --latency` output."""
    done = re.search(r"(\d+) requests in ([0-9.]+\w+),", text)
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", text)
    if not done or not rps:
        raise ValueError(f"no wrk summary in:\n{text}")
    latency = {
        m.group(1): parse_duration_ms(m.group(2))
        for m in re.finditer(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", text, re.MULTILINE)
    }
    if set(latency) != {"50", "75", "90", "99"}:
        raise ValueError(f"no latency distribution (run wrk with --latency) in:\n{text}")
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    non_ok = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=parse_duration_ms(done.group(2)) / 1000.0,
        rps=float(rps.group(1)),
        latency_ms=latency,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
        non_2xx_3xx=int(non_ok.group(1)) if non_ok else 0,
    )


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation; nan when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator, nan when the denominator is not positive."""
    return numerator / denominator if denominator > 0 else math.nan


def memory_in_use(usage: int, stat_text: str) -> float:
    """What docker stats shows as used: usage less the inactive page cache."""
    stats = dict(line.split() for line in stat_text.splitlines() if len(line.split()) == 2)
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", "0"))
    return float(usage - int(inactive))


@dataclass(frozen=True)
class Target:
    """One target of the issue, evaluated on this run's figures."""

    name: str
    value: float
    limit: float
    higher_is_better: bool
    unit: str = "x"

    @property
    def measured(self) -> bool:
        return not math.isnan(self.value)

    @property
    def met(self) -> bool:
        if not self.measured:
            return False
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    @property
    def verdict(self) -> str:
        if not self.measured:
            return "not measured"
        if self.met:
            return "met"
        miss = (self.limit - self.value) if self.higher_is_better else (self.value - self.limit)
        relative = abs(miss) / self.limit * 100 if self.limit else math.inf
        return f"MISSED by {abs(miss):.3g}{self.unit} ({relative:.0f}% of the target)"


def evaluate_targets(figures: dict[str, float]) -> list[Target]:
    """The issue's targets from the figures of one run (nan where not measured)."""
    nan = math.nan
    mem = figures.get("lab_memory_bytes", nan)
    return [
        Target(
            "HTTPS path req/s / nginx->gunicorn req/s",
            figures.get("ratio_vip_to_nginx", nan),
            0.75,
            True,
        ),
        Target(
            "HTTPS p99 at half its peak / nginx->gunicorn p99 at half its peak",
            figures.get("ratio_p99_half_vip_to_nginx", nan),
            2.0,
            False,
        ),
        Target(
            "HTTPS path req/s / stock-configuration stack req/s",
            figures.get("ratio_vip_to_stock", nan),
            1.5,
            True,
        ),
        Target(
            "idempotent re-run time / first converge time",
            figures.get("ratio_rerun_to_converge", nan),
            0.25,
            False,
        ),
        Target("lab memory under load (GiB)", mem / 1024**3, 4.0, False, " GiB"),
    ]


@dataclass(frozen=True)
class ProbeSample:
    t: float
    ms: float
    status: int
    error: str
    text: str = ""  # the note a write probe (--post) sent

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400

    @property
    def acknowledged(self) -> bool:
        """A write the application confirmed (2xx)."""
        return 200 <= self.status < 300


def parse_probe(text: str) -> list[ProbeSample]:
    """The JSON lines of tools/bench_probe.py, in start order."""
    samples = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        data = json.loads(line)
        samples.append(
            ProbeSample(
                float(data["t"]),
                float(data["ms"]),
                int(data["status"]),
                str(data["error"]),
                str(data.get("text", "")),
            )
        )
    return sorted(samples, key=lambda s: s.t)


def timeline_summary(samples: Sequence[ProbeSample]) -> dict[str, float]:
    """Request count, failures, latency percentiles and the longest failing stretch."""
    latencies = [s.ms for s in samples if s.ok]
    longest = 0.0
    first_bad: float | None = None
    for sample in samples:
        if not sample.ok:
            first_bad = sample.t if first_bad is None else first_bad
            longest = max(longest, sample.t + sample.ms / 1000 - first_bad)
        else:
            first_bad = None
    span = samples[-1].t - samples[0].t if len(samples) > 1 else 0.0
    return {
        "requests": float(len(samples)),
        "achieved_rate": len(samples) / span if span > 0 else math.nan,
        "failed": float(sum(1 for s in samples if not s.ok)),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else math.nan,
        "longest_failing_s": longest,
    }


def write_outage(samples: Sequence[ProbeSample], since: float) -> dict[str, float]:
    """When writes failed after `since` (the kill) and when they succeeded again.

    `back_s`: from the first failed write started at or after `since` to the
    first acknowledged write started after it; `steady_s`: to the first
    acknowledged write started after the last failed one (the same unless
    writes flickered). nan where there is no such write.
    """
    nan = math.nan
    after = [s for s in samples if s.t >= since]
    failed = [s for s in after if not s.acknowledged]
    if not failed:
        return {"first_failed_at": nan, "back_s": 0.0 if after else nan, "steady_s": 0.0}
    first, last = failed[0].t, failed[-1].t
    back = next((s.t for s in after if s.acknowledged and s.t > first), nan)
    steady = next((s.t for s in after if s.acknowledged and s.t > last), nan)
    return {"first_failed_at": first, "back_s": back - first, "steady_s": steady - first}


def writes_back_after_kill(samples: Sequence[ProbeSample], killed_at: float) -> float:
    """Seconds from the kill until the answer to the first acknowledged write
    started after the last failed one arrived (its start plus its latency: a
    write that waited out the failover counts when it was answered). 0 when
    no write failed after the kill; nan when none was acknowledged after.
    """
    after = sorted((s for s in samples if s.t >= killed_at), key=lambda s: s.t)
    failed = [i for i, s in enumerate(after) if not s.acknowledged]
    if not failed:
        return 0.0
    back = next((s for s in after[failed[-1] + 1 :] if s.acknowledged), None)
    return math.nan if back is None else back.t + back.ms / 1000 - killed_at


def lost_writes(samples: Sequence[ProbeSample], stored: Sequence[str]) -> list[str]:
    """The acknowledged notes that the database does not hold, in write order."""
    kept = set(stored)
    return [s.text for s in samples if s.acknowledged and s.text not in kept]


def select_failures(text: str, known: Sequence[str]) -> list[str]:
    """The failure timelines chosen with --failures ('all' or KEY,KEY), in run order."""
    if text.strip() == "all":
        return list(known)
    wanted = {item.strip() for item in text.split(",") if item.strip()}
    unknown = sorted(wanted - set(known))
    if unknown or not wanted:
        raise ValueError(
            f"unknown failure(s) {', '.join(unknown) or '(none given)'}: "
            f"choose from all, {', '.join(known)}"
        )
    return [key for key in known if key in wanted]
