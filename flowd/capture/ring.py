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

import numpy as np

from flowd.capture.fanout import fanout_program
from flowd.capture.layouts import LinkType
from flowd.capture.ring_layout import (
    BLOCK_HEAD,
    BLOCK_RELEASED,
    BLOCK_STATUS,
    BLOCK_STATUS_AT,
    BPF_RET_K,
    ETH_P_ALL,
    FANOUT_ARG,
    LINKTYPE_OF_ARPHRD,
    MAX_FANOUT_GROUP,
    PACKET_MR_PROMISC,
    PACKET_MREQ,
    SO_ATTACH_FILTER,
    SOCKADDR_LL,
    SOL_PACKET,
    TPACKET3_HDRLEN,
    TPACKET_ALIGNMENT,
    TPACKET_REQ3,
    TPACKET_STATS_V3,
    TPACKET_V3,
    FanoutMode,
    LiveCaptureError,
    PacketOption,
    RingError,
    TpStatus,
    permission_message,
)
from flowd.capture.ring_walk import _compiled_ring_read, _RingRead, frames_of
from flowd.model.batch import FrameBatch

# The compiled live path's side of a read (flowd.core.live_path through the runtime): given (mapping, first
# block, block size, block count, linktype, ifindex) it takes every ready block and returns (status, next
# block, blocks taken), or None when it does not apply and the frames are to be read instead.
RingAccount = Callable[[mmap.mmap, int, int, int, int, int], tuple[int, int, int] | None]

# --- options --------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RingOptions:
    """How a ring is sized and what its socket receives (see LiveCapture for each field's meaning)."""

    ring_blocks: int = 16
    block_size: int = 4 << 20
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

    def take(self, account: RingAccount | None) -> FrameBatch | None:
        """Hand the ready blocks to ``account`` when it takes them (None comes back), else ``read`` them."""
        mm = self._map
        if account is None or mm is None:
            return self.read()
        done = account(mm, self._next, self.options.block_size, self.options.ring_blocks, self.linktype,
                       self.ifindex)
        if done is None:
            return self.read()
        status, at, _blocks = done
        if status != _RingRead.OK:
            self._next = at  # the blocks before the damaged one were taken
            raise RingError(f"{self.interface}: ring block {at}: {_RingRead(status).name.lower().replace('_', ' ')}")
        self._next = at
        return None

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

    def filling(self) -> bool:
        """Whether the block the kernel is filling holds frames: the kernel hands it over when its retire
        timer fires (at most one block timeout from now), and a read before that does not see them.

        The kernel counts a block's frames in its descriptor as it writes them (af_packet.c,
        prb_fill_curr_block), so this reads the shared mapping only: the first block after the ready
        ones, if the kernel owns it, and its frame count. The count is reset when the kernel opens the
        block; after the ring was full, a block handed back but not yet reopened still shows its old
        count, and a stop then waits its bound (inputs.finish) for nothing.
        """
        mm = self._map
        if mm is None:
            return False
        size, count = self.options.block_size, self.options.ring_blocks
        for step in range(count):
            start = ((self._next + step) % count) * size
            status, frames = BLOCK_HEAD.unpack_from(mm, start)[:2]
            if not status & TpStatus.USER:
                return bool(frames > 0)
        return False  # every block is ready: the kernel fills none until some are read

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
