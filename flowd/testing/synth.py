"""Synthetic traffic with ground truth: writes a realistic mixed capture and returns the exact flows in it.

The capture is a classic pcap (little-endian, microsecond timestamps, LINKTYPE_ETHERNET) built with
numpy: per-packet columns first, then every header field written for a whole chunk of frames at once,
then the records cut out of one buffer. Benchmarks, tests and the daemon's demo mode use it.

What is in it
-------------
Conversations (``SynthSpec.flows`` of them) with heavy-tailed sizes (Pareto shape 1.1, the largest
capped at 3% of the packets); 70/25/5 TCP/UDP/ICMP; IPv4 and IPv6; 802.1Q and QinQ tags; MPLS stacks of
1-3 labels over IPv4 and IPv6; IPv4 with options; IPv6 with a hop-by-hop header; IPv4 UDP datagrams sent
as a first fragment (ports present) plus a non-first fragment (no ports); TCP conversations that end
with FIN or RST, some with a last ACK after the FIN; planted idle gaps longer than the inactive timeout;
long conversations that cross the active timeout; ARP frames; damaged frames (cut inside the IP header,
IPv4 with an IHL below 5, or truncated on the wire: a 60-byte frame whose IPv4 total length says 1500,
or a runt that ends inside its TCP header). Sources come from 198.18.0.0/16 and 2001:db8:0::/48, destinations from
198.19.0.0/16 and 2001:db8:1::/48 (RFC 2544 / RFC 3849 ranges; disjoint, so no conversation is the
reverse of another). MAC addresses are 00:00:5e:00:53:xx (RFC 7042). Frames are in timestamp order.

The flow rules (the ground truth; flowd/core/flowtable.py implements the same)
--------------------------------------------------------------------------
* A flow key is (src, dst, proto, sport, dport, ToS/traffic class, input ifindex); the ifindex of a
  capture file is 1, so it never separates packets here and TruthFlow leaves it out.
* bytes = IPv4 total length, or IPv6 payload length + 40. ICMP and ICMPv6: sport 0, dport
  type*256 + code. Non-first fragments and protocols other than TCP/UDP/SCTP/UDP-Lite/ICMP: ports 0.
* A packet at time t of a key with a cached flow (first packet f, last packet l) starts a NEW flow,
  the old one expiring first, when ``t - l > inactive`` or ``t - f >= active``.
* A TCP packet with FIN or RST joins its flow, then the flow ends at once; the next packet of the key
  (the last ACK of a close, say) starts a new flow.
* At the end of the capture every remaining flow is flushed.
* tcp_flags is the OR of the flags of the flow's packets.
* ARP, damaged frames and anything else that cannot be accounted belong to no flow.

Two independent implementations apply these rules to the per-packet truth (TruthPackets):
``truth_flows`` (vectorised, used by write_capture) and ``reference_flows`` (a deliberately plain
per-packet dict model, the oracle the tests hold the other one and flowd's FlowTable to).
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from enum import IntEnum
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
import numpy.typing as npt

from flowd.model.batch import F64, I64, U8, U16, U32, FlowRecords
from flowd.model.flowkey import DPORT, DST, PROTO, SPORT, SRC, TOS, V4_MAPPED_PREFIX

I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]

TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMPV6: Final = 58
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
FIN_OR_RST: Final = FIN | RST

PROTOCOL_MIX: Final = ((TCP, 0.70), (UDP, 0.25), (ICMP, 0.05))
PARETO_SHAPE: Final = 1.1
MAX_FLOW_SHARE: Final = 0.03  # no conversation carries more than this share of the packets
FIN_SHARE_OF_ENDINGS: Final = 0.8  # the rest of the closing TCP conversations end with RST
MTU: Final = 1500
MIN_FRAME: Final = 60  # Ethernet minimum without FCS: shorter frames are zero-padded
FRAGMENT_PAYLOAD: Final = 1480  # IP payload of a first fragment (total length 1500, IHL 5)
# Longest header stack written: Ethernet 14 + QinQ 8 + 3 MPLS labels 12 + IPv4 with 40 bytes of
# options 60 + TCP 20. A snap length below this would cut accountable packets inside a header.
MAX_HEADER: Final = 114
MAX_WIRE: Final = 14 + 8 + 12 + MTU

ETH_DST: Final = bytes.fromhex("00005e005301")  # RFC 7042 documentation MAC addresses
ETH_SRC: Final = bytes.fromhex("00005e005302")
ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_ARP: Final = 0x0806
ETHERTYPE_VLAN: Final = 0x8100
ETHERTYPE_QINQ: Final = 0x88A8
ETHERTYPE_IPV6: Final = 0x86DD
ETHERTYPE_MPLS: Final = 0x8847
IPV4_DF: Final = 0x4000
IPV4_MF: Final = 0x2000
ROUTER_ALERT: Final = bytes((0x94, 0x04, 0x00, 0x00))  # IPv4 option, RFC 2113
IPV4_NOP: Final = 0x01
HOP_BY_HOP: Final = 0
HOP_BY_HOP_BODY: Final = bytes((0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00))  # len 0, Router Alert, PadN

V4_SRC_BASE: Final = 0xC6120000  # 198.18.0.0/16
V4_DST_BASE: Final = 0xC6130000  # 198.19.0.0/16
V6_SRC_PREFIX: Final = bytes.fromhex("20010db80000")  # 2001:db8:0::/48
V6_DST_PREFIX: Final = bytes.fromhex("20010db80001")  # 2001:db8:1::/48

TCP_PORTS: Final = ((443, 0.45), (80, 0.25), (22, 0.05), (25, 0.05), (8080, 0.05), (993, 0.05),
                    (3306, 0.05), (5432, 0.05))
UDP_PORTS: Final = ((53, 0.40), (443, 0.25), (123, 0.10), (514, 0.05), (161, 0.05), (4789, 0.05),
                    (5060, 0.10))
ICMP_TYPES: Final = (((8, 0), 0.6), ((0, 0), 0.3), ((3, 3), 0.05), ((11, 0), 0.05))
ICMPV6_TYPES: Final = (((128, 0), 0.6), ((129, 0), 0.3), ((1, 4), 0.05), ((3, 0), 0.05))
TOS_MIX: Final = ((0x00, 0.85), (0x10, 0.04), (0x28, 0.04), (0x48, 0.03), (0xB8, 0.03), (0x02, 0.01))

PCAP_HEADER: Final = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
PCAP_MAGIC_USEC: Final = 0xA1B2C3D4
LINKTYPE_ETHERNET: Final = 1
CHUNK_BYTES: Final = 32 * 1024 * 1024  # frame matrix size per assembly step
SIDECAR_FORMAT: Final = "flowd-synth-truth/2"  # 2: the counts include truncated frames
SIDECAR_SUFFIX: Final = ".truth.npz"


class FrameKind(IntEnum):
    PACKET = 0  # an IP packet of a conversation (first fragments included)
    FRAGMENT = 1  # a non-first IPv4 fragment (no transport header)
    ARP = 2
    CUT = 3  # damaged: the frame ends inside the IP header (header-too-small)
    BAD_IHL = 4  # damaged: IPv4 with IHL < 5 (bad-ip-header)
    TRUNCATED = 5  # damaged: the IPv4 total length claims more than the wire carried (truncated)


class Encap(IntEnum):
    NONE = 0
    VLAN = 1  # one 802.1Q tag
    QINQ = 2  # 802.1ad outer tag + 802.1Q inner tag


@dataclass(frozen=True, slots=True)
class SynthSpec:
    """What to generate. Shares of flows apply to conversations, shares of packets to frames."""

    packets: int = 100_000  # frames in the capture, all kinds included
    flows: int = 10_000  # conversations (distinct keys before fragments and timeout splits)
    seed: int = 1
    duration: float = 300.0  # seconds the capture spans
    ipv6_share: float = 0.15  # of conversations
    vlan_share: float = 0.10  # of conversations, one 802.1Q tag
    qinq_share: float = 0.01  # of conversations, two tags
    mpls_share: float = 0.02  # of conversations, 1-3 labels (with or without tags)
    fragment_share: float = 0.003  # of frames: non-first IPv4 fragments (each with its first fragment)
    ipv4_options_share: float = 0.005  # of IPv4 packets
    damaged_share: float = 0.001  # of frames
    fin_rst_share: float = 0.3  # of TCP conversations with 2+ packets: end with FIN (80%) or RST
    start: float = 1_700_000_000.0  # epoch seconds of the capture's start
    snaplen: int = 128
    hop_by_hop_share: float = 0.01  # of IPv6 conversations
    arp_share: float = 0.0001  # of frames
    trailing_ack_share: float = 0.3  # of FIN-closed conversations with 3+ packets: an ACK after the FIN
    idle_gap_share: float = 0.02  # of conversations with 2+ packets: one gap of 1.5-3x the inactive timeout
    active_timeout: float = 60.0  # the timeouts GroundTruth.flows is computed with (flowd's example config)
    inactive_timeout: float = 15.0

    def __post_init__(self) -> None:
        if self.packets < 1 or self.flows < 1:
            raise ValueError(f"packets and flows must be at least 1, got {self.packets} and {self.flows}")
        for f in fields(self):
            if f.name.endswith("_share") and not 0.0 <= getattr(self, f.name) <= 1.0:
                raise ValueError(f"{f.name} must be within 0..1, got {getattr(self, f.name)}")
        if self.vlan_share + self.qinq_share > 1.0:
            raise ValueError("vlan_share + qinq_share must not exceed 1")
        if not (self.duration > 0 and self.active_timeout > 0 and self.inactive_timeout > 0):
            raise ValueError("duration and timeouts must be positive")
        if not MAX_HEADER <= self.snaplen <= 262_144:
            raise ValueError(f"snaplen must be within {MAX_HEADER}..262144, got {self.snaplen}")
        if not 0 <= self.start < 2**32 - self.duration - 1:
            raise ValueError(f"start must be a pcap timestamp (0..2^32 s), got {self.start}")


@dataclass(frozen=True, slots=True, order=True)
class TruthFlow:
    """One flow as the rules define it (addresses as text, as ``str(ipaddress.ip_address(...))``)."""

    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    tos: int
    packets: int
    bytes: int
    tcp_flags: int
    first: float
    last: float


class TruthPacket(NamedTuple):
    """One accountable packet, for hand-built inputs to reference_flows and truth_flows."""

    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    tos: int
    length: int
    tcp_flags: int = 0


@dataclass(frozen=True, slots=True)
class TruthKeys:
    """The distinct flow keys of a capture; addresses in flowd's 16-byte key layout."""

    src: U8  # (k, 16)
    dst: U8  # (k, 16)
    sport: U16
    dport: U16
    proto: U8
    tos: U8

    def __len__(self) -> int:
        return int(self.sport.shape[0])

    def texts(self) -> list[tuple[str, str, int, int, int, int]]:
        """Each key as (src, dst, sport, dport, proto, tos) with text addresses."""
        return list(zip(_addr_texts(self.src), _addr_texts(self.dst), self.sport.tolist(),
                        self.dport.tolist(), self.proto.tolist(), self.tos.tolist()))


