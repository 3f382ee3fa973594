"""Run the project's quality gates and print one summary at the end.

    python tools/run_tests.py all        # what `make test` runs
    python tools/run_tests.py lint unit  # a selection
    python tools/run_tests.py molecule --scenario haproxy --distro 13

Gates: lint, unit, sanity, build, galaxy, min-ansible, molecule. galaxy
imports the built artefact with galaxy-importer (tools/galaxy_import.py) and
fails on any error or warning or an undocumented plugin. min-ansible runs
the playbooks' syntax check, a check-mode run of every role's preflight on
the example inventory (the controller standing in for every host) and the
MIN_ANSIBLE_SCENARIOS with .venv-min, the oldest ansible-core
meta/runtime.yml claims. The molecule gate runs every
scenario on the Debian releases SCENARIO_DISTROS names (Debian 12 by default),
WEBINFRA_TEST_JOBS (default 2) at a time, never two runs of one scenario at
once (they share container names). Each run's output goes to
.cache/test-logs/; a failed run prints the end of its log.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = ROOT / ".venv" / "bin"
MIN_VENV_BIN = ROOT / ".venv-min" / "bin"
LOG_DIR = ROOT / ".cache" / "test-logs"
GATES = ("lint", "unit", "sanity", "build", "galaxy", "min-ansible", "molecule")
# Scenarios the min-ansible gate runs (Debian 12) with the oldest ansible-core.
MIN_ANSIBLE_SCENARIOS = ("smoke",)
EXAMPLE_INVENTORY = ROOT / "inventory" / "example"
VAULT_NAME = re.compile(r"\bvault_[a-z0-9_]+\b")
# The Debian releases a scenario runs on; Debian 12 when it is not listed.
# Debian 13 gets the whole stack from site_seed (every role but keepalived and
# monitoring, which run there on their own); the site scenario, with the
# failure tests, and the per-role day-2 tests run on Debian 12.
SCENARIO_DISTROS: dict[str, tuple[str, ...]] = {
    "smoke": ("12", "13"),
    "site_seed": ("13",),
    "keepalived": ("12", "13"),
    "monitoring": ("12", "13"),
}
# Longest first, so the slowest scenarios do not start last.
SCENARIO_WEIGHT = {
    "site": 100,
    "site_seed": 90,
    "db_cluster": 85,
    "mysql": 80,
    "certbot": 70,
    "haproxy": 60,
}
# A safety net against a hung scenario, far above the slowest normal run
# (site with its failure tests: about 15 minutes on a busy machine).
SCENARIO_TIMEOUT = int(os.environ.get("WEBINFRA_SCENARIO_TIMEOUT", "2700"))
PRINT_LOCK = threading.Lock()


@dataclass
class Outcome:
    name: str
    passed: bool
    seconds: float
    detail: str = ""


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


def tool(name: str) -> str:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


def run(cmd: Sequence[str], *, cwd: Path = ROOT, env: dict[str, str] | None = None) -> bool:
    """Run one command, streaming its output; True when it exits 0."""
    say(f"$ {' '.join(cmd)}")
    return subprocess.run(list(cmd), cwd=cwd, env=env, check=False).returncode == 0


def timed(report: Report, name: str, steps: Iterable[Sequence[str]]) -> None:
    start = time.monotonic()
    ok = all(run(step) for step in steps)
    report.add(Outcome(name, ok, time.monotonic() - start))


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
    return sorted(runs, key=lambda r: (-SCENARIO_WEIGHT.get(r.scenario, 0), r.distro, r.scenario))


def image_for(distro: str) -> str:
    return os.environ.get(f"WEBINFRA_IMAGE_DEBIAN{distro}") or f"webinfra/systemd-debian:{distro}"


def molecule_env(distro: str, bin_dir: Path = VENV_BIN) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["ANSIBLE_COLLECTIONS_PATH"] = str(ROOT / ".venv" / "collections")
    env["WEBINFRA_DISTRO"] = distro
    env["WEBINFRA_IMAGE"] = image_for(distro)
    env["ANSIBLE_FORCE_COLOR"] = "0"
    env["PY_COLORS"] = "0"
    env["NO_COLOR"] = "1"
    return env


def run_molecule(item: MoleculeRun, report: Report) -> None:
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = molecule_env(item.distro, item.bin_dir)
    molecule = str(item.bin_dir / "molecule")
    with PRINT_LOCK:
        say(f"[....] {item.label}: started (log {item.log.relative_to(ROOT)})")
    start = time.monotonic()
    with item.log.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(
            [molecule, "test", "-s", item.scenario],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            rc = proc.wait(timeout=SCENARIO_TIMEOUT)
            detail = ""
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            rc = -1
            detail = f": timed out after {SCENARIO_TIMEOUT} s"
            subprocess.run(
                [molecule, "destroy", "-s", item.scenario],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=False,
            )
    outcome = Outcome(item.label, rc == 0, time.monotonic() - start, detail)
    if not outcome.passed:
        tail = item.log.read_text(encoding="utf-8", errors="replace").splitlines()[-80:]
        with PRINT_LOCK:
            say(f"----- end of {item.log.relative_to(ROOT)} -----")
            say("\n".join(tail))
            say("-----")
    report.add(outcome)


def schedule(runs: Sequence[MoleculeRun], jobs: int, report: Report) -> None:
    """Run molecule scenarios `jobs` at a time, one run per scenario at a time."""
    pending = list(runs)
    busy: set[str] = set()
    cond = threading.Condition()

    def worker() -> None:
        while True:
            with cond:
                while True:
                    item = next((r for r in pending if r.scenario not in busy), None)
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


def python_dirs() -> list[str]:
    """Top-level folders that hold the project's Python (mypy checks them all)."""
    names = ("plugins", "tests", "molecule", "tools", "roles", "scripts")
    return [name for name in names if any((ROOT / name).rglob("*.py"))]


