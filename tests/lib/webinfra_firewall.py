"""What a host can reach: TCP and UDP reachability probes run from a container."""

from __future__ import annotations

import json

from webinfra_testlib import docker

# Runs inside a container (python3 only): argv[1] is a JSON list of
# [address, proto, port]; prints a JSON list of booleans: True when a TCP
# connection was accepted, or a UDP datagram was answered, within the timeout.
REACH_SCRIPT = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
TIMEOUT = float(sys.argv[2])
def reach(target):
    address, proto, port = target
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    try:
        with socket.socket(socket.AF_INET, kind) as sock:
            sock.settimeout(TIMEOUT)
            if proto == "tcp":
                sock.connect((address, port))
                return True
            sock.sendto(b"ping", (address, port))
            return len(sock.recvfrom(16)[0]) > 0
    except OSError:
        return False
targets = json.loads(sys.argv[1])
with ThreadPoolExecutor(max_workers=max(1, len(targets))) as pool:
    print(json.dumps(list(pool.map(reach, targets))))
"""


Target = tuple[str, str, int]


def reachable(source: str, targets: list[Target], timeout: float = 1.5) -> dict[Target, bool]:
    """From container `source`, which (address, proto, port) targets answer.

    TCP counts as open when the connection is accepted, UDP when the
    datagram is answered; refused, dropped (timed out) and unanswered all
    count as closed.
    All targets are tried in parallel, so the call takes about `timeout` s.
    """
    payload = json.dumps([list(t) for t in targets])
    done = docker("exec", source, "python3", "-c", REACH_SCRIPT, payload, str(timeout))
    return parse_reach(targets, done.stdout)


def parse_reach(targets: list[Target], stdout: str) -> dict[Target, bool]:
    answers = json.loads(stdout)
    if not isinstance(answers, list) or len(answers) != len(targets):
        raise ValueError(f"expected {len(targets)} answers, got {stdout!r}")
    return {target: bool(answer) for target, answer in zip(targets, answers, strict=True)}


def open_ports(source: str, address: str, ports: list[int], timeout: float = 1.5) -> set[int]:
    """The TCP `ports` of `address` that accept a connection from container `source`."""
    return accepted_ports(reachable(source, [(address, "tcp", port) for port in ports], timeout))


def accepted_ports(answers: dict[Target, bool]) -> set[int]:
    """The ports of the TCP targets that answered, from reachable()'s result."""
    return {port for (_, proto, port), ok in answers.items() if ok and proto == "tcp"}