@dataclass(frozen=True, slots=True)
class TruthPackets:
    """The accountable packets of a capture in frame order, as columns (key = row of ``keys``)."""

    ts: F64  # seconds, exactly as a pcap reader computes sec + usec / 1e6
    key: I32
    length: U32  # bytes as the rules count them
    tcp_flags: U8
    frame: I64  # index of the packet's frame in the capture
    keys: TruthKeys

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def rows(self) -> Iterator[tuple[float, tuple[str, str, int, int, int, int], int, int]]:
        """(ts, key text tuple, length, tcp_flags) per packet."""
        texts = self.keys.texts()
        for ts, k, length, flags in zip(self.ts.tolist(), self.key.tolist(), self.length.tolist(),
                                        self.tcp_flags.tolist()):
            yield ts, texts[k], length, flags

    @staticmethod
    def from_packets(packets: Sequence[TruthPacket]) -> TruthPackets:
        """Columns for a hand-built packet list (frames numbered 0..n-1)."""
        index: dict[tuple[str, str, int, int, int, int], int] = {}
        key_of = [index.setdefault((p.src, p.dst, p.sport, p.dport, p.proto, p.tos), len(index))
                  for p in packets]
        ks = list(index)
        return TruthPackets(
            ts=np.array([p.ts for p in packets], np.float64), key=np.array(key_of, np.int32),
            length=np.array([p.length for p in packets], np.uint32),
            tcp_flags=np.array([p.tcp_flags for p in packets], np.uint8),
            frame=np.arange(len(packets), dtype=np.int64),
            keys=TruthKeys(
                src=_addr_rows([k[0] for k in ks]), dst=_addr_rows([k[1] for k in ks]),
                sport=np.array([k[2] for k in ks], np.uint16), dport=np.array([k[3] for k in ks], np.uint16),
                proto=np.array([k[4] for k in ks], np.uint8), tos=np.array([k[5] for k in ks], np.uint8)))