def gate_lint(report: Report) -> None:
    shell_scripts = [str(p) for p in sorted((ROOT / "scripts").glob("*.sh"))]
    shell_scripts.append(str(ROOT / ".ci" / "run"))
    timed(report, "yamllint", [[tool("yamllint"), "--strict", "."]])
    timed(report, "ansible-lint (production)", [[tool("ansible-lint"), "--offline"]])
    timed(
        report,
        "ruff and mypy",
        [
            [tool("ruff"), "check", "."],
            [tool("ruff"), "format", "--check", "."],
            [tool("mypy"), *python_dirs()],
        ],
    )
    timed(report, "shellcheck", [["shellcheck", "-x", *shell_scripts]])
    timed(report, "changelog fragments", [[tool("antsibull-changelog"), "lint"]])


def gate_unit(report: Report) -> None:
    timed(report, "unit tests (pytest)", [[tool("python"), "-m", "pytest", "-q", "tests/unit"]])


def shipped(path: str, build_ignore: Sequence[str]) -> bool:
    """False when galaxy.yml's build_ignore leaves `path` out of the artifact."""
    first = path.split("/", 1)[0]
    return not any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(first, p) for p in build_ignore)


def collection_files() -> list[str]:
    """The files that ship in the collection artifact (what sanity checks)."""
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text(encoding="utf-8"))
    build_ignore = [str(p) for p in galaxy.get("build_ignore", [])]
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [
        line
        for line in out.splitlines()
        if line and (ROOT / line).is_file() and shipped(line, build_ignore)
    ]


def gate_sanity(report: Report) -> None:
    """ansible-test sanity on what ships, laid out as ansible_collections/webinfra/stack.

    Tests, molecule scenarios and tools stay out (build_ignore): ruff, mypy
    and shellcheck check those.
    """
    start = time.monotonic()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    with tempfile.TemporaryDirectory(prefix="webinfra-sanity-") as tmp:
        dest = Path(tmp) / "ansible_collections" / "webinfra" / "stack"
        for rel in collection_files():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, target)
        subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
        subprocess.run(["git", "add", "-A"], cwd=dest, check=True)
        install_get_pip_stand_in()
        ok = run([tool("ansible-test"), "sanity", "--local", "--python", version], cwd=dest)
    report.add(Outcome(f"ansible-test sanity (Python {version})", ok, time.monotonic() - start))


