"""IPFIX over TCP (RFC 7011 §10.4): one non-blocking connection per collector, with a bounded backlog.

No asyncio and no sleeping: every call takes ``now`` (the exporter's time base) and does only what
is possible without blocking, so the daemon calls it from its event loop (``fileno()`` and
``wants_write()`` say when the socket is worth watching) and batch mode calls it in a plain loop
(``flush()`` waits for the socket with select(), bounded, like flowd.export.udp does).

Connection life:

* ``send()`` queues messages; ``poll()`` (also run by ``send()``) connects when the collector is
  down and the backoff has passed, and writes what the socket takes.
* Every new connection starts with the framing's greeting (all templates, the options template
  and the options data, RFC 7011 §8), then the backlog in order: the collector never sees a data
  set before its template, whether the connection is the first or the tenth. The greeting is built
  when the first message after it is about to be written, and carries that message's export time,
  so the stream's times never jump (batch mode stamps messages with the capture's time).
* Each connection is a new Transport Session (RFC 7011 §10.4), so its sequence numbers start at 0:
  the greeting has sequence 0 and every message is renumbered, as it goes on the wire, with the
  data records written before it on this connection (§3.1). Messages dropped from the backlog
  while the connection is up still advance the count, so the collector sees the gap.
* A refused or failed connect, or a lost connection (EOF or a reset from the collector, a send
  error, TCP_USER_TIMEOUT), schedules the next attempt after ``Backoff`` (exponential, reset by
  a successful connect).

No loss within the backlog: a message stays in memory until the collector's TCP has acknowledged
every byte of it (the socket's unacknowledged count, SIOCOUTQ, read after each write and when the
connection dies). When a connection is lost, each message the collector had not fully
acknowledged is sent again, whole, on the next connection (a collector discards the partial
message at the end of a closed connection). So a collector that restarts loses nothing it had not
acknowledged; what its TCP acknowledged but the collector process never read (a crash with data in
its receive buffer) is gone, as with any IPFIX exporter, since IPFIX has no application-level
acknowledgement.

The backlog (messages not yet acknowledged) is bounded by ``BacklogLimit`` (bytes and/or
messages). When a new message would exceed it, the oldest messages not yet started on the wire are
dropped and counted exactly (messages, flow records, octets).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import ipaddress
import math
import os
import select
import socket
import struct
import termios
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final, Protocol, Self

from flowd.export.udp import Destination, ExportSocketError, resolve

SEND_BUFFER: Final = 1024 * 1024
USER_TIMEOUT_MS: Final = 30_000  # TCP_USER_TIMEOUT: give up on a collector that acknowledges nothing
CONNECT_TIMEOUT: Final = 10.0  # seconds a connect may stay in progress
_TCP_USER_TIMEOUT: Final = getattr(socket, "TCP_USER_TIMEOUT", 18)
_READ_CHUNK: Final = 4096


class Framing(Protocol):
    """What the sender must know about the messages it carries (flowd.export.ipfix.IpfixFraming)."""

    def greeting(self, *, export_time: int) -> bytes:
        """The message each connection starts with (sequence number 0)."""
        ...

    def export_time(self, message: bytes) -> int: ...

    def renumber(self, message: bytes, sequence: int) -> bytes:
        """The message with another header sequence number."""
        ...

    def data_records(self, message: bytes) -> int: ...

    def flow_records(self, message: bytes) -> int: ...


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before reconnect attempt n (n = 1, 2, ...): initial * factor**(n-1), at most ``maximum``."""

    initial: float = 1.0
    maximum: float = 60.0
    factor: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum or self.factor < 1:
            raise ValueError(f"backoff: need 0 < initial <= maximum and factor >= 1, got {self}")

    def delay(self, failures: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, failures - 1))


@dataclass(frozen=True, slots=True)
class BacklogLimit:
    """How much unacknowledged export the sender keeps while a collector is slow or away."""

    max_bytes: int | None = 16 * 1024 * 1024
    max_messages: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_bytes", "max_messages"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"backlog {name.replace('_', ' ')}: expected >= 1 or None, got {value}")

    def exceeded(self, messages: int, octets: int) -> bool:
        return ((self.max_bytes is not None and octets > self.max_bytes)
                or (self.max_messages is not None and messages > self.max_messages))


class LinkState(Enum):
    DOWN = "down"
    CONNECTING = "connecting"
    UP = "up"


