"""Raw link-layer frames → accountable IP packets (flow-key rows plus per-packet columns), a batch at a time.

Wire references: IEEE 802.3 / 802.1Q / 802.1ad (Ethernet, VLAN tags), tcpdump.org LINKTYPE_LINUX_SLL and
LINKTYPE_LINUX_SLL2, LINKTYPE_NULL / LINKTYPE_LOOP, RFC 3032 (MPLS label stack), RFC 4385 (pseudowire
control word), RFC 2516 (PPPoE), RFC 791 (IPv4), RFC 8200 §4 (IPv6 extension headers), RFC 4302 (AH),
RFC 2675 (jumbograms), RFC 1812 §5.2.2 and RFC 1858 (truncated packets, tiny fragments).

The rules
---------
``decode_frame`` is the executable statement of these rules for one frame; ``decode`` applies the same
rules to a whole batch and must give the same answer for every frame (tests/flowd/test_decode.py checks
both against each other and against a dpkt-based reference).

Link layer (``FrameBatch.linktype``):
- 1 Ethernet (ethertype at byte 12), 113 Linux cooked SLL (protocol at byte 14, 16-byte header),
  276 SLL2 (protocol at byte 0, 20-byte header). After that header: any number of VLAN tags with TPID
  0x8100, 0x88a8 or 0x9100 (the outer id goes to ``vlan``, the next one to ``inner_vlan``, deeper ones are
  skipped), then an optional MPLS label stack (0x8847/0x8848; the top three entries are kept as
  ``label<<4 | exp<<1 | s``), then IPv4 (0x0800) or IPv6 (0x86DD). After the bottom of an MPLS stack the
  first nibble guesses the payload: 4 IPv4, 6 IPv6, anything else (0 is a pseudowire control word, i.e.
  Ethernet over MPLS) is not IP. Instead of MPLS or IP, a PPPoE session header (0x8864, 6 bytes, then
  the 2-byte PPP protocol: 0x0021 IPv4, 0x0057 IPv6, anything else NOT_IP; all 8 bytes must be captured,
  else HEADER_TOO_SMALL) may follow the tags. Every other ethertype (ARP, LLDP, PPPoE discovery, 802.3
  length fields...) is NOT_IP.
- 101, 12, 14 raw IP (the version nibble decides; neither 4 nor 6 is BAD_IP_HEADER), 228 raw IPv4,
  229 raw IPv6.
- 0 BSD null (4-byte address family in the capturing host's byte order: both orders are accepted) and
  108 OpenBSD loop (network order). AF_INET 2 is IPv4; AF_INET6 24, 28, 30 (NetBSD/OpenBSD, FreeBSD,
  Darwin) is IPv6; any other family is NOT_IP.
- Any other link type is UNSUPPORTED_LINK_TYPE.

IP layer:
- IPv4: the fixed 20 bytes must be captured (else HEADER_TOO_SMALL); then version 4, IHL >= 5 and total
  length >= IHL*4 (else BAD_IP_HEADER; a total length of 0, as some TSO captures show, is bad too); then
  the whole IHL*4 header, options included, must be captured (else HEADER_TOO_SMALL).
- IPv6: the fixed 40 bytes must be captured (else HEADER_TOO_SMALL) and the version must be 6 (else
  BAD_IP_HEADER). Extension headers hop-by-hop (0), routing (43), destination options (60) (length
  (n+1)*8), fragment (44, 8 bytes) and AH (51, length (n+2)*4) are walked to the upper-layer protocol,
  which becomes the key's protocol; ESP (50), No Next Header (59) and every other value end the walk
  as that protocol, and so does a fragment header with offset > 0 (its next header is the protocol;
  the bytes after it are the middle of the fragmented part). The bytes of an extension header that
  the walk reads (next header and length; the fragment offset) must be captured (else
  HEADER_TOO_SMALL), and a header must not run past the payload length (else BAD_IP_HEADER).
- Truncated packets (after the checks above): when the IP total length (IPv6: payload length + 40, when
  not 0) reaches past what the link carried on the wire (the wire length, or the caplen if larger,
  minus the link headers: VLAN tags, MPLS stack and PPPoE included), the frame is TRUNCATED, as Linux
  (ip_rcv: InTruncatedPkts) and a router (RFC 1812 §5.2.2) drop it. A snaplen is not damage: a frame
  whose caplen is below its wire length is judged by its wire length. IPv6 is checked before the
  extension walk (ipv6_rcv does the same).
- ToS is the IPv4 ToS byte or the IPv6 traffic class; ``ttl`` is the TTL or hop limit.

Ports (flowd.model.flowkey):
- TCP (6), UDP (17), SCTP (132), UDP-Lite (136): source and destination port. ICMP (1) and ICMPv6 (58),
  in either IP version: source 0, destination type*256 + code. TCP flags: byte 13 of the TCP header.
- Non-first fragments (IPv4 offset > 0, an IPv6 fragment header with offset > 0) have ports 0 and flags 0.
- The transport's fixed header (TCP 20, UDP 8, UDP-Lite 8, SCTP 12, ICMP/ICMPv6 4 bytes: type, code,
  checksum) of a packet that is not a non-first fragment must lie inside the IP packet (its total
  length, or the IPv6 payload length): a packet that ends inside it is TRUNCATED (Linux drops it in
  tcp_v4_rcv/udp_rcv; a first fragment that cuts the TCP header is a tiny fragment, RFC 1858 §3.2),
  never exported with ports 0 as if it were whole. The transport fields are then read when the
  header is also captured; when the snaplen cuts it the packet is still accounted, with ports 0 and
  flags 0: a probe with a small snaplen must still count every packet and byte; only a cut IP header
  is HEADER_TOO_SMALL.

Counted bytes (``length``): the IPv4 total length; the IPv6 payload length + 40. An IPv6 payload length
of 0 (a jumbogram, RFC 2675, or an offloaded super-packet) is counted as the frame's wire length minus
the link-layer headers (VLAN tags and MPLS stack included), and never less than 40.

Interface: key bytes 38-39 hold ``FrameBatch.ifindex & 0xffff`` (the v5 record has 16-bit SNMP indexes,
so larger values wrap; they are not clamped).

Every frame is either accounted (one row of ``Decoded.packets``, in input order) or counted under
exactly one ``DropReason``.

How it is fast (../shared/guide/performance.md)
----------------------------------------------
``decode_numpy`` handles the common shapes for the whole batch with numpy: Ethernet, SLL and SLL2 with up
to two VLAN tags and then up to three MPLS labels or a PPPoE session header, raw IP, BSD null/loop; IPv4
of any IHL; IPv6 without extension headers. Each stage gathers a fixed-width window of bytes per frame
(a fancy index into a ``sliding_window_view`` of the buffer: one small memcpy per row) and computes every
field column-wise. Bytes a window holds beyond a frame's caplen belong to the next frame; no result
depends on them, because a row whose needed bytes exceed its caplen is never accepted by the vectorised
path. Rows it does not accept (deeper VLAN or MPLS stacks, IPv6 extension headers or payload length 0,
short, truncated or damaged frames) go through ``decode_frame`` one by one, which also decides their
drop reasons; the vectorised path itself only counts NOT_IP (a captured, non-IP ethertype or address
family) and UNSUPPORTED_LINK_TYPE. About 6M frames/s on a mixed Ethernet batch (1 core, quiet machine).

When the optional extension ``flowd.native._fastpath`` is built (flowd/native/_fastpath.c, setup.py),
``decode`` hands the whole batch to its ``extract``, a C transcription of ``decode_frame`` that writes one
key row, the columns and a status byte per frame. It decides every shape above itself (any VLAN depth,
any MPLS depth, PPPoE, IPv6 extension chains, fragments, truncated and damaged frames): no frame of a
well-formed batch reaches Python one by one. Only a row it leaves undecided (status _SLOW: a frame
outside the buffer, which ``decode`` refuses before) would go through ``decode_frame``. ``decode_numpy``
is the path without it, and FLOWD_NO_FASTPATH=1 makes ``decode`` use it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from flowd.model.batch import I64, U8, U16, U32, FrameBatch, PacketBatch
from flowd.model.drops import DropReason
from flowd.model.flowkey import KEY_BYTES, V4_MAPPED_PREFIX
from flowd.native import compiled


@dataclass(slots=True)
class Decoded:
    """The result of decoding one FrameBatch."""

    packets: PacketBatch  # accountable IP packets only, in input order
    drops: dict[DropReason, int]  # frames not accounted, by reason; reasons with no frame are absent


@dataclass(frozen=True, slots=True)
class Packet:
    """One accounted frame as the per-frame decoder sees it (the columns of one PacketBatch row)."""

    key: bytes  # KEY_BYTES, flowd.model.flowkey layout
    length: int
    tcp_flags: int
    ttl: int
    vlan: int
    inner_vlan: int
    mpls: tuple[int, int, int]


# --- wire constants ------------------------------------------------------------------------------

class EtherType(IntEnum):
    IPV4 = 0x0800
    IPV6 = 0x86DD
    VLAN = 0x8100  # IEEE 802.1Q C-tag
    QINQ = 0x88A8  # IEEE 802.1ad S-tag
    QINQ_LEGACY = 0x9100  # pre-standard QinQ
    MPLS = 0x8847
    MPLS_MULTICAST = 0x8848
    PPPOE_SESSION = 0x8864  # RFC 2516 session stage


class Proto(IntEnum):
    HOP_BY_HOP = 0
    ICMP = 1
    TCP = 6
    UDP = 17
    ROUTING = 43
    FRAGMENT = 44
    ESP = 50
    AH = 51
    ICMPV6 = 58
    NO_NEXT_HEADER = 59
    DEST_OPTIONS = 60
    SCTP = 132
    UDPLITE = 136


VLAN_TPIDS: Final = frozenset({EtherType.VLAN, EtherType.QINQ, EtherType.QINQ_LEGACY})
MPLS_TYPES: Final = frozenset({EtherType.MPLS, EtherType.MPLS_MULTICAST})

# LINKTYPE -> (offset of the ethertype, length of the link header); VLAN tags follow the header.
ETHERTYPE_LINKS: Final = {1: (12, 14), 113: (14, 16), 276: (0, 20)}
# LINKTYPE -> IP version the link carries; 0: the version nibble decides.
RAW_IP_LINKS: Final = {101: 0, 12: 0, 14: 0, 228: 4, 229: 6}
NULL_HEADER: Final = 4  # LINKTYPE_NULL (0) and LINKTYPE_LOOP (108): a 32-bit address family
LINKTYPE_NULL: Final = 0
LINKTYPE_LOOP: Final = 108
ADDRESS_FAMILIES: Final = {2: 4, 24: 6, 28: 6, 30: 6}  # AF_INET, AF_INET6 on Net/OpenBSD, FreeBSD, Darwin

PPPOE_HEADER: Final = 8  # RFC 2516: version/type, code, session id, length; then the 2-byte PPP protocol
PPP_PROTOCOL_AT: Final = 6
PPP_PROTOCOLS: Final = {0x0021: 4, 0x0057: 6}  # PPP protocol field -> IP version (RFC 1332, RFC 5072)
MPLS_BOTTOM: Final = 0x100  # S bit of a label stack entry
MPLS_KEPT: Final = 3  # label stack entries kept per packet (PacketBatch.mpls columns)

# Upper-layer protocols whose ports (or ICMP type/code) are keyed -> their fixed header length.
TRANSPORT_HEADER: Final = {
    Proto.TCP: 20, Proto.UDP: 8, Proto.SCTP: 12, Proto.UDPLITE: 8, Proto.ICMP: 4, Proto.ICMPV6: 4,
}
ICMP_PROTOS: Final = frozenset({Proto.ICMP, Proto.ICMPV6})
TCP_FLAGS_AT: Final = 13
# IPv6 extension headers walked to the upper layer (ESP and No Next Header end the walk instead).
IPV6_EXTENSIONS: Final = frozenset({Proto.HOP_BY_HOP, Proto.ROUTING, Proto.FRAGMENT, Proto.DEST_OPTIONS,
                                    Proto.AH})

IPV4_MIN_HEADER: Final = 20
IPV6_HEADER: Final = 40
FRAGMENT_HEADER: Final = 8
IPV4_OFFSET_MASK: Final = 0x1FFF
VLAN_ID_MASK: Final = 0x0FFF
IFINDEX_MASK: Final = 0xFFFF

U16_BE: Final = struct.Struct("!H")
U32_BE: Final = struct.Struct("!I")
U32_LE: Final = struct.Struct("<I")
PORTS: Final = struct.Struct("!HH")
# version/IHL, ToS, total length, (id), flags/fragment offset, TTL, protocol, (checksum), source, destination
IPV4: Final = struct.Struct("!BBH2xHBB2x4s4s")
# version/traffic class/flow label, payload length, next header, hop limit, source, destination
IPV6: Final = struct.Struct("!IHBB16s16s")

# numpy lookup tables indexed by protocol number.
_NEED: Final = np.zeros(256, np.int64)
for _proto, _size in TRANSPORT_HEADER.items():
    _NEED[_proto] = _size
_IS_ICMP: Final = np.zeros(256, np.bool_)
_IS_ICMP[list(ICMP_PROTOS)] = True
_IS_EXTENSION: Final = np.zeros(256, np.bool_)
_IS_EXTENSION[list(IPV6_EXTENSIONS)] = True

# Per-row decode status: 0 accounted, a drop code (_CODE), _IP link layer decoded and the IP header
# next, _SLOW left to decode_frame. The drop codes and _SLOW are shared with the compiled extract
# (flowd/native/_fastpath.c, enum status), which is used only while its copy agrees with this one.
_OK: Final = 0
_SLOW: Final = 255
_IP: Final = 254
_CODE: Final = {DropReason.NOT_IP: 1, DropReason.HEADER_TOO_SMALL: 2, DropReason.BAD_IP_HEADER: 3,
                DropReason.UNSUPPORTED_LINK_TYPE: 4, DropReason.TRUNCATED: 5}


# --- the per-frame decoder (slow path, and the rules' statement) ---------------------------------

def decode_frame(frame: bytes, linktype: int, wirelen: int | None = None, ifindex: int = 0) -> Packet | DropReason:
    """Decode one captured frame; the DropReason says why it is not accounted.

    Args:
        frame: the captured bytes (its length is the caplen).
        linktype: LINKTYPE_* number of the capture.
        wirelen: length of the frame on the wire (defaults to the caplen): the IP length must fit in it
            (else TRUNCATED), and it gives the length of an IPv6 packet with payload length 0.
        ifindex: input interface index.
    """
    link = _link(frame, linktype)
    if isinstance(link, DropReason):
        return link
    pos, version, vlans, labels = link
    ip = _ip(frame, pos, version, len(frame) if wirelen is None else wirelen)
    if isinstance(ip, DropReason):
        return ip
    addresses, ports, proto, tos, length, flags, ttl = ip
    key = addresses + ports + bytes((proto, tos)) + U16_BE.pack(ifindex & IFINDEX_MASK)
    mpls = (labels + [0, 0, 0])[:MPLS_KEPT]
    return Packet(key=key, length=length, tcp_flags=flags, ttl=ttl,
                  vlan=vlans[0] if vlans else 0, inner_vlan=vlans[1] if len(vlans) > 1 else 0,
                  mpls=(mpls[0], mpls[1], mpls[2]))


_LinkResult = tuple[int, int, list[int], list[int]]  # IP header offset, IP version (0: nibble), VLANs, MPLS


def _link(frame: bytes, linktype: int) -> _LinkResult | DropReason:
    caplen = len(frame)
    if linktype in ETHERTYPE_LINKS:
        type_at, pos = ETHERTYPE_LINKS[linktype]
        if caplen < pos:
            return DropReason.HEADER_TOO_SMALL
        ethertype = U16_BE.unpack_from(frame, type_at)[0]
        vlans: list[int] = []
        while ethertype in VLAN_TPIDS:
            if caplen < pos + 4:
                return DropReason.HEADER_TOO_SMALL
            tci, ethertype = PORTS.unpack_from(frame, pos)
            vlans.append(tci & VLAN_ID_MASK)
            pos += 4
        if ethertype == EtherType.IPV4:
            return pos, 4, vlans, []
        if ethertype == EtherType.IPV6:
            return pos, 6, vlans, []
        if ethertype == EtherType.PPPOE_SESSION:
            if caplen < pos + PPPOE_HEADER:
                return DropReason.HEADER_TOO_SMALL
            version = PPP_PROTOCOLS.get(U16_BE.unpack_from(frame, pos + PPP_PROTOCOL_AT)[0])
            if version is None:  # LCP, IPCP, MPLS over PPP... (and the compressed 1-byte protocol field)
                return DropReason.NOT_IP
            return pos + PPPOE_HEADER, version, vlans, []
        if ethertype not in MPLS_TYPES:
            return DropReason.NOT_IP
        labels: list[int] = []
        while True:
            if caplen < pos + 4:
                return DropReason.HEADER_TOO_SMALL
            entry = U32_BE.unpack_from(frame, pos)[0]
            pos += 4
            if len(labels) < MPLS_KEPT:
                labels.append(entry >> 8)  # label<<4 | exp<<1 | s; the TTL byte is dropped
            if entry & MPLS_BOTTOM:
                break
        if caplen <= pos:
            return DropReason.HEADER_TOO_SMALL
        nibble = frame[pos] >> 4
        if nibble not in (4, 6):  # 0: pseudowire control word (Ethernet over MPLS); else unknown
            return DropReason.NOT_IP
        return pos, nibble, vlans, labels
    if linktype in RAW_IP_LINKS:
        return 0, RAW_IP_LINKS[linktype], [], []
    if linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        if caplen < NULL_HEADER:
            return DropReason.HEADER_TOO_SMALL
        family = U32_BE.unpack_from(frame)[0]
        version = ADDRESS_FAMILIES.get(family)
        if version is None and linktype == LINKTYPE_NULL:
            version = ADDRESS_FAMILIES.get(U32_LE.unpack_from(frame)[0])
        if version is None:
            return DropReason.NOT_IP
        return NULL_HEADER, version, [], []
    return DropReason.UNSUPPORTED_LINK_TYPE


# addresses (32 bytes), ports (4 bytes), protocol, ToS, length, TCP flags, TTL
_IpResult = tuple[bytes, bytes, int, int, int, int, int]


def _ip(frame: bytes, pos: int, version: int, wirelen: int) -> _IpResult | DropReason:
    caplen = len(frame)
    if version == 0:  # raw IP link: the version nibble decides
        if caplen <= pos:
            return DropReason.HEADER_TOO_SMALL
        version = frame[pos] >> 4
        if version not in (4, 6):
            return DropReason.BAD_IP_HEADER
    first = True
    if version == 4:
        if caplen - pos < IPV4_MIN_HEADER:
            return DropReason.HEADER_TOO_SMALL
        v_ihl, tos, total, frag, ttl, proto, src, dst = IPV4.unpack_from(frame, pos)
        header = (v_ihl & 0x0F) * 4
        if v_ihl >> 4 != 4 or header < IPV4_MIN_HEADER or total < header:
            return DropReason.BAD_IP_HEADER
        if caplen - pos < header:
            return DropReason.HEADER_TOO_SMALL
        if pos + total > max(wirelen, caplen):
            return DropReason.TRUNCATED
        first = frag & IPV4_OFFSET_MASK == 0
        addresses = V4_MAPPED_PREFIX + src + V4_MAPPED_PREFIX + dst
        upper = pos + header
        packet_end = pos + total
        length = total
    else:
        if caplen - pos < IPV6_HEADER:
            return DropReason.HEADER_TOO_SMALL
        vtf, plen, proto, ttl, src, dst = IPV6.unpack_from(frame, pos)
        if vtf >> 28 != 6:
            return DropReason.BAD_IP_HEADER
        tos = (vtf >> 20) & 0xFF
        addresses = src + dst
        upper = pos + IPV6_HEADER
        if plen:
            packet_end = upper + plen
            length = plen + IPV6_HEADER
            if packet_end > max(wirelen, caplen):
                return DropReason.TRUNCATED
        else:  # jumbogram or offloaded super-packet: the wire says how long it is
            packet_end = max(wirelen, caplen)
            length = max(IPV6_HEADER, wirelen - pos)
        while proto in IPV6_EXTENSIONS and first:  # after a later fragment's header: its middle, not headers
            if proto == Proto.FRAGMENT:
                if caplen < upper + 4:
                    return DropReason.HEADER_TOO_SMALL
                nxt = frame[upper]
                first = U16_BE.unpack_from(frame, upper + 2)[0] >> 3 == 0
                size = FRAGMENT_HEADER
            else:
                if caplen < upper + 2:
                    return DropReason.HEADER_TOO_SMALL
                nxt, n = frame[upper], frame[upper + 1]
                size = (n + 2) * 4 if proto == Proto.AH else (n + 1) * 8
            if upper + size > packet_end:
                return DropReason.BAD_IP_HEADER
            proto, upper = nxt, upper + size
    ports, flags = bytes(4), 0
    need = TRANSPORT_HEADER.get(proto, 0)
    if first and need and packet_end - upper < need:  # the packet itself ends inside its transport header
        return DropReason.TRUNCATED
    if first and need and min(caplen, packet_end) - upper >= need:
        if proto in ICMP_PROTOS:
            ports = bytes((0, 0, frame[upper], frame[upper + 1]))
        else:
            ports = frame[upper:upper + 4]
            if proto == Proto.TCP:
                flags = frame[upper + TCP_FLAGS_AT]
    return addresses, ports, proto, tos, length, flags, ttl


# --- the batch decoder ---------------------------------------------------------------------------

def decode(frames: FrameBatch) -> Decoded:
    """Decode a batch of frames: accountable packets in input order, the rest counted by drop reason.

    Runs the compiled extract when flowd.native._fastpath is built (and FLOWD_NO_FASTPATH is not 1), else
    ``decode_numpy``; both give the same result.
    """
    extract = _EXTRACT
    return decode_numpy(frames) if extract is None else _decode_compiled(frames, extract)


def _compiled_extract() -> Callable[..., None] | None:
    """flowd.native._fastpath.extract, unless it is not built, FLOWD_NO_FASTPATH=1, or its codes differ."""
    extract: Callable[..., None] | None = compiled(
        "extract", SLOW=_SLOW, DROP_CODES={r.value: code for r, code in _CODE.items()})
    return extract


_EXTRACT = _compiled_extract()


def _frame_arrays(frames: FrameBatch) -> tuple[U8, I64, I64]:
    """The batch buffer as uint8, the offsets and caplens as int64; refuses frames outside the buffer."""
    buf = np.frombuffer(frames.buf, np.uint8)
    off = np.ascontiguousarray(frames.offset, np.int64)
    cap = frames.caplen.astype(np.int64)
    if len(frames) and (int(off.min()) < 0 or int((off + cap).max()) > buf.shape[0]):
        raise ValueError("frame batch: a frame lies outside the batch buffer")
    return buf, off, cap


def _drops(status: U8) -> dict[DropReason, int]:
    counts = np.bincount(status, minlength=_SLOW + 1)
    return {reason: int(counts[code]) for reason, code in _CODE.items() if counts[code]}


def _decode_compiled(frames: FrameBatch, extract: Callable[..., None]) -> Decoded:
    """``decode`` with flowd.native._fastpath.extract doing every frame; rows it leaves go to ``_slow``."""
    n = len(frames)
    buf, off, cap = _frame_arrays(frames)
    full = PacketBatch(
        key=np.empty((n, KEY_BYTES), np.uint8), length=np.empty(n, np.uint32), ts=frames.ts,
        tcp_flags=np.empty(n, np.uint8), ttl=np.empty(n, np.uint8), vlan=np.empty(n, np.uint16),
        inner_vlan=np.empty(n, np.uint16), mpls=np.empty((n, MPLS_KEPT), np.uint32))
    status = np.empty(n, np.uint8)
    extract(buf, off, np.ascontiguousarray(frames.caplen, np.uint32),
            np.ascontiguousarray(frames.linktype, np.uint16), np.ascontiguousarray(frames.ifindex, np.uint32),
            np.ascontiguousarray(frames.wirelen, np.uint32), full.key, full.length, full.tcp_flags, full.ttl,
            full.vlan, full.inner_vlan, full.mpls, status)
    slow_rows = np.flatnonzero(status == _SLOW)
    if slow_rows.size:
        part = _slow(frames, buf, off, cap, slow_rows, status)
        at = part.rows
        full.key[at], full.length[at], full.tcp_flags[at], full.ttl[at] = (
            part.key, part.length, part.tcp_flags, part.ttl)
        if part.vlan is not None and part.inner_vlan is not None and part.mpls is not None:  # always, from _slow
            full.vlan[at], full.inner_vlan[at], full.mpls[at] = part.vlan, part.inner_vlan, part.mpls
    accounted = status == _OK
    if bool(accounted.all()):
        full.ts = frames.ts.copy()
        return Decoded(packets=full, drops={})
    # np.compress: twice as fast as a boolean index (PacketBatch.take) on the (n, 40) key
    packets = PacketBatch(*(np.compress(accounted, getattr(full, name), axis=0) for name in PacketBatch.__slots__))
    return Decoded(packets=packets, drops=_drops(status))


def decode_numpy(frames: FrameBatch) -> Decoded:
    """``decode`` without the compiled extract: numpy for the common shapes, ``decode_frame`` for the rest."""
    n = len(frames)
    buf, off, cap = _frame_arrays(frames)
    links = _Links.new(n)
    for linktype, rows in _link_groups(frames.linktype):
        if linktype in ETHERTYPE_LINKS:
            type_at, header = ETHERTYPE_LINKS[linktype]
            _ethertype_link(buf, off[rows], cap[rows], type_at, header, links, rows)
        elif linktype in RAW_IP_LINKS:
            links.status[rows] = _IP
            links.version[rows] = RAW_IP_LINKS[linktype]
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            _null_link(buf, off[rows], cap[rows], linktype == LINKTYPE_NULL, links, rows)
        else:
            links.status[rows] = _CODE[DropReason.UNSUPPORTED_LINK_TYPE]

    status = links.status
    parts: list[_Part] = []
    ip_rows = np.flatnonzero(status == _IP)
    status[ip_rows] = _SLOW  # until a fast decoder below accepts the row
    if ip_rows.size:
        start = off[ip_rows] + links.l3[ip_rows]
        room = cap[ip_rows] - links.l3[ip_rows]  # captured bytes from the IP header on
        nibble = np.zeros(ip_rows.shape[0], np.uint8)
        if buf.shape[0]:  # a row with room >= 1 starts inside the buffer (checked above)
            nibble = buf[np.minimum(start, buf.shape[0] - 1)] >> 4
            nibble[room < 1] = 0
        announced = links.version[ip_rows]
        # bytes the link carried on the wire from the IP header on (the caplen when larger)
        wire = np.maximum(frames.wirelen[ip_rows].astype(np.int64), cap[ip_rows]) - links.l3[ip_rows]
        for ver, fast in ((4, _ipv4), (6, _ipv6)):
            sel = np.flatnonzero((nibble == ver) & ((announced == ver) | (announced == 0)))
            if sel.size:
                rows = ip_rows[sel]
                part = fast(buf, start[sel], room[sel], wire[sel], rows, frames.ifindex[rows])
                if part.rows.size:
                    status[part.rows] = _OK
                    parts.append(part)

    slow_rows = np.flatnonzero(status == _SLOW)
    if slow_rows.size:
        part = _slow(frames, buf, off, cap, slow_rows, status)
        if part.rows.size:
            parts.append(part)

    return Decoded(packets=_assemble(parts, links, frames), drops=_drops(status))


@dataclass(slots=True)
class _Links:
    """Link-stage columns for every row of the batch."""

    status: U8  # _IP: link layer decoded; a drop code; _SLOW: left to decode_frame
    l3: I64  # offset of the IP header in the frame (rows with status _IP)
    version: U8  # IP version the link announces; 0: the version nibble decides
    vlan: U16
    inner: U16
    mpls: U32 | None  # (n, MPLS_KEPT), allocated when a batch has MPLS

    @staticmethod
    def new(n: int) -> _Links:
        return _Links(status=np.full(n, _SLOW, np.uint8), l3=np.zeros(n, np.int64),
                      version=np.zeros(n, np.uint8), vlan=np.zeros(n, np.uint16),
                      inner=np.zeros(n, np.uint16), mpls=None)


def _link_groups(linktype: U16) -> list[tuple[int, slice | npt.NDArray[np.intp]]]:
    """(link type, rows) pairs; one whole-batch slice in the usual single-link-type case."""
    if linktype.shape[0] == 0:
        return []
    first = int(linktype[0])
    if bool(np.all(linktype == first)):
        return [(first, slice(None))]
    return [(int(t), np.flatnonzero(linktype == t)) for t in np.unique(linktype)]


def _gather(buf: U8, start: I64, width: int) -> U8:
    """A (rows, width) array: ``width`` bytes of the buffer from each start; bytes past its end read 0."""
    size = buf.shape[0]
    limit = size - width
    if size >= width and start.size and int(start.max()) <= limit:
        return sliding_window_view(buf, width)[start]
    out = np.zeros((start.shape[0], width), np.uint8)
    inside = start <= limit
    if size >= width:
        out[inside] = sliding_window_view(buf, width)[start[inside]]
    for i in np.flatnonzero(~inside):  # at most the last few frames of the buffer
        chunk = buf[int(start[i]):int(start[i]) + width]
        out[i, :chunk.shape[0]] = chunk
    return out


def _be16(window: U8, at: int) -> U16:
    return (window[:, at].astype(np.uint16) << np.uint16(8)) | window[:, at + 1]


def _is_tpid(ethertype: U16) -> npt.NDArray[np.bool_]:
    tagged: npt.NDArray[np.bool_] = (
        (ethertype == EtherType.VLAN) | (ethertype == EtherType.QINQ) | (ethertype == EtherType.QINQ_LEGACY))
    return tagged


def _ethertype_link(buf: U8, off: I64, cap: I64, type_at: int, header: int, links: _Links,
                    rows: slice | npt.NDArray[np.intp]) -> None:
    """Ethernet-like links: up to two VLAN tags, then IP or up to three MPLS labels then IP."""
    # header, two tags and the ethertype after a third, three label stack entries, one IP byte
    w = _gather(buf, off, header + 8 + 4 * MPLS_KEPT + 1)
    outer_type = _be16(w, type_at)
    tag1 = _is_tpid(outer_type)
    type1 = _be16(w, header + 2)
    tag2 = tag1 & _is_tpid(type1)
    type2 = _be16(w, header + 6)
    deeper = tag2 & _is_tpid(type2)
    ethertype = np.where(tag2, type2, np.where(tag1, type1, outer_type))
    ip_at = header + 4 * (tag1.astype(np.int64) + tag2)
    fits = (ip_at <= cap) & ~deeper
    v4 = fits & (ethertype == EtherType.IPV4)
    v6 = fits & (ethertype == EtherType.IPV6)
    mpls = fits & ((ethertype == EtherType.MPLS) | (ethertype == EtherType.MPLS_MULTICAST))
    pppoe = fits & (ethertype == EtherType.PPPOE_SESSION)
    group = np.full(off.shape[0], _SLOW, np.uint8)
    group[v4 | v6] = _IP
    group[fits & ~(v4 | v6 | mpls | pppoe)] = _CODE[DropReason.NOT_IP]
    version = np.where(v4, 4, 6).astype(np.uint8)
    if mpls.any():
        _mpls(w, cap, ip_at, np.flatnonzero(mpls), group, version, links, rows)
    if pppoe.any():
        _pppoe(w, cap, ip_at, np.flatnonzero(pppoe), group, version)
    links.status[rows] = group
    links.l3[rows] = ip_at
    links.version[rows] = version
    links.vlan[rows] = np.where(tag1, _be16(w, header) & VLAN_ID_MASK, 0)
    links.inner[rows] = np.where(tag2, _be16(w, header + 4) & VLAN_ID_MASK, 0)


def _mpls(w: U8, cap: I64, ip_at: I64, sel: npt.NDArray[np.intp], group: U8, version: U8, links: _Links,
          rows: slice | npt.NDArray[np.intp]) -> None:
    """Label stacks of depth 1-3 followed by IPv4 or IPv6; ``ip_at`` moves past the stack in place."""
    columns = ip_at[sel, None] + np.arange(4 * MPLS_KEPT + 1)
    stack = np.take_along_axis(w[sel], columns, axis=1)  # three entries and the byte after them
    entries = np.ascontiguousarray(stack[:, :4 * MPLS_KEPT]).view(">u4").astype(np.uint32)
    bottom = (entries & MPLS_BOTTOM) != 0
    depth = np.argmax(bottom, axis=1) + 1
    after = ip_at[sel] + 4 * depth
    nibble = stack[np.arange(sel.shape[0]), 4 * depth] >> 4
    # every byte read up to the one after the bottom entry must be captured (else the slow path)
    ok = bottom.any(axis=1) & (after < cap[sel]) & ((nibble == 4) | (nibble == 6))
    sel, depth, after, entries = sel[ok], depth[ok], after[ok], entries[ok]
    group[sel] = _IP
    version[sel] = nibble[ok]
    ip_at[sel] = after
    if links.mpls is None:
        links.mpls = np.zeros((links.status.shape[0], MPLS_KEPT), np.uint32)
    kept = np.where(np.arange(MPLS_KEPT) < depth[:, None], entries >> 8, 0).astype(np.uint32)
    target = np.arange(links.status.shape[0])[rows][sel]
    links.mpls[target] = kept


def _pppoe(w: U8, cap: I64, ip_at: I64, sel: npt.NDArray[np.intp], group: U8, version: U8) -> None:
    """PPPoE session headers followed by PPP IPv4 or IPv6; ``ip_at`` moves past them in place."""
    at = ip_at[sel] + PPP_PROTOCOL_AT
    protocol = (w[sel, at].astype(np.uint16) << np.uint16(8)) | w[sel, at + 1]
    ver = np.zeros(sel.shape[0], np.uint8)
    for number, ip_version in PPP_PROTOCOLS.items():
        ver[protocol == number] = ip_version
    captured = ip_at[sel] + PPPOE_HEADER <= cap[sel]  # else the slow path says HEADER_TOO_SMALL
    group[sel[captured & (ver == 0)]] = _CODE[DropReason.NOT_IP]
    ok = sel[captured & (ver != 0)]
    group[ok] = _IP
    version[ok] = ver[captured & (ver != 0)]
    ip_at[ok] += PPPOE_HEADER


def _null_link(buf: U8, off: I64, cap: I64, either_order: bool, links: _Links,
               rows: slice | npt.NDArray[np.intp]) -> None:
    """BSD null (address family in either byte order) and OpenBSD loop (network order)."""
    w = _gather(buf, off, NULL_HEADER)
    version = _family_version(w.view(">u4")[:, 0])
    if either_order:
        version = np.where(version != 0, version, _family_version(w.view("<u4")[:, 0])).astype(np.uint8)
    fits = cap >= NULL_HEADER
    group = np.full(off.shape[0], _SLOW, np.uint8)
    group[fits & (version != 0)] = _IP
    group[fits & (version == 0)] = _CODE[DropReason.NOT_IP]
    links.status[rows] = group
    links.l3[rows] = NULL_HEADER
    links.version[rows] = version


def _family_version(family: npt.NDArray[np.uint32]) -> U8:
    version = np.zeros(family.shape[0], np.uint8)
    for af, ver in ADDRESS_FAMILIES.items():
        version[family == af] = ver
    return version


@dataclass(frozen=True, slots=True)
class _Part:
    """Decoded rows of one path: row numbers in the batch (ascending) and their columns."""

    rows: npt.NDArray[np.intp]
    key: U8
    length: U32
    tcp_flags: U8
    ttl: U8
    vlan: U16 | None = None  # None: the link-stage columns apply (the fast paths)
    inner_vlan: U16 | None = None
    mpls: U32 | None = None


def _new_keys(rows: int, ifindex: U32) -> U8:
    key = np.zeros((rows, KEY_BYTES), np.uint8)
    ifx = ifindex & IFINDEX_MASK
    key[:, 38] = ifx >> 8
    key[:, 39] = ifx & 0xFF
    return key


def _transport(key: U8, window: U8, at: int, proto: U8, has: npt.NDArray[np.bool_]) -> U8:
    """Fill the key's port bytes from transport headers at column ``at``; return the TCP flags."""
    ports = window[:, at:at + 4] * has[:, None].astype(np.uint8)
    icmp = has & _IS_ICMP[proto]
    if icmp.any():
        ports[icmp, 2:4] = ports[icmp, 0:2]
        ports[icmp, 0:2] = 0
    key[:, 32:36] = ports
    return np.where(has & (proto == Proto.TCP), window[:, at + TCP_FLAGS_AT], 0).astype(np.uint8)


