"""flowd.core.decode: table-driven frames, truncation at every byte, batch == per-frame, dpkt as the oracle.

Every batch decoded here is checked three ways by ``run``: frames are conserved (accounted + drops ==
frames), the batch decoder's rows and drop counts equal ``decode_frame`` applied to each frame, and the
rows come out in input order. The table then pins ``decode_frame``'s answer for each shape, and the
corpus tests compare it with an independent dpkt-based reference decoder written below.
"""

from __future__ import annotations

import gzip
import ipaddress
import struct
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import dpkt
import numpy as np
import pytest

from flowd.core.decode import Decoded, Packet, decode, decode_frame
from flowd.model.batch import FrameBatch, PacketBatch
from flowd.model.drops import DropReason
from flowd.model.flowkey import KEY_BYTES, FlowKey

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / ".." / "shared" / "pcaps"
needs_corpus = pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/pcaps not present")

TOO_SMALL = DropReason.HEADER_TOO_SMALL
BAD = DropReason.BAD_IP_HEADER
NOT_IP = DropReason.NOT_IP
UNSUPPORTED = DropReason.UNSUPPORTED_LINK_TYPE

Result = Packet | DropReason


# --- frame builders (raw bytes, so every field can be set to anything) ---------------------------

MACS = bytes.fromhex("020000000001020000000002")


def eth(ethertype: int, payload: bytes, *tags: tuple[int, int]) -> bytes:
    """Ethernet II with VLAN tags given as (TPID, VLAN id), outermost first."""
    types = [tpid for tpid, _ in tags] + [ethertype]
    body = b"".join(struct.pack("!HH", 0xA000 | vid, types[i + 1]) for i, (_, vid) in enumerate(tags))
    return MACS + struct.pack("!H", types[0]) + body + payload


def sll(protocol: int, payload: bytes) -> bytes:
    return struct.pack("!HHH8sH", 0, 1, 6, MACS[:8], protocol) + payload


def sll2(protocol: int, payload: bytes) -> bytes:
    return struct.pack("!HHIHBB8s", protocol, 0, 3, 1, 0, 6, MACS[:8]) + payload


def mpls(payload: bytes, *labels: int, exp: int = 5) -> bytes:
    """A label stack (top first); the S bit is set on the last entry; TTL 64."""
    return b"".join(struct.pack("!I", label << 12 | exp << 9 | (i == len(labels) - 1) << 8 | 64)
                    for i, label in enumerate(labels)) + payload


def ipv4(proto: int, payload: bytes, *, src: str = "198.18.0.1", dst: str = "198.19.0.2", tos: int = 0,
         ttl: int = 64, options: bytes = b"", frag: int = 0, total: int | None = None, version: int = 4,
         ihl: int | None = None) -> bytes:
    ihl = (20 + len(options)) // 4 if ihl is None else ihl
    total = 20 + len(options) + len(payload) if total is None else total
    return (struct.pack("!BBHHHBBH4s4s", version << 4 | ihl, tos, total, 0x1234, frag, ttl, proto, 0,
                        ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
            + options + payload)


def ipv6(nh: int, payload: bytes, *, src: str = "2001:db8::1", dst: str = "2001:db8::2", tc: int = 0,
         hlim: int = 64, plen: int | None = None, version: int = 6) -> bytes:
    plen = len(payload) if plen is None else plen
    return (struct.pack("!IHBB", version << 28 | tc << 20 | 0x12345, plen, nh, hlim)
            + ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address(dst).packed + payload)


def tcp(sport: int, dport: int, flags: int = 0x12, payload: bytes = b"") -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 2, 5 << 4, flags, 1024, 0, 0) + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def sctp(sport: int, dport: int) -> bytes:
    return struct.pack("!HHII", sport, dport, 7, 0)


def icmp(kind: int, code: int, payload: bytes = b"\x00\x01\x00\x02") -> bytes:
    return struct.pack("!BBH", kind, code, 0) + payload


def opts6(nh: int, units: int = 0) -> bytes:
    """Hop-by-hop, routing or destination options header of (units + 1) * 8 bytes."""
    return bytes((nh, units)) + bytes(6 + 8 * units)


def frag6(nh: int, offset: int, more: bool = True) -> bytes:
    return struct.pack("!BBHI", nh, 0, offset << 3 | more, 0xABCD)


def ah6(nh: int, units: int = 4) -> bytes:
    """AH with (units + 2) * 4 bytes (4: 12 bytes of ICV)."""
    return bytes((nh, units, 0, 0)) + struct.pack("!II", 0x100, 1) + bytes((units + 2) * 4 - 12)


def null(family: int, payload: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "I", family) + payload


TCP4 = ipv4(6, tcp(40000, 443, 0x18, b"hello"))
TCP6 = ipv6(6, tcp(40000, 443, 0x18, b"hello"))


def expect(src: str, dst: str, proto: int, sport: int = 0, dport: int = 0, *, length: int, flags: int = 0,
           tos: int = 0, ttl: int = 64, vlan: int = 0, inner: int = 0, mpls: tuple[int, int, int] = (0, 0, 0),
           ifindex: int = 0) -> Packet:
    key = FlowKey(ipaddress.ip_address(src), ipaddress.ip_address(dst), sport, dport, proto, tos, ifindex)
    return Packet(key=key.pack(), length=length, tcp_flags=flags, ttl=ttl, vlan=vlan, inner_vlan=inner,
                  mpls=mpls)


def v4(proto: int, sport: int = 0, dport: int = 0, **kw: Any) -> Packet:
    """A packet between the IPv4 builder's default addresses."""
    return expect("198.18.0.1", "198.19.0.2", proto, sport, dport, **kw)


def v6(proto: int, sport: int = 0, dport: int = 0, **kw: Any) -> Packet:
    """A packet between the IPv6 builder's default addresses."""
    return expect("2001:db8::1", "2001:db8::2", proto, sport, dport, **kw)


def entry(label: int, s: int, exp: int = 5) -> int:
    return label << 4 | exp << 1 | s


TCP4_PACKET = v4(6, 40000, 443, length=45, flags=0x18)
TCP6_PACKET = v6(6, 40000, 443, length=65, flags=0x18)


# --- harness -------------------------------------------------------------------------------------

