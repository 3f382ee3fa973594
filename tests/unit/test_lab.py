"""Unit tests of the lab tool (tools/lab.py); no container is started."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from tools.lab import (
    INVENTORY,
    LABEL,
    ROOT,
    Lab,
    LabError,
    LabHost,
    ansible_env,
    apt_proxy_wanted,
    expand_env,
    host_port,
    inventory_args,
    load_lab,
    overlay_inventory,
    parse_inventory,
    port_in_use,
    retired_inventory,
    run_args,
    write_overlay,
    write_retired_inventory,
)


def test_expand_env_uses_default_then_environment() -> None:
    value = "127.0.0.1:${WEBINFRA_LAB_HTTPS_PORT:-8443}:443"
    assert expand_env(value, {}) == "127.0.0.1:8443:443"
    assert expand_env(value, {"WEBINFRA_LAB_HTTPS_PORT": "9443"}) == "127.0.0.1:9443:443"


def test_host_port_parses_and_rejects() -> None:
    assert host_port("127.0.0.1:8443:443") == ("127.0.0.1", 8443)
    with pytest.raises(LabError, match="ADDRESS:HOSTPORT:PORT"):
        host_port("8443:443")


def test_port_in_use_sees_a_bound_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert port_in_use("127.0.0.1", sock.getsockname()[1])


def test_the_lab_inventory_is_the_architecture_topology() -> None:
    lab = load_lab()
    assert {h.name for h in lab.hosts} == {
        "lb-01", "lb-02", "web-01", "web-02", "db-01", "db-02", "mon-01", "acme-01",
        "fence-01",
    }  # fmt: skip
    assert lab.host("db-01").groups == ("databases", "db_primary")
    assert lab.host("db-02").groups == ("databases", "db_replicas")
    assert [h.name for h in lab.hosts if "loadbalancers" in h.groups] == ["lb-01", "lb-02"]
    addresses = [h.address for h in lab.hosts]
    assert len(set(addresses)) == len(addresses)
    assert lab.vip not in addresses
    # The database tier is clustered, its write VIP on the lab network too.
    assert lab.db_write_vip not in ("", *addresses, lab.vip)


def test_load_balancers_boot_with_nonlocal_bind() -> None:
    lab = Lab("net", "10.9.0.0/24", "10.9.0.10")
    lb = LabHost("lb-01", "c-lb", "10.9.0.11", ("loadbalancers",), ("127.0.0.1:8443:443",))
    web = LabHost("web-01", "c-web", "10.9.0.21", ("webservers",))
    lb_args = run_args(lab, lb, "img")
    assert "net.ipv4.ip_nonlocal_bind=1" in lb_args
    assert lb_args[lb_args.index("-p") + 1] == "127.0.0.1:8443:443"
    assert "--sysctl" not in run_args(lab, web, "img")
    assert run_args(lab, web, "img")[-2:] == ["img", "/lib/systemd/systemd"]


def test_cluster_members_get_shared_memory_and_only_the_gateway_the_docker_socket() -> None:
    lab = Lab("net", "10.9.0.0/24", "10.9.0.10")
    db = LabHost("db-01", "c-db", "10.9.0.31", ("databases", "db_primary"))
    gateway = LabHost("fence-01", "c-fence", "10.9.0.6", ("fence_gateway", "webinfra_unmanaged"))
    web = LabHost("web-01", "c-web", "10.9.0.21", ("webservers",))
    db_args = run_args(lab, db, "img")
    assert db_args[db_args.index("--shm-size") + 1] == "256m"
    assert "/var/run/docker.sock:/var/run/docker.sock" not in db_args
    gateway_args = run_args(lab, gateway, "img")
    assert "/var/run/docker.sock:/var/run/docker.sock" in gateway_args
    assert "--shm-size" not in gateway_args
    assert not {"--shm-size", "/var/run/docker.sock:/var/run/docker.sock"} & set(
        run_args(lab, web, "img")
    )


def test_an_address_outside_the_subnet_is_refused() -> None:
    data = {
        "_meta": {
            "hostvars": {
                "web-01": {
                    "lab_network": "n",
                    "lab_subnet": "10.9.0.0/24",
                    "lab_vip": "10.9.0.10",
                    "webinfra_address": "10.8.0.21",
                }
            }
        },
        "all": {"children": ["webservers"]},
        "webservers": {"hosts": ["web-01"]},
    }
    with pytest.raises(
        LabError, match=r"web-01: webinfra_address must be an address in 10\.9\.0\.0/24"
    ):
        parse_inventory(data)


def test_the_apt_proxy_is_skipped_when_the_user_opts_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBINFRA_APT_PROXY", "off")
    assert apt_proxy_wanted() is False


def test_the_apt_proxy_is_used_only_when_it_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WEBINFRA_APT_PROXY", raising=False)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        monkeypatch.setattr("tools.lab.APT_PROXY_PORT", listener.getsockname()[1])
        assert apt_proxy_wanted() is True
    monkeypatch.setattr("tools.lab.APT_PROXY_PORT", free_port())
    assert apt_proxy_wanted() is False


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_lab_ansible_runs_pipeline_with_ten_forks() -> None:
    env = ansible_env({"PATH": "/usr/bin"})
    assert env["ANSIBLE_PIPELINING"] == "True"
    assert env["ANSIBLE_FORKS"] == "10"
    assert env["PATH"].endswith("/usr/bin") and env["PATH"] != "/usr/bin"


def test_a_users_own_ansible_settings_win() -> None:
    env = ansible_env({"ANSIBLE_PIPELINING": "False", "ANSIBLE_FORKS": "3"})
    assert env["ANSIBLE_PIPELINING"] == "False"
    assert env["ANSIBLE_FORKS"] == "3"


def test_an_overlay_adds_hosts_to_a_group_with_the_lab_naming() -> None:
    data = overlay_inventory("webservers", [("web-03", "10.9.0.23")], Path("/x/.lab"))
    host = data["all"]["children"]["webservers"]["hosts"]["web-03"]
    assert host == {
        "ansible_host": "webinfra-lab-web-03",
        "webinfra_address": "10.9.0.23",
        "lab_dir": "/x/.lab",
    }
    assert inventory_args([Path("/o.yml")]) == ["-i", str(INVENTORY), "-i", "/o.yml"]


def test_the_lab_with_an_overlay_has_the_extra_web_servers(tmp_path: Path) -> None:
    hosts = [("web-03", "172.31.250.23"), ("web-04", "172.31.250.24")]
    overlay = write_overlay("webservers", hosts, tmp_path / "overlay.yml")
    lab = load_lab([overlay])
    webs = [h for h in lab.hosts if "webservers" in h.groups]
    assert [h.name for h in webs] == ["web-01", "web-02", "web-03", "web-04"]
    web3 = lab.host("web-03")
    assert (web3.container, web3.address) == ("webinfra-lab-web-03", "172.31.250.23")
    assert lab.network == "webinfra-lab"  # the lab's own variables reach the extra hosts
    # Labelled like every lab host, so `make demo-down` removes it after an interruption.
    args = run_args(lab, web3, "img")
    assert args[args.index("--label") + 1] == f"{LABEL}=1"
    assert overlay_inventory("g", [])["all"]["children"]["g"]["hosts"] == {}
    assert str(ROOT / ".lab") == str(INVENTORY.parent.parent / ".lab")


def test_a_retired_host_leaves_every_group_and_the_rest_stays() -> None:
    data: dict[str, Any] = {
        "all": {
            "vars": {"lab_dir": "{{ inventory_dir }}/../../.lab", "lab_vip": "10.9.0.10"},
            "children": {
                "loadbalancers": {"hosts": {"lb-01": {"webinfra_address": "10.9.0.11"},
                                            "lb-02": {"webinfra_address": "10.9.0.12"}}},
                "databases": {"children": {"db_primary": {"hosts": {"db-01": {}}}}},
            },
        }
    }  # fmt: skip
    kept = retired_inventory(data, ["lb-01"], Path("/x/.lab"))
    assert kept["all"]["children"]["loadbalancers"]["hosts"] == {
        "lb-02": {"webinfra_address": "10.9.0.12"}
    }
    assert kept["all"]["children"]["databases"] == data["all"]["children"]["databases"]
    assert kept["all"]["vars"] == {"lab_dir": "/x/.lab", "lab_vip": "10.9.0.10"}
    # The lab's own description is untouched.
    assert "lb-01" in data["all"]["children"]["loadbalancers"]["hosts"]
    with pytest.raises(LabError, match="no host lb-09"):
        retired_inventory(data, ["lb-09"])


def test_the_retired_lab_is_read_with_the_labs_group_vars(tmp_path: Path) -> None:
    folder = write_retired_inventory(["lb-01"], tmp_path / "retired")
    assert (folder / "group_vars").resolve() == (INVENTORY / "group_vars").resolve()
    assert inventory_args([], folder) == ["-i", str(folder)]
    retired = load_lab(inventory=folder)
    assert "lb-01" not in [h.name for h in retired.hosts]
    assert [h.name for h in retired.hosts if "loadbalancers" in h.groups] == ["lb-02"]
