"""Walking TPACKET_V3 ring blocks (pure): the packets of a retired block → FrameBatch columns, compiled or in Python."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from flowd.capture.layouts import LinkType
from flowd.capture.ring_layout import (
    BLOCK_DESC_LEN,
    BLOCK_HEAD,
    HEADER_ALIGNMENT,
    MAC_ADDRESSES_LEN,
    TPACKET3_HDR,
    TPACKET3_HDR_LEN,
    VLAN_TAG_LEN,
    RingError,
    TpStatus,
)
from flowd.model.batch import I64, U8, U32, FrameBatch
from flowd.native import compiled

# --- the block walker (pure) ----------------------------------------------------------------------

class _TpacketWalk(IntEnum):
    """Why walk_tpacket (flowd/native/_fastpath.c) stopped; the same numbers as its enum tpacket_walk."""

    OK = 0  # every block walked
    BLOCK = 1  # a block's length or first packet offset lies outside the buffer
    HEADER = 2  # a packet header runs past its block's end, or is misaligned
    FULL = 3  # more packets than the blocks' num_pkts add up to (cannot happen: counted first)


def packet_offsets(buf: bytes, starts: Sequence[int]) -> tuple[I64, I64]:
    """Each packet's tpacket3_hdr offset in buf, and the end of the block it lies in.

    ``starts`` are the offsets of whole blocks in buf, each block ``blk_len`` bytes long. The compiled
    walk (flowd.native._fastpath.walk_tpacket) does it when it is built, else ``packet_offsets_python``; both
    raise the same RingError for the same damage.
    """
    walk = _compiled_tpacket_walk()
    if walk is None:
        return packet_offsets_python(buf, starts)
    total = 0
    for start in starts:
        if not 0 <= start <= len(buf) - BLOCK_DESC_LEN:
            _walk_failure(buf, start, _TpacketWalk.BLOCK, 0)
        total += BLOCK_HEAD.unpack_from(buf, start)[1]
    offsets, ends = np.empty(total, np.int64), np.empty(total, np.int64)
    count, status, block, at = walk(buf, np.asarray(starts, np.int64), offsets, ends, total)
    if status != _TpacketWalk.OK:
        _walk_failure(buf, starts[block], _TpacketWalk(status), at)
    return offsets[:count], ends[:count]


def _walk_failure(buf: bytes, start: int, status: _TpacketWalk, at: int) -> NoReturn:
    if status is _TpacketWalk.HEADER:
        end = start + BLOCK_HEAD.unpack_from(buf, start)[3]
        raise RingError(f"ring block at {start}: packet header at {at} runs past the block end {end}")
    length, first = 0, 0
    if 0 <= start <= len(buf) - BLOCK_DESC_LEN:
        _status, _count, first, length = BLOCK_HEAD.unpack_from(buf, start)
    raise RingError(f"ring block at {start}: block length {length} or first packet offset {first} out of bounds")


def _compiled_tpacket_walk() -> Callable[..., tuple[int, int, int, int]] | None:
    """flowd.native._fastpath.walk_tpacket, unless it is not built, FLOWD_NO_FASTPATH=1, or its codes differ."""
    walk: Callable[..., tuple[int, int, int, int]] | None = compiled(
        "walk_tpacket", TPACKET_WALKS={w.name: w.value for w in _TpacketWalk})
    return walk


class _RingRead(IntEnum):
    """What flowd.native._ring.read_ring found wrong with a block; the same numbers as its enum ring_status."""

    OK = 0
    BLOCK_LENGTH_OR_FIRST_PACKET_OUT_OF_BOUNDS = 1
    PACKET_HEADER_PAST_THE_BLOCK_END_OR_MISALIGNED = 2
    FRAME_PAST_THE_BLOCK_END = 3


def _compiled_ring_read() -> Callable[..., tuple[Any, ...]] | None:
    """flowd.native._ring.read_ring, unless it is not built, FLOWD_NO_FASTPATH=1, or its codes differ."""
    read: Callable[..., tuple[Any, ...]] | None = compiled(
        "read_ring", module="flowd.native._ring", RING_OK=_RingRead.OK,
        RING_BLOCK=_RingRead.BLOCK_LENGTH_OR_FIRST_PACKET_OUT_OF_BOUNDS,
        RING_HEADER=_RingRead.PACKET_HEADER_PAST_THE_BLOCK_END_OR_MISALIGNED,
        RING_FRAME=_RingRead.FRAME_PAST_THE_BLOCK_END)
    return read


def packet_offsets_python(buf: bytes, starts: Sequence[int]) -> tuple[I64, I64]:
    """``packet_offsets`` in Python: the statement of the walk, and the oracle of the compiled one.

    The chain of ``tp_next_offset`` is followed through a native-endian 32-bit view of buf (the kernel
    aligns headers to 8 bytes), the cheapest step Python has; whether every header lies inside its
    block, aligned, is checked afterwards, for all of them at once.
    """
    offsets: list[int] = []
    ends: list[int] = []
    block_at: dict[int, int] = {}  # block end -> block start, for the error message
    append = offsets.append
    with memoryview(buf) as view, view[:len(buf) // 4 * 4].cast("I") as words:
        for start in starts:
            if not 0 <= start <= len(buf) - BLOCK_DESC_LEN:
                _walk_failure(buf, start, _TpacketWalk.BLOCK, 0)
            _status, count, first, length = BLOCK_HEAD.unpack_from(buf, start)
            end = start + length
            if length > len(buf) - start or (count and first < BLOCK_DESC_LEN):
                _walk_failure(buf, start, _TpacketWalk.BLOCK, 0)
            block_at[end] = start
            off = start + first
            try:
                for _ in range(count):
                    append(off)
                    off += words[off >> 2]  # tp_next_offset
            except IndexError:
                _walk_failure(buf, start, _TpacketWalk.HEADER, off)
            ends.extend([end] * count)
    at, block_ends = np.array(offsets, np.int64), np.array(ends, np.int64)
    outside = np.flatnonzero((at + TPACKET3_HDR_LEN > block_ends) | (at % HEADER_ALIGNMENT != 0))
    if outside.size:
        i = int(outside[0])
        _walk_failure(buf, block_at[int(block_ends[i])], _TpacketWalk.HEADER, int(at[i]))
    return at, block_ends


def frames_of(buf: bytes, starts: Sequence[int], *, linktype: int, ifindex: int) -> FrameBatch:
    """The frames of the ring blocks copied into buf (at ``starts``), with VLAN tags put back."""
    at, ends = packet_offsets(buf, starts)
    n = int(at.shape[0])
    field = _header_fields(buf, at)  # every header lies whole inside its block: packet_offsets checked
    offset: I64 = at + field("mac").astype(np.int64)
    caplen: U32 = field("snaplen")
    if n and bool(((offset + caplen) > ends).any()):
        raise RingError("ring block: a frame runs past the end of its block")
    wirelen: U32 = field("len").copy()
    ts = field("sec").astype(np.float64) + field("nsec").astype(np.float64) * 1e-9
    status = field("status")
    tagged = np.flatnonzero((status & TpStatus.VLAN_VALID) != 0) if linktype == LinkType.ETHERNET \
        else np.zeros(0, np.intp)
    tagged = tagged[caplen[tagged] >= MAC_ADDRESSES_LEN]
    if tagged.size:
        tpid = np.where((status[tagged] & TpStatus.VLAN_TPID_VALID) != 0, field("vlan_tpid")[tagged],
                        0x8100).astype(np.uint16)
        tci = (field("vlan_tci")[tagged] & 0xFFFF).astype(np.uint16)
        tail = _tagged_frames(buf, offset[tagged], caplen[tagged], tpid, tci)
        grown = caplen[tagged] + VLAN_TAG_LEN
        offset[tagged] = len(buf) + np.concatenate(([0], np.cumsum(grown[:-1], dtype=np.int64)))
        caplen[tagged] = grown
        wirelen[tagged] += VLAN_TAG_LEN
        buf = buf + tail
    return FrameBatch(buf=buf, offset=offset, caplen=caplen, wirelen=wirelen, ts=ts,
                      linktype=np.full(n, linktype, np.uint16), ifindex=np.full(n, ifindex, np.uint32))


def _header_fields(buf: bytes, at: I64) -> Callable[[str], U32]:
    """A getter of one tpacket3_hdr field (TPACKET3_HDR's layout) of the headers at ``at``, as a column.

    Headers are 8-byte aligned, so each field is one gather from a native 32- or 16-bit view of buf
    (several times cheaper than gathering whole records of a byte-strided structured view); 16-bit
    fields come back widened to 32 bits.
    """
    words = np.frombuffer(buf, np.uint32, count=len(buf) // 4)
    halves = np.frombuffer(buf, np.uint16, count=len(buf) // 2)
    layout = TPACKET3_HDR.fields
    assert layout is not None

    def field(name: str) -> U32:
        dtype, where = layout[name][:2]
        if dtype.itemsize == 4:
            column: U32 = words[(at + where) // 4]
            return column
        return halves[(at + where) // 2].astype(np.uint32)

    return field


def _tagged_frames(buf: bytes, offset: I64, caplen: U32, tpid: npt.NDArray[np.uint16],
                   tci: npt.NDArray[np.uint16]) -> bytes:
    """The frames at offset with a (tpid, tci) tag inserted after the MAC addresses, back to back.

    Each frame is gathered as one row of a (frames, longest frame) matrix, the tag goes in as two
    columns, and a row-major mask keeps each row's own length.
    """
    width = int(caplen.max())
    src: U8 = np.frombuffer(buf, np.uint8)
    if int(offset.max()) + width > src.shape[0]:  # a row window of the last frames would run off
        src = np.concatenate((src, np.zeros(width, np.uint8)))
    rows = sliding_window_view(src, width)[offset]
    out = np.empty((rows.shape[0], width + VLAN_TAG_LEN), np.uint8)
    out[:, :MAC_ADDRESSES_LEN] = rows[:, :MAC_ADDRESSES_LEN]
    out[:, MAC_ADDRESSES_LEN:MAC_ADDRESSES_LEN + 2] = tpid.astype(">u2").view(np.uint8).reshape(-1, 2)
    out[:, MAC_ADDRESSES_LEN + 2:MAC_ADDRESSES_LEN + 4] = tci.astype(">u2").view(np.uint8).reshape(-1, 2)
    out[:, MAC_ADDRESSES_LEN + VLAN_TAG_LEN:] = rows[:, MAC_ADDRESSES_LEN:]
    keep = np.arange(width + VLAN_TAG_LEN) < (caplen.astype(np.int64) + VLAN_TAG_LEN)[:, None]
    return out[keep].tobytes()


def concat_frames(parts: Sequence[FrameBatch]) -> FrameBatch:
    """One batch holding the frames of several (each part's buffer copied once, back to back)."""
    if len(parts) == 1:
        return parts[0]
    sizes = [len(p.buf) for p in parts]
    bases = np.concatenate(([0], np.cumsum(sizes[:-1], dtype=np.int64)))
    return FrameBatch(
        buf=b"".join(p.buf for p in parts),
        offset=np.concatenate([p.offset + base for p, base in zip(parts, bases.tolist())]),
        caplen=np.concatenate([p.caplen for p in parts]),
        wirelen=np.concatenate([p.wirelen for p in parts]),
        ts=np.concatenate([p.ts for p in parts]),
        linktype=np.concatenate([p.linktype for p in parts]),
        ifindex=np.concatenate([p.ifindex for p in parts]))