def batch(frames: Sequence[bytes], linktypes: Sequence[int] | int = 1, *, wirelens: Sequence[int] | None = None,
          ifindex: int = 0, caplens: Sequence[int] | None = None, gap: int = 0) -> FrameBatch:
    """A FrameBatch of these frames, ``gap`` junk bytes apart.

    ``caplens`` cut the frames but the buffer keeps their whole bytes: the bytes after a cut are the
    frame's real continuation, so a decoder reading past a caplen would find plausible headers there.
    """
    n = len(frames)
    caps = [len(f) for f in frames] if caplens is None else list(caplens)
    buf = b"".join(f + b"\xee" * gap for f in frames)
    offsets = np.cumsum([0] + [len(f) + gap for f in frames[:-1]]) if n else np.zeros(0)
    kinds = [linktypes] * n if isinstance(linktypes, int) else list(linktypes)
    return FrameBatch(
        buf=buf, offset=np.asarray(offsets, np.int64), caplen=np.asarray(caps, np.uint32),
        wirelen=np.asarray([len(f) for f in frames] if wirelens is None else wirelens, np.uint32),
        ts=np.arange(n, dtype=np.float64), linktype=np.asarray(kinds, np.uint16),
        ifindex=np.full(n, ifindex, np.uint32))


def rows(packets: PacketBatch) -> list[Packet]:
    return [Packet(key=bytes(packets.key[i]), length=int(packets.length[i]), tcp_flags=int(packets.tcp_flags[i]),
                   ttl=int(packets.ttl[i]), vlan=int(packets.vlan[i]), inner_vlan=int(packets.inner_vlan[i]),
                   mpls=(int(packets.mpls[i, 0]), int(packets.mpls[i, 1]), int(packets.mpls[i, 2])))
            for i in range(len(packets))]


def per_frame(frames: FrameBatch) -> list[Result]:
    buf = bytes(frames.buf)
    return [decode_frame(buf[int(o):int(o) + int(c)], int(lt), int(w), int(ifx)) for o, c, lt, w, ifx in
            zip(frames.offset, frames.caplen, frames.linktype, frames.wirelen, frames.ifindex, strict=True)]


def check(frames: FrameBatch) -> tuple[Decoded, list[Result]]:
    """Decode the batch; assert conservation, input order, and agreement with decode_frame per frame."""
    decoded = decode(frames)
    n = len(frames)
    assert len(decoded.packets) + sum(decoded.drops.values()) == n
    assert all(count > 0 for count in decoded.drops.values())
    singles = per_frame(frames)
    accounted = [i for i, r in enumerate(singles) if isinstance(r, Packet)]
    assert decoded.packets.ts.tolist() == [float(frames.ts[i]) for i in accounted]
    assert rows(decoded.packets) == [singles[i] for i in accounted]
    assert decoded.drops == dict(Counter(r for r in singles if isinstance(r, DropReason)))
    p = decoded.packets
    assert p.key.shape == (len(p), KEY_BYTES) and p.key.dtype == np.uint8 and p.mpls.shape == (len(p), 3)
    assert all(column.flags.writeable for column in (p.key, p.length, p.ts, p.tcp_flags, p.ttl, p.vlan, p.mpls))
    assert [str(c.dtype) for c in (p.length, p.tcp_flags, p.ttl, p.vlan, p.inner_vlan, p.mpls)] == [
        "uint32", "uint8", "uint8", "uint16", "uint16", "uint32"]
    return decoded, singles


def run(frames: Sequence[bytes], linktypes: Sequence[int] | int = 1, **kw: Any) -> list[Result]:
    """Per-frame results of a batch that passed ``check``."""
    return check(batch(frames, linktypes, **kw))[1]


# --- the table -----------------------------------------------------------------------------------

ETHER, SLL, SLL2, NULL, LOOP = 1, 113, 276, 0, 108