def install_get_pip_stand_in() -> None:
    """ansible-test downloads a pip bootstrap script from a host not reachable here."""
    pip_version = pinned_pip_version()
    cache = (
        Path.home() / ".ansible" / "test" / "cache" / f"get_pip_{pip_version.replace('.', '_')}.py"
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "scripts" / "ansible-test-get-pip.py", cache)


def pinned_pip_version() -> str:
    """The pip version ansible-test bootstraps into its sanity virtualenvs."""
    import ansible_test  # type: ignore[import-not-found,unused-ignore]

    source = (
        Path(ansible_test.__file__).parent / "_internal" / "python_requirements.py"
    ).read_text(encoding="utf-8")
    return parse_pinned_pip(source)


def parse_pinned_pip(source: str) -> str:
    for line in source.splitlines():
        stripped = line.strip()
        if stripped.startswith("pip='") or stripped.startswith('pip="'):
            return stripped.split("=", 1)[1].strip("',\"")
    raise RuntimeError("could not find the pinned pip version in ansible-test")


def bundled_collection_roots() -> list[str]:
    """Folders holding the ansible_collections namespace the `ansible` package ships."""
    spec = importlib.util.find_spec("ansible_collections")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [str(Path(p).parent) for p in spec.submodule_search_locations]


def build_collection() -> Path | None:
    """Build the artefact into .cache/build; its path, or None when the build fails."""
    build_dir = ROOT / ".cache" / "build"
    shutil.rmtree(build_dir, ignore_errors=True)
    build_dir.mkdir(parents=True)
    ok = run(
        [tool("ansible-galaxy"), "collection", "build", "--force", "--output-path", str(build_dir)]
    )
    tarballs = sorted(build_dir.glob("webinfra-stack-*.tar.gz"))
    return tarballs[-1] if ok and tarballs else None


def gate_build(report: Report) -> None:
    """Build the collection, install the tarball offline into a consumer project."""
    start = time.monotonic()
    tarball = build_collection()
    if tarball is not None:
        with tempfile.TemporaryDirectory(prefix="webinfra-consumer-") as tmp:
            consumer = Path(tmp)
            env = dict(os.environ)
            # The consumer sees only its own install and the collections the
            # `ansible` package bundles (they satisfy galaxy.yml's dependencies).
            env["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(
                [str(consumer / "collections"), *bundled_collection_roots()]
            )
            env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
            (consumer / "inventory.ini").write_text("localhost ansible_connection=local\n")
            ok = run(
                [
                    tool("ansible-galaxy"),
                    "collection",
                    "install",
                    "--offline",
                    "-p",
                    str(consumer / "collections"),
                    str(tarball),
                ],
                cwd=consumer,
                env=env,
            ) and run(
                [
                    tool("ansible-playbook"),
                    "-i",
                    "inventory.ini",
                    "--syntax-check",
                    "webinfra.stack.site",
                ],
                cwd=consumer,
                env=env,
            )
    else:
        ok = False
    report.add(Outcome("collection build and consumer syntax check", ok, time.monotonic() - start))


def gate_galaxy(report: Report) -> None:
    """galaxy-importer on the built artefact: no error, no warning, every plugin documented."""
    start = time.monotonic()
    tarball = build_collection()
    ok = tarball is not None and run(
        [tool("python"), str(ROOT / "tools" / "galaxy_import.py"), str(tarball)],
        cwd=ROOT / ".cache" / "build",
    )
    report.add(Outcome("galaxy-importer and ansible-doc", ok, time.monotonic() - start))


def playbooks() -> list[Path]:
    return sorted((ROOT / "playbooks").glob("*.yml"))


def example_secrets(example: Path = EXAMPLE_INVENTORY) -> dict[str, str]:
    """Stand-in values for the vault_* secrets the example inventory reads."""
    names: set[str] = set()
    for path in sorted((example / "group_vars").rglob("*.yml")):
        names.update(VAULT_NAME.findall(path.read_text(encoding="utf-8")))
    return {name: f"{name}-not-a-secret" for name in sorted(names)}


