"""flowd.export.v8: every aggregation method decoded by tshark, equal to a reference built from the flows."""

from __future__ import annotations

import ipaddress
import random
import socket
import struct
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from flowd.config.loader import parse_config
from flowd.export.exporter import Exporter
from flowd.export.v8 import (
    AS_TRANS,
    MAX_RECORDS,
    V8_HEADER,
    Aggregation,
    V8Header,
    aggregate,
    encode_v8,
    merge,
)
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import KEY_BYTES, FlowKey
from flowd.model.routes import FlowRoutes
from tests.flowdecode import TSHARK, tshark, tshark_problems, write_udp_pcap

BOOT = 1_700_000_000.0
NOW = BOOT + 600.5
PORT = 9996
FIELDS = ("cflow.flows", "cflow.packets", "cflow.octets", "cflow.srcas", "cflow.dstas", "cflow.inputint",
          "cflow.outputint", "cflow.protocol", "cflow.srcport", "cflow.dstport", "cflow.srcnet", "cflow.srcmask",
          "cflow.dstnet", "cflow.dstmask", "cflow.timestart", "cflow.timeend")
WANTED = {  # the tshark fields each method's record carries
    Aggregation.AS: ("cflow.srcas", "cflow.dstas", "cflow.inputint", "cflow.outputint"),
    Aggregation.PROTOCOL_PORT: ("cflow.protocol", "cflow.srcport", "cflow.dstport"),
    Aggregation.SOURCE_PREFIX: ("cflow.srcnet", "cflow.srcmask", "cflow.srcas", "cflow.inputint"),
    Aggregation.DESTINATION_PREFIX: ("cflow.dstnet", "cflow.dstmask", "cflow.dstas", "cflow.outputint"),
    Aggregation.PREFIX: ("cflow.srcnet", "cflow.dstnet", "cflow.srcmask", "cflow.dstmask", "cflow.srcas",
                         "cflow.dstas", "cflow.inputint", "cflow.outputint"),
}


def ground_truth(n: int, seed: int) -> tuple[FlowRecords, FlowRoutes, list[dict[str, int | str]]]:
    """n IPv4 flows drawn from small pools (so aggregates merge), their routes, and each flow as a dict."""
    rng = random.Random(seed)
    flows: list[dict[str, int | str]] = []
    for _ in range(n):
        src_mask, dst_mask = rng.choice((0, 8, 16, 24)), rng.choice((0, 12, 24, 32))
        flows.append({
            "src": f"10.{rng.randrange(3)}.{rng.randrange(3)}.{rng.randrange(256)}",
            "dst": f"192.0.{rng.randrange(2)}.{rng.randrange(256)}",
            "sport": rng.choice((53, 80, 1024)), "dport": rng.choice((80, 443)), "proto": rng.choice((6, 17)),
            "input": rng.choice((1, 2, 70000)), "output": rng.choice((3, 4)),
            "src_origin": rng.choice((64500, 64501, 4200000000)), "dst_origin": rng.choice((64510, 64511)),
            "src_peer": 65001, "dst_peer": rng.choice((65002, 65003)),
            "src_mask": src_mask, "dst_mask": dst_mask,
            "packets": rng.randrange(1, 1000), "bytes": rng.randrange(40, 10**6),
            "first": rng.randrange(0, 300_000), "len": rng.randrange(0, 200_000),
        })
    keys = b"".join(FlowKey(ipaddress.ip_address(f["src"]), ipaddress.ip_address(f["dst"]), int(f["sport"]),
                            int(f["dport"]), int(f["proto"]), 0, 1).pack() for f in flows)
    recs = FlowRecords(
        key=np.frombuffer(keys, np.uint8).reshape(n, KEY_BYTES).copy(),
        packets=np.array([f["packets"] for f in flows], np.uint64), bytes=np.array([f["bytes"] for f in flows], np.uint64),
        first=np.array([BOOT + int(f["first"]) / 1000 for f in flows]),
        last=np.array([BOOT + (int(f["first"]) + int(f["len"])) / 1000 for f in flows]),
        tcp_flags=np.zeros(n, np.uint8), ttl_min=np.zeros(n, np.uint8), ttl_max=np.zeros(n, np.uint8),
        vlan=np.zeros(n, np.uint16), inner_vlan=np.zeros(n, np.uint16), mpls=np.zeros((n, 3), np.uint32),
        end_reason=np.ones(n, np.uint8))
    routes = FlowRoutes.empty(n)
    for name, col in (("src_origin", "src_origin_as"), ("dst_origin", "dst_origin_as"), ("src_peer", "src_peer_as"),
                      ("dst_peer", "dst_peer_as"), ("src_mask", "src_mask"), ("dst_mask", "dst_mask"),
                      ("input", "input_if"), ("output", "output_if")):
        getattr(routes, col)[:] = [f[name] for f in flows]
    return recs, routes, flows