CASES: list[tuple[str, bytes, int, Result]] = [
    # link types
    ("ether-ipv4-tcp", eth(0x0800, TCP4), ETHER, TCP4_PACKET),
    ("ether-ipv6-tcp", eth(0x86DD, TCP6), ETHER, TCP6_PACKET),
    ("sll-ipv4", sll(0x0800, TCP4), SLL, TCP4_PACKET),
    ("sll-ipv6", sll(0x86DD, TCP6), SLL, TCP6_PACKET),
    ("sll-vlan-ipv4", sll(0x8100, struct.pack("!HH", 12, 0x0800) + TCP4), SLL, v4(6, 40000, 443, length=45,
                                                                                   flags=0x18, vlan=12)),
    ("sll-arp", sll(0x0806, bytes(28)), SLL, NOT_IP),
    ("sll-can", sll(0x000C, bytes(16)), SLL, NOT_IP),
    ("sll2-ipv4", sll2(0x0800, TCP4), SLL2, TCP4_PACKET),
    ("sll2-ipv6", sll2(0x86DD, TCP6), SLL2, TCP6_PACKET),
    ("sll2-qinq-ipv6", sll2(0x88A8, struct.pack("!HHHH", 5, 0x8100, 6, 0x86DD) + TCP6), SLL2,
     v6(6, 40000, 443, length=65, flags=0x18, vlan=5, inner=6)),
    ("raw101-ipv4", TCP4, 101, TCP4_PACKET),
    ("raw101-ipv6", TCP6, 101, TCP6_PACKET),
    ("raw12-ipv4", TCP4, 12, TCP4_PACKET),
    ("raw14-ipv6", TCP6, 14, TCP6_PACKET),
    ("raw228-ipv4", TCP4, 228, TCP4_PACKET),
    ("raw229-ipv6", TCP6, 229, TCP6_PACKET),
    ("raw228-carrying-ipv6", TCP6, 228, BAD),
    ("raw229-carrying-ipv4", TCP4, 229, BAD),
    ("raw101-version-5", b"\x55" + TCP4[1:], 101, BAD),
    ("raw101-empty", b"", 101, TOO_SMALL),
    ("null-le-inet", null(2, TCP4, "<"), NULL, TCP4_PACKET),
    ("null-be-inet", null(2, TCP4, ">"), NULL, TCP4_PACKET),
    ("null-inet6-24", null(24, TCP6), NULL, TCP6_PACKET),
    ("null-inet6-28", null(28, TCP6, ">"), NULL, TCP6_PACKET),
    ("null-inet6-30", null(30, TCP6), NULL, TCP6_PACKET),
    ("null-other-family", null(7, TCP4), NULL, NOT_IP),
    ("null-short", b"\x02\x00\x00", NULL, TOO_SMALL),
    ("loop-inet", null(2, TCP4, ">"), LOOP, TCP4_PACKET),
    ("loop-inet6", null(24, TCP6, ">"), LOOP, TCP6_PACKET),
    ("loop-host-order-is-not-ip", null(2, TCP4, "<"), LOOP, NOT_IP),
    ("unknown-link-type", eth(0x0800, TCP4), 105, UNSUPPORTED),
    ("ppp-is-unsupported", b"\xff\x03\x00\x21" + TCP4, 9, UNSUPPORTED),
    # VLAN tags: all three TPIDs, any depth (outer id and the next one are kept)
    ("vlan-8100", eth(0x0800, TCP4, (0x8100, 100)), ETHER, v4(6, 40000, 443, length=45, flags=0x18, vlan=100)),
    ("vlan-88a8", eth(0x86DD, TCP6, (0x88A8, 7)), ETHER, v6(6, 40000, 443, length=65, flags=0x18, vlan=7)),
    ("vlan-9100", eth(0x0800, TCP4, (0x9100, 4095)), ETHER, v4(6, 40000, 443, length=45, flags=0x18,
                                                                vlan=4095)),
    ("qinq-88a8-8100", eth(0x0800, TCP4, (0x88A8, 10), (0x8100, 20)), ETHER,
     v4(6, 40000, 443, length=45, flags=0x18, vlan=10, inner=20)),
    ("qinq-9100-9100", eth(0x86DD, TCP6, (0x9100, 30), (0x9100, 40)), ETHER,
     v6(6, 40000, 443, length=65, flags=0x18, vlan=30, inner=40)),
    ("qinq-8100-88a8", eth(0x0800, TCP4, (0x8100, 1), (0x88A8, 2)), ETHER,
     v4(6, 40000, 443, length=45, flags=0x18, vlan=1, inner=2)),
    ("three-tags", eth(0x0800, TCP4, (0x88A8, 1), (0x8100, 2), (0x8100, 3)), ETHER,
     v4(6, 40000, 443, length=45, flags=0x18, vlan=1, inner=2)),
    ("five-tags", eth(0x86DD, TCP6, *[(0x8100, i) for i in range(1, 6)]), ETHER,
     v6(6, 40000, 443, length=65, flags=0x18, vlan=1, inner=2)),
    ("vlan-arp", eth(0x0806, bytes(28), (0x8100, 9)), ETHER, NOT_IP),
    ("vlan-cut", eth(0x0800, b"", (0x8100, 9))[:16], ETHER, TOO_SMALL),
    # MPLS: 1-3 labels and more, IPv4/IPv6 guessed from the nibble after the bottom of the stack
    ("mpls-1-ipv4", eth(0x8847, mpls(TCP4, 16)), ETHER, v4(6, 40000, 443, length=45, flags=0x18,
                                                          mpls=(entry(16, 1), 0, 0))),
    ("mpls-2-ipv6", eth(0x8847, mpls(TCP6, 100, 2)), ETHER, v6(6, 40000, 443, length=65, flags=0x18,
                                                               mpls=(entry(100, 0), entry(2, 1), 0))),
    ("mpls-3-ipv4", eth(0x8848, mpls(TCP4, 1048575, 300, 0)), ETHER,
     v4(6, 40000, 443, length=45, flags=0x18, mpls=(entry(1048575, 0), entry(300, 0), entry(0, 1)))),
    ("mpls-4-ipv6-keeps-top-3", eth(0x8847, mpls(TCP6, 1, 2, 3, 4)), ETHER,
     v6(6, 40000, 443, length=65, flags=0x18, mpls=(entry(1, 0), entry(2, 0), entry(3, 0)))),
    ("vlan-mpls-ipv4", eth(0x8847, mpls(TCP4, 77), (0x8100, 3)), ETHER,
     v4(6, 40000, 443, length=45, flags=0x18, vlan=3, mpls=(entry(77, 1), 0, 0))),
    ("mpls-ipv4-options", eth(0x8847, mpls(ipv4(17, udp(1, 2), options=b"\x01\x01\x01\x00"), 8)), ETHER,
     v4(17, 1, 2, length=32, mpls=(entry(8, 1), 0, 0))),
    ("sll-mpls-ipv6", sll(0x8847, mpls(TCP6, 9)), SLL, v6(6, 40000, 443, length=65, flags=0x18,
                                                        mpls=(entry(9, 1), 0, 0))),
    ("mpls-control-word", eth(0x8847, mpls(bytes(4) + eth(0x0800, TCP4), 18)), ETHER, NOT_IP),
    ("mpls-unknown-nibble", eth(0x8847, mpls(b"\x12" + bytes(40), 18)), ETHER, NOT_IP),
    ("mpls-no-bottom", eth(0x8847, struct.pack("!II", 1 << 12, 2 << 12)), ETHER, TOO_SMALL),
    ("mpls-nothing-after-bottom", eth(0x8847, mpls(b"", 5)), ETHER, TOO_SMALL),
    # IPv4
    ("ipv4-udp", eth(0x0800, ipv4(17, udp(5353, 53, b"q"), tos=0xB8, ttl=3)), ETHER,
     v4(17, 5353, 53, length=29, tos=0xB8, ttl=3)),
    ("ipv4-sctp", eth(0x0800, ipv4(132, sctp(2905, 2906))), ETHER, v4(132, 2905, 2906, length=32)),
    ("ipv4-udplite", eth(0x0800, ipv4(136, udp(7, 8))), ETHER, v4(136, 7, 8, length=28)),
    ("ipv4-icmp-echo", eth(0x0800, ipv4(1, icmp(8, 0))), ETHER, v4(1, 0, 0x0800, length=28)),
    ("ipv4-icmp-unreachable", eth(0x0800, ipv4(1, icmp(3, 13))), ETHER, v4(1, 0, 3 * 256 + 13, length=28)),
    ("ipv4-gre-no-ports", eth(0x0800, ipv4(47, b"\x00\x00\x08\x00" + TCP4)), ETHER, v4(47, length=69)),
    ("ipv4-options-ihl6", eth(0x0800, ipv4(6, tcp(1, 2, 0x02), options=b"\x94\x04\x00\x00")), ETHER,
     v4(6, 1, 2, length=44, flags=0x02)),
    ("ipv4-options-ihl15", eth(0x0800, ipv4(17, udp(9, 10), options=b"\x01" * 40)), ETHER,
     v4(17, 9, 10, length=68)),
    ("ipv4-first-fragment", eth(0x0800, ipv4(6, tcp(1, 2, 0x10, bytes(16)), frag=0x2000)), ETHER,
     v4(6, 1, 2, length=56, flags=0x10)),
    ("ipv4-non-first-fragment", eth(0x0800, ipv4(6, tcp(1, 2, 0x10), frag=0x2000 | 185)), ETHER,
     v4(6, length=40)),
    ("ipv4-last-fragment-icmp", eth(0x0800, ipv4(1, icmp(8, 0), frag=3)), ETHER, v4(1, length=28)),
    ("ipv4-df", eth(0x0800, ipv4(17, udp(3, 4), frag=0x4000)), ETHER, v4(17, 3, 4, length=28)),
    ("ipv4-tcp-all-flags", eth(0x0800, ipv4(6, tcp(5, 6, 0xFF))), ETHER, v4(6, 5, 6, length=40, flags=0xFF)),
    ("ipv4-tcp-cut-by-snaplen", eth(0x0800, ipv4(6, tcp(5, 6, 0x02)))[:14 + 20 + 19], ETHER, v4(6, length=40)),
    ("ipv4-udp-cut-by-snaplen", eth(0x0800, ipv4(17, udp(5, 6)))[:14 + 20 + 7], ETHER, v4(17, length=28)),
    ("ipv4-icmp-cut-by-snaplen", eth(0x0800, ipv4(1, icmp(3, 1)))[:14 + 20 + 3], ETHER, v4(1, length=28)),
    ("ipv4-options-cut", eth(0x0800, ipv4(6, tcp(1, 2), options=bytes(8)))[:14 + 24], ETHER, TOO_SMALL),
    ("ipv4-fixed-header-cut", eth(0x0800, TCP4)[:14 + 19], ETHER, TOO_SMALL),
    ("ipv4-total-shorter-than-transport", eth(0x0800, ipv4(17, udp(1, 2), total=24) + bytes(20)), ETHER,
     v4(17, length=24)),
    ("ipv4-total-beyond-capture", eth(0x0800, ipv4(17, udp(1, 2), total=1500)), ETHER, v4(17, 1, 2, length=1500)),
    ("ipv4-ethernet-padding", eth(0x0800, ipv4(17, udp(1, 2))) + bytes(18), ETHER, v4(17, 1, 2, length=28)),
    ("ipv4-version-6-in-0800", eth(0x0800, ipv4(6, tcp(1, 2), version=6)), ETHER, BAD),
    ("ipv4-ihl-4", eth(0x0800, ipv4(6, tcp(1, 2), ihl=4)), ETHER, BAD),
    ("ipv4-total-below-ihl", eth(0x0800, ipv4(6, tcp(1, 2), total=19)), ETHER, BAD),
    ("ipv4-total-zero", eth(0x0800, ipv4(6, tcp(1, 2), total=0)), ETHER, BAD),
    ("ipv4-total-below-options", eth(0x0800, ipv4(6, tcp(1, 2), options=bytes(4), total=22)), ETHER, BAD),
    # IPv6 and its extension headers
    ("ipv6-udp", eth(0x86DD, ipv6(17, udp(546, 547), tc=0xB8, hlim=1)), ETHER,
     v6(17, 546, 547, length=48, tos=0xB8, ttl=1)),
    ("ipv6-icmpv6-echo", eth(0x86DD, ipv6(58, icmp(128, 0))), ETHER, v6(58, 0, 128 * 256, length=48)),
    ("ipv6-icmpv6-time-exceeded", eth(0x86DD, ipv6(58, icmp(3, 1))), ETHER, v6(58, 0, 3 * 256 + 1, length=48)),
    ("ipv6-sctp", eth(0x86DD, ipv6(132, sctp(1, 2))), ETHER, v6(132, 1, 2, length=52)),
    ("ipv6-hop-by-hop", eth(0x86DD, ipv6(0, opts6(58, 0) + icmp(143, 0))), ETHER,
     v6(58, 0, 143 * 256, length=56)),
    ("ipv6-routing", eth(0x86DD, ipv6(43, opts6(6, 2) + tcp(7, 8, 0x11))), ETHER,
     v6(6, 7, 8, length=84, flags=0x11)),
    ("ipv6-destination-options", eth(0x86DD, ipv6(60, opts6(17, 1) + udp(9, 10))), ETHER,
     v6(17, 9, 10, length=64)),
    ("ipv6-ah", eth(0x86DD, ipv6(51, ah6(6) + tcp(11, 12, 0x04))), ETHER, v6(6, 11, 12, length=84, flags=0x04)),
    ("ipv6-first-fragment", eth(0x86DD, ipv6(44, frag6(17, 0) + udp(13, 14, bytes(8)))), ETHER,
     v6(17, 13, 14, length=64)),
    ("ipv6-non-first-fragment", eth(0x86DD, ipv6(44, frag6(17, 100, False) + udp(13, 14))), ETHER,
     v6(17, length=56)),
    ("ipv6-non-first-fragment-ext-next", eth(0x86DD, ipv6(44, frag6(60, 8) + b"\x06\xff" + bytes(6))), ETHER,
     v6(60, length=56)),
    ("ipv6-chain", eth(0x86DD, ipv6(0, opts6(43) + opts6(44, 1) + frag6(60, 0) + opts6(51) + ah6(6, 1)
                                    + tcp(15, 16, 0x01))), ETHER, v6(6, 15, 16, length=112, flags=0x01)),
    ("ipv6-chain-non-first-fragment", eth(0x86DD, ipv6(0, opts6(44) + frag6(6, 1) + bytes(20))), ETHER,
     v6(6, length=76)),
    ("ipv6-esp-ends-walk", eth(0x86DD, ipv6(50, struct.pack("!II", 1, 2) + bytes(16))), ETHER,
     v6(50, length=64)),
    ("ipv6-ext-then-esp", eth(0x86DD, ipv6(60, opts6(50) + bytes(24))), ETHER, v6(50, length=72)),
    ("ipv6-no-next-header", eth(0x86DD, ipv6(59, bytes(8))), ETHER, v6(59, length=48)),
    ("ipv6-in-ipv6-no-ports", eth(0x86DD, ipv6(41, TCP6)), ETHER, v6(41, length=105)),
    ("ipv6-tcp-cut-by-snaplen", eth(0x86DD, TCP6)[:14 + 40 + 10], ETHER, v6(6, length=65)),
    ("ipv6-ext-cut-after-length", eth(0x86DD, ipv6(0, opts6(6, 3) + tcp(1, 2)))[:14 + 40 + 8], ETHER,
     v6(6, length=92)),
    ("ipv6-ext-cut-before-length", eth(0x86DD, ipv6(0, opts6(6) + tcp(1, 2)))[:14 + 40 + 1], ETHER, TOO_SMALL),
    ("ipv6-second-ext-cut", eth(0x86DD, ipv6(0, opts6(60) + opts6(6) + tcp(1, 2)))[:14 + 40 + 9], ETHER,
     TOO_SMALL),
    ("ipv6-fragment-cut", eth(0x86DD, ipv6(44, frag6(6, 0) + tcp(1, 2)))[:14 + 40 + 3], ETHER, TOO_SMALL),
    ("ipv6-ext-beyond-payload", eth(0x86DD, ipv6(60, opts6(6, 2) + tcp(1, 2), plen=16)), ETHER, BAD),
    ("ipv6-payload-shorter-than-transport", eth(0x86DD, ipv6(17, udp(1, 2), plen=4)), ETHER, v6(17, length=44)),
    ("ipv6-fixed-header-cut", eth(0x86DD, TCP6)[:14 + 39], ETHER, TOO_SMALL),
    ("ipv6-version-4-in-86dd", eth(0x86DD, ipv6(6, tcp(1, 2), version=4)), ETHER, BAD),
    # not IP
    ("arp", eth(0x0806, bytes.fromhex("0001080006040001") + bytes(20)), ETHER, NOT_IP),
    ("lldp", eth(0x88CC, bytes(30)), ETHER, NOT_IP),
    ("ieee-802.3-length", eth(46, bytes(46)), ETHER, NOT_IP),
    ("pppoe-session", eth(0x8864, b"\x11\x00\x00\x01\x00\x2a\x00\x21" + TCP4), ETHER, NOT_IP),
    ("ether-too-short", eth(0x0800, TCP4)[:13], ETHER, TOO_SMALL),
    ("empty-frame", b"", ETHER, TOO_SMALL),
]


