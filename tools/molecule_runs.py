"""The molecule runs of tools/run_tests.py: which scenario on which Debian
release, in which order, and a schedule that runs them side by side without
ever running one scenario twice at once (runs share container names).
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tools.gate_report import (
    LOG_DIR,
    MIN_VENV_BIN,
    PRINT_LOCK,
    ROOT,
    VENV_BIN,
    Outcome,
    Report,
    say,
)

# The (scenario, Debian release) runs of the min-ansible gate, with the
# oldest ansible-core claimed: the smoke scenario, and a converge of the whole
# stack (site_seed, every role but keepalived and monitoring) with its
# idempotence and tests. In one schedule with the molecule gate they replace
# that gate's run of the same scenario and release: the newest ansible-core
# converges the whole stack in site (Debian 12), the oldest in site_seed
# (Debian 13), so each release and each end of the supported range run it.
MIN_ANSIBLE_RUNS: tuple[tuple[str, str], ...] = (("smoke", "12"), ("site_seed", "13"))
# The Debian releases a scenario runs on; Debian 12 when it is not listed.
# Debian 13 gets the whole stack from site_seed (every role but keepalived and
# monitoring, which run there on their own scenarios, and only there); the
# site scenario, with the failure and alert tests, converges and tests
# keepalived and monitoring on Debian 12, as it does every other role, and
# the per-role day-2 tests run on Debian 12. Each role thus runs once per
# release, and no release runs the same role's scenario twice.
SCENARIO_DISTROS: dict[str, tuple[str, ...]] = {
    "smoke": ("12", "13"),
    "site_seed": ("13",),
    "keepalived": ("13",),
    "monitoring": ("13",),
}
# Longest first, so the slowest scenarios do not start last: about their
# seconds in a whole `make test` (2026-12-07, less the idempotence runs the
# per-role scenarios no longer make). A scenario left out weighs 0 and
# starts last: monitoring (501 s) did, and ran alone for its last minutes.
SCENARIO_WEIGHT = {
    "site": 100,
    "site_seed": 90,
    "mysql": 80,
    "db_cluster": 75,
    "monitoring": 70,
    # AIDE's first database, the pending security updates and Lynis: 6-10 min.
    "os_baseline": 65,
    "keepalived": 62,
    "haproxy": 60,
    "certbot": 55,
    "ufw": 40,
    "gunicorn_app": 40,
    "nginx": 38,
    "exporters": 30,
}
# Scenarios that never run at the same time. Both clusters' failure tests
# measure what clients see while hosts die (VRRP adverts every 0.1 s in
# site, Corosync's 1 s token in both): with the two whole stacks on the
# same two cores, a stall of the CPU is a failure of its own (seen once:
# site's rolling deploy lost 2 of 6,390 kept-alive requests while
# db_cluster ran its kills beside it).
APART: tuple[frozenset[str], ...] = (frozenset({"site", "db_cluster"}),)
# A safety net against a hung scenario, far above the slowest normal run
# (site with its failure tests: about 15 minutes on a busy machine).
SCENARIO_TIMEOUT = int(os.environ.get("WEBINFRA_SCENARIO_TIMEOUT", "2700"))


@dataclass(frozen=True)
class MoleculeRun:
    scenario: str
    distro: str
    # Run with .venv-min (the oldest ansible-core claimed) instead of .venv.
    oldest_ansible: bool = False

    @property
    def label(self) -> str:
        suffix = ", oldest ansible-core" if self.oldest_ansible else ""
        return f"molecule {self.scenario} (Debian {self.distro}{suffix})"

    @property
    def log(self) -> Path:
        suffix = "-min-ansible" if self.oldest_ansible else ""
        return LOG_DIR / f"molecule-{self.scenario}-debian{self.distro}{suffix}.log"

    @property
    def bin_dir(self) -> Path:
        return MIN_VENV_BIN if self.oldest_ansible else VENV_BIN

    @property
    def mitogen(self) -> bool:
        """Whether its plays may run under Mitogen (WEBINFRA_MITOGEN=1, see STRATEGY_DIR)."""
        return not self.oldest_ansible


def discover_scenarios(root: Path = ROOT) -> list[str]:
    """Scenario names under molecule/ (the shared resources folder is none)."""
    return sorted(
        p.parent.name for p in (root / "molecule").glob("*/molecule.yml") if p.parent.is_dir()
    )


def plan_molecule(
    scenarios: Sequence[str], distros: Sequence[str] | None = None
) -> list[MoleculeRun]:
    """Every scenario on its SCENARIO_DISTROS (or the given releases); heaviest first."""
    runs: list[MoleculeRun] = []
    for scenario in scenarios:
        wanted = distros or SCENARIO_DISTROS.get(scenario, ("12",))
        runs.extend(MoleculeRun(scenario, d) for d in wanted)
    return heaviest_first(runs)


def image_for(distro: str) -> str:
    return os.environ.get(f"WEBINFRA_IMAGE_DEBIAN{distro}") or f"webinfra/systemd-debian:{distro}"


# Ansible's strategy under Mitogen (tests/ansible_plugins/strategy), opt-in
# with WEBINFRA_MITOGEN=1: a module runs in a fork of one Python kept per
# host instead of a fresh interpreter. Alone on the two-core machine it cut
# the site scenario from 1279 s to 1092 s; in a whole `make test` the
# per-role scenarios ran 30-50 % faster, but four tests or phases that run
# ansible-playbook stalled for 12-13 minutes each, two at a time, cause not
# found yet (docs/testing.md), so it stays off by default. The runs with the
# oldest ansible-core claimed never use it.
STRATEGY_DIR = ROOT / "tests" / "ansible_plugins" / "strategy"
MITOGEN_STRATEGY = "webinfra_mitogen_linear"


def molecule_env(distro: str, bin_dir: Path = VENV_BIN, *, mitogen: bool = False) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    if mitogen and env.get("WEBINFRA_MITOGEN", "0") == "1":
        env["ANSIBLE_STRATEGY_PLUGINS"] = str(STRATEGY_DIR)
        env["ANSIBLE_STRATEGY"] = MITOGEN_STRATEGY
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".venv" / "collections")
    env["WEBINFRA_DISTRO"] = distro
    env["WEBINFRA_IMAGE"] = image_for(distro)
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PY_COLORS"] = "0"
    env["NO_COLOR"] = "1"
    return env


# Molecule announces each action of its test sequence with this line.
ACTION_LINE = re.compile(r"^INFO\s+\[[^\]>]+> (?P<action>[a-z_]+)\] Executing")


class PhaseClock:
    """How long each molecule action (create, converge, verify...) took,
    read off the log lines as they arrive: an action ends where the next
    one starts, the last one when the run ends."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._current: tuple[str, float] | None = None
        self.seconds: dict[str, float] = {}

    def line(self, text: str) -> None:
        found = ACTION_LINE.match(text)
        if found:
            now = self._clock()
            self._close(now)
            self._current = (found["action"], now)

    def _close(self, now: float) -> None:
        if self._current is not None:
            action, began = self._current
            self.seconds[action] = self.seconds.get(action, 0.0) + now - began
            self._current = None

    def finish(self) -> str:
        """The phases that took a second or more, as ' (converge 300 s, ...)'."""
        self._close(self._clock())
        shown = [f"{a} {s:.0f} s" for a, s in self.seconds.items() if s >= 1]
        return f" ({', '.join(shown)})" if shown else ""


