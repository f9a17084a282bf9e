"""The daemon methods behind `show services accounting aggregation TYPE`, `... routing`, status and
flow-detail with route sources (in process, a real prefix file, real decoded frames)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from flowd.config.loader import parse_config
from flowd.control import methods
from flowd.control.streamed import whole
from flowd.runtime.probe import Probe
from tests.flowd.test_aggregation_method import T0, frames

CONFIG = """
forwarding-options:
  sampling:
    input: {{rate: 1}}
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {{port: 9, version: 5}}
            127.0.0.2: {{port: 9, version: 8, aggregation: {{protocol-port: true}}}}
flowd:
  routing:
    prefix-file:
      {routes}: {{format: flowd}}
"""


@pytest.fixture
def probe(tmp_path: Path) -> Probe:
    routes = tmp_path / "routes.txt"
    routes.write_text("198.18.0.0/16 64501 192.0.2.1\n198.19.0.0/16 64502 192.0.2.9\n198.18.0.2/32 64503\n")
    cfg = parse_config(CONFIG.format(routes=routes), source="test", syntax="yaml")
    p = Probe(cfg, now=T0)
    p.shard.process(frames("198.18.0.1", 3), T0)
    p.shard.process(frames("198.18.0.2", 2, size=400), T0)
    p.shard.process(frames("198.18.0.3", 1), T0)
    return p


def call(probe: Probe, method: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    result = whole(asyncio.run(methods.call(probe, method, dict(params or {}), lambda: T0 + 5)))
    block: dict[str, Any] = result["interfaces"][0]
    return block


def test_as_aggregation_of_the_cached_flows(probe: Probe) -> None:
    block = call(probe, "accounting.aggregation_as")
    assert block["aggregation_source"] == "flow-cache"
    got = [(e["source_as"], e["destination_as"], e["input_snmp_interface_index"], e["flow_count"], e["packet_count"])
           for e in block["entries"]]
    assert got == [(64503, 64502, 7, 1, 2), (64501, 64502, 7, 2, 4)]  # largest bytes first (the /32's flow)
    assert [e["packet_count"] for e in call(probe, "accounting.aggregation_as", {"order": "packets"})["entries"]] \
        == [4, 2]
    only = call(probe, "accounting.aggregation_as", {"source_as": 64501, "limit": 5})["entries"]
    assert [(e["source_as"], e["flow_count"]) for e in only] == [(64501, 2)]
    assert call(probe, "accounting.aggregation_as", {"destination_as": 1})["entries"] == []


def test_prefix_aggregation_and_prefix_filters(probe: Probe) -> None:
    entries = call(probe, "accounting.aggregation_source_destination_prefix")["entries"]
    assert [(e["source_prefix"], e["source_prefix_length"], e["destination_prefix"],
             e["destination_prefix_length"], e["flow_count"]) for e in entries] == [
        ("198.18.0.2", 32, "198.19.0.0", 16, 1), ("198.18.0.0", 16, "198.19.0.0", 16, 2)]
    inside = call(probe, "accounting.aggregation_source_prefix", {"source_prefix": "198.18.0.0/24"})["entries"]
    assert [(e["source_prefix"], e["source_prefix_length"]) for e in inside] == [("198.18.0.2", 32)]
    dst = call(probe, "accounting.aggregation_destination_prefix", {"destination_as": 64502})["entries"]
    assert [(e["destination_prefix"], e["flow_count"], e["packet_count"]) for e in dst] == [("198.19.0.0", 3, 6)]


def test_protocol_port_shows_the_v8_interval_once_flows_ended(probe: Probe) -> None:
    block = call(probe, "accounting.aggregation_protocol_port")
    assert block["aggregation_source"] == "export-interval" and block["entries"] == []  # nothing ended yet
    probe.flush(T0 + 1)  # the flows end and are exported: v5 now, v8 into the interval's aggregates
    entries = call(probe, "accounting.aggregation_protocol_port", {"proto": 17})["entries"]
    assert [(e["protocol"], e["source_port"], e["destination_port"], e["flow_count"], e["packet_count"])
            for e in entries] == [(17, 5000, 53, 3, 6)]
    assert call(probe, "accounting.aggregation_protocol_port", {"destination_port": 80})["entries"] == []


def test_routing_status_and_flow_detail(probe: Probe) -> None:
    routing = call(probe, "accounting.routing")["routing"]
    assert routing["precedence"] == ["bgp", "kernel", "prefix-file"]
    (source,) = routing["sources"]
    assert (source["source_type"], source["state"], source["ipv4_prefixes"], source["ipv6_prefixes"],
            source["announced"], source["errors"]) == ("prefix-file", "Loaded", 3, 0, 3, 0)
    status = call(probe, "accounting.status")
    assert (status["route_record_count"], status["as_count"], status["route_record_set"]) == (3, 3, True)
    flows = {f["source_address"]: f for f in call(probe, "accounting.flow_detail")["flows"]}
    one = flows["198.18.0.1"]
    assert (one["source_as"], one["destination_as"], one["source_prefix_length"],
            one["destination_prefix_length"]) == (64501, 64502, 16, 16)
    assert flows["198.18.0.2"]["source_prefix_length"] == 32


def test_a_bad_file_on_reload_keeps_the_routes(probe: Probe, tmp_path: Path) -> None:
    (tmp_path / "routes.txt").write_text("198.18.0.0/16 64501\nnot-a-prefix 1\n")
    probe.routes.load_files(strict=False)
    (source,) = call(probe, "accounting.routing")["routing"]["sources"]
    assert source["ipv4_prefixes"] == 3 and source["errors"] == 1
    assert source["last_error"] == f"{tmp_path / 'routes.txt'}:2: bad prefix 'not-a-prefix'"
    (tmp_path / "routes.txt").write_text("198.18.0.0/15 65000\n")
    probe.routes.load_files(strict=False)
    flows = call(probe, "accounting.flow_detail")["flows"]
    assert {(f["source_as"], f["destination_as"], f["source_prefix_length"]) for f in flows} == {(65000, 65000, 15)}


@pytest.mark.parametrize("params, message", [
    ({"order": "flows"}, "order: expected bytes or packets, got 'flows'"),
    ({"source_prefix": "2001:db8::/32"}, "source_prefix: version 8 aggregates are IPv4; got 2001:db8::/32"),
    ({"proto": 1}, "unknown parameter(s): proto"),
])
def test_bad_params(probe: Probe, params: dict[str, Any], message: str) -> None:
    with pytest.raises(methods.BadParams, match=message.replace("(", r"\(").replace(")", r"\)")):
        call(probe, "accounting.aggregation_source_prefix", params)
