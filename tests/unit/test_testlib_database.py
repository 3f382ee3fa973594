"""The parsers the mysql scenario's tests rely on."""

from __future__ import annotations

from webinfra_testlib import parse_vertical, play_recap, task_seconds

STATUS = """*************************** 1. row ***************************
                Slave_IO_State: Waiting for master to send event
                   Master_Host: 172.30.5.11
              Slave_IO_Running: Yes
                    Last_Error:
*************************** 2. row ***************************
                   Master_Host: 172.30.5.12
"""

RECAP = """TASK [x] ***
ok: [a]

PLAY RECAP *********************************************************************
db-01  : ok=5    changed=0    unreachable=0    failed=1    skipped=2    rescued=0
localhost  : ok=1    changed=3    unreachable=0    failed=0    skipped=0
"""


def test_parse_vertical_reads_every_row() -> None:
    rows = parse_vertical(STATUS)
    assert len(rows) == 2
    assert rows[0]["Master_Host"] == "172.30.5.11"
    assert rows[0]["Slave_IO_Running"] == "Yes"
    assert rows[0]["Last_Error"] == ""
    assert rows[1] == {"Master_Host": "172.30.5.12"}


def test_parse_vertical_of_nothing_is_empty() -> None:
    assert parse_vertical("") == []


def test_play_recap_reads_counters_per_host() -> None:
    recap = play_recap(RECAP)
    assert recap["db-01"]["failed"] == 1
    assert recap["db-01"]["changed"] == 0
    assert recap["localhost"]["changed"] == 3
    assert set(recap) == {"db-01", "localhost"}


def test_play_recap_ignores_output_before_the_recap() -> None:
    assert play_recap("ok: [a] => changed=1\n") == {}


def test_play_recap_ignores_colours() -> None:
    coloured = "PLAY RECAP ***\n\x1b[0;31mdb-01\x1b[0m : \x1b[0;32mok=2\x1b[0m changed=0 failed=1\n"
    assert play_recap(coloured) == {"db-01": {"ok": 2, "changed": 0, "failed": 1}}


PROFILE = """
===============================================================================
webinfra.stack.mysql_replica : seed_backup | Stream a backup of the source -- 17.61s
webinfra.stack.mysql_replica : seed_backup | Prepare the copy (apply the redo it carries) --- 1.33s
webinfra.stack.mysql_replica : seed | Measure the data the source holds --- 0.35s
webinfra.stack._mysql_common : install | Install the packages ----------- 41.02s
"""


def test_task_seconds_sums_the_profile_lines_whose_task_name_matches() -> None:
    assert task_seconds(PROFILE, "seed_backup |") == 18.94
    assert task_seconds(PROFILE, " seed") == 19.29
    assert task_seconds(PROFILE, "no such task") == 0.0
    assert task_seconds("ok: [db-01]\nchanged: [db-02] -- 3.00s later", "db") == 0.0
