"""Unit tests of the haproxy and load helpers (webinfra_haproxy, webinfra_load)."""

from __future__ import annotations

import pytest
from webinfra_haproxy import parse_haproxy_stat
from webinfra_load import alternates, alternating_sample

SHOW_STAT = """\
# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,\
eresp,wretr,wredis,status,
https,FRONTEND,,,1,3,4096,50,,,,,,,,,,OPEN,
web,web-01,0,0,2,5,,20,,,,,,0,0,0,0,UP,
web,web-02,0,0,0,4,,18,,,,,,0,0,0,0,DRAIN,
web,BACKEND,0,0,2,9,410,38,,,,,,0,0,0,0,UP,
"""


def test_parse_haproxy_stat_keys_rows_by_proxy_and_server() -> None:
    rows = parse_haproxy_stat(SHOW_STAT)
    assert rows[("web", "web-01")]["status"] == "UP"
    assert rows[("web", "web-01")]["scur"] == "2"
    assert rows[("web", "web-02")]["status"] == "DRAIN"
    assert rows[("https", "FRONTEND")]["status"] == "OPEN"
    assert len(rows) == 4


def test_parse_haproxy_stat_ignores_text_without_header() -> None:
    assert parse_haproxy_stat("Unknown command\n") == {}


def test_alternates_needs_two_values_never_repeated() -> None:
    assert alternates(["a", "b", "a", "b"])
    assert not alternates(["a", "a", "b"])
    assert not alternates(["a", "a"])
    assert not alternates([])


def test_alternating_sample_takes_the_first_sample_that_alternates() -> None:
    samples = iter([["a", "a", "b"], ["a", "b", "a"], ["b", "b"]])
    assert alternating_sample(lambda: next(samples)) == ["a", "b", "a"]


def test_alternating_sample_fails_when_no_sample_alternates() -> None:
    calls: list[int] = []

    def stuck() -> list[str]:
        calls.append(1)
        return ["a", "a", "b"]

    with pytest.raises(AssertionError, match="none of 3 samples alternated"):
        alternating_sample(stuck, attempts=3)
    assert len(calls) == 3