@dataclass(slots=True)
class TcpStats:
    """Counters of one collector connection (names as in ``stats_rows()``)."""

    messages_sent: int = 0  # messages fully written to the socket (resends included, greetings not)
    greetings_sent: int = 0  # connection greetings (templates and options) fully written
    bytes_sent: int = 0
    messages_acked: int = 0  # messages the collector's TCP acknowledged in full
    messages_resent: int = 0  # messages written again after a connection was lost
    messages_dropped: int = 0  # backlog overflow (and messages left at close)
    records_dropped: int = 0  # flow records in the dropped messages
    bytes_dropped: int = 0
    connects: int = 0
    connect_failures: int = 0
    disconnects: int = 0
    last_error: str = ""
    connected_since: float | None = None  # wall time the current connection came up (None: not up)
    last_export: float | None = None  # wall time the collector last acknowledged a whole message

    def cleared(self) -> TcpStats:
        """`clear services accounting statistics`: counters to zero, the connection's facts kept."""
        return TcpStats(connected_since=self.connected_since, last_export=self.last_export)


@dataclass(slots=True)
class _Entry:
    data: bytes
    flow_records: int
    greeting: bool = False  # regenerated for every connection; never kept across one


class TcpSender:
    """IPFIX messages to one collector over TCP; see the module docstring."""

    def __init__(self, destination: Destination, framing: Framing, *, limit: BacklogLimit = BacklogLimit(),
                 backoff: Backoff = Backoff(), connect_timeout: float = CONNECT_TIMEOUT) -> None:
        if not 0 < destination.port < 65536:
            raise ExportSocketError(f"flow server {destination}: port must be 1..65535")
        if not 0 <= destination.dscp <= 63:
            raise ExportSocketError(f"flow server {destination}: dscp must be 0..63, got {destination.dscp}")
        self.destination = destination
        self.framing = framing
        self.limit = limit
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.stats = TcpStats()
        self.state = LinkState.DOWN
        self._family, self._addr = resolve(destination, socket.SOCK_STREAM)
        self._source = _source_address(destination, self._family)
        self._sock: socket.socket | None = None
        self._pending: deque[_Entry] = deque()  # not (fully) written on the current connection
        self._inflight: deque[_Entry] = deque()  # written, not yet acknowledged
        self._offset = 0  # octets of _pending[0] already written
        self._octets = 0  # octets held in _pending and _inflight, greetings excluded
        self._count = 0  # messages held, greetings excluded
        self._written = 0  # octets written on the current connection
        self._released = 0  # octets of the current connection known acknowledged and released
        self._failures = 0  # consecutive failed connects / lost connections
        self._next_attempt = -math.inf
        self._connect_started = 0.0
        self._greeted = False  # the current connection's greeting is queued or written
        self._sequence = 0  # data records written (or dropped) on the current connection
        self._closed = False

    # -- public API ------------------------------------------------------------------------------

    def send(self, messages: Sequence[bytes], now: float) -> None:
        """Queue messages (dropping the oldest unsent ones past the limit), then make progress."""
        if self._closed:
            raise RuntimeError("TcpSender.send() after close()")
        for data in messages:
            self._pending.append(_Entry(data, self.framing.flow_records(data)))
            self._octets += len(data)
            self._count += 1
            self._enforce_limit()
        self.poll(now)

    def poll(self, now: float) -> None:
        """Connect if due, notice a lost connection, write what the socket takes, release acked data."""
        if self._closed:
            return
        if self.state is LinkState.DOWN and now >= self._next_attempt:
            self._connect(now)
        if self.state is LinkState.CONNECTING:
            self._finish_connect(now)
        if self.state is LinkState.UP:
            if self._peer_gone(now):
                return
            self._write(now)
            if self.state is LinkState.UP:
                self._release(self._unacked(), now)

    def next_deadline(self) -> float | None:
        """When ``poll()`` has timed work to do (a reconnect, a connect timeout); None when up."""
        if self._closed or self.state is LinkState.UP:
            return None
        if self.state is LinkState.CONNECTING:
            return self._connect_started + self.connect_timeout
        return self._next_attempt

    def fileno(self) -> int:
        """The socket to watch (-1 when there is none)."""
        return self._sock.fileno() if self._sock is not None else -1

    def wants_write(self) -> bool:
        """Whether the socket should be watched for writability (connecting, or data waiting)."""
        return self.state is LinkState.CONNECTING or (self.state is LinkState.UP and bool(self._pending))

    def unacknowledged(self) -> tuple[int, int]:
        """(messages, octets) held until the collector acknowledges them (greetings excluded)."""
        return self._count, self._octets

    def flush(self, now: float, timeout: float) -> bool:
        """Block (select, at most ``timeout`` s of real time) until every message is acknowledged.

        For batch mode and shutdown; ``now`` is the time base for reconnect decisions and stays fixed.
        Returns whether the backlog is empty.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.poll(now)
            if not self._count:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._sock is None:
                return False
            writable = [self._sock] if self.wants_write() else []
            select.select([self._sock], writable, [self._sock], min(remaining, 0.01))

    def stats_rows(self) -> list[dict[str, object]]:
        """One plain dict for this collector (the control protocol's shape, as UdpSender's rows).

        ``failures`` counts what went wrong with this collector: connection attempts refused or timed
        out, connections lost, and messages dropped from the backlog, so it grows while the collector
        is down even before the backlog overflows.
        """
        dest, st = self.destination, self.stats
        held = sum(e.flow_records for e in (*self._inflight, *self._pending) if not e.greeting)
        return [{
            "flow_server": str(dest), "host": dest.host, "port": dest.port, "transport": "tcp",
            "source_address": dest.source_address, "state": self.state.value,
            "connected_since": st.connected_since, "reconnects": max(0, st.connects - 1),
            "last_export": st.last_export, "backlog_records": held,
            "messages_sent": st.messages_sent, "greetings_sent": st.greetings_sent, "bytes_sent": st.bytes_sent,
            "messages_acked": st.messages_acked, "messages_resent": st.messages_resent,
            "failures": st.messages_dropped + st.connect_failures + st.disconnects,
            "messages_dropped": st.messages_dropped, "records_dropped": st.records_dropped,
            "bytes_dropped": st.bytes_dropped, "backlog_messages": self._count, "backlog_bytes": self._octets,
            "connects": st.connects, "connect_failures": st.connect_failures, "disconnects": st.disconnects,
            "last_error": st.last_error,
        }]

    def close(self, now: float | None = None, timeout: float = 0.0) -> None:
        """Optionally flush for up to ``timeout`` s, then close; what is left is counted as dropped."""
        if self._closed:
            return
        if timeout > 0 and now is not None:
            self.flush(now, timeout)
        if self._sock is not None:
            self._release(self._unacked(), now)
        for entry in (*self._inflight, *self._pending):
            if not entry.greeting:
                self._count_drop(entry)
        self._pending.clear()
        self._inflight.clear()
        self._octets = self._count = 0
        self._drop_socket()
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- connection ------------------------------------------------------------------------------

    def _connect(self, now: float) -> None:
        sock = socket.socket(self._family, socket.SOCK_STREAM)
        try:
            _configure(sock, self._family, self.destination.dscp, self._source)
        except OSError as exc:  # e.g. the source address is not (yet) on this host
            sock.close()
            self._failed(now, exc, connecting=True)
            return
        self._sock = sock
        self._connect_started = now
        code = sock.connect_ex(self._addr)
        if code in (0, errno.EISCONN):
            self._up(now)
        elif code in (errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
            self.state = LinkState.CONNECTING
        else:
            self._failed(now, OSError(code, _strerror(code)), connecting=True)

    def _finish_connect(self, now: float) -> None:
        assert self._sock is not None
        _, writable, _ = select.select([], [self._sock], [], 0)
        if writable:
            code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                self._failed(now, OSError(code, _strerror(code)), connecting=True)
            else:
                self._up(now)
        elif now - self._connect_started >= self.connect_timeout:
            self._failed(now, OSError(errno.ETIMEDOUT, "connect timed out"), connecting=True)

    def _up(self, now: float) -> None:
        """A new connection (a new transport session): the greeting goes before its first message."""
        self.state = LinkState.UP
        self.stats.connects += 1
        self.stats.connected_since = now
        self._failures = 0
        self._written = self._released = 0
        self._offset = 0
        self._greeted = False
        self._sequence = 0

    def _next_on_wire(self) -> _Entry:
        """``_pending[0]``, ready to start on the wire: the greeting first, messages renumbered.

        Renumbering is idempotent until the message's first octet is written (``_write`` then
        advances the connection's count), so a full socket buffer can make it run twice.
        """
        if not self._greeted:
            greeting = self.framing.greeting(export_time=self.framing.export_time(self._pending[0].data))
            self._pending.appendleft(_Entry(greeting, 0, greeting=True))
            self._greeted = True
        head = self._pending[0]
        head.data = self.framing.renumber(head.data, self._sequence)
        return head

    def _peer_gone(self, now: float) -> bool:
        """Whether the collector closed or reset the connection (it never sends us data)."""
        assert self._sock is not None
        readable, _, _ = select.select([self._sock], [], [], 0)
        if not readable:
            return False
        try:
            data = self._sock.recv(_READ_CHUNK, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError as exc:
            self._lost(now, exc)
            return True
        if data:
            return False  # a collector has nothing to say; ignore it
        self._lost(now, OSError(errno.ECONNRESET, "collector closed the connection"))
        return True

    def _write(self, now: float) -> None:
        assert self._sock is not None
        while self._pending:
            head = self._next_on_wire() if self._offset == 0 else self._pending[0]
            try:
                n = self._sock.send(memoryview(head.data)[self._offset:], socket.MSG_NOSIGNAL)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(now, exc)
                return
            if self._offset == 0 and n:
                self._sequence = (self._sequence + self.framing.data_records(head.data)) % (1 << 32)
            self._offset += n
            self._written += n
            self.stats.bytes_sent += n
            if self._offset < len(head.data):
                return  # the socket buffer is full
            self._pending.popleft()
            self._inflight.append(head)
            self._offset = 0
            if head.greeting:
                self.stats.greetings_sent += 1
            else:
                self.stats.messages_sent += 1

    def _unacked(self) -> int:
        """Octets written on this connection that the collector has not acknowledged (SIOCOUTQ)."""
        assert self._sock is not None
        try:
            raw = fcntl.ioctl(self._sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0")
        except OSError:
            return self._written - self._released  # unknown: assume nothing more was acknowledged
        return int(struct.unpack("i", raw)[0])

    def _release(self, unacked: int, now: float | None) -> None:
        """Forget messages whose every octet the collector acknowledged."""
        acked = self._written - max(0, unacked)
        while self._inflight and self._released + len(self._inflight[0].data) <= acked:
            entry = self._inflight.popleft()
            self._released += len(entry.data)
            if not entry.greeting:
                self._octets -= len(entry.data)
                self._count -= 1
                self.stats.messages_acked += 1
                if now is not None:
                    self.stats.last_export = now

    def _lost(self, now: float, exc: OSError) -> None:
        """The connection died: keep what was acknowledged, resend the rest on the next one."""
        self._release(self._unacked(), now)
        resend = [e for e in self._inflight if not e.greeting]
        self.stats.messages_resent += len(resend)
        rest = [e for e in self._pending if not e.greeting]
        self._pending = deque(resend + rest)
        self._inflight.clear()
        self._offset = 0
        self.stats.disconnects += 1
        self._failed(now, exc, connecting=False)

    def _failed(self, now: float, exc: OSError, *, connecting: bool) -> None:
        if connecting:
            self.stats.connect_failures += 1
        self.stats.last_error = _describe(exc)
        self.stats.connected_since = None
        self._drop_socket()
        self.state = LinkState.DOWN
        self._failures += 1
        self._next_attempt = now + self.backoff.delay(self._failures)
        self._pending = deque(e for e in self._pending if not e.greeting)
        self._offset = 0

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    # -- the backlog bound -----------------------------------------------------------------------

    def _enforce_limit(self) -> None:
        """Drop the oldest messages not yet on the wire until the backlog fits the limit."""
        while self.limit.exceeded(self._count, self._octets):
            i = self._oldest_droppable()
            if i is None:
                return  # only messages already on the wire are left: they stay until acknowledged
            entry = self._pending[i]
            del self._pending[i]
            self._count -= 1
            self._octets -= len(entry.data)
            self._count_drop(entry)
            if self.state is LinkState.UP and self._greeted:  # the collector sees the gap
                self._sequence = (self._sequence + self.framing.data_records(entry.data)) % (1 << 32)

    def _oldest_droppable(self) -> int | None:
        for i, entry in enumerate(self._pending):
            if entry.greeting or (i == 0 and self._offset and self.state is LinkState.UP):
                continue  # a greeting, or partly written: dropping it would corrupt the stream
            return i
        return None

    def _count_drop(self, entry: _Entry) -> None:
        self.stats.messages_dropped += 1
        self.stats.records_dropped += entry.flow_records
        self.stats.bytes_dropped += len(entry.data)


def _source_address(dest: Destination, family: socket.AddressFamily) -> str | None:
    """The checked source address (same family as the collector), or None."""
    if dest.source_address is None:
        return None
    try:
        ip = ipaddress.ip_address(dest.source_address)
    except ValueError:
        raise ExportSocketError(
            f"flow server {dest}: source address {dest.source_address!r} is not an IP address") from None
    want = 4 if family == socket.AF_INET else 6
    if ip.version != want:
        raise ExportSocketError(f"flow server {dest}: source address {ip} is IPv{ip.version}, "
                                f"the flow server is IPv{want}")
    return str(ip)


def _configure(sock: socket.socket, family: socket.AddressFamily, dscp: int, source: str | None) -> None:
    """Non-blocking, no Nagle delay, bounded unacknowledged time, DSCP, source address."""
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    with contextlib.suppress(OSError):  # not Linux: keepalive still notices a dead peer, only later
        sock.setsockopt(socket.IPPROTO_TCP, _TCP_USER_TIMEOUT, USER_TIMEOUT_MS)
    if dscp:
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dscp << 2)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, dscp << 2)
    if source is not None:
        sock.bind((source, 0))


def _strerror(code: int) -> str:
    try:
        return os.strerror(code)
    except ValueError:
        return f"error {code}"


def _describe(exc: OSError) -> str:
    return f"{errno.errorcode.get(exc.errno or 0, 'E?')}: {exc.strerror or exc}"
