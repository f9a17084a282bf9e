"""Ground truth of a generated capture: its flows and packets, and the two statements of the flow rules it is checked against.

Written beside each capture as a sidecar (`sidecar_path`), read back by tests and benchmarks.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from enum import IntEnum
from pathlib import Path
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from flowd.model.batch import F64, I64, U8, U16, U32, FlowRecords
from flowd.model.flowkey import DPORT, DST, PROTO, SPORT, SRC, TOS, V4_MAPPED_PREFIX
from flowd.testing.layout import (
    FIN_OR_RST,
    I32,
    MAX_HEADER,
    SIDECAR_FORMAT,
    SIDECAR_SUFFIX,
    TCP,
)


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
    ipv6_fragment_share: float = 0.0  # of frames: non-first IPv6 fragments (each with its first fragment)
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
