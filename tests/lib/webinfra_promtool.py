"""Render the monitoring role's rule file and run promtool on it.

Used by tests/unit/test_prometheus_rules.py, and callable by hand:

    .venv/bin/python tests/lib/webinfra_promtool.py   # check + test the rules

promtool comes from Debian's `prometheus` package. When it is not on PATH
(or named by $PROMTOOL), the .deb is fetched with `apt-get download` and
only promtool is unpacked into .cache/promtool: nothing is installed and no
service starts on the controller.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "monitoring"
RULES_TEMPLATE = ROLE / "templates" / "etc" / "prometheus" / "rules" / "webinfra.rules.yml.j2"
DASHBOARD = ROLE / "files" / "grafana" / "webinfra-stack.json"
TESTS = ROOT / "tests" / "prometheus"
CACHE = ROOT / ".cache" / "promtool"

# Inventory-dependent values the rule unit tests assume: a VIP and replicas;
# and one pending time (2m) for every class, so that the tests' one-minute
# steps tell "pending" from "firing" (the defaults' 15 s would fire at the
# first step).
TEST_VARS: dict[str, Any] = {
    "monitoring_alert_for": "2m",
    "monitoring_alert_for_replication": "2m",
    "monitoring_alert_for_trend": "2m",
    "monitoring_vip_address": "10.0.0.100",
    "monitoring_mysqld_replica_hosts": ["db-02"],
    "monitoring_hacluster_hosts": ["db-01", "db-02"],
}


def promtool() -> str:
    """Path of a promtool binary, fetched from Debian when missing."""
    explicit = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if explicit:
        return explicit
    binary = CACHE / "usr" / "bin" / "promtool"
    if binary.is_file():
        return str(binary)
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        download = ["apt-get", "download", "prometheus"]
        if subprocess.run(download, cwd=tmp, check=False, capture_output=True).returncode != 0:
            # A fresh machine may have no package lists yet.
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            subprocess.run(download, cwd=tmp, check=True, capture_output=True)
        (deb,) = Path(tmp).glob("prometheus_*.deb")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
    return str(binary)


def role_defaults() -> dict[str, Any]:
    with (ROLE / "defaults" / "main.yml").open(encoding="utf-8") as handle:
        defaults: dict[str, Any] = yaml.safe_load(handle)
    return defaults


def render_rules(overrides: dict[str, Any] | None = None) -> str:
    """The rule file as the role renders it, with the defaults and overrides."""
    source = RULES_TEMPLATE.read_text(encoding="utf-8")
    header, _, body = source.partition("\n")
    assert header.startswith("#jinja2:"), "the rule template must set its own delimiters"
    env = jinja2.Environment(
        variable_start_string="[[",
        variable_end_string="]]",
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["comment"] = lambda text: "\n".join(f"# {line}" for line in str(text).splitlines())
    env.filters["to_json"] = json.dumps
    variables = {**role_defaults(), **TEST_VARS, **(overrides or {})}
    variables["ansible_managed"] = "Ansible managed"
    return env.from_string(body).render(**variables)


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, check=False)


def check_rule_file(path: Path) -> subprocess.CompletedProcess[str]:
    """promtool check rules on one file."""
    return run(["check", "rules", path.name], path.parent)


def check_and_test(workdir: Path) -> list[subprocess.CompletedProcess[str]]:
    """Render the rules into workdir, then promtool check rules and test rules."""
    (workdir / "webinfra.rules.yml").write_text(render_rules(), encoding="utf-8")
    for test_file in sorted(TESTS.glob("*.test.yml")):
        shutil.copy(test_file, workdir / test_file.name)
    tests = sorted(p.name for p in workdir.glob("*.test.yml"))
    return [
        run(["check", "rules", "webinfra.rules.yml"], workdir),
        run(["test", "rules", *tests], workdir),
    ]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        failed = 0
        for result in check_and_test(Path(tmp)):
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            failed |= result.returncode
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