@dataclass(slots=True)
class GroundTruth:
    """What a capture holds: its flows under the spec's timeouts, frame counts, and per-packet truth."""

    flows: list[TruthFlow]  # canonical order (see sort_key)
    frames: int
    damaged: int  # header_too_small + bad_ip_header + truncated
    non_ip: int  # ARP frames
    header_too_small: int
    bad_ip_header: int
    truncated: int
    packets: TruthPackets
    active_timeout: float
    inactive_timeout: float
    spec: SynthSpec

    def flows_for(self, *, active: float, inactive: float) -> list[TruthFlow]:
        """The flows under other timeouts."""
        return truth_flows(self.packets, active=active, inactive=inactive)

    def save(self, path: str | Path) -> None:
        """Write the sidecar (an .npz of plain arrays, no pickles)."""
        order = {f: i for i, f in enumerate(self.packets.keys.texts())}
        p, k = self.packets, self.packets.keys
        with open(path, "wb") as fh:
            np.savez(
                fh, format=np.array(SIDECAR_FORMAT), spec=np.array(json.dumps(asdict(self.spec))),
                counts=np.array([self.frames, self.damaged, self.non_ip, self.header_too_small,
                                 self.bad_ip_header, self.truncated], np.int64),
                timeouts=np.array([self.active_timeout, self.inactive_timeout], np.float64),
                pk_ts=p.ts, pk_key=p.key, pk_length=p.length, pk_flags=p.tcp_flags, pk_frame=p.frame,
                key_src=k.src, key_dst=k.dst, key_sport=k.sport, key_dport=k.dport, key_proto=k.proto,
                key_tos=k.tos,
                fl_key=np.array([order[(f.src, f.dst, f.sport, f.dport, f.proto, f.tos)]
                                 for f in self.flows], np.int32),
                fl_packets=np.array([f.packets for f in self.flows], np.uint64),
                fl_bytes=np.array([f.bytes for f in self.flows], np.uint64),
                fl_flags=np.array([f.tcp_flags for f in self.flows], np.uint8),
                fl_first=np.array([f.first for f in self.flows], np.float64),
                fl_last=np.array([f.last for f in self.flows], np.float64))

    @classmethod
    def load(cls, path: str | Path) -> GroundTruth:
        """Read a sidecar written by save(); ValueError with a one-line reason if it is not one."""
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["format"]) != SIDECAR_FORMAT:
                    raise ValueError(f"{path}: not a {SIDECAR_FORMAT} sidecar")
                keys = TruthKeys(src=z["key_src"], dst=z["key_dst"], sport=z["key_sport"],
                                 dport=z["key_dport"], proto=z["key_proto"], tos=z["key_tos"])
                packets = TruthPackets(ts=z["pk_ts"], key=z["pk_key"], length=z["pk_length"],
                                       tcp_flags=z["pk_flags"], frame=z["pk_frame"], keys=keys)
                frames, damaged, non_ip, too_small, bad, truncated = (int(v) for v in z["counts"])
                active, inactive = (float(v) for v in z["timeouts"])
                flows = _flow_objects(keys, z["fl_key"], z["fl_packets"], z["fl_bytes"], z["fl_flags"],
                                      z["fl_first"], z["fl_last"])
                spec = SynthSpec(**json.loads(str(z["spec"])))
        except (OSError, KeyError, ValueError, TypeError) as exc:
            raise ValueError(f"{path}: cannot read ground truth: {exc}") from None
        return cls(flows=flows, frames=frames, damaged=damaged, non_ip=non_ip,
                   header_too_small=too_small, bad_ip_header=bad, truncated=truncated, packets=packets,
                   active_timeout=active, inactive_timeout=inactive, spec=spec)


def sidecar_path(capture: str | Path) -> Path:
    """Where the ground truth of a capture file lives: beside it, ``FILE.truth.npz``."""
    return Path(str(capture) + SIDECAR_SUFFIX)


def sort_key(flow: TruthFlow) -> tuple[float, str, str, int, int, int, int, float]:
    """The canonical flow order: by first packet, then key, then last packet."""
    return (flow.first, flow.src, flow.dst, flow.sport, flow.dport, flow.proto, flow.tos, flow.last)


# --- the two implementations of the flow rules ------------------------------------------------


def reference_flows(truth_packets: TruthPackets | Iterable[TruthPacket], *, active: float,
                    inactive: float) -> list[TruthFlow]:
    """Apply the flow rules packet by packet with a plain dict (the oracle); canonical order."""
    if isinstance(truth_packets, TruthPackets):
        rows: Iterable[tuple[float, tuple[str, str, int, int, int, int], int, int]] = truth_packets.rows()
    else:
        rows = ((p.ts, (p.src, p.dst, p.sport, p.dport, p.proto, p.tos), p.length, p.tcp_flags)
                for p in truth_packets)
    cache: dict[tuple[str, str, int, int, int, int], list[float | int]] = {}
    done: list[TruthFlow] = []

    def finish(key: tuple[str, str, int, int, int, int], f: list[float | int]) -> None:
        first, last, packets, nbytes, flags = f
        done.append(TruthFlow(*key, packets=int(packets), bytes=int(nbytes), tcp_flags=int(flags),
                              first=float(first), last=float(last)))

    for ts, key, length, flags in rows:
        flow = cache.get(key)
        if flow is not None and (ts - flow[1] > inactive or ts - flow[0] >= active):
            finish(key, flow)
            flow = None
        if flow is None:
            flow = cache[key] = [ts, ts, 0, 0, 0]
        flow[1] = ts
        flow[2] += 1
        flow[3] += length
        flow[4] = int(flow[4]) | flags
        if key[4] == TCP and flags & FIN_OR_RST:
            finish(key, cache.pop(key))
    for key, flow in cache.items():
        finish(key, flow)
    return sorted(done, key=sort_key)


def truth_flows(packets: TruthPackets, *, active: float, inactive: float) -> list[TruthFlow]:
    """Apply the flow rules with numpy: sort by key, mark where flows start, reduce; canonical order."""
    n = len(packets)
    if n == 0:
        return []
    order = np.lexsort((np.arange(n), packets.key))  # by key, then arrival
    key = packets.key[order]
    ts = packets.ts[order]
    flags = packets.tcp_flags[order]
    same = key[1:] == key[:-1]
    ends = (packets.keys.proto[key] == TCP) & ((flags & FIN_OR_RST) != 0)
    start = np.ones(n, np.bool_)
    start[1:] = ~same | ends[:-1] | (ts[1:] - ts[:-1] > inactive)
    idx = np.arange(n)
    while True:  # each round splits every flow at its first packet `active` after the flow began
        begin = np.maximum.accumulate(np.where(start, idx, 0))
        late = np.flatnonzero((ts - ts[begin] >= active) & ~start)
        if late.size == 0:
            break
        _, first_late = np.unique(begin[late], return_index=True)
        start[late[first_late]] = True
    starts = np.flatnonzero(start)
    stops = np.append(starts[1:], n) - 1
    return _flow_objects(
        packets.keys, key[starts], np.diff(np.append(starts, n)),
        np.add.reduceat(packets.length[order].astype(np.uint64), starts),
        np.bitwise_or.reduceat(flags, starts), ts[starts], ts[stops])


