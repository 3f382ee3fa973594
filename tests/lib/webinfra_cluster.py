"""Helpers of the database cluster tests: what a writer saw, who was writable.

Pure functions (unit-tested in tests/unit/test_cluster_lib.py) over the
writer's JSON lines, read_only samples and crm_mon's XML.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass


@dataclass(frozen=True)
class Write:
    t: float
    ok: bool
    text: str
    error: str = ""
    # The TLS cipher of the writer's connection ("" when plain or failed).
    cipher: str = ""


def parse_writes(lines: str) -> list[Write]:
    """The writer's JSON lines (others ignored) as Write records."""
    writes: list[Write] = []
    for line in lines.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        data = json.loads(line)
        writes.append(
            Write(
                float(data["t"]),
                bool(data["ok"]),
                str(data["text"]),
                str(data.get("error", "")),
                str(data.get("cipher") or ""),
            )
        )
    return writes


def writes_back_after(writes: list[Write], failed_at: float) -> float | None:
    """Seconds from failed_at until the first success after the last failure.

    None when writes failed until the end (or none came after failed_at).
    A run with no failure after failed_at recovers at once (0.0).
    """
    after = [w for w in writes if w.t >= failed_at]
    if not after:
        return None
    failures = [i for i, w in enumerate(after) if not w.ok]
    if not failures:
        return 0.0
    rest = after[failures[-1] + 1 :]
    if not rest:
        return None
    return rest[0].t - failed_at


@dataclass(frozen=True)
class ReadOnlySample:
    t: float
    writable: tuple[str, ...]


def double_writers(samples: list[ReadOnlySample]) -> list[ReadOnlySample]:
    """The samples in which more than one server accepted writes."""
    return [s for s in samples if len(s.writable) > 1]


@dataclass(frozen=True)
class ClusterState:
    quorate: bool
    online: tuple[str, ...]
    unclean: tuple[str, ...]
    promoted: tuple[str, ...]
    unpromoted: tuple[str, ...]
    started: dict[str, tuple[str, ...]]
    # Resources with an operation in flight (crm_mon's pending="Starting", ...).
    pending: tuple[str, ...] = ()


def parse_crm_mon(xml_text: str, resource: str = "mariadb") -> ClusterState:
    """Quorum, online nodes, where `resource` is promoted, and where each primitive runs."""
    root = ET.fromstring(xml_text)
    dc = root.find("./summary/current_dc")
    quorate = dc is not None and dc.get("with_quorum") == "true"
    members = [n for n in root.iter("node") if n.get("online") is not None]
    online = tuple(n.get("name", "") for n in members if n.get("online") == "true")
    unclean = tuple(n.get("name", "") for n in members if n.get("unclean") == "true")
    promoted: list[str] = []
    unpromoted: list[str] = []
    started: dict[str, list[str]] = {}
    for res in root.iter("resource"):
        if res.get("active") != "true":
            continue
        nodes = [n.get("name", "") for n in res.findall("node")]
        rid = res.get("id", "")
        if rid == resource and res.get("role") == "Promoted":
            promoted.extend(nodes)
        elif rid == resource and res.get("role") == "Unpromoted":
            unpromoted.extend(nodes)
        started.setdefault(rid, []).extend(nodes)
    return ClusterState(
        quorate,
        online,
        unclean,
        tuple(promoted),
        tuple(unpromoted),
        {k: tuple(v) for k, v in started.items()},
        tuple(r.get("id", "") for r in root.iter("resource") if r.get("pending")),
    )


_SAMPLE = re.compile(
    r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?\s+(?P<value>\S+)"
)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    """Prometheus text exposition -> (name, labels, value); comments skipped."""
    samples: list[tuple[str, dict[str, str], float]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group("labels") or ""))
        samples.append((match.group("name"), labels, float(match.group("value"))))
    return samples
