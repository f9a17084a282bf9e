"""The numpy batch decoder: the same rules as `decode_frame`, vectorised over a whole FrameBatch (used when the compiled path is not).

Common shapes (Ethernet/SLL/raw/null links, up to two VLAN tags, MPLS, PPPoE, IPv4 without options and
IPv6 without extension headers) are decoded column-wise; every other frame goes to `decode_frame`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from flowd.core.frame_rules import (
    ADDRESS_FAMILIES,
    COOKED_SOURCE,
    DROP_CODE,
    ETHERTYPE_LINKS,
    IFINDEX_MASK,
    IP_FOLLOWS,
    IPV4_MIN_HEADER,
    IPV4_OFFSET_MASK,
    IPV6_HEADER,
    IS_EXTENSION,
    IS_ICMP,
    LINKTYPE_ETHERNET,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    MAC_LEN,
    MPLS_BOTTOM,
    MPLS_KEPT,
    NEED,
    NULL_HEADER,
    OK,
    PPP_PROTOCOL_AT,
    PPP_PROTOCOLS,
    PPPOE_HEADER,
    RAW_IP_LINKS,
    SLOW,
    TCP_FLAGS_AT,
    VLAN_ID_MASK,
    Decoded,
    EtherType,
    Part,
    Proto,
    decode_rows,
    drops_of,
    frame_arrays,
)
from flowd.model.batch import I64, MAC_BYTES, U8, U16, U32, FrameBatch, PacketBatch
from flowd.model.drops import DropReason
from flowd.model.flowkey import KEY_BYTES
from flowd.model.record import Record


def decode_numpy(frames: FrameBatch, macs: bool = False) -> Decoded:
    """``decode`` without the compiled extract: numpy for the common shapes, ``decode_frame`` for the rest.

    With ``macs`` the packets carry their MAC addresses (``frame_macs``, for every frame at once).
    """
    n = len(frames)
    buf, off, cap = frame_arrays(frames)
    links = _Links.new(n)
    for linktype, rows in _link_groups(frames.linktype):
        if linktype in ETHERTYPE_LINKS:
            type_at, header = ETHERTYPE_LINKS[linktype]
            _ethertype_link(buf, off[rows], cap[rows], type_at, header, links, rows)
        elif linktype in RAW_IP_LINKS:
            links.status[rows] = IP_FOLLOWS
            links.version[rows] = RAW_IP_LINKS[linktype]
        elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
            _null_link(buf, off[rows], cap[rows], linktype == LINKTYPE_NULL, links, rows)
        else:
            links.status[rows] = DROP_CODE[DropReason.UNSUPPORTED_LINK_TYPE]

    status = links.status
    parts: list[Part] = []
    ip_rows = np.flatnonzero(status == IP_FOLLOWS)
    status[ip_rows] = SLOW  # until a fast decoder below accepts the row
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
                    status[part.rows] = OK
                    parts.append(part)

    slow_rows = np.flatnonzero(status == SLOW)
    if slow_rows.size:
        part = decode_rows(frames, buf, off, cap, slow_rows, status)
        if part.rows.size:
            parts.append(part)

    packets = _assemble(parts, links, frames)
    if macs:
        packets.mac = link_macs(buf, off, frames.linktype)[status == OK]
    return Decoded(packets=packets, drops=drops_of(status))


def link_macs(buf: U8, off: I64, linktype: U16) -> U8:
    """``frame_macs`` of every frame (rows of frames that are not accounted are never read)."""
    out = np.zeros((off.shape[0], MAC_BYTES), np.uint8)
    for kind, rows in _link_groups(linktype):
        if kind == LINKTYPE_ETHERNET:
            out[rows] = _gather(buf, off[rows], MAC_BYTES)
        elif kind in COOKED_SOURCE:
            length_at, size, address_at = COOKED_SOURCE[kind]
            w = _gather(buf, off[rows], address_at + MAC_LEN)
            length = _be16(w, length_at) if size == 2 else w[:, length_at]
            out[rows, MAC_LEN:] = np.where((length == MAC_LEN)[:, None], w[:, address_at:], 0)
    return out


@dataclass(slots=True, eq=False, repr=False)
class _Links(Record):
    """Link-stage columns for every row of the batch."""

    status: U8  # IP_FOLLOWS: link layer decoded; a drop code; SLOW: left to decode_frame
    l3: I64  # offset of the IP header in the frame (rows with status IP_FOLLOWS)
    version: U8  # IP version the link announces; 0: the version nibble decides
    vlan: U16
    inner: U16
    mpls: U32 | None  # (n, MPLS_KEPT), allocated when a batch has MPLS

    @staticmethod
    def new(n: int) -> _Links:
        return _Links(status=np.full(n, SLOW, np.uint8), l3=np.zeros(n, np.int64),
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
    group = np.full(off.shape[0], SLOW, np.uint8)
    group[v4 | v6] = IP_FOLLOWS
    group[fits & ~(v4 | v6 | mpls | pppoe)] = DROP_CODE[DropReason.NOT_IP]
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
    group[sel] = IP_FOLLOWS
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
    group[sel[captured & (ver == 0)]] = DROP_CODE[DropReason.NOT_IP]
    ok = sel[captured & (ver != 0)]
    group[ok] = IP_FOLLOWS
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
    group = np.full(off.shape[0], SLOW, np.uint8)
    group[fits & (version != 0)] = IP_FOLLOWS
    group[fits & (version == 0)] = DROP_CODE[DropReason.NOT_IP]
    links.status[rows] = group
    links.l3[rows] = NULL_HEADER
    links.version[rows] = version


def _family_version(family: npt.NDArray[np.uint32]) -> U8:
    version = np.zeros(family.shape[0], np.uint8)
    for af, ver in ADDRESS_FAMILIES.items():
        version[family == af] = ver
    return version


def _new_keys(rows: int, ifindex: U32) -> U8:
    key = np.zeros((rows, KEY_BYTES), np.uint8)
    ifx = ifindex & IFINDEX_MASK
    key[:, 38] = ifx >> 8
    key[:, 39] = ifx & 0xFF
    return key


def _transport(key: U8, window: U8, at: int, proto: U8, has: npt.NDArray[np.bool_]) -> U8:
    """Fill the key's port bytes from transport headers at column ``at``; return the TCP flags."""
    ports = window[:, at:at + 4] * has[:, None].astype(np.uint8)
    icmp = has & IS_ICMP[proto]
    if icmp.any():
        ports[icmp, 2:4] = ports[icmp, 0:2]
        ports[icmp, 0:2] = 0
    key[:, 32:36] = ports
    return np.where(has & (proto == Proto.TCP), window[:, at + TCP_FLAGS_AT], 0).astype(np.uint8)