def flows_from_records(records: FlowRecords) -> list[TruthFlow]:
    """flowd's finished flows as TruthFlows (canonical order), to compare with the ground truth."""
    k = records.key
    ports = k[:, [SPORT.start, SPORT.start + 1, DPORT.start, DPORT.start + 1]].astype(np.int64)
    sport = (ports[:, 0] << 8 | ports[:, 1]).tolist()
    dport = (ports[:, 2] << 8 | ports[:, 3]).tolist()
    flows = [TruthFlow(s, d, sp, dp, pr, tos, packets=pk, bytes=by, tcp_flags=fl, first=fi, last=la)
             for s, d, sp, dp, pr, tos, pk, by, fl, fi, la in zip(
                 _addr_texts(k[:, SRC]), _addr_texts(k[:, DST]), sport, dport, k[:, PROTO].tolist(),
                 k[:, TOS].tolist(), records.packets.tolist(), records.bytes.tolist(),
                 records.tcp_flags.tolist(), records.first.tolist(), records.last.tolist())]
    return sorted(flows, key=sort_key)


def _flow_objects(keys: TruthKeys, key: npt.NDArray[np.integer], packets: npt.NDArray[np.integer],
                  nbytes: npt.NDArray[np.integer], flags: npt.NDArray[np.integer], first: F64,
                  last: F64) -> list[TruthFlow]:
    used, inverse = np.unique(key, return_inverse=True)
    texts = TruthKeys(src=keys.src[used], dst=keys.dst[used], sport=keys.sport[used],
                      dport=keys.dport[used], proto=keys.proto[used], tos=keys.tos[used]).texts()
    flows = []
    for k, p, b, f, fi, la in zip(inverse.tolist(), packets.tolist(), nbytes.tolist(), flags.tolist(),
                                  first.tolist(), last.tolist()):
        src, dst, sport, dport, proto, tos = texts[k]
        flows.append(TruthFlow(src, dst, sport, dport, proto, tos, packets=p, bytes=b, tcp_flags=f,
                               first=fi, last=la))
    return sorted(flows, key=sort_key)


def _addr_texts(rows: U8) -> list[str]:
    """Text of (n, 16) key-layout addresses (IPv4-mapped rows as dotted quads)."""
    v4 = np.all(rows[:, :12] == np.frombuffer(V4_MAPPED_PREFIX, np.uint8), axis=1).tolist()
    raw = np.ascontiguousarray(rows).tobytes()
    return [socket.inet_ntoa(raw[16 * i + 12: 16 * i + 16]) if is4
            else str(ipaddress.IPv6Address(raw[16 * i: 16 * i + 16])) for i, is4 in enumerate(v4)]


def _addr_rows(texts: Sequence[str]) -> U8:
    out = np.zeros((len(texts), 16), np.uint8)
    for i, text in enumerate(texts):
        a = ipaddress.ip_address(text)
        out[i] = np.frombuffer(V4_MAPPED_PREFIX + a.packed if a.version == 4 else a.packed, np.uint8)
    return out


# --- generation -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Rows:
    """Per-conversation attributes (plus one pseudo row per ARP or damaged frame)."""

    version: U8
    proto: U8
    tos: U8
    ttl: U8
    sport: U16
    dport: U16
    src: U8  # (r, 16) key layout
    dst: U8
    encap: U8
    vlan: U16
    inner_vlan: U16
    mpls_depth: U8
    labels: U32  # (r, 3)
    hbh: Bools
    isn: U32

    def extend(self, other: _Rows) -> _Rows:
        return _Rows(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in _Rows.__slots__))


@dataclass(slots=True)
class _Frames:
    """Per-frame columns, in the order they are generated (sorted by time before assembly)."""

    kind: U8
    us: I64  # microseconds since the capture start
    row: I32  # row of _Rows
    key: I32  # truth key, -1 when not accountable
    iplen: U16  # IPv4 total length / IPv6 payload length + 40
    ihl: U8  # IPv4 header length in words (the written field; < 5 for BAD_IHL)
    frag: U8  # 0 none, 1 first fragment, 2 non-first fragment
    flags: U8
    ipid: U16
    seq: I32  # index of the packet within its conversation
    tcp_seq: U32
    l4len: U16  # UDP length field
    cut: U16  # CUT frames: bytes of the IP header kept; TRUNCATED frames: IP bytes on the wire

    def take(self, index: npt.NDArray[np.intp]) -> _Frames:
        return _Frames(*(getattr(self, f)[index] for f in _Frames.__slots__))

    @staticmethod
    def concat(parts: list[_Frames]) -> _Frames:
        return _Frames(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Frames.__slots__))


def _pick(rng: np.random.Generator, table: Sequence[tuple[int, float]], n: int) -> npt.NDArray[np.int64]:
    values = np.array([v for v, _ in table], np.int64)
    weights = np.array([w for _, w in table], np.float64)
    return values[rng.choice(len(values), size=n, p=weights / weights.sum())]


def _flow_sizes(rng: np.random.Generator, count: int, total: int) -> I64:
    """Packets per conversation: Pareto-distributed, at least 1, capped, summing exactly to ``total``."""
    cap = max(1, int(MAX_FLOW_SHARE * total), math.ceil(total / count))
    raw = (1.0 - rng.random(count)) ** (-1.0 / PARETO_SHAPE)
    sizes: I64 = np.clip(np.floor(raw * (total / raw.sum())), 1, cap).astype(np.int64)
    # count * cap >= total, so there is always room to grow into (or something to shrink).
    while (diff := total - int(sizes.sum())) != 0:
        if diff > 0:  # grow flows in proportion to their size, up to the cap
            room = (sizes < cap) * sizes
            sizes = np.minimum(sizes + rng.multinomial(diff, room / room.sum()), cap)
        else:  # shrink flows in proportion to their size, down to 1
            spare = sizes - 1
            sizes = np.maximum(sizes - rng.multinomial(-diff, spare / spare.sum()), 1)
    return sizes


