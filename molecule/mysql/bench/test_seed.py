"""`make bench-seed`: a new replica seeded from a primary that holds at
least 1 GB, by a streamed backup and by a dump, each while the application
writes ten rows a second.

The mysql scenario's verify runs this directory instead of tests/ when
WEBINFRA_MYSQL_VERIFY=bench (the Makefile target sets it); `make test` does
not collect it. The bulk table is written with sql_log_bin = 0, so the
scenario's two replicas do not spend the bench replaying a gigabyte: only
the new server needs it, and it gets it from the seed. Each method checks
what an operator would: the new replica follows the primary, holds the same
bulk rows and every acknowledged write. The figures (seed seconds from the
profile_tasks callback, the play's seconds, the writes' latency) are
printed and written to .cache/bench/seed-<time>.json.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mysql_plays import ADDRESS, DB, NETWORK, WEB, install_client, run, start_writer
from webinfra_database import mysql_replica_status, mysql_sql
from webinfra_testlib import docker, start_systemd_host, task_seconds, wait_for

ROWS = int(os.environ.get("WEBINFRA_BENCH_SEED_ROWS", "2600000"))
PRIMARY, NEW = DB[1], DB[5]
REPORT = Path(__file__).resolve().parents[3] / ".cache" / "bench"
FIGURES: dict[str, Any] = {}


def megabytes() -> int:
    return int(
        mysql_sql(
            PRIMARY,
            "SELECT ROUND(SUM(data_length + index_length) / 1048576) FROM information_schema.tables"
            " WHERE table_schema = 'app'",
        )
    )


@pytest.fixture(scope="module", autouse=True)
def bulk() -> Iterator[None]:
    """app.bulk: order-like rows (two secondary indexes, hex text that
    compresses about as well as application data), then ten seconds of the
    writer alone as the latency baseline."""
    install_client(PRIMARY)
    mysql_sql(
        PRIMARY,
        "CREATE TABLE IF NOT EXISTS app.ledger (id INT AUTO_INCREMENT PRIMARY KEY,"
        " token VARCHAR(64) NOT NULL, amount BIGINT NOT NULL DEFAULT 0)",
    )
    mysql_sql(
        PRIMARY,
        "CREATE TABLE IF NOT EXISTS app.bulk (id INT PRIMARY KEY, k INT NOT NULL,"
        " created DATETIME NOT NULL, pad VARCHAR(700) NOT NULL, KEY (k), KEY (created))",
    )
    began = time.monotonic()
    for start in range(1, ROWS + 1, 100_000):
        end = min(ROWS, start + 99_999)
        mysql_sql(
            PRIMARY,
            "SET SESSION sql_log_bin = 0; INSERT INTO app.bulk"
            " SELECT seq, FLOOR(RAND(seq) * 1000000), NOW() - INTERVAL seq SECOND,"
            " CONCAT(SHA2(seq, 512), SHA2(seq + 1, 512), SHA2(seq + 2, 512), SHA2(seq + 3, 256))"
            f" FROM seq.seq_{start}_to_{end}",
        )
    mysql_sql(PRIMARY, "ANALYZE TABLE app.bulk")  # the sizes below are the statistics'
    FIGURES["data_mb"] = megabytes()
    FIGURES["rows"] = ROWS
    FIGURES["generate_s"] = round(time.monotonic() - began, 1)
    assert FIGURES["data_mb"] >= 1024, FIGURES
    FIGURES["writes_alone"] = stream_writes(f"alone-{int(time.time())}", duration=10)
    os.environ["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
    os.environ["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "all"
    yield
    REPORT.mkdir(parents=True, exist_ok=True)
    path = REPORT / f"seed-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(FIGURES, indent=2) + "\n", encoding="utf-8")
    print(f"\nseed bench: {json.dumps(FIGURES)}\nwritten to {path}")
    docker("rm", "-f", "-v", NEW, check=False)


def stream_writes(tag: str, duration: float) -> dict[str, Any]:
    """Ten writes a second for `duration` seconds: their count and latency."""
    writer = start_writer(PRIMARY, tag, duration=duration, interval=0.1)
    out, err = writer.communicate(timeout=duration + 120)
    result: dict[str, Any] = json.loads(out)
    assert result["error"] is None, (result["error"], err)
    return {"writes": len(result["acked"]), "write_latency_ms": result["latency_ms"]}


def tokens(container: str, tag: str) -> set[str]:
    rows = mysql_sql(container, f"SELECT token FROM app.ledger WHERE token LIKE '{tag}-%'")
    return set(rows.split())


@pytest.mark.parametrize("method", ["backup", "dump"])
def test_a_replica_of_a_gigabyte_is_seeded_under_writes_with_nothing_missing(method: str) -> None:
    docker("rm", "-f", "-v", NEW, check=False)
    start_systemd_host(NEW, NETWORK, ADDRESS[NEW])
    tag, stop = f"{method}-{int(time.time())}", f"/tmp/stop-{method}"
    writer = start_writer(PRIMARY, tag, duration=7200, interval=0.1, stop_file=stop)
    began = time.monotonic()
    try:
        output = run(
            "databases.yml",
            extra_vars={"mysql_replica_seed_method": method},
            add={NEW: ["databases", "db_replicas"]},
        )
    finally:
        play = time.monotonic() - began
        docker("exec", WEB, "touch", stop)
        out, err = writer.communicate(timeout=120)
        docker("exec", WEB, "rm", "-f", stop)
    writes: dict[str, Any] = json.loads(out)
    assert writes["error"] is None, (writes["error"], err)
    assert f"by {method}" in output, output[-3000:]
    status = mysql_replica_status(NEW)
    assert status.get("Slave_SQL_Running") == "Yes", status
    assert mysql_sql(NEW, "SELECT COUNT(*) FROM app.bulk") == str(ROWS)
    acked = set(writes["acked"])
    wait_for(lambda: acked - tokens(NEW, tag), accept=lambda missing: not missing, timeout=60)
    FIGURES[method] = {
        "seed_s": task_seconds(output, f"seed_{method} |"),
        "play_s": round(play, 1),
        "writes": len(acked),
        "write_latency_ms": writes["latency_ms"],
    }
