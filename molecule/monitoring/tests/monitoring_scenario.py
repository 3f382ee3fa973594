"""Names and addresses of the monitoring scenario, shared by its tests."""

from __future__ import annotations

NETWORK = "webinfra-monitoring"
MON = "webinfra-monitoring-mon-01"
LB = "webinfra-monitoring-lb-01"
WEB = "webinfra-monitoring-web-01"
DB = "webinfra-monitoring-db-01"
ADDRESSES = {MON: "172.30.9.10", LB: "172.30.9.11", WEB: "172.30.9.12", DB: "172.30.9.13"}
PROMETHEUS = f"http://{ADDRESSES[MON]}:9090"
ALERTMANAGER = f"http://{ADDRESSES[MON]}:9093"
