"""Unit tests of tests/lib/webinfra_cluster.py (no containers)."""

from __future__ import annotations

import json

from webinfra_cluster import (
    ReadOnlySample,
    Write,
    double_writers,
    parse_crm_mon,
    parse_samples,
    parse_writes,
    writes_back_after,
)


def line(t: float, ok: bool, text: str) -> str:
    return json.dumps({"t": t, "ok": ok, "text": text, "server": 1 if ok else None})


def test_parse_writes_skips_other_lines() -> None:
    text = "\n".join(["warning: x", line(1.0, True, "a-0"), "", line(2.0, False, "a-1")])
    assert parse_writes(text) == [Write(1.0, True, "a-0"), Write(2.0, False, "a-1")]


def test_parse_writes_keeps_the_cipher_of_the_connection() -> None:
    text = json.dumps(
        {"t": 1.0, "ok": True, "text": "a-0", "server": 1, "cipher": "TLS_AES_256_GCM_SHA384"}
    )
    failed = json.dumps({"t": 2.0, "ok": False, "text": "a-1", "server": None, "error": "gone"})
    assert parse_writes(text + "\n" + failed) == [
        Write(1.0, True, "a-0", cipher="TLS_AES_256_GCM_SHA384"),
        Write(2.0, False, "a-1", error="gone"),
    ]


def test_writes_back_after_counts_to_the_first_success_after_the_last_failure() -> None:
    writes = [
        Write(t, ok, str(t))
        for t, ok in [(9, True), (10, False), (12, True), (13, False), (16.5, True)]
    ]
    assert writes_back_after(writes, 10.0) == 6.5


def test_writes_back_after_without_failures_or_recovery() -> None:
    assert writes_back_after([Write(11, True, "x")], 10.0) == 0.0
    assert writes_back_after([Write(11, False, "x")], 10.0) is None
    assert writes_back_after([Write(9, True, "x")], 10.0) is None


def test_double_writers() -> None:
    samples = [ReadOnlySample(1, ("a",)), ReadOnlySample(2, ("a", "b")), ReadOnlySample(3, ())]
    assert double_writers(samples) == [ReadOnlySample(2, ("a", "b"))]


CRM_MON = """<pacemaker-result>
  <summary><current_dc present="true" name="db-01" id="1" with_quorum="true"/></summary>
  <nodes>
    <node name="db-01" id="1" online="true" unclean="false"/>
    <node name="db-02" id="2" online="false" unclean="true"/>
  </nodes>
  <resources>
    <resource id="fence-docker" resource_agent="stonith:fence_docker" role="Started" active="true">
      <node name="db-01" id="1" cached="true"/>
    </resource>
    <clone id="mariadb-clone" multi_state="true">
      <resource id="mariadb" resource_agent="ocf:webinfra:mariadb" role="Promoted" active="true">
        <node name="db-01" id="1" cached="true"/>
      </resource>
      <resource id="mariadb" resource_agent="ocf:webinfra:mariadb" role="Stopped" active="false"/>
    </clone>
    <resource id="write-vip" resource_agent="ocf:heartbeat:IPaddr2" role="Started" active="true">
      <node name="db-01" id="1" cached="true"/>
    </resource>
  </resources>
</pacemaker-result>"""


def test_parse_crm_mon() -> None:
    state = parse_crm_mon(CRM_MON)
    assert state.quorate
    assert state.online == ("db-01",)
    assert state.unclean == ("db-02",)
    assert state.promoted == ("db-01",)
    assert state.unpromoted == ()
    assert state.started["write-vip"] == ("db-01",)
    assert state.started["fence-docker"] == ("db-01",)


def test_parse_crm_mon_names_the_resources_with_an_operation_in_flight() -> None:
    assert parse_crm_mon(CRM_MON).pending == ()
    text = CRM_MON.replace(
        '<resource id="write-vip" resource_agent="ocf:heartbeat:IPaddr2" role="Started"',
        '<resource id="write-vip" resource_agent="ocf:heartbeat:IPaddr2" role="Started" '
        'pending="Starting"',
    )
    assert parse_crm_mon(text).pending == ("write-vip",)


def test_parse_crm_mon_without_quorum() -> None:
    text = CRM_MON.replace('with_quorum="true"', 'with_quorum="false"')
    assert not parse_crm_mon(text).quorate


def test_exporter_samples_are_parsed_with_their_labels() -> None:
    text = (
        "# HELP ha_cluster_corosync_quorate Whether or not the cluster is quorate\n"
        "# TYPE ha_cluster_corosync_quorate gauge\n"
        "ha_cluster_corosync_quorate 1 1234\n"
        'ha_cluster_pacemaker_resources{agent="ocf::webinfra:mariadb",clone="mariadb-clone",'
        'node="db-02",resource="mariadb",role="promoted",status="active"} 1\n'
        'odd{path="a\\"b"} 0\n'
    )
    samples = parse_samples(text)
    assert samples[0] == ("ha_cluster_corosync_quorate", {}, 1.0)
    name, labels, value = samples[1]
    assert (name, labels["node"], labels["role"], value) == (
        "ha_cluster_pacemaker_resources",
        "db-02",
        "promoted",
        1.0,
    )
    assert samples[2][1] == {"path": 'a\\"b'}
    assert len(samples) == 3
