"""Shared set-up of the db_cluster tests: the notes table and the writer's CA."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cluster_scenario import CLIENT, WRITER_CA, container_of, healthy
from webinfra_database import mysql_sql
from webinfra_testlib import copy_between


@pytest.fixture(scope="session", autouse=True)
def notes_table() -> Iterator[None]:
    primary = healthy().promoted[0]
    # The CA the members' certificates come from, for vip_writer.py.
    copy_between(container_of(primary), "/etc/mysql/ssl/ca.crt", CLIENT, WRITER_CA)
    mysql_sql(
        container_of(primary),
        "CREATE TABLE IF NOT EXISTS app.notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "body VARCHAR(200) NOT NULL)",
    )
    yield