@pytest.mark.parametrize("frame, linktype, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_case(frame: bytes, linktype: int, expected: Result) -> None:
    assert run([frame], linktype) == [expected]


def test_all_cases_in_one_batch_keep_their_order() -> None:
    """Mixed link types, fast-path, slow-path and dropped rows interleaved, three times over."""
    frames = [c[1] for c in CASES] * 3
    linktypes = [c[2] for c in CASES] * 3
    assert run(frames, linktypes, gap=3) == [c[3] for c in CASES] * 3


FAST_SHAPES = ["ether-ipv4-tcp", "ether-ipv6-tcp", "sll-ipv4", "sll-vlan-ipv4", "sll2-qinq-ipv6", "raw101-ipv6",
               "raw228-ipv4", "null-le-inet", "null-be-inet", "null-inet6-28", "loop-inet6", "vlan-9100",
               "qinq-88a8-8100", "mpls-1-ipv4", "mpls-2-ipv6", "mpls-3-ipv4", "vlan-mpls-ipv4",
               "mpls-ipv4-options", "sll-mpls-ipv6", "ipv4-options-ihl15", "ipv4-non-first-fragment",
               "ipv4-tcp-cut-by-snaplen", "ipv6-tcp-cut-by-snaplen", "ipv6-icmpv6-echo", "ipv4-udplite",
               "arp", "lldp", "sll-arp", "null-other-family", "unknown-link-type"]


def test_common_shapes_never_take_the_per_frame_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """The vectorised path alone decodes these (performance: ../shared/guide/performance.md)."""
    table = {c[0]: c for c in CASES}
    frames = [table[name][1] for name in FAST_SHAPES] * 4
    linktypes = [table[name][2] for name in FAST_SHAPES] * 4
    expected = [table[name][3] for name in FAST_SHAPES] * 4
    fb = batch(frames, linktypes)

    def refuse(*args: object) -> Result:
        raise AssertionError(f"per-frame path taken for {args}")

    monkeypatch.setattr("flowd.core.decode.decode_frame", refuse)
    decoded = decode(fb)
    assert rows(decoded.packets) == [r for r in expected if isinstance(r, Packet)]
    assert decoded.drops == dict(Counter(r for r in expected if isinstance(r, DropReason)))


def test_ifindex_is_the_low_16_bits() -> None:
    got = run([eth(0x0800, TCP4), TCP6], [ETHER, 101], ifindex=70000)
    assert [FlowKey.unpack(p.key).ifindex for p in got if isinstance(p, Packet)] == [70000 & 0xFFFF] * 2


def test_ipv6_payload_length_zero_counts_the_wire_length() -> None:
    """A jumbogram (RFC 2675) carries payload length 0; bytes = wire length minus the link headers."""
    jumbo_option = b"\xc2\x04" + struct.pack("!I", 70000)
    frame = eth(0x86DD, ipv6(0, bytes((17, 0)) + jumbo_option + udp(1, 2), plen=0), (0x8100, 8))
    cut = frame[:96]
    got = run([cut, frame], ETHER, wirelens=[14 + 4 + 40 + 70000, len(frame)])
    assert got == [v6(17, 1, 2, length=40 + 70000, vlan=8), v6(17, 1, 2, length=len(frame) - 18, vlan=8)]


def test_memoryview_buffer_and_offsets_in_any_order() -> None:
    """A ring hands over a memoryview whose frames need not lie in row order."""
    names = ["ether-ipv4-tcp", "mpls-2-ipv6", "ipv6-chain", "arp", "qinq-9100-9100", "ipv4-options-cut"]
    table = {c[0]: c for c in CASES}
    frames = [table[name][1] for name in names]
    buf = b"".join(reversed(frames))
    ends = np.cumsum([len(f) for f in reversed(frames)])[::-1]
    fb = batch(frames)
    fb.buf = memoryview(buf)
    fb.offset = (ends - np.array([len(f) for f in frames])).astype(np.int64)
    _, singles = check(fb)
    assert singles == [table[name][3] for name in names]


def test_empty_batch() -> None:
    decoded, _ = check(batch([]))
    assert len(decoded.packets) == 0 and decoded.drops == {}


def test_frame_outside_the_buffer_is_refused() -> None:
    frames = batch([eth(0x0800, TCP4)])
    frames.caplen[0] += 1
    with pytest.raises(ValueError, match="outside the batch buffer"):
        decode(frames)


# --- truncation at every byte --------------------------------------------------------------------

def truncations(frame: bytes, linktype: int) -> list[Result]:
    """Decode every prefix of ``frame`` (caplen 0 .. len) in one batch; wire length stays the full length."""
    n = len(frame) + 1
    return run([frame] * n, linktype, caplens=range(n), wirelens=[len(frame)] * n)


def test_tcp_ipv4_ethernet_cut_at_every_byte() -> None:
    frame = eth(0x0800, ipv4(6, tcp(40000, 443, 0x18, b"payload"), options=b"\x01\x01\x01\x00"))
    got = truncations(frame, ETHER)
    ports = v4(6, 40000, 443, length=51, flags=0x18)
    no_ports = v4(6, length=51)
    assert got[:14] == [TOO_SMALL] * 14  # Ethernet header
    assert got[14:38] == [TOO_SMALL] * 24  # IPv4 header with its 4 option bytes
    assert got[38:58] == [no_ports] * 20  # the TCP header is cut by the snaplen: accounted, no ports
    assert got[58:] == [ports] * (len(frame) + 1 - 58)


def test_tcp_ipv6_vlan_cut_at_every_byte() -> None:
    frame = eth(0x86DD, TCP6, (0x8100, 42))
    got = truncations(frame, ETHER)
    assert got[:18] == [TOO_SMALL] * 18
    assert got[18:58] == [TOO_SMALL] * 40
    assert got[58:78] == [v6(6, length=65, vlan=42)] * 20
    assert got[78:] == [v6(6, 40000, 443, length=65, flags=0x18, vlan=42)] * (len(frame) + 1 - 78)


@pytest.mark.parametrize("name", ["mpls-3-ipv4", "mpls-4-ipv6-keeps-top-3", "ipv6-chain", "sll2-qinq-ipv6",
                                  "null-inet6-24", "loop-inet", "ipv4-options-ihl15", "three-tags", "raw101-ipv6",
                                  "ipv6-ah"])
def test_other_shapes_cut_at_every_byte(name: str) -> None:
    """Each prefix is accounted or dropped exactly once, and batch and per-frame agree (see ``check``)."""
    _, frame, linktype, whole = next(c for c in CASES if c[0] == name)
    got = truncations(frame, linktype)
    assert got[-1] == whole
    assert TOO_SMALL in got


# --- garbage and damage: the batch decoder agrees with the per-frame one -------------------------

LINKTYPES = (ETHER, SLL, SLL2, NULL, LOOP, 101, 12, 14, 228, 229, 9, 105)


def test_random_bytes() -> None:
    rng = np.random.default_rng(20261125)
    frames = [rng.bytes(int(size)) for size in rng.integers(0, 120, 3000)]
    linktypes = rng.choice(LINKTYPES, len(frames)).tolist()
    run(frames, linktypes)


def test_damaged_real_shapes() -> None:
    """Every table frame with random bytes overwritten and random cuts, under its own link type."""
    rng = np.random.default_rng(7)
    frames, linktypes = [], []
    for _, frame, linktype, _ in CASES * 40:
        raw = bytearray(frame)
        for _ in range(int(rng.integers(1, 4))):
            if raw:
                raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        cut = int(rng.integers(0, len(raw) + 1)) if rng.random() < 0.3 else len(raw)
        frames.append(bytes(raw[:cut]))
        linktypes.append(linktype)
    got = run(frames, linktypes)
    assert {type(r) for r in got} == {Packet, DropReason}


# --- performance ---------------------------------------------------------------------------------

def synthetic_batch(n: int, seed: int = 1) -> FrameBatch:
    """Mixed Ethernet IPv4/IPv6 TCP/UDP/ICMP frames (85/15 v4/v6, 70/25/5 TCP/UDP/ICMP), 10% VLAN-tagged."""
    rng = np.random.default_rng(seed)
    templates = []
    for i in range(512):
        payload = bytes(int(rng.integers(0, 64)))
        kind = rng.choice(3, p=[0.7, 0.25, 0.05])
        six = rng.random() < 0.15
        l4 = (tcp(1024 + i, 443, 0x18, payload), udp(1024 + i, 53, payload),
              icmp(128 if six else 8, 0, payload))[kind]
        proto = (6, 17, 58 if six else 1)[kind]
        ip = (ipv6(proto, l4, src=f"2001:db8::{i:x}") if six else ipv4(proto, l4, src=f"198.18.{i // 256}.{i % 256}"))
        tags = ((0x8100, i % 4094 + 1),) if rng.random() < 0.1 else ()
        templates.append(eth(0x86DD if six else 0x0800, ip, *tags))
    pick = rng.integers(0, len(templates), n)
    sizes = np.array([len(t) for t in templates], np.int64)[pick]
    offsets = np.zeros(n, np.int64)
    np.cumsum(sizes[:-1], out=offsets[1:])
    return FrameBatch(buf=b"".join(templates[i] for i in pick.tolist()), offset=offsets,
                      caplen=sizes.astype(np.uint32), wirelen=sizes.astype(np.uint32),
                      ts=np.arange(n, dtype=np.float64), linktype=np.ones(n, np.uint16),
                      ifindex=np.full(n, 2, np.uint32))


def test_synthetic_mix_agrees_with_per_frame() -> None:
    check(synthetic_batch(5000))


@pytest.mark.slow
def test_a_million_frames_at_once() -> None:
    """One large batch (its speed: benchmarks/component_rates.py)."""
    frames = synthetic_batch(1_000_000)
    assert len(decode(frames).packets) == len(frames)


# --- the dpkt reference decoder ------------------------------------------------------------------
# An independent per-frame decoder: dpkt parses every header; this code only applies flowd's rules
# (flowd.core.decode's module docstring) to dpkt's objects. It returns None where dpkt cannot parse the
# frame (dpkt raises, or leaves the IP header as bytes); those frames are skipped in the comparison.

TPIDS = {0x8100, 0x88A8, 0x9100}
MPLS_TYPES = {0x8847, 0x8848}
AF_INET6 = {24, 28, 30}
NEED = {6: 20, 17: 8, 132: 12, 136: 8, 1: 4, 58: 4}


class Unparsed(Exception):
    """dpkt could not parse a header flowd's rules need."""


def reference(frame: bytes, linktype: int, wirelen: int, ifindex: int) -> Result | None:
    """dpkt's reading of one frame under flowd's rules; None when dpkt cannot parse it."""
    try:
        return _reference(frame, linktype, wirelen, ifindex & 0xFFFF)
    except (Unparsed, dpkt.UnpackError, struct.error, IndexError):  # dpkt.NeedData is an UnpackError
        return None


def _reference(frame: bytes, linktype: int, wirelen: int, ifindex: int) -> Result:
    if linktype == ETHER:
        if len(frame) < 14:
            raise Unparsed
        return _ethertype(_u16(frame, 12), frame[14:], 14, wirelen, ifindex)
    if linktype in (SLL, SLL2):
        header = 16 if linktype == SLL else 20
        cooked = dpkt.sll.SLL(frame[:header]) if linktype == SLL else dpkt.sll2.SLL2(frame[:header])
        return _ethertype(cooked.ethtype, frame[header:], header, wirelen, ifindex)
    if linktype in (101, 12, 14):
        if not frame:
            raise Unparsed
        version = frame[0] >> 4
        if version not in (4, 6):
            return BAD
        return _ip((dpkt.ip.IP if version == 4 else dpkt.ip6.IP6)(frame), 0, wirelen, ifindex)
    if linktype in (228, 229):
        return _ip((dpkt.ip.IP if linktype == 228 else dpkt.ip6.IP6)(frame), 0, wirelen, ifindex)
    if linktype == NULL:
        loop = dpkt.loopback.Loopback(frame)  # host order; dpkt accepts both orders of the families
        if not isinstance(loop.data, (dpkt.ip.IP, dpkt.ip6.IP6)):
            return NOT_IP
        return _ip(loop.data, 4, wirelen, ifindex)
    if linktype == LOOP:
        family = struct.unpack("!I", frame[:4])[0]
        if family == 2:
            return _ip(dpkt.ip.IP(frame[4:]), 4, wirelen, ifindex)
        if family in AF_INET6:
            return _ip(dpkt.ip6.IP6(frame[4:]), 4, wirelen, ifindex)
        return NOT_IP
    return UNSUPPORTED


def _ethertype(ethertype: int, rest: bytes, pos: int, wirelen: int, ifindex: int) -> Result:
    """What follows a link header's ethertype field (``rest`` starts at frame offset ``pos``)."""
    # VLAN tags one by one with dpkt's 802.1Q tag class: dpkt's Ethernet decoder stops after two
    # tags (after one unless the next TPID is 0x8100), then decodes again from the third and reports
    # only the tags it found there (vlan-qinqinq.pcap: 30, 20, 10 come out as [10]); it also takes
    # the legacy 0x9200 as a TPID, which flowd does not
    vlans: list[int] = []
    while ethertype in TPIDS:
        tag = dpkt.ethernet.VLANtag8021Q(rest[4 * len(vlans):])
        vlans.append(tag.id)
        ethertype = tag.type
    rest, pos = rest[4 * len(vlans):], pos + 4 * len(vlans)
    if ethertype not in (0x0800, 0x86DD) and ethertype not in MPLS_TYPES:
        return NOT_IP
    # MPLS and IP with dpkt's Ethernet decoder, behind two made-up (unicast, non-ISL) MAC addresses
    eth = dpkt.ethernet.Ethernet(MACS + struct.pack("!H", ethertype) + rest)
    labels = getattr(eth, "mpls_labels", [])
    stack = [lbl.val << 4 | lbl.exp << 1 | lbl.s for lbl in labels[:3]] + [0, 0, 0]
    if not isinstance(eth.data, (dpkt.ip.IP, dpkt.ip6.IP6)):
        if labels and rest[4 * len(labels)] >> 4 not in (4, 6):
            return NOT_IP  # a pseudowire control word or anything else: not IP
        raise Unparsed  # an IP header dpkt refused; after MPLS it takes only 0x45 (IHL 5) as IPv4
    got = _ip(eth.data, pos + 4 * len(labels), wirelen, ifindex)
    if isinstance(got, DropReason):
        return got
    return Packet(key=got.key, length=got.length, tcp_flags=got.tcp_flags, ttl=got.ttl,
                  vlan=vlans[0] if vlans else 0, inner_vlan=vlans[1] if len(vlans) > 1 else 0,
                  mpls=(stack[0], stack[1], stack[2]))


def _u16(frame: bytes, at: int) -> int:
    return int(struct.unpack_from("!H", frame, at)[0])


def _ip(ip: dpkt.ip.IP | dpkt.ip6.IP6, pos: int, wirelen: int, ifindex: int) -> Result:
    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    if isinstance(ip, dpkt.ip.IP):
        if ip.v != 4 or ip.len < ip.hl * 4:
            return BAD
        if len(ip.opts) < ip.hl * 4 - 20:
            return TOO_SMALL  # dpkt keeps whatever part of the options was captured
        src, dst = ipaddress.IPv4Address(ip.src), ipaddress.IPv4Address(ip.dst)
        proto, tos, ttl, length, first = ip.p, ip.tos, ip.ttl, ip.len, ip.offset == 0
    else:
        if ip.v != 6:
            return BAD
        proto, first, walked = ip.nxt, True, 0
        for ext in ip.all_extension_headers:
            if proto == 50 or not first:  # ESP, or the middle of a fragmented payload
                break
            walked += ext.length
            if isinstance(ext, dpkt.ip6.IP6FragmentHeader):
                first = ext.frag_off == 0
            proto = ext.nxt
        if ip.plen and walked > ip.plen:
            return BAD
        src, dst = ipaddress.IPv6Address(ip.src), ipaddress.IPv6Address(ip.dst)
        tos, ttl = ip.fc, ip.hlim
        length = ip.plen + 40 if ip.plen else max(40, wirelen - pos)
    sport, dport, flags = _ports(proto, ip.data) if first else (0, 0, 0)
    return Packet(key=FlowKey(src, dst, sport, dport, proto, tos, ifindex).pack(), length=length, tcp_flags=flags,
                  ttl=ttl, vlan=0, inner_vlan=0, mpls=(0, 0, 0))


def _ports(proto: int, data: object) -> tuple[int, int, int]:
    if isinstance(data, dpkt.tcp.TCP) and proto == 6:
        return data.sport, data.dport, data.flags & 0xFF  # dpkt's flags hold 9 bits (NS too)
    if isinstance(data, (dpkt.udp.UDP, dpkt.sctp.SCTP)) and proto in (17, 132):
        return data.sport, data.dport, 0
    if isinstance(data, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)) and proto in (1, 58):
        return 0, data.type << 8 | data.code, 0
    if not isinstance(data, bytes) or len(data) < NEED.get(proto, 1 << 30):
        return 0, 0, 0
    # dpkt left a complete fixed transport header as bytes: it has no UDP-Lite decoder, and refuses
    # TCP with a bad data offset, SCTP with damaged chunks, ICMP with a short or odd body
    if proto in (1, 58):
        return 0, data[0] << 8 | data[1], 0
    sport, dport = struct.unpack("!HH", data[:4])
    return sport, dport, data[13] if proto == 6 else 0


