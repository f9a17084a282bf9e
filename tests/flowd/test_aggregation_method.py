"""`accounting.aggregation_template`: which families a template lists, MPLS labels decoded from the stack, the
template fields, worker flows merged, and the errors (the daemon method, in process, on real decoded frames)."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Mapping
from typing import Any

import dpkt
import numpy as np
import pytest

from flowd.config.loader import parse_config
from flowd.control import methods
from flowd.control.streamed import whole
from flowd.core.query import shard_flows
from flowd.model.batch import FrameBatch
from flowd.runtime.probe import Probe
from flowd.runtime.shard import Query, QueryKind, Shard, ShardReport

T0 = 1_700_000_000.0

CONFIG = """
services:
  flow-monitoring:
    version-ipfix:
      template:
        v4: {ipv4-template: true}
        v6: {ipv6-template: true}
        unused: {ipv4-template: true}
    version9:
      template:
        lab: {mpls-ipv4-template: true}
        l2: {bridge-template: true}
        l2-spare: {bridge-template: true}
forwarding-options:
  sampling:
    input: {rate: 1}
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {port: 9, version-ipfix: {template: v4}}
            127.0.0.2: {port: 9, version9: {template: lab}}
      inet6:
        output:
          flow-server:
            127.0.0.1: {port: 9, version-ipfix: {template: v6}}
            127.0.0.3: {port: 9, version9: {template: l2}}
"""


def mpls_entry(label: int, exp: int = 0, bottom: bool = False, ttl: int = 64) -> bytes:
    """One RFC 3032 label stack entry: label (20 bits), EXP (3), S (1), TTL (8)."""
    return struct.pack("!I", label << 12 | exp << 9 | int(bottom) << 8 | ttl)


def frames(src: str, count: int, size: int = 20, labels: tuple[int, ...] = ()) -> FrameBatch:
    """`count` UDP packets src:5000 -> (198.19.0.1 | 2001:db8::53):53, IPv4 under an MPLS stack when labels."""
    payload = dpkt.udp.UDP(sport=5000, dport=53, data=b"x" * size)
    if ":" in src:
        ip: dpkt.Packet = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), nxt=17, hlim=64,
                                       dst=socket.inet_pton(socket.AF_INET6, "2001:db8::53"), data=payload)
        ip.plen = len(payload)
        kind = b"\x86\xdd"
    else:
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton("198.19.0.1"), p=17, data=payload)
        ip.len = len(bytes(ip))
        kind = b"\x08\x00"
    stack = b"".join(mpls_entry(label, exp=5, bottom=i == len(labels) - 1) for i, label in enumerate(labels))
    frame = b"\x04" * 6 + b"\x02" * 6 + (b"\x88\x47" + stack if labels else kind) + bytes(ip)
    n = len(frame)
    return FrameBatch(buf=frame * count, offset=np.arange(count, dtype=np.int64) * n,
                      caplen=np.full(count, n, np.uint32), wirelen=np.full(count, n, np.uint32),
                      ts=np.full(count, T0), linktype=np.ones(count, np.uint16), ifindex=np.full(count, 7, np.uint32))


@pytest.fixture
def probe() -> Probe:
    cfg = parse_config(CONFIG, source="test", syntax="yaml")
    p = Probe(cfg, now=T0)
    p.shard.process(frames("198.18.0.1", 3), T0)
    p.shard.process(frames("198.18.0.2", 2, size=400, labels=(299888, 16)), T0)
    p.shard.process(frames("2001:db8::1", 4, size=100), T0)
    return p


def call(probe: Probe, params: Mapping[str, Any]) -> dict[str, Any]:
    result = whole(asyncio.run(methods.call(probe, "accounting.aggregation_template", params, lambda: T0 + 5)))
    block: dict[str, Any] = result["interfaces"][0]
    return block


def test_ipv4_template_lists_the_inet_flows_largest_first(probe: Probe) -> None:
    block = call(probe, {"template_name": "v4"})
    assert block["template"] == {"name": "v4", "type": "ipv4", "format": "ipfix"}
    assert block["service_name"] == "(default sampling)"
    flows = block["flows"]
    assert [(f["source_address"], f["packets"]) for f in flows] == [("198.18.0.2", 2), ("198.18.0.1", 3)]
    labelled, plain = flows
    assert labelled["mpls_labels"] == [299888, 16, 0]  # EXP and S bits dropped, absent third entry 0
    assert plain["mpls_labels"] == [0, 0, 0]
    assert (labelled["source_mask"], labelled["destination_mask"]) == (32, 32)
    assert labelled["top_label_address"] == labelled["bgp_next_hop"] == "0.0.0.0"
    assert labelled["bytes"] == 2 * (20 + 8 + 400)


def test_flow_objects_are_flow_details_plus_the_template_fields(probe: Probe) -> None:
    """The same flows, the same values as accounting.flow_detail shows for them."""
    template = call(probe, {"template_name": "v4"})["flows"]
    detail = whole(asyncio.run(methods.call(probe, "accounting.flow_detail", {}, lambda: T0 + 5)))
    by_source = {f["source_address"]: f for f in detail["interfaces"][0]["flows"]}
    extra = {"mpls_labels", "top_label_address", "bgp_next_hop", "source_mask", "destination_mask", "source_mac",
             "destination_mac", "ethernet_type", "vlan_id"}
    for flow in template:
        assert {k: v for k, v in flow.items() if k not in extra} == by_source[flow["source_address"]]


def test_ipv6_template_lists_the_inet6_flows(probe: Probe) -> None:
    block = call(probe, {"template_name": "v6"})
    assert block["template"]["type"] == "ipv6"
    assert [(f["source_address"], f["source_mask"], f["destination_mask"]) for f in block["flows"]] == [
        ("2001:db8::1", 128, 128)]


def test_a_second_server_of_the_family_shares_its_flows(probe: Probe) -> None:
    block = call(probe, {"template_name": "lab", "limit": 1})
    assert block["template"] == {"name": "lab", "type": "mpls-ipv4", "format": "9"}
    assert [f["mpls_labels"] for f in block["flows"]] == [[299888, 16, 0]]


@pytest.mark.parametrize("name", ["unused", "l2-spare"])
def test_a_template_no_server_uses_lists_nothing(probe: Probe, name: str) -> None:
    assert call(probe, {"template_name": name})["flows"] == []


def test_a_bridge_template_lists_its_familys_flows_with_their_macs(probe: Probe) -> None:
    """Only inet6 exports with l2, so only its flow is listed, with the frames' addresses."""
    flows = call(probe, {"template_name": "l2"})["flows"]
    assert [(f["source_address"], f["destination_mac"], f["source_mac"], f["ethernet_type"], f["vlan_id"])
            for f in flows] == [("2001:db8::1", "04:04:04:04:04:04", "02:02:02:02:02:02", "0x86dd", 0)]
    v4 = call(probe, {"template_name": "v4"})["flows"]  # inet keeps no MACs: zeros
    assert {f["source_mac"] for f in v4} == {"00:00:00:00:00:00"}
    assert [p.table.macs for p in probe.pipeline.paths.values()] == [False, True]
    detail = whole(asyncio.run(methods.call(probe, "accounting.flow_detail", {}, lambda: T0 + 5)))
    macs = {f["source_address"]: (f.get("destination_mac"), f.get("source_mac")) for f in detail["interfaces"][0]["flows"]}
    assert macs == {"198.18.0.1": (None, None), "198.18.0.2": (None, None),  # flow-detail shows kept ones only
                    "2001:db8::1": ("04:04:04:04:04:04", "02:02:02:02:02:02")}