def reference(flows: list[dict[str, int | str]], method: Aggregation, peer: bool) -> set[tuple[object, ...]]:
    """Per key: flows, packets, bytes, first and last ms; keys as tshark prints them."""
    def asn(v: object) -> int:
        return AS_TRANS if int(v) > 65535 else int(v)  # type: ignore[call-overload]

    def net(addr: object, mask: object) -> str:
        return str(ipaddress.ip_network(f"{addr}/{mask}", strict=False).network_address)

    acc: dict[tuple[object, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 1 << 62, -1])
    for f in flows:
        sa, da = asn(f["src_peer" if peer else "src_origin"]), asn(f["dst_peer" if peer else "dst_origin"])
        inp = 0 if int(f["input"]) > 65535 else int(f["input"])
        key = {
            Aggregation.AS: (sa, da, inp, f["output"]),
            Aggregation.PROTOCOL_PORT: (f["proto"], f["sport"], f["dport"]),
            Aggregation.SOURCE_PREFIX: (net(f["src"], f["src_mask"]), f["src_mask"], sa, inp),
            Aggregation.DESTINATION_PREFIX: (net(f["dst"], f["dst_mask"]), f["dst_mask"], da, f["output"]),
            Aggregation.PREFIX: (net(f["src"], f["src_mask"]), net(f["dst"], f["dst_mask"]), f["src_mask"],
                                 f["dst_mask"], sa, da, inp, f["output"]),
        }[method]
        a = acc[key]
        a[0] += 1
        a[1] += int(f["packets"])
        a[2] += int(f["bytes"])
        a[3] = min(a[3], int(f["first"]))
        a[4] = max(a[4], int(f["first"]) + int(f["len"]))
    return {tuple(str(k) for k in key) + tuple(str(v) for v in vals) for key, vals in acc.items()}


def tshark_aggregates(pcap: Path, method: Aggregation, caida: bool) -> set[tuple[object, ...]]:
    out = tshark("-r", str(pcap), "-d", f"udp.port=={PORT},cflow", "-T", "fields", "-E", "separator=/t",
                 "-E", "occurrence=a", *(a for f in FIELDS for a in ("-e", f)))
    got = set()
    for line in out.splitlines():
        cols = dict(zip(FIELDS, (c.split(",") if c else [] for c in line.split("\t"))))
        for i in range(len(cols["cflow.flows"])):
            row = {f: cols[f][i] for f in WANTED[method]}
            if method is Aggregation.PREFIX and not caida:  # Cisco order: the first mask byte is dst
                row["cflow.srcmask"], row["cflow.dstmask"] = row["cflow.dstmask"], row["cflow.srcmask"]
            ms = [round(float(cols[f][i]) * 1000) - 0 for f in ("cflow.timestart", "cflow.timeend")]
            got.add(tuple(row[f] for f in WANTED[method])
                    + tuple(cols[f][i] for f in ("cflow.flows", "cflow.packets", "cflow.octets"))
                    + tuple(str(v) for v in ms))
    return got