def _ipv4(buf: U8, start: I64, room: I64, wire: I64, rows: npt.NDArray[np.intp], ifindex: U32) -> _Part:
    """Fast path for IPv4 rows whose header (options included) is captured and consistent, and whose
    packet lies whole on the wire (truncated ones are left to the slow path)."""
    g = _gather(buf, start, IPV4_MIN_HEADER + 20)  # fixed header + a TCP header when IHL is 5
    header = (g[:, 0] & 0x0F).astype(np.int64) * 4
    total = _be16(g, 2).astype(np.int64)
    proto = g[:, 9]
    first = (_be16(g, 6) & IPV4_OFFSET_MASK) == 0
    whole = (total <= wire) & ~(first & (total - header < _NEED[proto]))
    ok = (room >= IPV4_MIN_HEADER) & (header >= IPV4_MIN_HEADER) & (total >= header) & (room >= header) & whole
    if not ok.all():
        g, header, total, room, start, rows, ifindex, proto, first = (
            g[ok], header[ok], total[ok], room[ok], start[ok], rows[ok], ifindex[ok], proto[ok], first[ok])
    options = np.flatnonzero(header != IPV4_MIN_HEADER)
    if options.size:  # the transport header sits further on: fetch it into the same columns
        g[options, IPV4_MIN_HEADER:] = _gather(buf, start[options] + header[options], 20)
    has = first & (np.minimum(room, total) - header >= _NEED[proto]) & (_NEED[proto] > 0)
    key = _new_keys(rows.shape[0], ifindex)
    key[:, 10:12] = 0xFF
    key[:, 12:16] = g[:, 12:16]
    key[:, 26:28] = 0xFF
    key[:, 28:32] = g[:, 16:20]
    key[:, 36] = proto
    key[:, 37] = g[:, 1]
    flags = _transport(key, g, IPV4_MIN_HEADER, proto, has)
    return _Part(rows=rows, key=key, length=total.astype(np.uint32), tcp_flags=flags, ttl=g[:, 8].copy())


