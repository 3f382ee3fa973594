"""The lab: the whole topology as local systemd containers.

    python -m tools.lab up      # create what is missing, deploy site.yml, print the summary
    python -m tools.lab status  # print the summary of a running lab
    python -m tools.lab down    # remove the lab's containers and network
    python -m tools.lab up --overlay more.yml   # the lab plus the hosts of more.yml

inventory/lab/hosts.yml is the single source of truth: every host in it
becomes a container named after its `ansible_host`, with its
`webinfra_address` on the `lab_network` (`lab_subnet`). Running `up` again
on a live lab converges again without recreating containers. An overlay
inventory (`--overlay`, see `overlay_inventory`) adds hosts without
changing inventory/lab; every lab container, an overlay's too, carries the
label webinfra.lab, so `down` removes them all.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from tools.lab_model import (
    DOCKER_SOCKET,
    INVENTORY,
    ROOT,
    Lab,
    LabError,
    LabHost,
    expand_env,
    inventory_args,
    overlay_inventory,
    parse_inventory,
    retired_inventory,
)

__all__ = [
    "DOCKER_SOCKET", "INVENTORY", "ROOT", "Lab", "LabError", "LabHost", "expand_env",
    "inventory_args", "overlay_inventory", "parse_inventory", "retired_inventory",
]  # fmt: skip
VENV_BIN = ROOT / ".venv" / "bin"
LABEL = "webinfra.lab"
# apt-cacher-ng on this machine (scripts/setup-apt-proxy.sh), as the molecule
# scenarios use it: repeated demos fetch each package once.
APT_PROXY_PORT = 3142
APT_PROXY_CONF = "/etc/apt/apt.conf.d/01webinfra-lab-proxy"
# Lab-only playbooks, run before site.yml when they exist: the lab's ACME
# certificate authority must answer before the certbot role asks it, the
# fencing gateway before the database cluster fences through it, and the
# alert mailbox before Alertmanager mails it.
LAB_PLAYBOOKS = ("playbooks/lab_acme.yml", "playbooks/lab_fence.yml", "playbooks/lab_mail.yml")


def load_lab(overlays: Sequence[Path] = (), inventory: Path = INVENTORY) -> Lab:
    out = subprocess.run(
        [tool("ansible-inventory"), *inventory_args(overlays, inventory), "--list"],
        capture_output=True,
        text=True,
        check=False,
        env=ansible_env(),
    )
    if out.returncode != 0:
        raise LabError(f"ansible-inventory could not read {INVENTORY}:\n{out.stderr.strip()}")
    return parse_inventory(json.loads(out.stdout))


def write_overlay(group: str, hosts: Sequence[tuple[str, str]], path: Path) -> Path:
    """Write to `path` an overlay inventory adding `hosts` ((name, address)
    pairs) to `group` of the lab; pass it in `overlays` to load_lab."""
    path.write_text(json.dumps(overlay_inventory(group, hosts), indent=2), encoding="utf-8")
    return path


def write_retired_inventory(names: Sequence[str], directory: Path) -> Path:
    """An inventory folder in `directory`: the lab without the hosts `names`,
    with the lab's group_vars (linked). Pass it as `inventory` to load_lab
    and to bench_run.ansible_playbook."""
    data = yaml.safe_load((INVENTORY / "hosts.yml").read_text(encoding="utf-8"))
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "hosts.yml").write_text(
        json.dumps(retired_inventory(data, names), indent=2), encoding="utf-8"
    )
    link = directory / "group_vars"
    if not link.exists():
        link.symlink_to(INVENTORY / "group_vars", target_is_directory=True)
    return directory


def tool(name: str) -> str:
    candidate = VENV_BIN / name
    return str(candidate) if candidate.exists() else name


def ansible_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of the lab's ansible runs: the project's venv first.

    Pipelining and 10 forks, as the molecule scenarios run (.config/molecule):
    the lab has eight hosts, more than Ansible's default of five forks, and
    pipelining saves a module upload per task. A user's own setting wins.
    """
    env = dict(os.environ if base is None else base)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".venv" / "collections"))
    env.setdefault("ANSIBLE_PIPELINING", "True")
    env.setdefault("ANSIBLE_FORKS", "10")
    return env


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise LabError("the docker CLI is missing: run `make docker` first") from exc
    if check and done.returncode != 0:
        raise LabError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done


def host_port(mapping: str) -> tuple[str, int]:
    """('127.0.0.1', 8443) from '127.0.0.1:8443:443'."""
    parts = mapping.split(":")
    if len(parts) != 3 or not parts[1].isdigit():
        raise LabError(f"published port '{mapping}' must look like ADDRESS:HOSTPORT:PORT")
    return parts[0], int(parts[1])