# Table cases dpkt cannot parse, so the reference skips them: headers cut by the snaplen (dpkt raises
# NeedData), IHL < 5 and raw IPv4/IPv6 links carrying the other version (dpkt raises on the IHL it
# reads), IPv4 with options after MPLS (dpkt takes only 0x45 as IPv4 there), and a non-first IPv6
# fragment whose next header is an extension header (dpkt parses the fragment's middle as one).
DPKT_CANNOT = {
    "raw228-carrying-ipv6", "raw229-carrying-ipv4", "raw101-empty", "null-short", "vlan-cut", "mpls-ipv4-options",
    "mpls-no-bottom", "mpls-nothing-after-bottom", "ipv4-fixed-header-cut", "ipv4-ihl-4",
    "ipv6-non-first-fragment-ext-next", "ipv6-ext-cut-after-length", "ipv6-ext-cut-before-length",
    "ipv6-second-ext-cut", "ipv6-fragment-cut", "ipv6-ext-beyond-payload", "ipv6-fixed-header-cut",
    "ether-too-short", "empty-frame",
}


@pytest.mark.parametrize("name, frame, linktype, expected", CASES, ids=[c[0] for c in CASES])
def test_dpkt_reference_agrees_with_the_table(name: str, frame: bytes, linktype: int, expected: Result) -> None:
    """The reference is itself checked: it gives the table's answer wherever dpkt parses the frame."""
    want = reference(frame, linktype, len(frame), 0)
    assert want == (None if name in DPKT_CANNOT else expected)


