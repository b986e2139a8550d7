"""The Grafana dashboard queries only metrics that the gateway and Triton really export."""

from __future__ import annotations

import json
import re

import httpx

from devstack import EmbeddedTriton
from tests.support.data import ROOT
from tests.support.metrics import exported_names

DASHBOARD = ROOT / "deploy" / "grafana" / "gateway-dashboard.json"
METRIC = re.compile(r"\b((?:gateway|nv)_[a-z_]+)\b")


def test_every_dashboard_query_uses_exported_metrics(
    gateway_url: str, triton: EmbeddedTriton
) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    wanted = {name for query in queries for name in METRIC.findall(query)}
    exported = exported_names(httpx.get(f"{gateway_url}/metrics").text)
    exported |= exported_names(httpx.get(triton.endpoints.metrics_url).text)
    assert wanted - exported == set()
    assert len(dashboard["panels"]) >= 6
