"""Who holds a virtual IP over time: address samplers on the load balancers and
the checks that at most one held it at any instant.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from dataclasses import dataclass

from webinfra_testlib import docker

# Runs inside a load balancer: samples `ip -o -4 addr show` until the stop
# file appears (or `limit` s pass), printing "<before> <after> <1|0>" where
# 1 means the address was present at some instant between the two times.
ADDRESS_SAMPLER_SCRIPT = """
import os, subprocess, sys, time
address, stop_file, limit = sys.argv[1], sys.argv[2], float(sys.argv[3])
end = time.time() + limit
while time.time() < end and not os.path.exists(stop_file):
    before = time.time()
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    after = time.time()
    held = any(f" {address}/" in line for line in out.splitlines())
    print(f"{before:.6f} {after:.6f} {int(held)}", flush=True)
    time.sleep(0.005)  # leave the CPU to keepalived
"""


@dataclass(frozen=True)
class AddressSample:
    """One `ip addr` sample: the address was (or was not) held at an instant in [before, after]."""

    before: float
    after: float
    held: bool


def parse_address_samples(text: str) -> list[AddressSample]:
    samples: list[AddressSample] = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in ("0", "1"):
            samples.append(AddressSample(float(parts[0]), float(parts[1]), parts[2] == "1"))
    return samples


Interval = tuple[float, float]


def known_intervals(samples: list[AddressSample], held: bool) -> list[Interval]:
    """Time spans in which a host surely held (held=True) or surely lacked the address.

    Between two consecutive samples that saw the same value the value is
    taken as known; spans between samples that differ are unknown (the
    change happened somewhere in there). Sampling must be fast compared to
    the changes looked for: a flip and back between two samples is missed.
    """
    spans: list[Interval] = []
    for first, second in itertools.pairwise(samples):
        if first.held == held and second.held == held:
            start, end = first.after, second.before
            if spans and spans[-1][1] >= first.before:
                spans[-1] = (spans[-1][0], end)
            elif end > start:
                spans.append((start, end))
    return spans


def _intersect(left: list[Interval], right: list[Interval]) -> list[Interval]:
    out: list[Interval] = []
    for a_start, a_end in left:
        for b_start, b_end in right:
            start, end = max(a_start, b_start), min(a_end, b_end)
            if end > start:
                out.append((start, end))
    return sorted(out)


def change_spans(timelines: dict[str, list[AddressSample]]) -> list[Interval]:
    """Spans in which some host took or gave up the address: from the sample
    before the change to the one after it (the change lies in between)."""
    spans = [
        (first.before, second.after)
        for samples in timelines.values()
        for first, second in itertools.pairwise(samples)
        if first.held != second.held
    ]
    return sorted(spans)


def outside_spans(times: list[float], spans: list[Interval], margin: float) -> list[float]:
    """The `times` farther than `margin` seconds from every span.

    For example the failed requests of a client that a move of the virtual
    IP does not explain: a keep-alive connection left on the old holder is
    reset when its next request reaches the new one.
    """
    return [
        t for t in times if not any(start - margin <= t <= end + margin for start, end in spans)
    ]


def holder_violations(
    timelines: dict[str, list[AddressSample]],
) -> tuple[list[tuple[str, str, Interval]], list[Interval]]:
    """Where the samples prove the address was held by two hosts, or by none.

    Returns (both, neither): `both` lists (host, host, span) for every span in
    which two hosts surely held the address; `neither` lists spans in which
    every host surely lacked it, within the time all samplers ran.
    """
    names = sorted(timelines)
    both: list[tuple[str, str, Interval]] = []
    for index, left in enumerate(names):
        for right in names[index + 1 :]:
            for span in _intersect(
                known_intervals(timelines[left], True), known_intervals(timelines[right], True)
            ):
                both.append((left, right, span))
    neither: list[Interval] = []
    if names:
        common = known_intervals(timelines[names[0]], False)
        for name in names[1:]:
            common = _intersect(common, known_intervals(timelines[name], False))
        neither = common
    return both, neither


class AddressWatch:
    """Sample, inside each container, whether it holds `address`, around an action:

    with AddressWatch(["lb1", "lb2"], "192.0.2.100") as watch:
        docker("start", "lb1")
        watch.add("lb1")  # a container that was not running at the start
    both, neither = holder_violations(watch.timelines)
    """

    STOP_FILE = "/run/webinfra-address-watch.stop"

    def __init__(self, containers: list[str], address: str, limit: float = 120.0) -> None:
        self.address = address
        self.limit = limit
        self.timelines: dict[str, list[AddressSample]] = {}
        self._initial = list(containers)
        self._procs: dict[str, subprocess.Popen[str]] = {}

    def add(self, container: str) -> None:
        docker("exec", container, "rm", "-f", self.STOP_FILE, check=False)
        script = ADDRESS_SAMPLER_SCRIPT
        self._procs[container] = subprocess.Popen(
            [
                "docker",
                "exec",
                container,
                "python3",
                "-c",
                script,
                self.address,
                self.STOP_FILE,
                str(self.limit),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def __enter__(self) -> AddressWatch:
        for container in self._initial:
            self.add(container)
        time.sleep(0.5)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(0.3)
        for container in self._procs:
            docker("exec", container, "touch", self.STOP_FILE, check=False)
        for container, proc in self._procs.items():
            try:
                out = proc.communicate(timeout=self.limit + 30)[0]
            except subprocess.TimeoutExpired:
                proc.kill()
                out = proc.communicate()[0]
            self.timelines[container] = parse_address_samples(out)


def state_changes(journal: str) -> list[str]:
    """keepalived's VRRP state changes ("... Entering MASTER STATE") in a
    journal excerpt, one line each, as printed (their time first)."""
    return [line.strip() for line in journal.splitlines() if " Entering " in line]


def vrrp_history(containers: list[str], since: float) -> dict[str, list[str]]:
    """Each load balancer's VRRP state changes since `since` (epoch seconds),
    read from its journal after the fact: nothing runs beside the test while
    it measures. For the message of a failed assertion."""
    return {
        container: state_changes(
            docker(
                "exec", container, "journalctl", "-u", "keepalived", "--no-pager",
                "-o", "short-iso-precise", "--since", f"@{since:.0f}", check=False,
            ).stdout
        )
        for container in containers
    }  # fmt: skip