def _addresses(rng: np.random.Generator, v6: Bools, base4: int, prefix6: bytes) -> U8:
    n = v6.shape[0]
    out = np.zeros((n, 16), np.uint8)
    out[:, :12] = np.frombuffer(V4_MAPPED_PREFIX, np.uint8)
    host4 = (base4 + rng.integers(1, 0xFFFF, n)).astype(">u4").view(np.uint8).reshape(n, 4)
    out[:, 12:] = host4
    m = int(v6.sum())
    if m:
        tail = rng.integers(0, 256, (m, 10), dtype=np.uint8)
        tail[:, 2:6] = 0  # 2001:db8:x:SUBNET::HOST, readable
        tail[:, 9] |= 1  # never the subnet-router anycast address
        out[v6, :6] = np.frombuffer(prefix6, np.uint8)
        out[v6, 6:] = tail
    return out


def _conversations(rng: np.random.Generator, spec: SynthSpec, sizes: I64) -> _Rows:
    c = int(sizes.shape[0])
    v6 = rng.random(c) < spec.ipv6_share
    proto = _pick(rng, PROTOCOL_MIX, c)
    icmp = proto == ICMP
    proto[icmp & v6] = ICMPV6
    sport = rng.integers(32768, 61000, c)
    dport = np.where(proto == TCP, _pick(rng, TCP_PORTS, c), _pick(rng, UDP_PORTS, c))
    kinds4, kinds6 = _pick(rng, [(t * 256 + k, w) for (t, k), w in ICMP_TYPES], c), \
        _pick(rng, [(t * 256 + k, w) for (t, k), w in ICMPV6_TYPES], c)
    dport = np.where(icmp, np.where(v6, kinds6, kinds4), dport)
    sport = np.where(icmp, 0, sport)
    rows = _Rows(
        version=np.where(v6, 6, 4).astype(np.uint8), proto=proto.astype(np.uint8),
        tos=_pick(rng, TOS_MIX, c).astype(np.uint8), ttl=rng.integers(32, 129, c).astype(np.uint8),
        sport=sport.astype(np.uint16), dport=dport.astype(np.uint16),
        src=_addresses(rng, v6, V4_SRC_BASE, V6_SRC_PREFIX), dst=_addresses(rng, v6, V4_DST_BASE, V6_DST_PREFIX),
        encap=np.zeros(c, np.uint8), vlan=rng.integers(2, 4095, c).astype(np.uint16),
        inner_vlan=rng.integers(2, 4095, c).astype(np.uint16), mpls_depth=np.zeros(c, np.uint8),
        labels=rng.integers(16, 1 << 20, (c, 3)).astype(np.uint32),
        hbh=v6 & (rng.random(c) < spec.hop_by_hop_share), isn=rng.integers(0, 1 << 32, c).astype(np.uint32))
    u = rng.random(c)
    rows.encap[u < spec.qinq_share + spec.vlan_share] = Encap.VLAN
    rows.encap[u < spec.qinq_share] = Encap.QINQ
    mpls = rng.random(c) < spec.mpls_share
    rows.mpls_depth[mpls] = rng.integers(1, 4, int(mpls.sum()))
    for _ in range(100):  # conversations must have distinct keys: redraw the source of duplicates
        flat = np.concatenate([rows.src, rows.dst, rows.sport.astype(">u2").view(np.uint8).reshape(c, 2),
                               rows.dport.astype(">u2").view(np.uint8).reshape(c, 2),
                               rows.proto[:, None], rows.tos[:, None]], axis=1)
        _, first = np.unique(flat, axis=0, return_index=True)
        dup = np.ones(c, np.bool_)
        dup[first] = False
        if not dup.any():
            return rows
        rows.src[dup] = _addresses(rng, rows.version[dup] == 6, V4_SRC_BASE, V6_SRC_PREFIX)
    raise ValueError("too many flows for the address ranges")


def _conversation_packets(rng: np.random.Generator, spec: SynthSpec, rows: _Rows, sizes: I64,
                          n_frag: int) -> tuple[_Frames, I64]:
    """The packets of every conversation; returns them and the indices of first fragments."""
    c = int(sizes.shape[0])
    total = int(sizes.sum())
    conv = np.repeat(np.arange(c, dtype=np.int32), sizes)
    first_idx = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    last_idx = first_idx + sizes - 1
    seq = (np.arange(total) - first_idx[conv]).astype(np.int32)
    tcp = rows.proto[conv] == TCP
    v4 = rows.version[conv] == 4

    # Timing: a start, a span from a per-conversation mean gap, and sometimes one planted idle gap.
    duration = spec.duration * 0.98
    mean_gap = np.exp(rng.uniform(math.log(0.002), math.log(2.0), c))
    gap = np.zeros(c)
    planted = (sizes >= 2) & (rng.random(c) < spec.idle_gap_share)
    if 3.0 * spec.inactive_timeout < duration / 2:
        gap[planted] = spec.inactive_timeout * rng.uniform(1.5, 3.0, int(planted.sum()))
    gap_at = np.where(gap > 0, rng.integers(1, np.maximum(sizes, 2)), np.iinfo(np.int64).max)
    span = np.minimum((sizes - 1) * mean_gap, (duration - gap) * rng.uniform(0.85, 1.0, c))
    begin = rng.random(c) * (duration - span - gap)
    u = rng.random(total)
    u[first_idx] = 0.0
    u[last_idx[sizes >= 2]] = 1.0
    u = u[np.lexsort((u, conv))]
    rel = begin[conv] + u * span[conv] + gap[conv] * (seq >= gap_at[conv])
    us = np.floor(rel * 1e6).astype(np.int64)

    # TCP flags: SYN first, then ACK / PSH-ACK; some conversations close with FIN or RST.
    ending = (rows.proto == TCP) & (sizes >= 2) & (rng.random(c) < spec.fin_rst_share)
    fin = ending & (rng.random(c) < FIN_SHARE_OF_ENDINGS)
    rst = ending & ~fin
    trailing = fin & (sizes >= 3) & (rng.random(c) < spec.trailing_ack_share)
    flags = np.where(rng.random(total) < 0.3, PSH | ACK, ACK).astype(np.uint8)
    flags[first_idx] = SYN
    flags[last_idx[fin & ~trailing]] = FIN | ACK
    flags[last_idx[trailing] - 1] = FIN | ACK
    flags[last_idx[trailing]] = ACK
    flags[last_idx[rst]] = np.where(rng.random(int(rst.sum())) < 0.5, RST, RST | ACK)
    flags[~tcp] = 0

    # First fragments among the IPv4 UDP packets; IPv4 options on a share of the other IPv4 packets.
    candidates = np.flatnonzero(v4 & (rows.proto[conv] == UDP))
    carriers = np.sort(rng.choice(candidates, size=min(n_frag, candidates.size), replace=False))
    frag = np.zeros(total, np.uint8)
    frag[carriers] = 1
    ihl = np.where(v4, 5, 0).astype(np.uint8)
    options = v4 & (frag == 0) & (rng.random(total) < spec.ipv4_options_share)
    ihl[options] = rng.integers(6, 16, int(options.sum()))

    # Lengths: headers plus a payload typical of each protocol.
    l3 = np.where(v4, 4 * ihl.astype(np.int64), 40 + 8 * rows.hbh[conv])
    proto = rows.proto[conv]
    l4 = np.where(proto == TCP, 20, 8)
    least = l3 + l4
    r = rng.random(total)
    tcp_len = np.where(r < 0.4, least, np.where(r < 0.8, MTU, rng.integers(least, MTU + 1)))
    tcp_len = np.where(seq == 0, least, tcp_len)
    tcp_len = np.where((flags & (FIN | RST)) != 0, least, tcp_len)
    tcp_len[last_idx[trailing]] = least[last_idx[trailing]]
    udp_len = np.exp(rng.uniform(math.log(28), math.log(MTU), total)).astype(np.int64)
    icmp_len = l3 + 8 + 56  # ping-sized
    iplen = np.maximum(np.where(proto == TCP, tcp_len, np.where(proto == UDP, udp_len, icmp_len)), least)
    iplen[carriers] = MTU
    l4len = iplen - l3
    rest = rng.integers(8, FRAGMENT_PAYLOAD + 1, carriers.size)
    l4len[carriers] = FRAGMENT_PAYLOAD + rest
    # TCP sequence numbers advance by the payload (and by 1 for the SYN), as a reader expects.
    advance = np.where(proto == TCP, l4len - 20, 0) + (flags == SYN)
    ends_at = np.cumsum(advance)
    tcp_seq = rows.isn[conv].astype(np.int64) + ends_at - advance - (ends_at - advance)[first_idx][conv]
    frames = _Frames(
        kind=np.full(total, FrameKind.PACKET, np.uint8), us=us, row=conv, key=conv.copy(),
        iplen=iplen.astype(np.uint16), ihl=ihl, frag=frag, flags=flags,
        ipid=rng.integers(0, 1 << 16, total).astype(np.uint16), seq=seq,
        tcp_seq=(tcp_seq & 0xFFFFFFFF).astype(np.uint32), l4len=l4len.astype(np.uint16),
        cut=np.zeros(total, np.uint16))
    # The non-first fragments: the rest of each datagram, a few microseconds after its first fragment.
    tail = frames.take(carriers)
    tail.kind[:] = FrameKind.FRAGMENT
    tail.us = tail.us + rng.integers(1, 50, carriers.size)
    tail.iplen = (20 + rest).astype(np.uint16)
    tail.frag[:] = 2
    tail.flags[:] = 0
    return _Frames.concat([frames, tail]), carriers


