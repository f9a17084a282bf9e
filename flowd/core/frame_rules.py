"""The decoding rules, stated per frame: a raw link-layer frame → an accountable IP packet (flow-key row) or a drop reason.

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

MAC addresses (``PacketBatch.mac``, decoded only when a flow server exports with a bridge template):
``frame_macs`` gives 12 bytes per accounted frame, the destination then the source address. Ethernet
(1): bytes 0-5 and 6-11 of the frame, as they stand. Linux cooked SLL (113) records only the sender's
link-layer address (for an outgoing packet, the capturing host's own): the source is its first six
bytes when the address length field (bytes 4-5) says 6, else 0; the destination is 0. SLL2 (276):
the same from its address length (byte 11) and address (bytes 12-17). Every other link type carries
no MAC addresses: 0.

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
well-formed batch reaches Python one by one. Only a row it leaves undecided (status SLOW: a frame
outside the buffer, which ``decode`` refuses before) would go through ``decode_frame``. ``decode_numpy``
is the path without it, and FLOWD_NO_FASTPATH=1 makes ``decode`` use it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.model.batch import I64, MAC_BYTES, U8, U16, U32, FrameBatch, PacketBatch
from flowd.model.drops import DropReason
from flowd.model.flowkey import KEY_BYTES, V4_MAPPED_PREFIX
from flowd.model.record import Frozen, Record


@dataclass(slots=True, eq=False, repr=False)
class Decoded(Record):
    """The result of decoding one FrameBatch."""

    packets: PacketBatch  # accountable IP packets only, in input order
    drops: dict[DropReason, int]  # frames not accounted, by reason; reasons with no frame are absent


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Packet(Frozen):
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

# LINKTYPE -> (offset of the address length field, its size, offset of the address) of the cooked
# captures, which record the sender's link-layer address only.
COOKED_SOURCE: Final = {113: (4, 2, 6), 276: (11, 1, 12)}
LINKTYPE_ETHERNET: Final = 1
MAC_LEN: Final = 6
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
NEED: Final = np.zeros(256, np.int64)
for _proto, _size in TRANSPORT_HEADER.items():
    NEED[_proto] = _size
IS_ICMP: Final = np.zeros(256, np.bool_)
IS_ICMP[list(ICMP_PROTOS)] = True
IS_EXTENSION: Final = np.zeros(256, np.bool_)
IS_EXTENSION[list(IPV6_EXTENSIONS)] = True

# Per-row decode status: 0 accounted, a drop code (DROP_CODE), IP_FOLLOWS link layer decoded and the IP header
# next, SLOW left to decode_frame. The drop codes and SLOW are shared with the compiled extract
# (flowd/native/_decode.h, enum status), which is used only while its copy agrees with this one.
OK: Final = 0
SLOW: Final = 255
IP_FOLLOWS: Final = 254
DROP_CODE: Final = {DropReason.NOT_IP: 1, DropReason.HEADER_TOO_SMALL: 2, DropReason.BAD_IP_HEADER: 3,
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


def frame_macs(frame: bytes, linktype: int) -> bytes:
    """The destination and source MAC address of an accounted frame (see "MAC addresses" above).

    The statement of that rule for one frame, as ``decode_frame`` is of the others; the batch decoders
    give the same bytes in ``PacketBatch.mac`` when asked for them.
    """
    if linktype == LINKTYPE_ETHERNET:
        return frame[:MAC_BYTES]
    cooked = COOKED_SOURCE.get(linktype)
    if cooked is not None:
        length_at, size, address_at = cooked
        if int.from_bytes(frame[length_at:length_at + size], "big") == MAC_LEN:
            return bytes(MAC_LEN) + frame[address_at:address_at + MAC_LEN]
    return bytes(MAC_BYTES)


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


# --- per-row helpers shared by the batch decoders ----------------------------------------------

def frame_arrays(frames: FrameBatch) -> tuple[U8, I64, I64]:
    """The batch buffer as uint8, the offsets and caplens as int64; refuses frames outside the buffer."""
    buf = np.frombuffer(frames.buf, np.uint8)
    off = np.ascontiguousarray(frames.offset, np.int64)
    cap = frames.caplen.astype(np.int64)
    if len(frames) and (int(off.min()) < 0 or int((off + cap).max()) > buf.shape[0]):
        raise ValueError("frame batch: a frame lies outside the batch buffer")
    return buf, off, cap


def drops_of(status: U8) -> dict[DropReason, int]:
    counts = np.bincount(status, minlength=SLOW + 1)
    return {reason: int(counts[code]) for reason, code in DROP_CODE.items() if counts[code]}


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Part(Frozen):
    """Decoded rows of one path: row numbers in the batch (ascending) and their columns."""

    rows: npt.NDArray[np.intp]
    key: U8
    length: U32
    tcp_flags: U8
    ttl: U8
    vlan: U16 | None = None  # None: the link-stage columns apply (the fast paths)
    inner_vlan: U16 | None = None
    mpls: U32 | None = None
    mac: U8 | None = None


def decode_rows(frames: FrameBatch, buf: U8, off: I64, cap: I64, rows: npt.NDArray[np.intp], status: U8) -> Part:
    """Per-frame path: decode_frame for each row; drop codes go into ``status``."""
    linktype, wirelen, ifindex = frames.linktype, frames.wirelen, frames.ifindex
    accepted: list[int] = []
    packets: list[Packet] = []
    macs: list[bytes] = []
    for i in rows.tolist():
        start = int(off[i])
        frame = buf[start:start + int(cap[i])].tobytes()
        got = decode_frame(frame, int(linktype[i]), int(wirelen[i]), int(ifindex[i]))
        if isinstance(got, DropReason):
            status[i] = DROP_CODE[got]
        else:
            status[i] = OK
            accepted.append(i)
            packets.append(got)
            macs.append(frame_macs(frame, int(linktype[i])))
    m = len(packets)
    return Part(
        rows=np.asarray(accepted, np.intp),
        key=np.frombuffer(bytearray(b"".join(p.key for p in packets)), np.uint8).reshape(m, KEY_BYTES),
        length=np.fromiter((p.length for p in packets), np.uint32, m),
        tcp_flags=np.fromiter((p.tcp_flags for p in packets), np.uint8, m),
        ttl=np.fromiter((p.ttl for p in packets), np.uint8, m),
        vlan=np.fromiter((p.vlan for p in packets), np.uint16, m),
        inner_vlan=np.fromiter((p.inner_vlan for p in packets), np.uint16, m),
        mpls=np.asarray([p.mpls for p in packets], np.uint32).reshape(m, MPLS_KEPT),
        mac=np.frombuffer(bytearray(b"".join(macs)), np.uint8).reshape(m, MAC_BYTES),
    )
