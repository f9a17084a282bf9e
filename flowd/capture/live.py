"""Live capture on a Linux interface: a TPACKET_V3 ring (flowd.capture.ring) that follows the interface by name.

RTNETLINK references: rtnetlink(7), netlink(7); include/uapi/linux/rtnetlink.h (RTM_NEWLINK,
RTM_DELLINK, RTMGRP_LINK), include/uapi/linux/if_link.h (IFLA_IFNAME), netdevice(7) (SIOCGIFINDEX,
SIOCGIFFLAGS).

Interface churn
---------------
A capture is configured by interface *name*; its ring is bound to the interface *index* the name has
when the ring opens, and every frame carries that index (the SNMP ifIndex of the flow records). A
NETLINK_ROUTE socket subscribed to RTMGRP_LINK reports link changes, and the capture applies them:

* the bound index goes down or up: the ring stays (the kernel stops and restarts delivery itself);
  the state becomes ``down``/``up`` and the log says ``link down``/``link up``;
* the bound index is deleted, or renamed to another name: the ring is detached (``detached: interface
  deleted``, ``detached: renamed to NAME``);
* an interface appears with the configured name (created, renamed to it, or moved into the
  namespace): a new ring is opened on its index (``re-attached, ifindex 12``).

A detached ring is not closed at once: it stays mapped for a few block timeouts, so the kernel's block
timer retires the last, partly filled block and its frames are still read. When a netlink overrun
(ENOBUFS) loses notifications, the name is looked up again and the same rules are applied to what
the kernel says now. If opening the new ring fails (a fanout
group still held by the old rings of other workers, say), it is retried after RETRY_FIRST seconds,
then at doubling intervals up to RETRY_MAX, and at once whenever one of the capture's old rings closes.

Name look-ups are ioctls on the netlink socket, so they answer for the network namespace the capture
was created in, whichever namespace the calling thread is in later; rings are reopened in the calling
thread's namespace, so create and drive a capture from the same one.

What the daemon calls
---------------------
``LiveCapture(name, ...)`` (raises LiveCaptureError with a one-line message, ValueError for bad
options); ``async for frames in capture.batches()`` (one FrameBatch per wake-up, under any asyncio
loop, uvloop included); ``capture.state`` and ``capture.events`` for show commands; ``capture.stats()``
for kernel receive and drop counts; ``capture.close()`` on shutdown. ``fileno()``, ``read_blocks()`` and
``next_deadline()`` are the same machinery for a caller that runs its own poll loop.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import logging
import select
import socket
import struct
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from enum import IntEnum
from types import TracebackType
from typing import Final, Self

from flowd.capture.ring import PacketRing, RingAccount, RingOptions
from flowd.capture.ring_layout import LiveCaptureError
from flowd.capture.ring_walk import concat_frames
from flowd.model.batch import FrameBatch

__all__ = ["LinkEvent", "LinkMonitor", "LiveCapture", "LiveCaptureError", "parse_link_messages"]

log = logging.getLogger(__name__)

RETRY_FIRST: Final = 0.1  # seconds before the first new attempt to open a ring that failed to open
RETRY_MAX: Final = 5.0  # longest wait between attempts
RETIRE_BLOCK_TIMEOUTS: Final = 3  # block timeouts a detached ring stays mapped, for its last block
RETIRE_MIN: Final = 0.05  # ... and never less than this many seconds
EVENT_LOG_SIZE: Final = 256  # newest events kept in LiveCapture.events
NETLINK_RCVBUF: Final = 1 << 20
NETLINK_READ: Final = 1 << 16

# --- RTNETLINK wire layout (native byte order) ----------------------------------------------------

NLMSG_HDR: Final = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
IFINFOMSG: Final = struct.Struct("=BxHiII")  # family, pad, ARPHRD type, ifindex, flags, change mask
RTATTR: Final = struct.Struct("=HH")  # length, type
NLA_TYPE_MASK: Final = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
NLMSG_ALIGNTO: Final = 4
RTMGRP_LINK: Final = 1
IFLA_IFNAME: Final = 3
IFF_UP: Final = 0x1
IFNAMSIZ: Final = 16

# struct ifreq: name, then a 24-byte union (here the ifindex, or the flags)
IFREQ_INDEX: Final = struct.Struct("=16si20x")
IFREQ_FLAGS: Final = struct.Struct("=16sH22x")
SIOCGIFFLAGS: Final = 0x8913
SIOCGIFINDEX: Final = 0x8933


class NlMsgType(IntEnum):
    NOOP = 1
    ERROR = 2
    DONE = 3
    OVERRUN = 4
    NEWLINK = 16  # RTM_NEWLINK: created or changed
    DELLINK = 17  # RTM_DELLINK: deleted (or moved to another namespace)


@dataclass(frozen=True, slots=True)
class LinkEvent:
    """One RTM_NEWLINK / RTM_DELLINK notification."""

    deleted: bool
    ifindex: int
    name: str
    up: bool  # IFF_UP: administratively up


def _align4(n: int) -> int:
    return (n + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1)


def parse_link_messages(data: bytes) -> list[LinkEvent]:
    """The link events in one netlink datagram; other message types and damaged tails are skipped."""
    events: list[LinkEvent] = []
    pos, size = 0, len(data)
    while pos + NLMSG_HDR.size <= size:
        length, mtype, _flags, _seq, _port = NLMSG_HDR.unpack_from(data, pos)
        end = pos + length
        if length < NLMSG_HDR.size or end > size:
            break
        body = pos + NLMSG_HDR.size
        if mtype in (NlMsgType.NEWLINK, NlMsgType.DELLINK) and body + IFINFOMSG.size <= end:
            _family, _arphrd, ifindex, flags, _change = IFINFOMSG.unpack_from(data, body)
            name = ""
            attr = body + IFINFOMSG.size
            while attr + RTATTR.size <= end:
                alen, atype = RTATTR.unpack_from(data, attr)
                if alen < RTATTR.size or attr + alen > end:
                    break
                if atype & NLA_TYPE_MASK == IFLA_IFNAME:
                    raw = data[attr + RTATTR.size:attr + alen].split(b"\0", 1)[0]
                    name = raw.decode("utf-8", "replace")
                attr += _align4(alen)
            events.append(LinkEvent(deleted=mtype == NlMsgType.DELLINK, ifindex=ifindex, name=name,
                                    up=bool(flags & IFF_UP)))
        pos += _align4(length)
    return events


class LinkMonitor:
    """RTNETLINK link notifications, and name → (ifindex, up) look-ups, for one network namespace."""

    def __init__(self) -> None:
        try:
            self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_NONBLOCK,
                                       socket.NETLINK_ROUTE)
        except OSError as exc:
            raise LiveCaptureError(f"cannot open a NETLINK_ROUTE socket: {exc.strerror or exc}") from None
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, NETLINK_RCVBUF)
            self._sock.bind((0, RTMGRP_LINK))
        except OSError as exc:
            self._sock.close()
            raise LiveCaptureError(f"cannot subscribe to link notifications: {exc.strerror or exc}") from None
        self.overrun = False  # notifications were lost (ENOBUFS): the caller must look names up again

    def fileno(self) -> int:
        return self._sock.fileno()

    def read(self) -> list[LinkEvent]:
        """Every notification queued now (never blocks)."""
        events: list[LinkEvent] = []
        while True:
            try:
                data = self._sock.recv(NETLINK_READ)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                self.overrun = True
                continue
            if not data:
                return events
            events.extend(parse_link_messages(data))

    def lookup(self, name: str) -> tuple[int, bool] | None:
        """The interface's (ifindex, up) in this monitor's namespace, or None when there is none."""
        raw = name.encode()
        try:
            index = IFREQ_INDEX.unpack(fcntl.ioctl(self._sock.fileno(), SIOCGIFINDEX,
                                                   IFREQ_INDEX.pack(raw, 0)))[1]
            flags = IFREQ_FLAGS.unpack(fcntl.ioctl(self._sock.fileno(), SIOCGIFFLAGS,
                                                   IFREQ_FLAGS.pack(raw, 0)))[1]
        except OSError as exc:
            if exc.errno in (errno.ENODEV, errno.ENXIO):
                return None
            raise
        return int(index), bool(flags & IFF_UP)

    def close(self) -> None:
        self._sock.close()


def _valid_name(name: str) -> bool:
    raw = name.encode("utf-8", "replace")
    return 0 < len(raw) < IFNAMSIZ and name not in (".", "..") and not any(
        c in name for c in "/: \t\n\0")


class LiveCapture:
    """Frames received on one interface, by name, through a TPACKET_V3 ring; survives interface churn.

    Args:
        interface: the Linux interface name (followed across delete/re-create and renames).
        ring_blocks, block_size: the ring's geometry (block_size a multiple of the page size).
        block_timeout_ms: the kernel hands over a partly filled block after this long.
        promiscuous: put the interface into promiscuous mode while the capture is open.
        direction: "in" receives only frames arriving on the interface (PACKET_IGNORE_OUTGOING);
            "both" also those it sends.
        fanout_group: join this PACKET_FANOUT group (flowd.capture.fanout's program hashes each frame's
            addresses; fragments are not reassembled), so that several captures on the interface
            share its flows, every packet of a flow key going to the same capture.
        snaplen: bytes kept of each frame.
    """

    def __init__(self, interface: str, *, ring_blocks: int = 16, block_size: int = 4 << 20,
                 block_timeout_ms: int = 10, promiscuous: bool = False, direction: str = "in",
                 fanout_group: int | None = None, snaplen: int = 256) -> None:
        if not _valid_name(interface):
            raise LiveCaptureError(f"{interface!r}: not a valid interface name")
        self.interface = interface
        self.options = RingOptions(ring_blocks=ring_blocks, block_size=block_size,
                                   block_timeout_ms=block_timeout_ms, promiscuous=promiscuous,
                                   direction=direction, fanout_group=fanout_group, snaplen=snaplen)
        self.events: list[tuple[float, str]] = []  # (wall-clock time, message), oldest first
        self.on_event: Callable[[float, str], None] | None = None  # called with each new event
        self._ring: PacketRing | None = None
        self._retiring: list[tuple[float, PacketRing]] = []  # (close after, ring), detached rings
        self._pending: list[FrameBatch] = []  # frames of rings already closed, not yet returned
        self._up = False
        self._detached = ""  # why no ring is attached
        self._retry_at: float | None = None
        self._retry_wait = RETRY_FIRST
        self._closed_packets = 0
        self._closed_drops = 0
        self._closed = False
        self._waker: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._retire_after = max(RETIRE_MIN, RETIRE_BLOCK_TIMEOUTS * block_timeout_ms / 1000)
        self._epoll = select.epoll()
        try:
            self._monitor = LinkMonitor()  # before the look-up, so no change falls between the two
        except BaseException:
            self._epoll.close()
            raise
        try:
            found = self._monitor.lookup(interface)
            if found is None:
                raise LiveCaptureError(f"{interface}: no such network interface")
            ifindex, up = found
            self._ring = PacketRing(interface, ifindex, self.options)
        except BaseException:
            self._monitor.close()
            self._epoll.close()
            raise
        self._up = up
        self._epoll.register(self._monitor.fileno(), select.EPOLLIN)
        self._epoll.register(self._ring.fileno(), select.EPOLLIN)
        self._log(f"attached, ifindex {ifindex}" + ("" if up else ", link down"))

    # --- what the daemon shows --------------------------------------------------------------------

    @property
    def ifindex(self) -> int | None:
        """The index the ring is bound to (each frame's ifindex), None while detached."""
        return self._ring.ifindex if self._ring is not None else None

    @property
    def state(self) -> str:
        """``up``, ``down``, or ``detached: REASON``."""
        if self._closed:
            return "detached: closed"
        if self._ring is None:
            return f"detached: {self._detached}"
        return "up" if self._up else "down"

    def stats(self) -> tuple[int, int]:
        """(packets, drops) from PACKET_STATISTICS since the capture opened, over every ring it had.

        ``packets`` counts every frame the kernel offered the ring, the dropped ones included.
        """
        packets, drops = self._closed_packets, self._closed_drops
        for ring in self._rings():
            ring.update_statistics()
            packets += ring.packets
            drops += ring.drops
        return packets, drops

    # --- reading ----------------------------------------------------------------------------------

    def fileno(self) -> int:
        """An epoll descriptor, stable across re-attaches: readable when a block or a link event is ready."""
        return self._epoll.fileno()

    def read_blocks(self, account: RingAccount | None = None) -> FrameBatch | None:
        """Apply pending link events, then return the frames of every ready block (None if there are none).

        With ``account`` (the compiled live path) the ready blocks of open rings go to it instead when it
        takes them; the frames it did not take are returned.
        """
        if self._closed:
            return None
        ready = dict(self._epoll.poll(0))
        ring = self._ring
        if self._monitor.fileno() in ready:
            self._link_events()
        if ring is not None and ring is self._ring and ready.get(ring.fileno(), 0) & select.EPOLLERR:
            # ENETDOWN when the link went down or away: netlink says which; read the error so that
            # the descriptor stops polling readable.
            ring.pending_error()
        self._timers(time.monotonic())
        parts, self._pending = self._pending, []
        for ring in self._rings():
            if (batch := ring.take(account)) is not None:
                parts.append(batch)
        parts = [p for p in parts if len(p)]
        return concat_frames(parts) if parts else None

    def filling(self) -> bool:
        """Whether a ring's open block holds frames the kernel has not handed over yet (PacketRing.filling)."""
        return not self._closed and any(ring.filling() for ring in self._rings())

    def _rings(self) -> list[PacketRing]:
        """Every ring still mapped: the detached ones that wait for their last block, then the attached one."""
        return [ring for _, ring in self._retiring] + ([self._ring] if self._ring is not None else [])

    def next_deadline(self) -> float | None:
        """The time.monotonic() by which read_blocks must run again even if fileno() stays quiet."""
        times = [deadline for deadline, _ in self._retiring]
        if self._retry_at is not None:
            times.append(self._retry_at)
        return min(times) if times else None

    async def batches(self, account: RingAccount | None = None) -> AsyncIterator[FrameBatch]:
        """One FrameBatch per wake-up (every ready block), until close(); follows interface churn.

        With ``account``, blocks it takes go to it (see read_blocks), and a wake-up whose blocks it took
        all yields an empty batch.
        """
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()
        fd = self.fileno()
        loop.add_reader(fd, wake.set)
        self._waker = (loop, wake)
        timer: asyncio.TimerHandle | None = None
        try:
            while not self._closed:
                deadline = self.next_deadline()
                if deadline is not None:
                    timer = loop.call_later(max(0.0, deadline - time.monotonic()), wake.set)
                await wake.wait()
                wake.clear()
                if timer is not None:
                    timer.cancel()
                    timer = None
                batch = self.read_blocks(account)
                if batch is not None:
                    yield batch
                elif account is not None:
                    yield FrameBatch.empty()
        finally:
            if timer is not None:
                timer.cancel()
            if self._waker is not None:  # close() has not already removed the reader
                self._waker = None
                loop.remove_reader(fd)

    # --- churn ------------------------------------------------------------------------------------

    def _log(self, message: str) -> None:
        now = time.time()
        self.events.append((now, message))
        del self.events[:-EVENT_LOG_SIZE]
        log.info("%s: %s", self.interface, message)
        if self.on_event is not None:
            self.on_event(now, message)

    def _link_events(self) -> None:
        for event in self._monitor.read():
            self._apply(event)
        if self._monitor.overrun:
            self._monitor.overrun = False
            self._resync("link notifications lost")

    def _apply(self, event: LinkEvent) -> None:
        ring = self._ring
        if ring is not None and event.ifindex == ring.ifindex:
            if event.deleted:
                self._detach("interface deleted")
            elif event.name != self.interface:
                self._detach(f"renamed to {event.name}")
            else:
                self._set_up(event.up)
            return
        if event.deleted or event.name != self.interface:
            return
        if ring is not None:  # the name moved to another index without our seeing ours go
            self._detach("interface replaced")
        self._attach(event.ifindex, event.up)

    def _resync(self, why: str) -> None:
        """Apply what the kernel says about the name now (after lost notifications or a ring error)."""
        found = self._monitor.lookup(self.interface)
        ring = self._ring
        if found is None:
            if ring is not None:
                self._detach(f"interface gone ({why})")
            return
        ifindex, up = found
        if ring is not None and ring.ifindex == ifindex:
            self._set_up(up)
            return
        if ring is not None:
            self._detach("interface replaced")
        self._attach(ifindex, up)

    def _set_up(self, up: bool) -> None:
        if up != self._up:
            self._up = up
            self._log("link up" if up else "link down")

    def _attach(self, ifindex: int, up: bool) -> None:
        self._retry_at = None
        try:
            ring = PacketRing(self.interface, ifindex, self.options)
        except LiveCaptureError as exc:
            reason = str(exc).removeprefix(f"{self.interface}: ")
            if reason != self._detached:
                self._log(f"re-attach to ifindex {ifindex} failed: {reason}")
            self._detached = reason
            self._retry_at = time.monotonic() + self._retry_wait
            self._retry_wait = min(RETRY_MAX, self._retry_wait * 2)
            return
        self._ring = ring
        self._up = up
        self._detached = ""
        self._retry_wait = RETRY_FIRST
        self._epoll.register(ring.fileno(), select.EPOLLIN)
        self._log(f"re-attached, ifindex {ifindex}" + ("" if up else ", link down"))

    def _detach(self, reason: str) -> None:
        ring = self._ring
        if ring is None:
            return
        self._ring = None
        self._epoll.unregister(ring.fileno())
        self._retiring.append((time.monotonic() + self._retire_after, ring))
        self._detached = reason
        self._log(f"detached: {reason}")

    def _timers(self, now: float) -> None:
        finished = [(d, ring) for d, ring in self._retiring if d <= now]
        for item in finished:
            self._retiring.remove(item)
            ring = item[1]
            if (batch := ring.read()) is not None:
                self._pending.append(batch)
            self._close_ring(ring)
        if self._ring is None:
            if finished and self._retry_at is not None:
                self._retry_at = now  # an old ring may have held what the new one needs (a fanout group)
            if self._retry_at is not None and self._retry_at <= now:
                self._retry_at = None
                found = self._monitor.lookup(self.interface)
                if found is not None:
                    self._attach(*found)

    def _close_ring(self, ring: PacketRing) -> None:
        ring.close()
        self._closed_packets += ring.packets
        self._closed_drops += ring.drops

    # --- shutdown ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every ring, the link monitor and the epoll descriptor; batches() then ends."""
        if self._closed:
            return
        self._closed = True
        if self._waker is not None:
            loop, wake = self._waker
            self._waker = None
            loop.remove_reader(self._epoll.fileno())
            wake.set()
        for _, ring in self._retiring:
            self._close_ring(ring)
        self._retiring.clear()
        if self._ring is not None:
            self._close_ring(self._ring)
            self._ring = None
        self._detached = "closed"
        self._monitor.close()
        self._epoll.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
