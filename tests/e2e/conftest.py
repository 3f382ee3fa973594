"""Fixtures of the end-to-end tests: which stack they look at, and a client in it.

    .venv/bin/pytest tests/e2e --target lab     # the lab of `make demo`
    molecule verify -s site                     # the site scenario (its verifier)

The target is the lab or the molecule scenario whose inventory
MOLECULE_INVENTORY_FILE names (molecule's testinfra verifier sets it);
`--target` (or WEBINFRA_E2E_TARGET) chooses explicitly. Tests in
tests/e2e/failure/ kill hosts: they run last, in file order, and only when
webinfra_e2e.failure_tests_enabled says so (WEBINFRA_E2E_FAILURE).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from webinfra_e2e import Stack, failure_tests_enabled, figure, lab_dir, parse_stack
from webinfra_failures import Report
from webinfra_monitoring import (
    ALERTMANAGER_PORT,
    ALERTMANAGER_SECRET,
    PROMETHEUS_PORT,
    PROMETHEUS_SECRET,
    MonitoringLogins,
    WebLogin,
    https_base_url,
    read_secret,
)
from webinfra_testlib import docker, start_probe

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ROOT = Path(__file__).resolve().parents[2]
LAB_INVENTORY = ROOT / "inventory" / "lab"
FAILURE_DIR = Path(__file__).resolve().parent / "failure"
# Tests that grow and shrink the lab: only with WEBINFRA_E2E_DAY2=1 (make day2).
DAY2_DIR = Path(__file__).resolve().parent / "day2"
# The lab's containers carry this label; `make demo-down` removes them all.
LAB_LABEL = "webinfra.lab=1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--target",
        choices=("lab", "scenario"),
        default=None,
        help="stack to test: the lab (inventory/lab) or the molecule scenario being verified",
    )


def target_kind(config: pytest.Config) -> str:
    chosen = config.getoption("--target", default=None) or os.environ.get("WEBINFRA_E2E_TARGET")
    if chosen:
        return str(chosen)
    return "scenario" if os.environ.get("MOLECULE_INVENTORY_FILE") else "lab"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "failure: kills or disrupts part of the stack")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Failure tests last (in file order); deselected unless enabled. The
    day-2 tests run alone, when asked for."""
    day2 = [i for i in items if DAY2_DIR in Path(str(i.path)).parents]
    if day2:
        chosen = os.environ.get("WEBINFRA_E2E_DAY2", "") == "1"
        config.hook.pytest_deselected(items=[i for i in items if (i in day2) != chosen])
        items[:] = [i for i in items if (i in day2) == chosen]
        if chosen:
            return
    disruptive = [i for i in items if FAILURE_DIR in Path(str(i.path)).parents]
    if not failure_tests_enabled(os.environ, target_kind(config)):
        if disruptive:
            config.hook.pytest_deselected(items=disruptive)
        items[:] = [i for i in items if i not in disruptive]
        return
    for item in disruptive:
        item.add_marker(pytest.mark.failure)
    items[:] = [i for i in items if i not in disruptive] + disruptive


def _use_the_virtualenv() -> None:
    """Let this run and the playbooks tests start use .venv's ansible (as make does)."""
    venv_bin = str(ROOT / ".venv" / "bin")
    if venv_bin not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".venv" / "collections"))


def _inventory_json(path: str) -> dict[str, Any]:
    done = subprocess.run(
        ["ansible-inventory", "-i", path, "--list"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ansible-inventory -i {path} failed: {done.stderr.strip()}")
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def _networks(container: str) -> dict[str, str]:
    """Docker network name -> address of a running container."""
    out = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", container).stdout
    networks: dict[str, dict[str, Any]] = json.loads(out)
    return {name: str(n.get("IPAddress", "")) for name, n in networks.items()}


@pytest.fixture(scope="session")
def stack(pytestconfig: pytest.Config) -> Stack:
    """The stack under test, read from its inventory."""
    kind = target_kind(pytestconfig)
    _use_the_virtualenv()
    if kind == "lab":
        path = str(LAB_INVENTORY)
        # The helpers that run playbooks (deploy_app.yml, db_failover.yml) read this.
        os.environ["MOLECULE_INVENTORY_FILE"] = path
    else:
        path = os.environ["MOLECULE_INVENTORY_FILE"]
    data = _inventory_json(path)
    hostvars: dict[str, dict[str, Any]] = data.get("_meta", {}).get("hostvars", {})
    named = [str(v["lab_network"]) for v in hostvars.values() if "lab_network" in v]
    unaddressed = [
        str(v.get("ansible_host") or k) for k, v in hostvars.items() if "webinfra_address" not in v
    ]
    # molecule's inventory names neither the network nor the addresses: ask docker.
    network = named[0] if named else next(n for n in _networks(unaddressed[0]) if n != "bridge")
    address_of = {c: _networks(c).get(network, "") for c in unaddressed}
    return parse_stack(data, kind=kind, inventory_path=path, network=network, address_of=address_of)


@pytest.fixture(scope="session")
def monitoring(stack: Stack) -> MonitoringLogins:
    """Prometheus and Alertmanager of the monitoring host, as the operator
    reaches them: HTTPS verified against the monitoring CA, with the logins
    the target generated (inventory/lab/group_vars/all/stack.yml)."""
    folder = lab_dir(stack.kind, ROOT, os.environ)
    ca_file = str(folder / "monitoring-ca" / "ca.crt")
    address = stack.one("monitoring").address
    return MonitoringLogins(
        prometheus=WebLogin(
            https_base_url(address, PROMETHEUS_PORT),
            "admin",
            read_secret(folder / "secrets", PROMETHEUS_SECRET),
            ca_file,
        ),
        alertmanager=WebLogin(
            https_base_url(address, ALERTMANAGER_PORT),
            "admin",
            read_secret(folder / "secrets", ALERTMANAGER_SECRET),
            ca_file,
        ),
    )


@pytest.fixture(scope="session")
def probe(stack: Stack) -> Iterator[str]:
    """A client container on the stack's network that belongs to no group.

    In a scenario it carries the scenario label (molecule destroy removes
    it); in the lab the lab's label too (`make demo-down` removes it).
    """
    name = f"{stack.network}-e2e-probe"
    if stack.kind == "lab":
        yield start_labelled_probe(name, stack.network, LAB_LABEL)
    else:
        yield start_probe(name, stack.network)
    docker("rm", "-f", name, check=False)


def start_labelled_probe(name: str, network: str, label: str) -> str:
    """start_probe for the lab: same image and command, the lab's label."""
    image = os.environ.get("WEBINFRA_IMAGE", "webinfra/systemd-debian:12")
    docker("rm", "-f", name, check=False)
    docker(
        "run", "-d", "--name", name, "--network", network, "--label", label, image, "sleep", "3600"
    )
    return name


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Report:
    """Print a figure to the real output (pytest captures it otherwise)."""

    def say(name: str, value: float, unit: str) -> None:
        with capsys.disabled():
            print(f"\n{figure(name, value, unit)}", flush=True)

    return say
