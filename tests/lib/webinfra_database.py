"""MariaDB as the tests read it: SQL through the unix socket of a container."""

from __future__ import annotations

from webinfra_testlib import docker, parse_vertical


def mysql_sql(container: str, statement: str) -> str:
    """Run SQL as root through the unix socket in `container`.

    Returns tab-separated rows without a header; raises on an SQL error.
    """
    done = docker("exec", container, "mariadb", "-N", "-B", "-e", statement, check=False)
    if done.returncode != 0:
        raise AssertionError(f"{container}: {statement!r} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def mysql_replica_status(container: str) -> dict[str, str]:
    """SHOW SLAVE STATUS of `container` as a dictionary ({} when not a replica)."""
    out = docker("exec", container, "mariadb", "-e", "SHOW SLAVE STATUS\\G").stdout
    rows = parse_vertical(out)
    return rows[0] if rows else {}