def port_in_use(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return True
    return False


def container_state(name: str) -> str | None:
    """'running', 'exited', ... or None when the container does not exist."""
    done = docker("inspect", "-f", "{{.State.Status}}", name, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def preflight(lab: Lab) -> None:
    if docker("info", check=False).returncode != 0:
        raise LabError("the Docker engine does not answer: run `make docker` (or `make setup`)")
    image = lab_image()
    if docker("image", "inspect", image, check=False).returncode != 0:
        raise LabError(f"the base image {image} is missing: run `make images`")
    for host in lab.hosts:
        if container_state(host.container) is not None:
            continue  # a live lab holds its own ports
        for mapping in host.published_ports:
            address, port = host_port(mapping)
            if port_in_use(address, port):
                raise LabError(
                    f"port {port} on {address} is in use, and {host.name} publishes it. "
                    "Free it, or choose another port with the environment variable named "
                    f"in {INVENTORY}/hosts.yml (lab_published_ports of {host.name})."
                )


def lab_image() -> str:
    distro = os.environ.get("WEBINFRA_LAB_DISTRO", "12")
    return (
        os.environ.get(f"WEBINFRA_IMAGE_DEBIAN{distro}")
        or os.environ.get("WEBINFRA_IMAGE")
        or f"webinfra/systemd-debian:{distro}"
    )


def ensure_network(lab: Lab) -> None:
    if docker("network", "inspect", lab.network, check=False).returncode == 0:
        return
    done = docker(
        "network",
        "create",
        "--subnet",
        lab.subnet,
        "--label",
        f"{LABEL}=1",
        lab.network,
        check=False,
    )
    if done.returncode != 0:
        if "overlap" in done.stderr:
            raise LabError(
                f"the lab subnet {lab.subnet} overlaps a Docker network that exists already "
                "(see `docker network ls`); remove that network, then run `make demo` again"
            )
        raise LabError(f"could not create the network {lab.network}: {done.stderr.strip()}")


def run_args(lab: Lab, host: LabHost, image: str) -> list[str]:
    """The `docker run` arguments that boot one lab host with systemd."""
    args = [
        "run", "-d", "--name", host.container, "--hostname", host.name,
        "--network", lab.network, "--ip", host.address,
        "--label", f"{LABEL}=1",
        "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--cap-add", "NET_RAW",
        "--security-opt", "seccomp=unconfined", "--cgroupns", "host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
        "--tmpfs", "/run", "--tmpfs", "/run/lock",
        "--stop-signal", "SIGRTMIN+3",
    ]  # fmt: skip
    for key, value in host.sysctls.items():
        args += ["--sysctl", f"{key}={value}"]
    if host.shm_size:
        args += ["--shm-size", host.shm_size]
    for volume in host.volumes:
        args += ["-v", volume]
    for mapping in host.published_ports:
        args += ["-p", mapping]
    return [*args, image, "/lib/systemd/systemd"]


def ensure_hosts(lab: Lab) -> None:
    image = lab_image()
    for host in lab.hosts:
        state = container_state(host.container)
        if state == "running":
            print(f"    {host.name}: running")
        elif state is not None:
            print(f"    {host.name}: starting the stopped container")
            docker("start", host.container)
        else:
            print(f"    {host.name}: creating {host.container} ({host.address})")
            docker(*run_args(lab, host, image))
    for host in lab.hosts:
        wait_booted(host)
    if apt_proxy_wanted():
        print("    apt in every host goes through the host's caching proxy (port 3142)")
        for host in lab.hosts:
            use_apt_proxy(host)


def apt_proxy_wanted() -> bool:
    """The caching apt proxy of `make setup` answers, and the user did not opt out."""
    if os.environ.get("WEBINFRA_APT_PROXY", "on") == "off":
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", APT_PROXY_PORT)) == 0


def use_apt_proxy(host: LabHost) -> None:
    """Point the host's apt at the proxy on its network's gateway (the Docker host)."""
    script = (
        "gw=$(ip route show default | awk '{print $3; exit}') && "
        f'printf \'Acquire::http::Proxy "http://%s:{APT_PROXY_PORT}";\\n\' "$gw" '
        f"> {APT_PROXY_CONF}"
    )
    docker("exec", host.container, "sh", "-c", script)


def wait_booted(host: LabHost, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = docker("exec", host.container, "systemctl", "is-system-running", check=False)
        if done.stdout.strip() in ("running", "degraded"):
            return
        time.sleep(1)
    raise LabError(f"systemd did not finish booting in {host.container} within {timeout:.0f} s")


def lab_playbooks() -> list[str]:
    """The lab-only playbooks that exist, run before site.yml."""
    return [p for p in LAB_PLAYBOOKS if (ROOT / p).is_file()]


def deploy(overlays: Sequence[Path] = ()) -> None:
    for playbook in [*lab_playbooks(), "playbooks/site.yml"]:
        shown = " ".join(f"-i {o}" for o in overlays)
        print(f"==> ansible-playbook -i inventory/lab {shown} {playbook}", flush=True)
        done = subprocess.run(
            [tool("ansible-playbook"), *inventory_args(overlays), playbook],
            cwd=ROOT,
            env=ansible_env(),
            check=False,
        )
        if done.returncode != 0:
            raise LabError(
                f"{playbook} failed against the lab (exit {done.returncode}); "
                "the containers stay up: fix the cause and run `make demo` again"
            )


def probe(url: str) -> str:
    """A short description of what `url` answers, for the summary."""
    import requests  # a controller tool dependency; imported late for `down`
    import urllib3

    # The lab's certificate comes from its own test CA until the summary
    # learns to trust it; the summary only reports what answers.
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    try:
        response = requests.get(url, timeout=3, verify=False, allow_redirects=False)
    except requests.RequestException:
        return "not answering"
    served_by = response.headers.get("X-Served-By")
    return f"HTTP {response.status_code}" + (f", served by {served_by}" if served_by else "")


def summary(lab: Lab) -> str:
    lines = [f"Lab network {lab.network} ({lab.subnet}), virtual IP {lab.vip}"]
    if lab.db_write_vip:
        lines.append(
            f"Database cluster (Pacemaker): writes go to {lab.db_write_vip}, on whichever "
            "database host is promoted (`crm_mon -1` on a database host shows the cluster)"
        )
    lines.append("")
    width = max(len(h.name) for h in lab.hosts)
    for host in lab.hosts:
        state = container_state(host.container) or "absent"
        lines.append(
            f"  {host.name:<{width}}  {host.address:<15} {state:<8} {', '.join(host.groups)}"
        )
    lines.append("")
    lb = lab.first_in("loadbalancers")
    mon = lab.first_in("monitoring")
    urls = [
        ("Site over HTTPS (virtual IP)", f"https://{lab.vip}/"),
        ("Site over HTTP (answers 301)", f"http://{lab.vip}/"),
    ]
    if lb is not None:
        urls.append(("HAProxy stats (user admin)", f"http://{lb.address}:8404/stats"))
    if mon is not None:
        # HTTPS with a login (user admin, the passwords in .lab/secrets/,
        # the certificate from .lab/monitoring-ca/ca.crt).
        urls.append(("Prometheus (user admin)", f"https://{mon.address}:9090/"))
        urls.append(("Stack console", f"https://{mon.address}:9090/consoles/webinfra.html"))
        urls.append(("Alertmanager (user admin)", f"https://{mon.address}:9093/"))
    for label, url in urls:
        lines.append(f"  {label:<30} {url:<48} {probe(url)}")
    published = [(h.name, m) for h in lab.hosts for m in h.published_ports]
    if published:
        lines.append("")
        lines.append("  Also published on this machine:")
        for name, mapping in published:
            address, port = host_port(mapping)
            lines.append(f"    {address}:{port} -> {name}:{mapping.rsplit(':', 1)[1]}")
    lines.append("")
    lines.append("  Secrets (generated, never committed): .lab/secrets/")
    if mon is not None:
        lines.append(
            "  Prometheus and Alertmanager: passwords in .lab/secrets/monitoring_prometheus"
            " and monitoring_alertmanager, CA in .lab/monitoring-ca/ca.crt"
        )
    lines.append("  Tear down: make demo-down")
    return "\n".join(lines)


def up(overlays: Sequence[Path] = ()) -> None:
    lab = load_lab(overlays)
    print("==> Checking the prerequisites", flush=True)
    preflight(lab)
    print(f"==> Network {lab.network} ({lab.subnet})", flush=True)
    ensure_network(lab)
    print("==> Containers", flush=True)
    ensure_hosts(lab)
    deploy(overlays)
    print(summary(lab))


def down() -> None:
    lab = load_lab()
    names = docker("ps", "-aq", "--filter", f"label={LABEL}=1").stdout.split()
    if names:
        docker("rm", "-f", "-v", *names)
    print(f"removed {len(names)} container(s)")
    if docker("network", "inspect", lab.network, check=False).returncode == 0:
        docker("network", "rm", lab.network)
        print(f"removed network {lab.network}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument(
        "--overlay",
        type=Path,
        action="append",
        default=[],
        help="an extra inventory with more lab hosts (up, status; repeatable)",
    )
    args = parser.parse_args(argv)
    try:
        if args.action == "up":
            up(args.overlay)
        elif args.action == "down":
            down()
        else:
            print(summary(load_lab(args.overlay)))
    except LabError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; the lab is left as it is (make demo-down removes it)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