def _ipv6(buf: U8, start: I64, room: I64, wire: I64, rows: npt.NDArray[np.intp], ifindex: U32) -> _Part:
    """Fast path for IPv6 rows with no extension header and a non-zero payload length, whose packet
    lies whole on the wire."""
    g = _gather(buf, start, IPV6_HEADER + 20)  # fixed header + a TCP header
    plen = _be16(g, 4).astype(np.int64)
    proto = g[:, 6]
    whole = (plen + IPV6_HEADER <= wire) & (plen >= _NEED[proto])
    ok = (room >= IPV6_HEADER) & (plen > 0) & ~_IS_EXTENSION[proto] & whole
    if not ok.all():
        g, plen, proto, room, rows, ifindex = g[ok], plen[ok], proto[ok], room[ok], rows[ok], ifindex[ok]
    has = (np.minimum(room - IPV6_HEADER, plen) >= _NEED[proto]) & (_NEED[proto] > 0)
    key = _new_keys(rows.shape[0], ifindex)
    key[:, 0:32] = g[:, 8:40]
    key[:, 36] = proto
    key[:, 37] = ((g[:, 0] & 0x0F) << 4) | (g[:, 1] >> 4)
    flags = _transport(key, g, IPV6_HEADER, proto, has)
    return _Part(rows=rows, key=key, length=(plen + IPV6_HEADER).astype(np.uint32), tcp_flags=flags,
                 ttl=g[:, 7].copy())