def _pseudo_rows(rng: np.random.Generator, n: int, v6: Bools) -> _Rows:
    """Attributes for ARP and damaged frames (no conversation; plain Ethernet)."""
    return _Rows(
        version=np.where(v6, 6, 4).astype(np.uint8), proto=np.full(n, TCP, np.uint8),
        tos=np.zeros(n, np.uint8), ttl=np.full(n, 64, np.uint8),
        sport=rng.integers(32768, 61000, n).astype(np.uint16), dport=np.full(n, 443, np.uint16),
        src=_addresses(rng, v6, V4_SRC_BASE, V6_SRC_PREFIX), dst=_addresses(rng, v6, V4_DST_BASE, V6_DST_PREFIX),
        encap=np.zeros(n, np.uint8), vlan=np.zeros(n, np.uint16), inner_vlan=np.zeros(n, np.uint16),
        mpls_depth=np.zeros(n, np.uint8), labels=np.zeros((n, 3), np.uint32), hbh=np.zeros(n, np.bool_),
        isn=rng.integers(0, 1 << 32, n).astype(np.uint32))


def _other_frames(rng: np.random.Generator, spec: SynthSpec, first_row: int, n_arp: int,
                  n_cut: int, n_bad: int, n_truncated: int) -> tuple[_Rows, _Frames]:
    n = n_arp + n_cut + n_bad + n_truncated
    kind = np.repeat(np.array([FrameKind.ARP, FrameKind.CUT, FrameKind.BAD_IHL, FrameKind.TRUNCATED], np.uint8),
                     [n_arp, n_cut, n_bad, n_truncated])
    v6 = (kind == FrameKind.CUT) & (rng.random(n) < 0.3)
    rows = _pseudo_rows(rng, n, v6)
    cut = np.where(v6, rng.integers(1, 40, n), rng.integers(1, 20, n))
    frames = _Frames(
        kind=kind, us=np.floor(rng.random(n) * spec.duration * 0.98 * 1e6).astype(np.int64),
        row=np.arange(first_row, first_row + n, dtype=np.int32), key=np.full(n, -1, np.int32),
        iplen=np.where(v6, 60, 40).astype(np.uint16),
        ihl=np.where(kind == FrameKind.BAD_IHL, rng.integers(0, 5, n), 5).astype(np.uint8),
        frag=np.zeros(n, np.uint8), flags=np.full(n, SYN, np.uint8),
        ipid=rng.integers(0, 1 << 16, n).astype(np.uint16), seq=np.zeros(n, np.int32),
        tcp_seq=rows.isn.copy(),
        l4len=np.zeros(n, np.uint16), cut=np.where(kind == FrameKind.CUT, cut, 0).astype(np.uint16))
    # truncated: half are 60-byte frames (46 IP bytes) whose total length says 1500, half runts whose
    # total length says 40 (a bare TCP header) and that end 1-19 bytes into the TCP header
    trunc = np.flatnonzero(kind == FrameKind.TRUNCATED)
    long_claim = rng.random(trunc.size) < 0.5
    frames.iplen[trunc] = np.where(long_claim, MTU, 40)
    frames.cut[trunc] = np.where(long_claim, MIN_FRAME - 14, 20 + rng.integers(1, 20, trunc.size))
    return rows, frames


def _fragment_keys(rows: _Rows, frames: _Frames, first_key: int) -> TruthKeys:
    """Give non-first fragments their own keys (ports 0); returns the table of those keys."""
    nf = np.flatnonzero(frames.kind == FrameKind.FRAGMENT)
    conv = frames.row[nf]
    flat = np.concatenate([rows.src[conv], rows.dst[conv], rows.proto[conv, None], rows.tos[conv, None]],
                          axis=1)
    if nf.size == 0:
        flat = np.zeros((0, 34), np.uint8)
    uniq, inverse = np.unique(flat, axis=0, return_inverse=True)
    frames.key[nf] = first_key + inverse.reshape(-1)
    k = uniq.shape[0]
    return TruthKeys(src=uniq[:, :16].copy(), dst=uniq[:, 16:32].copy(), sport=np.zeros(k, np.uint16),
                     dport=np.zeros(k, np.uint16), proto=uniq[:, 32].copy(), tos=uniq[:, 33].copy())