def test_worker_flows_are_merged_and_split_by_family(probe: Probe) -> None:
    other = Shard(probe.cfg, worker=1, workers=2)
    other.process(frames("198.18.0.9", 1, size=1000), T0)
    other.process(frames("2001:db8::9", 9), T0)

    class Pool:
        """Stands in for WorkerPool: the other shard answers FLOWS queries as a capture worker does."""

        def reports(self) -> list[ShardReport]:
            return [other.report(T0)]

        async def query(self, query: Query) -> list[ShardReport]:
            assert query.kind is QueryKind.FLOWS
            return [other.report(T0, flows=shard_flows(other.pipeline, query.params))]

    probe.workers = Pool()  # type: ignore[assignment]
    assert [f["source_address"] for f in call(probe, {"template_name": "v4"})["flows"]] == [
        "198.18.0.9", "198.18.0.2", "198.18.0.1"]
    assert [f["source_address"] for f in call(probe, {"template_name": "v6"})["flows"]] == [
        "2001:db8::9", "2001:db8::1"]  # 9 x 88 bytes, then 4 x 148
    assert [f["source_address"] for f in call(probe, {"template_name": "v4", "limit": 2})["flows"]] == [
        "198.18.0.9", "198.18.0.2"]


@pytest.mark.parametrize(("params", "message"), [
    ({"template_name": "nope"}, "template nope is not configured"),
    ({}, "template_name: required"),
    ({"template_name": 7}, "template_name: expected a non-empty string"),
    ({"template_name": "v4", "limit": 0}, "limit: expected an integer"),
    ({"template_name": "v4", "name": "other"}, "no sampling service named 'other'"),
    ({"template_name": "v4", "order": "bytes"}, "unknown parameter"),
])
def test_bad_params(probe: Probe, params: Mapping[str, Any], message: str) -> None:
    with pytest.raises(methods.BadParams, match=message):
        call(probe, params)