def _slow(frames: FrameBatch, buf: U8, off: I64, cap: I64, rows: npt.NDArray[np.intp], status: U8) -> _Part:
    """Per-frame path: decode_frame for each row; drop codes go into ``status``."""
    linktype, wirelen, ifindex = frames.linktype, frames.wirelen, frames.ifindex
    accepted: list[int] = []
    packets: list[Packet] = []
    for i in rows.tolist():
        start = int(off[i])
        frame = buf[start:start + int(cap[i])].tobytes()
        got = decode_frame(frame, int(linktype[i]), int(wirelen[i]), int(ifindex[i]))
        if isinstance(got, DropReason):
            status[i] = _CODE[got]
        else:
            status[i] = _OK
            accepted.append(i)
            packets.append(got)
    m = len(packets)
    return _Part(
        rows=np.asarray(accepted, np.intp),
        key=np.frombuffer(bytearray(b"".join(p.key for p in packets)), np.uint8).reshape(m, KEY_BYTES),
        length=np.fromiter((p.length for p in packets), np.uint32, m),
        tcp_flags=np.fromiter((p.tcp_flags for p in packets), np.uint8, m),
        ttl=np.fromiter((p.ttl for p in packets), np.uint8, m),
        vlan=np.fromiter((p.vlan for p in packets), np.uint16, m),
        inner_vlan=np.fromiter((p.inner_vlan for p in packets), np.uint16, m),
        mpls=np.asarray([p.mpls for p in packets], np.uint32).reshape(m, MPLS_KEPT),
    )