def write_capture(spec: SynthSpec, path: str | Path) -> GroundTruth:
    """Generate the traffic ``spec`` describes, write it as a pcap at ``path``, return its ground truth."""
    rng = np.random.default_rng(spec.seed)
    n_arp = round(spec.arp_share * spec.packets)
    n_damaged = round(spec.damaged_share * spec.packets)
    n_frag = round(spec.fragment_share * spec.packets)
    budget = spec.packets - n_arp - n_damaged - n_frag
    if budget < spec.flows:
        raise ValueError(f"{spec.packets} packets leave {budget} for conversations after ARP, damaged "
                         f"and fragment frames: fewer than the {spec.flows} flows")
    sizes = _flow_sizes(rng, spec.flows, budget)
    rows = _conversations(rng, spec, sizes)
    # Fragments need IPv4 UDP packets to carry them; any shortfall goes to the largest conversation.
    udp4 = int(sizes[(rows.proto == UDP) & (rows.version == 4)].sum())
    if udp4 < n_frag:
        sizes[np.argmax(sizes)] += n_frag - udp4
        n_frag = udp4
    conv_frames, _ = _conversation_packets(rng, spec, rows, sizes, n_frag)
    n_cut = (n_damaged + 2) // 3
    n_bad = (n_damaged + 1) // 3
    n_truncated = n_damaged - n_cut - n_bad
    extra_rows, extra_frames = _other_frames(rng, spec, spec.flows, n_arp, n_cut, n_bad, n_truncated)
    rows = rows.extend(extra_rows)
    frames = _Frames.concat([conv_frames, extra_frames])
    conv_keys = TruthKeys(src=rows.src[: spec.flows], dst=rows.dst[: spec.flows],
                          sport=rows.sport[: spec.flows], dport=rows.dport[: spec.flows],
                          proto=rows.proto[: spec.flows], tos=rows.tos[: spec.flows])
    frag_keys = _fragment_keys(rows, frames, spec.flows)
    keys = TruthKeys(*(np.concatenate([getattr(conv_keys, f), getattr(frag_keys, f)])
                       for f in TruthKeys.__slots__))
    frames = frames.take(np.lexsort((np.arange(len(frames.us)), frames.us)))  # time order, stable

    start_us = round(spec.start * 1e6)
    abs_us = start_us + frames.us
    sec, usec = abs_us // 1_000_000, abs_us % 1_000_000
    _write_pcap(path, spec.snaplen, rows, frames, sec, usec)

    acc = np.flatnonzero(frames.key >= 0)
    ts = sec[acc].astype(np.float64) + usec[acc].astype(np.uint32) / float(1_000_000)
    packets = TruthPackets(ts=ts, key=frames.key[acc], length=frames.iplen[acc].astype(np.uint32),
                           tcp_flags=frames.flags[acc], frame=acc.astype(np.int64), keys=keys)
    return GroundTruth(
        flows=truth_flows(packets, active=spec.active_timeout, inactive=spec.inactive_timeout),
        frames=len(frames.us), damaged=n_damaged, non_ip=n_arp, header_too_small=n_cut,
        bad_ip_header=n_bad, truncated=n_truncated, packets=packets, active_timeout=spec.active_timeout,
        inactive_timeout=spec.inactive_timeout, spec=spec)


# --- frame assembly ---------------------------------------------------------------------------


def _put(f: U8, r: npt.NDArray[np.intp], col: npt.NDArray[np.int64] | int,
         value: npt.NDArray[np.integer] | int, width: int) -> None:
    """Write big-endian ``width``-byte values at per-row columns."""
    v = np.asarray(value, np.int64)
    for i in range(width):
        f[r, col + i] = (v >> (8 * (width - 1 - i))) & 0xFF


def _put_bytes(f: U8, r: npt.NDArray[np.intp], col: npt.NDArray[np.int64], data: U8) -> None:
    """Write one byte string per row (``data`` is (len(r), k)) at per-row columns."""
    f[r[:, None], col[:, None] + np.arange(data.shape[1])] = data