def copy_lines(lines: Iterable[str], log: TextIO, clock: PhaseClock) -> None:
    for text in lines:
        log.write(text)
        log.flush()
        clock.line(text)


def run_molecule(item: MoleculeRun, report: Report) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = molecule_env(item.distro, item.bin_dir, mitogen=item.mitogen)
    molecule = str(item.bin_dir / "molecule")
    with PRINT_LOCK:
        say(f"[....] {item.label}: started (log {item.log.relative_to(ROOT)})")
    start = time.monotonic()
    phases = PhaseClock()
    with item.log.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [molecule, "test", "-s", item.scenario],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        assert proc.stdout is not None
        reader = threading.Thread(target=copy_lines, args=(proc.stdout, log, phases))
        reader.start()
        try:
            rc = proc.wait(timeout=SCENARIO_TIMEOUT)
            detail = ""
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = -1
            detail = f": timed out after {SCENARIO_TIMEOUT} s"
        reader.join()
        if rc == -1:
            subprocess.run(
                [molecule, "destroy", "-s", item.scenario],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
    detail = phases.finish() + detail
    outcome = Outcome(item.label, rc == 0, time.monotonic() - start, detail)
    if not outcome.passed:
        tail = item.log.read_text(encoding="utf-8", errors="replace").splitlines()[-80:]
        with PRINT_LOCK:
            say(f"----- end of {item.log.relative_to(ROOT)} -----")
            say("\n".join(tail))
            say("-----")
    report.add(outcome)


def may_start(scenario: str, busy: set[str]) -> bool:
    """Whether `scenario` may start while the `busy` ones run (not itself, nor one kept APART)."""
    if scenario in busy:
        return False
    return not any(scenario in pair and pair & busy for pair in APART)


def schedule(runs: Sequence[MoleculeRun], jobs: int, report: Report) -> None:
    """Run molecule scenarios `jobs` at a time, one run per scenario at a time."""
    pending = list(runs)
    busy: set[str] = set()
    cond = threading.Condition()

    def worker() -> None:
        while True:
            with cond:
                while True:
                    item = next((r for r in pending if may_start(r.scenario, busy)), None)
                    if item is not None or not pending:
                        break
                    cond.wait()
                if item is None:
                    return
                pending.remove(item)
                busy.add(item.scenario)
            try:
                run_molecule(item, report)
            finally:
                with cond:
                    busy.discard(item.scenario)
                    cond.notify_all()

    workers = max(1, jobs)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(worker) for _slot in range(workers)]
    for future in futures:
        future.result()


def oldest_ansible_runs() -> list[MoleculeRun]:
    return [MoleculeRun(s, d, oldest_ansible=True) for s, d in MIN_ANSIBLE_RUNS]


def heaviest_first(runs: Sequence[MoleculeRun]) -> list[MoleculeRun]:
    """The runs in schedule order: the slowest scenarios do not start last."""
    return sorted(
        runs,
        key=lambda r: (-SCENARIO_WEIGHT.get(r.scenario, 0), r.oldest_ansible, r.distro, r.scenario),
    )
