"""Frame assembly for the generator: rows of header fields written into pcap records, all at once with numpy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from flowd.model.batch import I64, U8, U16, U32
from flowd.testing.layout import (
    ACK,
    CHUNK_BYTES,
    ETH_DST,
    ETH_SRC,
    ETHERTYPE_ARP,
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    ETHERTYPE_MPLS,
    ETHERTYPE_QINQ,
    ETHERTYPE_VLAN,
    FRAGMENT_PAYLOAD,
    FRAGMENT_PAYLOAD_V6,
    HOP_BY_HOP,
    HOP_BY_HOP_BODY,
    IPV6_FRAGMENT,
    I32,
    ICMP,
    ICMPV6,
    IPV4_DF,
    IPV4_MF,
    IPV4_NOP,
    LINKTYPE_ETHERNET,
    MAX_WIRE,
    MIN_FRAME,
    PCAP_HEADER,
    PCAP_MAGIC_USEC,
    ROUTER_ALERT,
    TCP,
    UDP,
    Bools,
)
from flowd.testing.truth import (
    Encap,
    FrameKind,
)


@dataclass(slots=True)
class Rows:
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

    def extend(self, other: Rows) -> Rows:
        return Rows(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in Rows.__slots__))


@dataclass(slots=True)
class Frames:
    """Per-frame columns, in the order they are generated (sorted by time before assembly)."""

    kind: U8
    us: I64  # microseconds since the capture start
    row: I32  # row of Rows
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

    def take(self, index: npt.NDArray[np.intp]) -> Frames:
        return Frames(*(getattr(self, f)[index] for f in Frames.__slots__))

    @staticmethod
    def concat(parts: list[Frames]) -> Frames:
        return Frames(*(np.concatenate([getattr(p, f) for p in parts]) for f in Frames.__slots__))


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


def write_pcap(path: str | Path, snaplen: int, rows: Rows, frames: Frames, sec: I64, usec: I64) -> None:
    width = min(snaplen, MAX_WIRE)
    step = max(1024, CHUNK_BYTES // (width + 16))
    with open(path, "wb") as out:
        out.write(PCAP_HEADER.pack(PCAP_MAGIC_USEC, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        for lo in range(0, len(frames.us), step):
            part = frames.take(np.arange(lo, min(lo + step, len(frames.us))))
            out.write(_records(part, rows, sec[lo: lo + step], usec[lo: lo + step], snaplen, width))


def _records(fr: Frames, rows: Rows, sec: I64, usec: I64, snaplen: int, width: int) -> bytes:
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

    # IPv6 header, the hop-by-hop extension header, then the fragment header (RFC 8200 §4.1 order).
    r6 = np.flatnonzero(ip & (version == 6))
    c = l3[r6]
    hbh6 = rows.hbh[g[r6]]
    frag6 = fr.frag[r6]
    after_hbh = np.where(frag6 != 0, IPV6_FRAGMENT, proto[r6])
    tos6 = rows.tos[g[r6]].astype(np.int64)
    _put(f, r6, c, 0x60 | tos6 >> 4, 1)
    _put(f, r6, c + 1, (tos6 & 0x0F) << 4, 1)
    _put(f, r6, c + 4, fr.iplen[r6].astype(np.int64) - 40, 2)
    _put(f, r6, c + 6, np.where(hbh6, HOP_BY_HOP, after_hbh), 1)
    _put(f, r6, c + 7, rows.ttl[g[r6]], 1)
    _put_bytes(f, r6, c + 8, rows.src[g[r6]])
    _put_bytes(f, r6, c + 24, rows.dst[g[r6]])
    h = np.flatnonzero(hbh6)
    if h.size:
        _put(f, r6[h], c[h] + 40, after_hbh[h], 1)
        _put_bytes(f, r6[h], c[h] + 41, np.tile(np.frombuffer(HOP_BY_HOP_BODY, np.uint8), (h.size, 1)))
    fh = np.flatnonzero(frag6 != 0)
    if fh.size:  # next header, reserved, offset (8-byte units) << 3 | M, identification
        rf, cf = r6[fh], c[fh] + 40 + 8 * hbh6[fh].astype(np.int64)
        _put(f, rf, cf, proto[rf], 1)
        _put(f, rf, cf + 2, np.where(frag6[fh] == 1, 1, FRAGMENT_PAYLOAD_V6), 2)
        _put(f, rf, cf + 4, fr.ipid[rf], 4)

    # Transport headers (none in non-first fragments).
    l4 = l3 + np.where(version == 4, 4 * np.maximum(fr.ihl.astype(np.int64), 5),
                       40 + 8 * rows.hbh[g].astype(np.int64) + 8 * (fr.frag != 0))
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