def _assemble(parts: list[_Part], links: _Links, frames: FrameBatch) -> PacketBatch:
    """Merge the paths' rows into one PacketBatch in input order."""
    accounted = links.status == _OK
    count = int(np.count_nonzero(accounted))
    out = PacketBatch(
        key=np.empty((count, KEY_BYTES), np.uint8), length=np.empty(count, np.uint32),
        ts=frames.ts[accounted], tcp_flags=np.empty(count, np.uint8), ttl=np.empty(count, np.uint8),
        vlan=links.vlan[accounted], inner_vlan=links.inner[accounted],
        mpls=(np.zeros((count, MPLS_KEPT), np.uint32) if links.mpls is None else links.mpls[accounted]),
    )
    if len(parts) == 1 and parts[0].rows.shape[0] == count:  # one path took every accounted row
        only = parts[0]
        out.key, out.length, out.tcp_flags, out.ttl = only.key, only.length, only.tcp_flags, only.ttl
        if only.vlan is not None and only.inner_vlan is not None and only.mpls is not None:
            out.vlan, out.inner_vlan, out.mpls = only.vlan, only.inner_vlan, only.mpls
        return out
    position = np.cumsum(accounted) - 1
    for part in parts:
        at = position[part.rows]
        out.key[at] = part.key
        out.length[at] = part.length
        out.tcp_flags[at] = part.tcp_flags
        out.ttl[at] = part.ttl
        if part.vlan is not None and part.inner_vlan is not None and part.mpls is not None:
            out.vlan[at] = part.vlan
            out.inner_vlan[at] = part.inner_vlan
            out.mpls[at] = part.mpls
    return out
