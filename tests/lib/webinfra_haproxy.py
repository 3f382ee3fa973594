"""HAProxy's runtime API as the tests read it: the stats CSV and a server's state."""

from __future__ import annotations

from webinfra_testlib import docker


def parse_haproxy_stat(csv_text: str) -> dict[tuple[str, str], dict[str, str]]:
    """Parse the runtime API's `show stat` CSV into {(proxy, server): fields}."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    header: list[str] = []
    for line in csv_text.splitlines():
        if line.startswith("# "):
            header = line[2:].rstrip(",").split(",")
            continue
        if not line.strip() or not header:
            continue
        values = line.split(",")
        fields = dict(zip(header, values, strict=False))
        rows[(fields["pxname"], fields["svname"])] = fields
    return rows


def haproxy_command(container: str, command: str, socket: str = "/run/haproxy/admin.sock") -> str:
    """One command to the HAProxy in `container`, through its runtime API."""
    done = docker(
        "exec", container, "sh", "-c", f"echo '{command}' | socat stdio {socket}", timeout=30
    )
    return done.stdout


def haproxy_stat(container: str, socket: str = "/run/haproxy/admin.sock") -> str:
    """`show stat` of the HAProxy in `container`."""
    return haproxy_command(container, "show stat", socket)


def haproxy_server_status(container: str, backend: str, server: str) -> str:
    """Status of one server as HAProxy sees it: UP, DOWN, DRAIN, MAINT, ..."""
    rows = parse_haproxy_stat(haproxy_stat(container))
    return rows.get((backend, server), {}).get("status", "")
