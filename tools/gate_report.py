"""What every gate of tools/run_tests.py shares: paths, the report, output."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
MIN_VENV_BIN = ROOT / ".venv-min" / "bin"
LOG_DIR = ROOT / ".cache" / "test-logs"
PRINT_LOCK = threading.Lock()


@dataclass
class Outcome:
    name: str
    passed: bool
    seconds: float
    detail: str = ""


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        with PRINT_LOCK:
            self.outcomes.append(outcome)
            mark = "PASS" if outcome.passed else "FAIL"
            say(f"[{mark}] {outcome.name} ({outcome.seconds:.0f} s){outcome.detail}")

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.passed]

    def summary(self) -> str:
        width = max((len(o.name) for o in self.outcomes), default=10)
        lines = ["", "Summary of make test:"]
        for o in self.outcomes:
            lines.append(
                f"  {o.name:<{width}}  {'passed' if o.passed else 'FAILED'}  {o.seconds:7.0f} s"
            )
        total = sum(o.seconds for o in self.outcomes)
        lines.append(f"  total gate time {total:.0f} s")
        passed = len(self.outcomes) - len(self.failed)
        lines.append(f"gates: {passed} passed, {len(self.failed)} failed")
        return "\n".join(lines)


def say(message: str) -> None:
    print(message, flush=True)