# --- the corpus ----------------------------------------------------------------------------------

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"


def read_capture(path: Path) -> tuple[list[bytes], int]:
    """(frames, link type) of a pcap/pcapng file, read with dpkt; frames up to the first damage."""
    frames: list[bytes] = []
    linktype = -1
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        stream: IO[bytes] = f  # type: ignore[assignment]
        magic = stream.read(4)
        stream.seek(0)
        try:
            reader = dpkt.pcapng.Reader(stream) if magic == PCAPNG_MAGIC else dpkt.pcap.Reader(stream)
            linktype = reader.datalink() & 0xFFFF  # pcap: FCS bits live above the 16-bit link type
            for _, frame in reader:
                frames.append(frame)
        except (ValueError, dpkt.UnpackError, struct.error, EOFError, OSError, gzip.BadGzipFile):
            pass  # malformed file: keep what was read before the damage
    return frames, linktype


def capture_batch(frames: list[bytes], linktype: int) -> FrameBatch:
    # dpkt's readers do not expose the wire length; caplen stands in for it on both sides of the
    # comparison (only the IPv6 payload-length-0 rule reads it)
    return batch(frames, linktype, ifindex=0x10005)


def corpus(kind: str) -> list[Path]:
    root = PCAPS / kind
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


REAL = corpus("real")
MALFORMED = corpus("malformed")