CASES = [(m, False, False) for m in Aggregation] + [
    (Aggregation.AS, True, False), (Aggregation.PREFIX, True, True), (Aggregation.PREFIX, False, True)]


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("method, peer, caida", CASES)
def test_tshark_decodes_reference_aggregates(tmp_path: Path, method: Aggregation, peer: bool, caida: bool) -> None:
    recs, routes, flows = ground_truth(400, seed=int(method) * 10 + peer)
    half = len(recs) // 2  # two export batches merged in one interval
    recs = recs.with_routes(routes)
    aggs = merge([aggregate(recs.take(np.arange(half)), method, peer_as=peer),
                  aggregate(recs.take(np.arange(half, len(recs))), method, peer_as=peer)], method)
    header = V8Header(method, engine_type=2, engine_id=9, caida_compliant=caida)
    datagrams = encode_v8(aggs, now=NOW, boot=BOOT, sequence=1000, header=header)
    assert sum(struct.unpack_from("!H", d, 2)[0] for d in datagrams) == len(aggs)
    assert all(struct.unpack_from("!H", d, 2)[0] <= MAX_RECORDS[method] for d in datagrams)
    pcap = tmp_path / "v8.pcap"
    write_udp_pcap(pcap, datagrams, dport=PORT)
    assert tshark_problems(pcap, [PORT]) == ""
    assert tshark_aggregates(pcap, method, caida) == reference(flows, method, peer)
    heads = tshark("-r", str(pcap), "-d", f"udp.port=={PORT},cflow", "-T", "fields", "-E", "separator=,",
                   *(a for f in ("cflow.version", "cflow.aggmethod", "cflow.aggversion", "cflow.engine_type",
                                 "cflow.engine_id", "cflow.sequence", "cflow.sysuptime") for a in ("-e", f)))
    seq = 1000
    for line, d in zip(heads.splitlines(), datagrams):
        assert line.split(",")[:6] == ["8", str(int(method)), "2", "2", "9", str(seq)]
        assert float(line.split(",")[6]) == 600.5
        seq += struct.unpack_from("!H", d, 2)[0]


def test_header_layout_and_saturation() -> None:
    recs, routes, _ = ground_truth(1, seed=1)
    recs.packets[:] = 2**40
    aggs = aggregate(recs.with_routes(routes), Aggregation.AS)
    (datagram,) = encode_v8(aggs, now=NOW, boot=BOOT, sequence=2**32 + 5,
                            header=V8Header(Aggregation.AS, engine_type=1, engine_id=2))
    head = V8_HEADER.unpack_from(datagram)
    assert head == (8, 1, 600500, int(NOW), 500_000_000, 5, 1, 2, 1, 2, 0)
    assert len(datagram) == 28 + 28
    assert struct.unpack_from("!I", datagram, 28 + 4)[0] == 0xFFFFFFFF  # dPkts saturates


def test_ipv6_rows_are_not_aggregated() -> None:
    recs, routes, _ = ground_truth(3, seed=2)
    recs.key[1, :16] = np.frombuffer(ipaddress.ip_address("2001:db8::1").packed, np.uint8)
    aggs = aggregate(recs.with_routes(routes), Aggregation.PROTOCOL_PORT)
    assert int(aggs.flows.sum()) == 2


def test_method_mismatch_is_refused() -> None:
    recs, routes, _ = ground_truth(2, seed=3)
    with pytest.raises(ValueError, match="method AS for a PREFIX server"):
        encode_v8(aggregate(recs.with_routes(routes), Aggregation.AS), now=NOW, boot=BOOT, sequence=0,
                  header=V8Header(Aggregation.PREFIX))


GOLDEN = Path(__file__).resolve().parents[1] / "data" / "export" / "v8_protocol_port.bin"
GOLDEN_NOTE = """\
v8_protocol_port.bin: one cflowd/NetFlow v8 datagram (28 + 3 * 28 = 112 bytes) written by
tests/routing/test_v8.py (`pytest tests/routing/test_v8.py --update-golden`); never edit by hand.
Header: version 8, count 3, sysUptime 600500 ms, unix_secs 1700000600, unix_nsecs 500000000,
flow_sequence 41, engine_type 3, engine_id 9, aggregation 2 (protocol-port), agg_version 2,
reserved 0 (bytes 24-27: no sampling field in v8; see flowd/export/v8.py).
Records (flows, packets, bytes, First/Last ms, protocol, ports), from three flows of ground_truth(3, seed=7).
"""
# bytes 20-27 of the golden header: engine type 3, engine id 9, protocol-port (2), aggregation version 2, reserved
HEADER_TAIL = bytes((3, 9, 2, 2, 0, 0, 0, 0))


