"""One AF_PACKET TPACKET_V3 receive ring bound to one interface: socket setup, and ready blocks → FrameBatch.

Kernel references: Documentation/networking/packet_mmap.rst; include/uapi/linux/if_packet.h
(tpacket_req3, tpacket_block_desc, tpacket_hdr_v1, tpacket3_hdr, tpacket_stats_v3, sockaddr_ll,
packet_mreq); net/packet/af_packet.c (tpacket_rcv, prb_*, fanout_add, packet_getsockopt).

How a read works
----------------
The kernel fills the ring's blocks in order and flips a block's ``block_status`` to TP_STATUS_USER when
it is full or its retire timer (``block_timeout_ms``) fires. ``PacketRing.read`` takes every block that
is ready, in ring order from where the last read stopped, and

1. copies each block's used bytes (``blk_len``, headers included) into one ``bytes`` with a single
   join (one memcpy per block),
2. hands every one of those blocks back to the kernel (TP_STATUS_KERNEL) at once,
3. walks the packets of each copied block through ``tp_next_offset`` and gathers the tpacket3_hdr
   fields of all of them with one strided numpy view.

Copy-out was chosen over returning blocks after decode: a FrameBatch then owns its bytes (it can be
queued, sliced and outlive the ring, and a block's lifetime never depends on how long the pipeline
takes), and the kernel gets its blocks back after one memcpy instead of after decoding. The copy
costs about snaplen + 68 bytes of memcpy per frame, a small fraction of decoding the frame.

A read makes no system call: status words and data come from the shared mapping. CPython has no
acquire load for the status word; on x86 loads are not reordered with other loads, and elsewhere the
many interpreter steps (atomic reference counts and the GIL among them) between reading the status
and copying the block stand in for the barrier libpcap issues.

VLAN tags
---------
The kernel removes the outer 802.1Q/802.1ad tag (skb_vlan_untag) before packet sockets see a frame
and reports it in ``tp_vlan_tci``/``tp_vlan_tpid`` with TP_STATUS_VLAN_VALID; so does a NIC with
receive VLAN offload. The tag is put back after the two MAC addresses, as libpcap does, so the decoder
sees the frame as it was on the wire (caplen and wirelen grow by 4). Those frames are rebuilt at the
end of the batch buffer, all of them at once with numpy.

Snaplen and start-up
--------------------
A one-instruction classic BPF program (``ret #snaplen``) cuts every frame to ``snaplen`` bytes in the
kernel, before it is copied into the ring. Until the socket is bound and has joined its fanout group,
the program is ``ret #0``, so the ring never holds a frame that the group's program did not give it.

Fan-out
-------
Rings of several workers on one interface join one PACKET_FANOUT group in PACKET_FANOUT_CBPF mode: the
group's classic-BPF program (flowd.capture.fanout) hashes each frame's addresses, so every packet of a
flow key reaches the same worker, IPv4 and IPv6 fragments included, and nothing is reassembled.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import mmap
import os
import socket
import struct
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any, Final, NoReturn

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

from flowd.capture.fanout import fanout_program
from flowd.capture.layouts import LinkType
from flowd.model.batch import I64, U8, U32, FrameBatch
from flowd.native import compiled

# --- kernel constants -----------------------------------------------------------------------------

SOL_PACKET: Final = 263
ETH_P_ALL: Final = 0x0003
TPACKET_V3: Final = 2
TPACKET_ALIGNMENT: Final = 16
SO_ATTACH_FILTER: Final = 26
BPF_RET_K: Final = 0x06  # BPF_RET | BPF_K: accept the first k bytes of the packet (0 drops it)
PACKET_MR_PROMISC: Final = 1
VLAN_TAG_LEN: Final = 4
MAC_ADDRESSES_LEN: Final = 12  # destination + source MAC: a VLAN tag goes right after them
MAX_FANOUT_GROUP: Final = 0xFFFF


class PacketOption(IntEnum):
    """SOL_PACKET socket options (linux/if_packet.h)."""

    ADD_MEMBERSHIP = 1
    RX_RING = 5
    STATISTICS = 6
    VERSION = 10
    FANOUT = 18
    FANOUT_DATA = 22
    IGNORE_OUTGOING = 23


class TpStatus(IntFlag):
    """Block and packet status bits (linux/if_packet.h TP_STATUS_*)."""

    KERNEL = 0
    USER = 1 << 0
    COPY = 1 << 1
    LOSING = 1 << 2
    CSUMNOTREADY = 1 << 3
    VLAN_VALID = 1 << 4
    BLK_TMO = 1 << 5
    VLAN_TPID_VALID = 1 << 6
    CSUM_VALID = 1 << 7


class FanoutMode(IntEnum):
    """PACKET_FANOUT type and flag bits (the argument's upper 16 bits)."""

    HASH = 0
    CBPF = 6  # the group's classic-BPF program returns the member (modulo the member count)
    FLAG_DEFRAG = 0x8000


class Arphrd(IntEnum):
    """ARPHRD_* device types flowd can capture on (linux/if_arp.h)."""

    ETHER = 1
    PPP = 512
    RAWIP = 519
    TUNNEL = 768  # ipip
    TUNNEL6 = 769  # ip6tnl
    LOOPBACK = 772
    SIT = 776
    NONE = 0xFFFE  # tun, WireGuard: no link-layer header


# What a SOCK_RAW packet socket's frames start with, by the device's ARPHRD type.
LINKTYPE_OF_ARPHRD: Final[dict[int, int]] = {
    Arphrd.ETHER: LinkType.ETHERNET,
    Arphrd.LOOPBACK: LinkType.ETHERNET,  # lo carries all-zero Ethernet headers
    Arphrd.PPP: LinkType.RAW,
    Arphrd.RAWIP: LinkType.RAW,
    Arphrd.TUNNEL: LinkType.RAW,
    Arphrd.TUNNEL6: LinkType.RAW,
    Arphrd.SIT: LinkType.RAW,
    Arphrd.NONE: LinkType.RAW,
}

# --- wire layouts (native byte order: these are kernel structs, not wire formats) -----------------

# tpacket_req3: block size, block count, frame size, frame count, retire timeout (ms), sizeof_priv,
# feature request word
TPACKET_REQ3: Final = struct.Struct("=7I")
# tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status, num_pkts,
# offset_to_first_pkt, blk_len, seq_num (u64), ts_first_pkt, ts_last_pkt (u32 sec + u32 nsec each)
BLOCK_DESC: Final = struct.Struct("=IIIIIIQIIII")
BLOCK_DESC_LEN: Final = 48
BLOCK_HEAD: Final = struct.Struct("=8xIIII")  # block_status, num_pkts, offset_to_first_pkt, blk_len
BLOCK_STATUS: Final = struct.Struct("=I")
BLOCK_STATUS_AT: Final = 8
BLOCK_RELEASED: Final = BLOCK_STATUS.pack(TpStatus.KERNEL)
HEADER_ALIGNMENT: Final = 8  # V3_ALIGNMENT: where the kernel puts each tpacket3_hdr in a block
TPACKET3_HDR_LEN: Final = 48  # 40 bytes of fields, 8 of padding
SOCKADDR_LL_LEN: Final = 20
TPACKET3_HDRLEN: Final = (TPACKET3_HDR_LEN + TPACKET_ALIGNMENT - 1) // TPACKET_ALIGNMENT * TPACKET_ALIGNMENT \
    + SOCKADDR_LL_LEN  # the kernel's tp_hdrlen: aligned header + the sockaddr_ll it stores after it
TPACKET3_HDR: Final = np.dtype({
    "names": ["next", "sec", "nsec", "snaplen", "len", "status", "mac", "net", "rxhash", "vlan_tci",
              "vlan_tpid"],
    "formats": [np.uint32, np.uint32, np.uint32, np.uint32, np.uint32, np.uint32, np.uint16, np.uint16,
                np.uint32, np.uint32, np.uint16],
    "offsets": [0, 4, 8, 12, 16, 20, 24, 26, 28, 32, 36],
    "itemsize": 40,
})
TPACKET_STATS_V3: Final = struct.Struct("=III")  # tp_packets (drops included), tp_drops, tp_freeze_q_cnt
# sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, address
SOCKADDR_LL: Final = struct.Struct("=H2siHBB8s")
PACKET_MREQ: Final = struct.Struct("=iHH8s")  # ifindex, type, address length, address
FANOUT_ARG: Final = struct.Struct("=I")  # group id | type and flags << 16


# --- errors ---------------------------------------------------------------------------------------

class LiveCaptureError(Exception):
    """A live capture cannot be opened (no capability, no such interface, the kernel refused a step)."""


class RingError(Exception):
    """A ring block is not laid out as the kernel lays blocks out (a bug, never traffic)."""


def permission_message(interface: str) -> str:
    """The one-line error for a missing CAP_NET_RAW, with the two ways to grant it."""
    return (f"{interface}: capturing needs CAP_NET_RAW; grant it with AmbientCapabilities=CAP_NET_RAW "
            f"in the systemd unit, or start flowd with `sudo setpriv --reuid=USER --regid=GROUP "
            f"--init-groups --inh-caps=+net_raw --ambient-caps=+net_raw flowd ...` "
            f"(setcap on a virtualenv's python does not carry over to it)")


# --- options --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RingOptions:
    """How a ring is sized and what its socket receives (see LiveCapture for each field's meaning)."""

    ring_blocks: int = 64
    block_size: int = 1 << 20
    block_timeout_ms: int = 10
    promiscuous: bool = False
    direction: str = "in"
    fanout_group: int | None = None
    snaplen: int = 256

    def __post_init__(self) -> None:
        page = mmap.PAGESIZE
        if self.block_size < page or self.block_size % page:
            raise ValueError(f"block_size must be a positive multiple of the page size ({page}), "
                             f"got {self.block_size}")
        if not 1 <= self.ring_blocks <= 65536:
            raise ValueError(f"ring_blocks must be within 1..65536, got {self.ring_blocks}")
        if not 1 <= self.block_timeout_ms <= 60_000:
            raise ValueError(f"block_timeout_ms must be within 1..60000, got {self.block_timeout_ms}")
        if self.direction not in ("in", "both"):
            raise ValueError(f"direction must be 'in' or 'both', got {self.direction!r}")
        if self.fanout_group is not None and not 0 <= self.fanout_group <= MAX_FANOUT_GROUP:
            raise ValueError(f"fanout_group must be within 0..{MAX_FANOUT_GROUP}, got {self.fanout_group}")
        if not 64 <= self.snaplen <= 65535 or self.snaplen + 256 > self.block_size:
            raise ValueError(f"snaplen must be within 64..65535 and at least 256 bytes below block_size, "
                             f"got {self.snaplen}")

    @property
    def frame_size(self) -> int:
        """tp_frame_size: unused by TPACKET_V3 beyond the kernel's sanity checks, so one aligned snap."""
        size = _align(TPACKET3_HDRLEN + TPACKET_ALIGNMENT + self.snaplen)
        return min(size, self.block_size)


def _align(n: int) -> int:
    return (n + TPACKET_ALIGNMENT - 1) // TPACKET_ALIGNMENT * TPACKET_ALIGNMENT


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


# --- the socket and its mapping -------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _set_program(sock: socket.socket, level: int, option: int, program: Sequence[tuple[int, int, int, int]]) -> None:
    """Hand a classic-BPF program (code, jt, jf, k per instruction) to a socket option taking a sock_fprog."""
    insns = (_SockFilter * len(program))(*(_SockFilter(*insn) for insn in program))
    fprog = _SockFprog(len(program), ctypes.cast(insns, ctypes.POINTER(_SockFilter)))
    sock.setsockopt(level, option, bytes(fprog))  # the kernel copies `insns` before this returns


def _attach_snap_filter(sock: socket.socket, snaplen: int) -> None:
    """Install ``ret #snaplen`` (0 drops every packet) as the socket's filter."""
    _set_program(sock, socket.SOL_SOCKET, SO_ATTACH_FILTER, [(BPF_RET_K, 0, 0, snaplen)])


def _bind(sock: socket.socket, ifindex: int) -> None:
    """Bind to an interface by index (Python's bind takes a name, which a rename can race)."""
    addr = SOCKADDR_LL.pack(socket.AF_PACKET, struct.pack("!H", ETH_P_ALL), ifindex, 0, 0, 0, b"")
    if _libc.bind(sock.fileno(), ctypes.c_char_p(addr), len(addr)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@contextlib.contextmanager
def _step(interface: str, what: str, einval: str = "") -> Iterator[None]:
    """Turn an OSError of one set-up step into a one-line LiveCaptureError naming the step.

    ``einval`` replaces the kernel's "Invalid argument" where the step knows what it means.
    """
    try:
        yield
    except PermissionError:
        raise LiveCaptureError(permission_message(interface)) from None
    except OSError as exc:
        why = einval if einval and exc.errno == errno.EINVAL else exc.strerror or str(exc)
        raise LiveCaptureError(f"{interface}: {what} failed: {why}") from None


class PacketRing:
    """A TPACKET_V3 socket and its mapped ring, bound to one interface index."""

    def __init__(self, interface: str, ifindex: int, options: RingOptions) -> None:
        self.interface = interface
        self.ifindex = ifindex
        self.options = options
        self.packets = 0  # PACKET_STATISTICS totals over this ring's life (the kernel resets on read)
        self.drops = 0
        self._next = 0  # the block the next read looks at first
        self._map: mmap.mmap | None = None
        self._read_ring = _compiled_ring_read()
        try:
            self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)  # protocol 0: no frames yet
        except PermissionError:
            raise LiveCaptureError(permission_message(interface)) from None
        except OSError as exc:
            raise LiveCaptureError(f"{interface}: cannot open a packet socket: {exc.strerror or exc}") from None
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        o, sock, name = self.options, self._sock, self.interface
        with _step(name, "PACKET_VERSION TPACKET_V3"):
            sock.setsockopt(SOL_PACKET, PacketOption.VERSION, TPACKET_V3)
        if o.direction == "in":
            with _step(name, "PACKET_IGNORE_OUTGOING (direction 'in' needs Linux 4.20 or later)"):
                sock.setsockopt(SOL_PACKET, PacketOption.IGNORE_OUTGOING, 1)
        with _step(name, "SO_ATTACH_FILTER"):
            _attach_snap_filter(sock, 0)
        frames = o.block_size // o.frame_size * o.ring_blocks
        req = TPACKET_REQ3.pack(o.block_size, o.ring_blocks, o.frame_size, frames, o.block_timeout_ms, 0, 0)
        with _step(name, f"PACKET_RX_RING ({o.ring_blocks} blocks of {o.block_size} bytes)"):
            sock.setsockopt(SOL_PACKET, PacketOption.RX_RING, req)
        with _step(name, "mapping the ring"):
            self._map = mmap.mmap(sock.fileno(), o.block_size * o.ring_blocks, mmap.MAP_SHARED,
                                  mmap.PROT_READ | mmap.PROT_WRITE)
        with _step(name, f"binding to ifindex {self.ifindex}"):
            _bind(sock, self.ifindex)
        with _step(name, "reading the link type"):
            self.arphrd = int(sock.getsockname()[3])
        linktype = LINKTYPE_OF_ARPHRD.get(self.arphrd)
        if linktype is None:
            raise LiveCaptureError(f"{name}: unsupported link type (ARPHRD {self.arphrd})")
        self.linktype = linktype
        if o.fanout_group is not None:
            arg = o.fanout_group | FanoutMode.CBPF << 16
            with _step(name, f"joining PACKET_FANOUT group {o.fanout_group}",
                       "the group is held by sockets on another interface (an old one that went away, "
                       "until they close) or with other fanout settings"):
                sock.setsockopt(SOL_PACKET, PacketOption.FANOUT, FANOUT_ARG.pack(arg))
            with _step(name, "PACKET_FANOUT_DATA (the fanout program)"):
                _set_program(sock, SOL_PACKET, PacketOption.FANOUT_DATA, fanout_program(linktype))
        if o.promiscuous:
            with _step(name, "PACKET_ADD_MEMBERSHIP promiscuous"):
                sock.setsockopt(SOL_PACKET, PacketOption.ADD_MEMBERSHIP,
                                PACKET_MREQ.pack(self.ifindex, PACKET_MR_PROMISC, 0, b""))
        with _step(name, "SO_ATTACH_FILTER"):
            _attach_snap_filter(sock, o.snaplen)

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> FrameBatch | None:
        """Copy out every ready block, give them back to the kernel, and return their frames.

        flowd.native._ring does it in one call when it is built; ``read_python`` is the same read in
        Python and numpy (and the oracle the compiled one is tested against).
        """
        read_ring = self._read_ring
        mm = self._map
        if read_ring is None or mm is None:
            return self.read_python()
        size, count = self.options.block_size, self.options.ring_blocks
        status, at, blocks, n, buf, offset, caplen, wirelen, ts = read_ring(
            mm, self._next, size, count, self.linktype == LinkType.ETHERNET)
        if status != _RingRead.OK:
            raise RingError(f"{self.interface}: ring block {at}: {_RingRead(status).name.lower().replace('_', ' ')}")
        if not blocks:
            return None
        self._next = at
        return FrameBatch(buf=buf, offset=np.frombuffer(offset, np.int64), caplen=np.frombuffer(caplen, np.uint32),
                          wirelen=np.frombuffer(wirelen, np.uint32), ts=np.frombuffer(ts, np.float64),
                          linktype=np.full(n, self.linktype, np.uint16), ifindex=np.full(n, self.ifindex, np.uint32))

    def read_python(self) -> FrameBatch | None:
        """``read`` without the compiled extension."""
        mm = self._map
        if mm is None:
            return None
        size, count = self.options.block_size, self.options.ring_blocks
        status = BLOCK_STATUS.unpack_from
        ready: list[int] = []
        i = self._next
        while len(ready) < count and status(mm, i * size + BLOCK_STATUS_AT)[0] & TpStatus.USER:
            ready.append(i * size)
            i = (i + 1) % count
        if not ready:
            return None
        lengths = [BLOCK_HEAD.unpack_from(mm, start)[3] for start in ready]
        if max(lengths) > size:
            raise RingError(f"{self.interface}: ring block length {max(lengths)} exceeds the block size {size}")
        with memoryview(mm) as view:
            data = b"".join([view[start:start + length] for start, length in zip(ready, lengths)])
        for start in ready:
            mm[start + BLOCK_STATUS_AT:start + BLOCK_STATUS_AT + 4] = BLOCK_RELEASED
        self._next = i
        starts = list(itertools.accumulate(lengths[:-1], initial=0))
        return frames_of(data, starts, linktype=self.linktype, ifindex=self.ifindex)

    def pending_error(self) -> int:
        """Read (and so clear) the socket's pending error, e.g. ENETDOWN after the link went away."""
        return int(self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR))

    def update_statistics(self) -> None:
        """Add the kernel's counters since the last call (reading them resets them) to the totals."""
        if self._sock.fileno() < 0:
            return
        raw = self._sock.getsockopt(SOL_PACKET, PacketOption.STATISTICS, TPACKET_STATS_V3.size)
        packets, drops, _freezes = TPACKET_STATS_V3.unpack(raw)
        self.packets += packets
        self.drops += drops

    def close(self) -> None:
        """Fold in the last statistics, unmap the ring and close the socket (idempotent)."""
        if self._sock.fileno() >= 0 and self._map is not None:
            with contextlib.suppress(OSError):
                self.update_statistics()
        if self._map is not None:
            self._map.close()
            self._map = None
        self._sock.close()