def preflight_command(bin_dir: Path, extra_vars: Path) -> list[str]:
    """site.yml on the example inventory with only the always-tagged tasks, in check mode.

    No task carries the tag `preflight`, so --tags preflight runs exactly what
    runs whatever the tags: the inventory checks and every role's argument
    validation, preflight and published rules. They only read, and every
    host is the controller itself (connection local): the whole stack's
    variables and facts go through each role's preflight with no container.
    """
    return [
        str(bin_dir / "ansible-playbook"),
        "-i",
        str(EXAMPLE_INVENTORY),
        str(ROOT / "playbooks" / "site.yml"),
        "--tags",
        "preflight",
        "--check",
        "-e",
        "ansible_connection=local ansible_become=false",
        "-e",
        "ansible_python_interpreter={{ ansible_playbook_python }}",
        "-e",
        f"@{extra_vars}",
    ]


def run_preflight_only(bin_dir: Path, env: dict[str, str]) -> bool:
    with tempfile.TemporaryDirectory(prefix="webinfra-preflight-") as tmp:
        extra_vars = Path(tmp) / "secrets.json"
        extra_vars.write_text(json.dumps(example_secrets()), encoding="utf-8")
        return run(preflight_command(bin_dir, extra_vars), env=env)


def gate_min_ansible(report: Report) -> None:
    """The playbooks and MIN_ANSIBLE_SCENARIOS with the oldest ansible-core claimed."""
    if not (MIN_VENV_BIN / "ansible-playbook").exists():
        say(f"{MIN_VENV_BIN} is missing: run `make venv` (scripts/setup-venv.sh) first")
        report.add(Outcome("oldest ansible-core", False, 0.0, ": .venv-min is missing"))
        return
    env = molecule_env("12", MIN_VENV_BIN)
    start = time.monotonic()
    ok = run([str(MIN_VENV_BIN / "ansible-playbook"), "--version"], env=env) and all(
        run(
            [str(MIN_VENV_BIN / "ansible-playbook"), "-i", "localhost,", "--syntax-check", str(p)],
            env=env,
        )
        for p in playbooks()
    )
    report.add(
        Outcome("playbooks syntax check (oldest ansible-core)", ok, time.monotonic() - start)
    )
    start = time.monotonic()
    ok = run_preflight_only(MIN_VENV_BIN, env)
    report.add(Outcome("whole-stack preflight (oldest ansible-core)", ok, time.monotonic() - start))
    for scenario in MIN_ANSIBLE_SCENARIOS:
        run_molecule(MoleculeRun(scenario, "12", oldest_ansible=True), report)


def gate_molecule(report: Report, scenarios: Sequence[str], distros: Sequence[str] | None) -> None:
    jobs = int(os.environ.get("WEBINFRA_TEST_JOBS", "2"))
    runs = plan_molecule(scenarios, distros)
    say(f"molecule: {len(runs)} runs, {jobs} at a time: {', '.join(r.label for r in runs)}")
    schedule(runs, jobs, report)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("gates", nargs="+", choices=(*GATES, "all"))
    parser.add_argument("--scenario", action="append", help="molecule scenario (repeatable)")
    parser.add_argument("--distro", action="append", choices=("12", "13"))
    args = parser.parse_args(argv)
    # Every gate sees the pinned tools and resolves webinfra.stack to this
    # checkout, whether it was started by make or by hand.
    os.environ["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    ours = str(ROOT / ".venv" / "collections")
    theirs = os.environ.get("ANSIBLE_COLLECTIONS_PATH", "")
    os.environ["ANSIBLE_COLLECTIONS_PATH"] = os.pathsep.join(p for p in (ours, theirs) if p)
    gates = GATES if "all" in args.gates else tuple(g for g in GATES if g in args.gates)

    report = Report()
    started = time.monotonic()
    for gate in gates:
        say(f"\n=== {gate} ===")
        if gate == "lint":
            gate_lint(report)
        elif gate == "unit":
            gate_unit(report)
        elif gate == "sanity":
            gate_sanity(report)
        elif gate == "build":
            gate_build(report)
        elif gate == "galaxy":
            gate_galaxy(report)
        elif gate == "min-ansible":
            gate_min_ansible(report)
        elif gate == "molecule":
            gate_molecule(report, args.scenario or discover_scenarios(), args.distro)
    say(report.summary())
    say(f"wall time {time.monotonic() - started:.0f} s")
    return 1 if report.failed or not report.outcomes else 0


if __name__ == "__main__":
    sys.exit(main())