def _id(path: Path) -> str:
    return str(path.relative_to(PCAPS))


@needs_corpus
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("path", REAL, ids=[_id(p) for p in REAL])
def test_real_corpus_agrees_with_dpkt(path: Path) -> None:
    """Batch == per-frame (``check``), and per-frame == the dpkt reference wherever dpkt can parse."""
    frames, linktype = read_capture(path)
    assert frames, "dpkt read no frame"
    fb = capture_batch(frames, linktype)
    _, singles = check(fb)
    compared = 0
    for i, (frame, got) in enumerate(zip(frames, singles, strict=True)):
        want = reference(frame, linktype, len(frame), int(fb.ifindex[i]))
        if want is None:
            continue
        compared += 1
        assert got == want, f"frame {i + 1}: flowd {got} != dpkt {want}"
    accounted = sum(isinstance(r, Packet) for r in singles)
    assert compared or not accounted, "dpkt parsed none of this file's IP packets"


@needs_corpus
@pytest.mark.integration
@pytest.mark.parametrize("path", MALFORMED, ids=[_id(p) for p in MALFORMED])
def test_malformed_corpus_is_conserved(path: Path) -> None:
    """Never raises; accounted + drops == frames; batch == per-frame."""
    frames, linktype = read_capture(path)
    check(capture_batch(frames, linktype))


@needs_corpus
def test_corpus_is_listed() -> None:
    assert len(REAL) > 200 and len(MALFORMED) > 200
