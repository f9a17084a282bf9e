"""flowd.testing.synth: the capture is valid, deterministic and mixed as specified; its ground truth is exact.

dpkt is the independent decoder: every frame is parsed with it and compared with the per-packet truth.
The flow rules are checked on hand-built packet lists through both implementations, and the
generated truth is held to the per-packet reference model and to flowd's FlowTable.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import struct
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import numpy as np
import pytest

from flowd.capture.files import open_capture
from flowd.core.decode import decode
from flowd.core.flowtable import FlowTable
from flowd.model.batch import FlowRecords, PacketBatch
from flowd.testing.synth import write_capture
from flowd.testing.truth import (
    GroundTruth,
    SynthSpec,
    TruthFlow,
    TruthPacket,
    TruthPackets,
    flows_from_records,
    reference_flows,
    sidecar_path,
    sort_key,
    truth_flows,
)

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
V4_RANGE = ipaddress.ip_network("198.18.0.0/15")
V6_RANGE = ipaddress.ip_network("2001:db8::/32")

SMALL = SynthSpec(packets=20_000, flows=2_000, seed=7)
# The same size with the rarer features turned up, so their shares can be measured on few flows.
TWEAKED = replace(SMALL, seed=11, ipv6_share=0.4, vlan_share=0.2, qinq_share=0.1, mpls_share=0.15,
                  hop_by_hop_share=0.3, ipv4_options_share=0.05, fragment_share=0.01, ipv6_fragment_share=0.01,
                  damaged_share=0.005, arp_share=0.002)


# --- dpkt as the oracle ---------------------------------------------------------------------------


@dataclass
class Parsed:
    """What dpkt makes of one frame."""

    kind: str  # "ip", "arp" or "damaged"
    ts: float
    key: tuple[str, str, int, int, int, int] | None = None
    length: int = 0
    flags: int = 0
    vlan_tags: int = 0
    mpls: int = 0
    options: bool = False
    fragment: int = 0  # 0 none, 1 first, 2 non-first
    hop_by_hop: bool = False
    addresses: list[str] = field(default_factory=list)


def addr_text(raw: bytes) -> str:
    return socket.inet_ntoa(raw) if len(raw) == 4 else str(ipaddress.IPv6Address(raw))


def parse_frame(ts: float, frame: bytes, wirelen: int) -> Parsed:
    eth = dpkt.ethernet.Ethernet(frame)
    tags = len(getattr(eth, "vlan_tags", None) or [])
    labels = len(getattr(eth, "mpls_labels", None) or [])
    ip: object = eth.data
    if labels:  # dpkt guesses the payload of an MPLS stack only for IHL-5 IPv4: decode it here
        raw = frame[14 + 4 * tags + 4 * labels:]
        try:
            ip = dpkt.ip.IP(raw) if raw[0] >> 4 == 4 else dpkt.ip6.IP6(raw)
        except dpkt.UnpackError:
            ip = raw
    if isinstance(ip, dpkt.arp.ARP):
        return Parsed("arp", ts, addresses=[addr_text(ip.spa), addr_text(ip.tpa)])
    if isinstance(ip, dpkt.ip.IP):
        frag = 2 if ip.offset else 1 if ip.mf else 0
        proto, tos, length, opts, hbh = ip.p, ip.tos, ip.len, bool(ip.opts), False
    elif isinstance(ip, dpkt.ip6.IP6):
        proto, tos, length, opts = ip.p, ip.fc, ip.plen + 40, False
        hbh = ip.nxt == 0
        fragment = (ip.extension_hdrs or {}).get(dpkt.ip.IP_PROTO_FRAGMENT)
        frag = 0 if fragment is None else 2 if fragment.frag_off else 1
    else:
        return Parsed("damaged", ts)
    if 14 + 4 * tags + 4 * labels + length > wirelen:
        return Parsed("damaged", ts)  # truncated: the IP length claims more than the wire carried
    l4 = ip.data
    sport = dport = flags = 0
    if frag != 2:
        if isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
            sport, dport = l4.sport, l4.dport
            flags = l4.flags if isinstance(l4, dpkt.tcp.TCP) else 0
        elif isinstance(l4, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)):
            dport = l4.type * 256 + l4.code
        else:
            raise AssertionError(f"undecodable transport header in a {type(ip).__name__} packet")
    src, dst = addr_text(ip.src), addr_text(ip.dst)
    return Parsed("ip", ts, (src, dst, sport, dport, proto, tos), length, flags, tags, labels, opts, frag,
                  hbh, [src, dst])


@dataclass
class Capture:
    spec: SynthSpec
    path: Path
    truth: GroundTruth
    frames: list[Parsed]
    linktype: int
    snaplen: int


def wire_lengths(path: Path) -> list[int]:
    """The original-length field of every record (dpkt's reader does not give it)."""
    data = path.read_bytes()
    out, at = [], 24
    while at < len(data):
        caplen, wirelen = struct.unpack_from("<II", data, at + 8)
        out.append(wirelen)
        at += 16 + caplen
    return out


def make_capture(spec: SynthSpec, directory: Path) -> Capture:
    path = directory / f"synth-{spec.seed}.pcap"
    truth = write_capture(spec, path)
    with open(path, "rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        frames = [parse_frame(ts, buf, wirelen) for (ts, buf), wirelen in zip(reader, wire_lengths(path), strict=True)]
        linktype, snaplen = reader.datalink(), reader.snaplen
    return Capture(spec, path, truth, frames, linktype, snaplen)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Capture:
    return make_capture(SMALL, tmp_path_factory.mktemp("small"))


@pytest.fixture(scope="module")
def tweaked(tmp_path_factory: pytest.TempPathFactory) -> Capture:
    return make_capture(TWEAKED, tmp_path_factory.mktemp("tweaked"))


# --- the capture ----------------------------------------------------------------------------------


def test_same_seed_same_capture_and_truth(tmp_path: Path, small: Capture) -> None:
    again = write_capture(SMALL, tmp_path / "again.pcap")
    assert (tmp_path / "again.pcap").read_bytes() == small.path.read_bytes()
    assert again.flows == small.truth.flows
    assert np.array_equal(again.packets.ts, small.truth.packets.ts)
    other = write_capture(replace(SMALL, seed=8), tmp_path / "other.pcap")
    assert (tmp_path / "other.pcap").read_bytes() != small.path.read_bytes()
    assert other.flows != small.truth.flows


def test_file_header_count_and_time_order(small: Capture) -> None:
    head = small.path.read_bytes()[:24]
    assert struct.unpack("<IHHiIII", head) == (0xA1B2C3D4, 2, 4, 0, 0, 128, 1)
    assert small.linktype == dpkt.pcap.DLT_EN10MB and small.snaplen == SMALL.snaplen
    assert len(small.frames) == small.truth.frames == SMALL.packets
    ts = [f.ts for f in small.frames]
    assert ts == sorted(ts)
    assert SMALL.start <= ts[0] and ts[-1] <= SMALL.start + SMALL.duration


@pytest.mark.parametrize("name", ["small", "tweaked"])
def test_every_frame_parses_except_the_damaged_ones(name: str, request: pytest.FixtureRequest) -> None:
    cap: Capture = request.getfixturevalue(name)
    kinds = Counter(f.kind for f in cap.frames)
    assert kinds["damaged"] == cap.truth.damaged == round(cap.spec.damaged_share * cap.spec.packets)
    assert cap.truth.header_too_small + cap.truth.bad_ip_header + cap.truth.truncated == cap.truth.damaged
    assert cap.truth.header_too_small >= 1 and cap.truth.bad_ip_header >= 1 and cap.truth.truncated >= 1
    assert kinds["arp"] == cap.truth.non_ip == round(cap.spec.arp_share * cap.spec.packets)
    assert kinds["ip"] == len(cap.truth.packets) == cap.truth.frames - cap.truth.damaged - cap.truth.non_ip


@pytest.mark.parametrize("name", ["small", "tweaked"])
def test_per_packet_truth_matches_dpkt(name: str, request: pytest.FixtureRequest) -> None:
    cap: Capture = request.getfixturevalue(name)
    truth = cap.truth.packets
    texts = truth.keys.texts()
    expected = [(ts, texts[k], length, flags) for ts, k, length, flags in zip(
        truth.ts.tolist(), truth.key.tolist(), truth.length.tolist(), truth.tcp_flags.tolist())]
    ip_frames = [i for i, f in enumerate(cap.frames) if f.kind == "ip"]
    assert truth.frame.tolist() == ip_frames
    got = [(f.ts, f.key, f.length, f.flags) for f in cap.frames if f.kind == "ip"]
    assert got == expected


@pytest.mark.parametrize("name", ["small", "tweaked"])
def test_addresses_only_from_the_benchmark_and_documentation_ranges(
        name: str, request: pytest.FixtureRequest) -> None:
    cap: Capture = request.getfixturevalue(name)
    seen = {a for f in cap.frames for a in f.addresses}
    assert seen and all(ipaddress.ip_address(a) in (V4_RANGE if "." in a else V6_RANGE) for a in seen)


def within(count: int, total: int, share: float) -> bool:
    """``count`` of ``total`` is a plausible binomial draw at ``share`` (4.5 sigma, plus one)."""
    slack = 4.5 * math.sqrt(total * share * (1 - share)) + 1
    return abs(count - total * share) <= slack


@pytest.mark.parametrize("name", ["small", "tweaked"])
def test_mix_matches_the_spec(name: str, request: pytest.FixtureRequest) -> None:
    cap: Capture = request.getfixturevalue(name)
    spec = cap.spec
    ip = [f for f in cap.frames if f.kind == "ip"]
    # Conversations: the distinct keys of every packet but non-first fragments (which have no ports).
    conv: dict[tuple[str, str, int, int, int, int], Parsed] = {}
    for f in ip:
        if f.fragment != 2 and f.key is not None:
            conv.setdefault(f.key, f)
    assert len(conv) == spec.flows
    first = list(conv.values())
    v6 = [f for f in first if ":" in f.key[0]]  # type: ignore[index]
    assert within(len(v6), spec.flows, spec.ipv6_share)
    protos = Counter({1: "icmp", 58: "icmp", 6: "tcp", 17: "udp"}[f.key[4]] for f in first)  # type: ignore[index]
    for proto, share in (("tcp", 0.70), ("udp", 0.25), ("icmp", 0.05)):
        assert within(protos[proto], spec.flows, share), (proto, protos)
    assert within(sum(f.vlan_tags == 1 for f in first), spec.flows, spec.vlan_share)
    assert within(sum(f.vlan_tags == 2 for f in first), spec.flows, spec.qinq_share)
    assert within(sum(f.mpls > 0 for f in first), spec.flows, spec.mpls_share)
    assert {f.mpls for f in first} == {0, 1, 2, 3}
    assert within(sum(f.hop_by_hop for f in v6), len(v6), spec.hop_by_hop_share)
    # Packet shares: non-first fragments exactly (each after its first fragment), options roughly.
    for version, share in ((4, spec.fragment_share), (6, spec.ipv6_fragment_share)):
        of_version = [f for f in ip if (":" in f.key[0]) == (version == 6)]  # type: ignore[index]
        nonfirst = sum(f.fragment == 2 for f in of_version)
        assert nonfirst == round(share * spec.packets), version
        assert sum(f.fragment == 1 for f in of_version) == nonfirst, version
    assert all(f.key is not None and f.key[2:4] == (0, 0) for f in ip if f.fragment == 2)
    v4 = [f for f in ip if "." in f.key[0] and f.fragment == 0]  # type: ignore[index]
    assert within(sum(f.options for f in v4), len(v4), spec.ipv4_options_share)


def test_sizes_are_heavy_tailed(small: Capture) -> None:
    sizes = np.sort(np.bincount(small.truth.packets.key))[::-1]
    assert sizes[-1] >= 1
    top = sizes[: len(sizes) // 100].sum() / sizes.sum()
    assert top > 0.2  # the top 1% of keys carry a large share of the packets
    assert np.median(sizes) <= 3


def test_the_capture_exercises_every_rule(small: Capture) -> None:
    p = small.truth.packets
    proto = p.keys.proto[p.key]
    by_key: defaultdict[int, list[int]] = defaultdict(list)
    for i, k in enumerate(p.key.tolist()):
        by_key[k].append(i)
    idle = active = fin_then_more = rst = 0
    for rows in by_key.values():
        ts = p.ts[rows]
        idle += bool(np.any(np.diff(ts) > SMALL.inactive_timeout))
        active += bool(ts[-1] - ts[0] >= SMALL.active_timeout)
        fl = p.tcp_flags[rows]
        fin_then_more += bool(proto[rows[0]] == 6 and np.any(fl[:-1] & FIN))
        rst += bool(np.any(fl & RST))
    assert min(idle, active, fin_then_more, rst) >= 3, (idle, active, fin_then_more, rst)
    # Timeouts and FIN/RST split keys into more flows than there are keys.
    assert len(small.truth.flows) > len(small.truth.flows_for(active=1e9, inactive=1e9)) > len(p.keys)


# --- the ground truth -----------------------------------------------------------------------------


def test_truth_is_self_consistent(small: Capture) -> None:
    t = small.truth
    assert sum(f.packets for f in t.flows) == len(t.packets) == t.frames - t.damaged - t.non_ip
    assert sum(f.bytes for f in t.flows) == int(t.packets.length.sum())
    assert (t.active_timeout, t.inactive_timeout) == (SMALL.active_timeout, SMALL.inactive_timeout)
    assert all(f.first <= f.last and f.last - f.first < t.active_timeout for f in t.flows)
    assert all(f.tcp_flags == 0 for f in t.flows if f.proto != 6)


@pytest.mark.parametrize("active, inactive", [(60.0, 15.0), (1800.0, 1800.0), (5.0, 2.0), (0.5, 0.01)])
def test_vectorised_truth_equals_the_reference_model(small: Capture, active: float, inactive: float) -> None:
    assert truth_flows(small.truth.packets, active=active, inactive=inactive) == \
        reference_flows(small.truth.packets, active=active, inactive=inactive)


def packet_batch(packets: TruthPackets, lo: int, hi: int) -> PacketBatch:
    k = packets.keys
    rows = np.zeros((len(k), 40), np.uint8)
    rows[:, 0:16], rows[:, 16:32] = k.src, k.dst
    rows[:, 32:34] = k.sport.astype(">u2").view(np.uint8).reshape(-1, 2)
    rows[:, 34:36] = k.dport.astype(">u2").view(np.uint8).reshape(-1, 2)
    rows[:, 36], rows[:, 37], rows[:, 39] = k.proto, k.tos, 1  # ifindex 1 for a capture file
    n = hi - lo
    return PacketBatch(key=rows[packets.key[lo:hi]], length=packets.length[lo:hi], ts=packets.ts[lo:hi],
                       tcp_flags=packets.tcp_flags[lo:hi], ttl=np.full(n, 64, np.uint8),
                       vlan=np.zeros(n, np.uint16), inner_vlan=np.zeros(n, np.uint16),
                       mpls=np.zeros((n, 3), np.uint32))


def test_flowd_flow_table_reproduces_the_truth(small: Capture) -> None:
    p, t = small.truth.packets, small.truth
    table = FlowTable(1_000_000, t.active_timeout, t.inactive_timeout)
    out: list[FlowRecords] = []
    for lo in range(0, len(p), 4096):
        batch = packet_batch(p, lo, min(lo + 4096, len(p)))
        now = float(batch.ts.max())
        out += [table.add(batch, now), table.expire(now)]
    out.append(table.flush(now))
    assert flows_from_records(FlowRecords.concat(out)) == t.flows


@pytest.mark.parametrize("name", ["small", "tweaked"])
def test_flowd_decodes_the_file_into_the_truth(name: str, request: pytest.FixtureRequest) -> None:
    """The capture file through flowd's decode (every shape: tags, MPLS, options, hop-by-hop, IPv4 and
    IPv6 fragments, damaged frames) and flow table gives exactly the truth's flows and drops."""
    cap: Capture = request.getfixturevalue(name)
    t = cap.truth
    table = FlowTable(1_000_000, t.active_timeout, t.inactive_timeout)
    out: list[FlowRecords] = []
    dropped = now = 0
    with open_capture(str(cap.path)) as reader:
        for frames in reader.batches(4096):
            decoded = decode(frames)
            dropped += sum(decoded.drops.values())
            now = max(now, float(frames.ts.max()))
            out += [table.add(decoded.packets, now), table.expire(now)]
    out.append(table.flush(now))
    assert dropped == t.damaged + t.non_ip
    assert flows_from_records(FlowRecords.concat(out)) == t.flows


def test_sidecar_round_trip(tmp_path: Path, small: Capture) -> None:
    path = sidecar_path(small.path)
    assert path.name == small.path.name + ".truth.npz"
    small.truth.save(tmp_path / "t.npz")
    back = GroundTruth.load(tmp_path / "t.npz")
    assert back.flows == small.truth.flows and back.spec == SMALL
    assert (back.frames, back.damaged, back.non_ip, back.header_too_small, back.bad_ip_header, back.truncated) == (
        small.truth.frames, small.truth.damaged, small.truth.non_ip, small.truth.header_too_small,
        small.truth.bad_ip_header, small.truth.truncated)
    for col in ("ts", "key", "length", "tcp_flags", "frame"):
        assert np.array_equal(getattr(back.packets, col), getattr(small.truth.packets, col))
    assert back.packets.keys.texts() == small.truth.packets.keys.texts()


def test_loading_something_else_fails_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a sidecar")
    with pytest.raises(ValueError, match=r"^.*x\.npz: cannot read ground truth") as err:
        GroundTruth.load(bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kwargs, message", [
    ({"ipv6_share": 1.5}, "ipv6_share must be within 0..1"),
    ({"vlan_share": 0.7, "qinq_share": 0.5}, "vlan_share \\+ qinq_share"),
    ({"snaplen": 64}, "snaplen must be within 114"),
    ({"flows": 0}, "at least 1"),
    ({"duration": 0.0}, "positive"),
])
def test_bad_specs_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SynthSpec(**kwargs)  # type: ignore[arg-type]


def test_too_few_packets_for_the_flows(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fewer than the 100 flows"):
        write_capture(SynthSpec(packets=100, flows=100, damaged_share=0.05), tmp_path / "x.pcap")


# --- the flow rules on hand-built packets ---------------------------------------------------------

A = ("198.18.0.1", "198.19.0.1", 40000, 443, 6, 0)
B = ("198.18.0.2", "198.19.0.1", 40001, 443, 6, 0)
U = ("2001:db8::1", "2001:db8:1::1", 5353, 53, 17, 0)


def pk(key: tuple[str, str, int, int, int, int], ts: float, length: int = 100, flags: int = 0) -> TruthPacket:
    return TruthPacket(ts, *key, length=length, tcp_flags=flags)


def fl(key: tuple[str, str, int, int, int, int], packets: int, nbytes: int, flags: int, first: float,
       last: float) -> TruthFlow:
    return TruthFlow(*key, packets=packets, bytes=nbytes, tcp_flags=flags, first=first, last=last)


RULE_CASES = {
    "idle gap longer than the inactive timeout splits": (
        [pk(A, 0.0, flags=ACK), pk(A, 10.0, flags=ACK), pk(A, 25.5, flags=ACK)],
        [fl(A, 2, 200, ACK, 0.0, 10.0), fl(A, 1, 100, ACK, 25.5, 25.5)]),
    "a gap of exactly the inactive timeout does not split": (
        [pk(A, 0.0), pk(A, 15.0), pk(A, 30.0)],
        [fl(A, 3, 300, 0, 0.0, 30.0)]),
    "the active timeout splits a busy flow, at exactly the timeout": (
        [pk(U, float(s), flags=0) for s in range(0, 130, 10)],
        [fl(U, 6, 600, 0, 0.0, 50.0), fl(U, 6, 600, 0, 60.0, 110.0), fl(U, 1, 100, 0, 120.0, 120.0)]),
    "FIN ends the flow at once, other keys carry on": (
        [pk(A, 0.0, 60, SYN), pk(B, 0.5), pk(A, 1.0, 1500, ACK), pk(A, 2.0, 40, FIN | ACK), pk(B, 3.0)],
        [fl(A, 3, 1600, SYN | ACK | FIN, 0.0, 2.0), fl(B, 2, 200, 0, 0.5, 3.0)]),
    "the ACK after a FIN starts a new flow": (
        [pk(A, 0.0, 60, SYN), pk(A, 1.0, 40, FIN | ACK), pk(A, 1.1, 40, ACK)],
        [fl(A, 2, 100, SYN | FIN | ACK, 0.0, 1.0), fl(A, 1, 40, ACK, 1.1, 1.1)]),
    "RST ends the flow": (
        [pk(A, 0.0, 60, SYN), pk(A, 1.0, 40, RST), pk(A, 2.0, 40, PSH | ACK), pk(A, 3.0, 40, ACK)],
        [fl(A, 2, 100, SYN | RST, 0.0, 1.0), fl(A, 2, 80, PSH | ACK, 2.0, 3.0)]),
    "flag bits on a non-TCP packet end nothing": (
        [pk(U, 0.0, flags=FIN), pk(U, 1.0)],
        [fl(U, 2, 200, FIN, 0.0, 1.0)]),
    "ToS is part of the key": (
        [pk(A, 0.0), pk((*A[:5], 0xB8), 0.5), pk(A, 1.0)],
        [fl(A, 2, 200, 0, 0.0, 1.0), fl((*A[:5], 0xB8), 1, 100, 0, 0.5, 0.5)]),
    "every flow left at the end is flushed": (
        [pk(A, 0.0), pk(B, 100.0), pk(U, 200.0)],
        [fl(A, 1, 100, 0, 0.0, 0.0), fl(B, 1, 100, 0, 100.0, 100.0), fl(U, 1, 100, 0, 200.0, 200.0)]),
}

Impl = Callable[[list[TruthPacket]], list[TruthFlow]]
IMPLEMENTATIONS: dict[str, Impl] = {
    "reference": lambda ps: reference_flows(ps, active=60.0, inactive=15.0),
    "reference-columns": lambda ps: reference_flows(TruthPackets.from_packets(ps), active=60.0, inactive=15.0),
    "vectorised": lambda ps: truth_flows(TruthPackets.from_packets(ps), active=60.0, inactive=15.0),
}


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("case", RULE_CASES)
def test_flow_rules(case: str, impl: str) -> None:
    packets, expected = RULE_CASES[case]
    assert IMPLEMENTATIONS[impl](packets) == sorted(expected, key=sort_key)


@pytest.mark.slow
def test_two_million_packets(tmp_path: Path) -> None:
    """The benchmarks' capture size (the time it takes: benchmarks/component_rates.py --synth)."""
    truth = write_capture(SynthSpec(packets=2_000_000, flows=200_000), tmp_path / "big.pcap")
    assert truth.frames == 2_000_000
    sizes = np.bincount(truth.packets.key)
    assert 10_000 <= sizes.max() <= 100_000  # the largest conversations: tens of thousands of packets