def _ipv4(buf: U8, start: I64, room: I64, wire: I64, rows: npt.NDArray[np.intp], ifindex: U32) -> Part:
    """Fast path for IPv4 rows whose header (options included) is captured and consistent, and whose
    packet lies whole on the wire (truncated ones are left to the slow path)."""
    g = _gather(buf, start, IPV4_MIN_HEADER + 20)  # fixed header + a TCP header when IHL is 5
    header = (g[:, 0] & 0x0F).astype(np.int64) * 4
    total = _be16(g, 2).astype(np.int64)
    proto = g[:, 9]
    first = (_be16(g, 6) & IPV4_OFFSET_MASK) == 0
    whole = (total <= wire) & ~(first & (total - header < NEED[proto]))
    ok = (room >= IPV4_MIN_HEADER) & (header >= IPV4_MIN_HEADER) & (total >= header) & (room >= header) & whole
    if not ok.all():
        g, header, total, room, start, rows, ifindex, proto, first = (
            g[ok], header[ok], total[ok], room[ok], start[ok], rows[ok], ifindex[ok], proto[ok], first[ok])
    options = np.flatnonzero(header != IPV4_MIN_HEADER)
    if options.size:  # the transport header sits further on: fetch it into the same columns
        g[options, IPV4_MIN_HEADER:] = _gather(buf, start[options] + header[options], 20)
    has = first & (np.minimum(room, total) - header >= NEED[proto]) & (NEED[proto] > 0)
    key = _new_keys(rows.shape[0], ifindex)
    key[:, 10:12] = 0xFF
    key[:, 12:16] = g[:, 12:16]
    key[:, 26:28] = 0xFF
    key[:, 28:32] = g[:, 16:20]
    key[:, 36] = proto
    key[:, 37] = g[:, 1]
    flags = _transport(key, g, IPV4_MIN_HEADER, proto, has)
    return Part(rows=rows, key=key, length=total.astype(np.uint32), tcp_flags=flags, ttl=g[:, 8].copy())


def _ipv6(buf: U8, start: I64, room: I64, wire: I64, rows: npt.NDArray[np.intp], ifindex: U32) -> Part:
    """Fast path for IPv6 rows with no extension header and a non-zero payload length, whose packet
    lies whole on the wire."""
    g = _gather(buf, start, IPV6_HEADER + 20)  # fixed header + a TCP header
    plen = _be16(g, 4).astype(np.int64)
    proto = g[:, 6]
    whole = (plen + IPV6_HEADER <= wire) & (plen >= NEED[proto])
    ok = (room >= IPV6_HEADER) & (plen > 0) & ~IS_EXTENSION[proto] & whole
    if not ok.all():
        g, plen, proto, room, rows, ifindex = g[ok], plen[ok], proto[ok], room[ok], rows[ok], ifindex[ok]
    has = (np.minimum(room - IPV6_HEADER, plen) >= NEED[proto]) & (NEED[proto] > 0)
    key = _new_keys(rows.shape[0], ifindex)
    key[:, 0:32] = g[:, 8:40]
    key[:, 36] = proto
    key[:, 37] = ((g[:, 0] & 0x0F) << 4) | (g[:, 1] >> 4)
    flags = _transport(key, g, IPV6_HEADER, proto, has)
    return Part(rows=rows, key=key, length=(plen + IPV6_HEADER).astype(np.uint32), tcp_flags=flags,
                 ttl=g[:, 7].copy())


def _assemble(parts: list[Part], links: _Links, frames: FrameBatch) -> PacketBatch:
    """Merge the paths' rows into one PacketBatch in input order."""
    accounted = links.status == OK
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