def golden_datagram() -> bytes:
    recs, routes, _ = ground_truth(3, seed=7)
    aggs = aggregate(recs.with_routes(routes), Aggregation.PROTOCOL_PORT)
    assert len(aggs) == 3
    (datagram,) = encode_v8(aggs, now=NOW, boot=BOOT, sequence=41,
                            header=V8Header(Aggregation.PROTOCOL_PORT, engine_type=3, engine_id=9))
    return datagram


def test_golden(update_golden: bool) -> None:
    datagram = golden_datagram()
    if update_golden:
        GOLDEN.write_bytes(datagram)
        GOLDEN.with_suffix(".txt").write_text(GOLDEN_NOTE)
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run pytest {__file__} --update-golden"
    assert datagram == GOLDEN.read_bytes()
    head = datagram[:28]  # every header field, byte for byte
    assert head[:4] == b"\x00\x08\x00\x03"  # version 8, count 3
    assert head[4:8] == (600_500).to_bytes(4, "big")  # sysUptime ms
    assert head[8:16] == int(NOW).to_bytes(4, "big") + (500_000_000).to_bytes(4, "big")
    assert head[16:20] == (41).to_bytes(4, "big")  # flow_sequence
    assert head[20:28] == HEADER_TAIL


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tshark_reads_the_header_fields(tmp_path: Path) -> None:
    """Wireshark's dissector names bytes 24-27 of a v8 header Reserved and reads no sampling fields there."""
    pcap = tmp_path / "v8.pcap"
    write_udp_pcap(pcap, [GOLDEN.read_bytes()], dport=PORT)
    assert tshark_problems(pcap, [PORT]) == ""
    fields = ("cflow.version", "cflow.count", "cflow.sequence", "cflow.engine_type", "cflow.engine_id",
              "cflow.aggmethod", "cflow.aggversion", "cflow.reserved", "cflow.samplingmode", "cflow.samplerate")
    out = tshark("-r", str(pcap), "-d", f"udp.port=={PORT},cflow", "-T", "fields", "-E", "separator=;", "-E", "occurrence=f",
                 *(a for f in fields for a in ("-e", f)))
    assert out.strip().split(";") == ["8", "3", "41", "3", "9", "2", "2", "00000000", "", ""]  # first Reserved: the header's


V5_BESIDE_V8 = """
forwarding-options:
  sampling:
    input: {{rate: 100}}
    family:
      inet:
        output:
          aggregate-export-interval: 90
          flow-server:
            127.0.0.1: {{port: {v5}, version: 5}}
            127.0.0.2: {{port: {v8}, version: 8, aggregation: {{protocol-port: true}}}}
"""


def test_the_sampling_rate_of_a_v8_output_rides_in_the_v5_header() -> None:
    """v8 has no sampling field; the v5 server of the same output carries the 1-in-N (mode 01, N)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
    for sock, host in zip(sockets, ("127.0.0.1", "127.0.0.2"), strict=True):
        sock.bind((host, 0))
        sock.settimeout(5)
    v5, v8 = sockets
    cfg = parse_config(V5_BESIDE_V8.format(v5=v5.getsockname()[1], v8=v8.getsockname()[1]), source="test",
                       syntax="yaml")
    ex = Exporter(cfg, boot=BOOT)
    try:
        recs, routes, _ = ground_truth(40, seed=8)
        ex.export("inet", recs.with_routes(routes), NOW)
        ex.flush()
        ex.flush_aggregates(NOW + 1)
        head5, head8 = v5.recv(65536)[:24], v8.recv(65536)[:28]
    finally:
        ex.close()
        for sock in sockets:
            sock.close()
    assert struct.unpack_from("!H", head5, 22)[0] == 0x4000 | 100  # v5: mode 01 (1-in-N), interval 100
    assert head8[:2] == b"\x00\x08" and head8[24:28] == bytes(4)