def _write_pcap(path: str | Path, snaplen: int, rows: _Rows, frames: _Frames, sec: I64, usec: I64) -> None:
    width = min(snaplen, MAX_WIRE)
    step = max(1024, CHUNK_BYTES // (width + 16))
    with open(path, "wb") as out:
        out.write(PCAP_HEADER.pack(PCAP_MAGIC_USEC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for lo in range(0, len(frames.us), step):
            part = frames.take(np.arange(lo, min(lo + step, len(frames.us))))
            out.write(_records(part, rows, sec[lo: lo + step], usec[lo: lo + step], snaplen, width))


def _records(fr: _Frames, rows: _Rows, sec: I64, usec: I64, snaplen: int, width: int) -> bytes:
    """pcap records (header + captured bytes) for a chunk of frames, as one byte string."""
    m = fr.us.shape[0]
    f = np.zeros((m, width), np.uint8)
    rr = np.arange(m)
    g = fr.row
    kind = fr.kind
    version, proto, encap, depth = rows.version[g], rows.proto[g].astype(np.int64), rows.encap[g], \
        rows.mpls_depth[g].astype(np.int64)
    arp = kind == FrameKind.ARP
    f[:, 0:6] = np.frombuffer(ETH_DST, np.uint8)
    f[arp, 0:6] = 0xFF
    f[:, 6:12] = np.frombuffer(ETH_SRC, np.uint8)

    # Link layer: tags, ethertype, MPLS label stack.
    qinq = np.flatnonzero(encap == Encap.QINQ)
    _put(f, qinq, 12, ETHERTYPE_QINQ, 2)
    _put(f, qinq, 14, rows.vlan[g[qinq]], 2)
    _put(f, qinq, 16, ETHERTYPE_VLAN, 2)
    _put(f, qinq, 18, rows.inner_vlan[g[qinq]], 2)
    vlan = np.flatnonzero(encap == Encap.VLAN)
    _put(f, vlan, 12, ETHERTYPE_VLAN, 2)
    _put(f, vlan, 14, rows.vlan[g[vlan]], 2)
    et = 12 + np.where(encap == Encap.QINQ, 8, np.where(encap == Encap.VLAN, 4, 0)).astype(np.int64)
    ethertype = np.where(version == 6, ETHERTYPE_IPV6, ETHERTYPE_IPV4)
    ethertype = np.where(depth > 0, ETHERTYPE_MPLS, np.where(arp, ETHERTYPE_ARP, ethertype))
    _put(f, rr, et, ethertype, 2)
    for j in range(3):
        r = np.flatnonzero(depth > j)
        entry = (rows.labels[g[r], j].astype(np.int64) << 12) | ((depth[r] == j + 1) << 8) | 64
        _put(f, r, et[r] + 2 + 4 * j, entry, 4)
    l3 = et + 2 + 4 * depth

    # ARP requests.
    r = np.flatnonzero(arp)
    if r.size:
        c = l3[r]
        _put(f, r, c, 0x0001_0800_0604_0001, 8)  # Ethernet, IPv4, hlen 6, plen 4, request
        _put_bytes(f, r, c + 8, np.tile(np.frombuffer(ETH_SRC, np.uint8), (r.size, 1)))
        _put_bytes(f, r, c + 14, rows.src[g[r], 12:])
        _put_bytes(f, r, c + 24, rows.dst[g[r], 12:])

    # IPv4 header (options: a Router Alert, NOPs, an end-of-list byte).
    ip = ~arp
    r4 = np.flatnonzero(ip & (version == 4))
    c = l3[r4]
    ihl4 = fr.ihl[r4].astype(np.int64)
    _put(f, r4, c, 0x40 | ihl4, 1)
    _put(f, r4, c + 1, rows.tos[g[r4]], 1)
    _put(f, r4, c + 2, fr.iplen[r4], 2)
    _put(f, r4, c + 4, fr.ipid[r4], 2)
    frag4 = fr.frag[r4]
    _put(f, r4, c + 6, np.where(frag4 == 1, IPV4_MF, np.where(frag4 == 2, FRAGMENT_PAYLOAD // 8,
                                                              np.where(proto[r4] == TCP, IPV4_DF, 0))), 2)
    _put(f, r4, c + 8, rows.ttl[g[r4]], 1)
    _put(f, r4, c + 9, proto[r4], 1)
    _put_bytes(f, r4, c + 12, rows.src[g[r4], 12:])
    _put_bytes(f, r4, c + 16, rows.dst[g[r4], 12:])
    opt = np.flatnonzero(ihl4 > 5)
    if opt.size:
        ro, co, hl = r4[opt], c[opt], 4 * ihl4[opt]
        _put(f, ro, co + 20, int.from_bytes(ROUTER_ALERT, "big"), 4)
        cols = co[:, None] + np.arange(24, 59)
        nop = cols < (co + hl - 1)[:, None]
        f[np.broadcast_to(ro[:, None], cols.shape)[nop], cols[nop]] = IPV4_NOP
    hl4 = 4 * np.maximum(ihl4, 5)
    cols = c[:, None] + np.arange(60)
    inside = np.arange(60)[None, :] < hl4[:, None]
    hdr = np.where(inside, f[r4[:, None], np.minimum(cols, width - 1)], 0).astype(np.int64)
    s = (hdr[:, 0::2] << 8 | hdr[:, 1::2]).sum(axis=1)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    _put(f, r4, c + 10, ~s & 0xFFFF, 2)

    # IPv6 header and the hop-by-hop extension header.
    r6 = np.flatnonzero(ip & (version == 6))
    c = l3[r6]
    hbh6 = rows.hbh[g[r6]]
    tos6 = rows.tos[g[r6]].astype(np.int64)
    _put(f, r6, c, 0x60 | tos6 >> 4, 1)
    _put(f, r6, c + 1, (tos6 & 0x0F) << 4, 1)
    _put(f, r6, c + 4, fr.iplen[r6].astype(np.int64) - 40, 2)
    _put(f, r6, c + 6, np.where(hbh6, HOP_BY_HOP, proto[r6]), 1)
    _put(f, r6, c + 7, rows.ttl[g[r6]], 1)
    _put_bytes(f, r6, c + 8, rows.src[g[r6]])
    _put_bytes(f, r6, c + 24, rows.dst[g[r6]])
    h = np.flatnonzero(hbh6)
    if h.size:
        _put(f, r6[h], c[h] + 40, proto[r6[h]], 1)
        _put_bytes(f, r6[h], c[h] + 41, np.tile(np.frombuffer(HOP_BY_HOP_BODY, np.uint8), (h.size, 1)))

    # Transport headers (none in non-first fragments).
    l4 = l3 + np.where(version == 4, 4 * np.maximum(fr.ihl.astype(np.int64), 5),
                       40 + 8 * rows.hbh[g].astype(np.int64))
    has_l4 = ip & (kind != FrameKind.FRAGMENT)
    r = np.flatnonzero(has_l4 & (proto == TCP))
    c = l4[r]
    isn = rows.isn[g[r]].astype(np.int64)
    _put(f, r, c, rows.sport[g[r]], 2)
    _put(f, r, c + 2, rows.dport[g[r]], 2)
    _put(f, r, c + 4, fr.tcp_seq[r], 4)
    _put(f, r, c + 8, np.where(fr.flags[r] & ACK, isn ^ 0x5A5A5A5A, 0), 4)
    _put(f, r, c + 12, 0x50, 1)
    _put(f, r, c + 13, fr.flags[r], 1)
    _put(f, r, c + 14, 65535, 2)
    r = np.flatnonzero(has_l4 & (proto == UDP))
    c = l4[r]
    _put(f, r, c, rows.sport[g[r]], 2)
    _put(f, r, c + 2, rows.dport[g[r]], 2)
    _put(f, r, c + 4, fr.l4len[r], 2)
    r = np.flatnonzero(has_l4 & ((proto == ICMP) | (proto == ICMPV6)))
    c = l4[r]
    _put(f, r, c, rows.dport[g[r]], 2)  # type, code
    _put(f, r, c + 4, rows.isn[g[r]] & 0xFFFF, 2)  # identifier
    _put(f, r, c + 6, fr.seq[r] & 0xFFFF, 2)  # sequence number

    # Lengths: pad short frames to the Ethernet minimum; damaged frames are runts cut in the IP header,
    # truncated ones carry fewer IP bytes than their total length says.
    wire = np.where(arp, 14 + 28, l3 + fr.iplen.astype(np.int64))
    wire = np.maximum(wire, MIN_FRAME)
    cutf = (kind == FrameKind.CUT) | (kind == FrameKind.TRUNCATED)
    wire = np.where(cutf, l3 + fr.cut, wire)
    caplen = np.minimum(wire, snaplen)
    head = np.empty((m, 4), "<u4")
    head[:, 0], head[:, 1], head[:, 2], head[:, 3] = sec, usec, caplen, wire
    rec = np.empty((m, 16 + width), np.uint8)
    rec[:, :16] = head.view(np.uint8).reshape(m, 16)
    rec[:, 16:] = f
    keep = np.arange(16 + width)[None, :] < (16 + caplen)[:, None]
    return rec[keep].tobytes()
