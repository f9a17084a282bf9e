"""Sending export datagrams over UDP to every flow server, counting every datagram that is lost.

One connected, non-blocking UDP socket per flow server (IPv4 or IPv6). Connecting lets the kernel
report ICMP errors for that collector; on Linux each socket also sets IP_RECVERR / IPV6_RECVERR, so
every ICMP error (port unreachable from a collector that is down, host or network unreachable
from a router) is queued on the socket's error queue and counted one by one instead of surfacing as
a single ECONNREFUSED on some later send. Network errors are never raised: they are counted.
Datagrams go to the kernel up to 1024 at a time through sendmmsg() when flowd/native/_send.c is built
(one socket.send() each otherwise, or with FLOWD_NO_FASTPATH=1); either way in order, stopping at the
first one refused, so everything below holds for both.

Per-destination counters (``DestinationStats``, and the same names in ``UdpSender.stats_rows()``,
which feeds `show services accounting errors` "Export packet failures" and the batch summary):

* ``datagrams_sent`` / ``bytes_sent``: datagrams the kernel accepted for this flow server.
* ``failures``: datagrams known lost, the sum of the four kinds below:
* ``refused``: ICMP port unreachable came back (ECONNREFUSED): nothing listens on the port.
* ``unreachable``: no route, or ICMP host/network unreachable (ENETUNREACH, EHOSTUNREACH, ENETDOWN,
  EHOSTDOWN, EADDRNOTAVAIL).
* ``buffer_full``: the socket's send buffer stayed full (EAGAIN) past the wait bound.
* ``other``: any other OSError (EMSGSIZE, EPERM from a local firewall, ...); ``last_error`` keeps the
  most recent message of any kind.

An ICMP error refers to a datagram already counted in ``datagrams_sent``: that datagram was sent,
then refused, and is counted in both. The kernel also fails the *next* send on that socket with the
pending error; that datagram is sent again (up to SEND_ATTEMPTS tries), so one collector's refusal
never costs a second datagram. ICMP errors that arrive after ``send()`` returned (a remote collector
answers within a round trip) are collected at the next ``send()``, ``poll_errors()``,
``stats_rows()`` or ``close()``. Without IP_RECVERR the kernel keeps only the latest ICMP error per
socket (read through SO_ERROR), so ``refused`` can then undercount a burst from a remote collector.

A full send buffer: with ``wait_limit`` > 0 (batch mode) the sender waits in select() for the socket
to become writable, at most ``wait_limit`` seconds per ``send()`` call and destination, then counts
each datagram that still does not fit; the daemon passes 0 so the event loop never blocks.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from flowd.model.record import Frozen, Record
from flowd.native import compiled

# sendmmsg(): many datagrams per system call (flowd/native/_send.c); None: one socket.send() each.
_SEND_DATAGRAMS: Final = compiled("send_datagrams", "flowd.native._send")
SENDS_IN_BATCHES: Final = _SEND_DATAGRAMS is not None  # and with the interpreter lock released

# Linux values; Python 3.11's socket module does not export these names.
_IP_RECVERR: Final = getattr(socket, "IP_RECVERR", 11)
_IPV6_RECVERR: Final = getattr(socket, "IPV6_RECVERR", 25)
_SO_SNDBUFFORCE: Final = getattr(socket, "SO_SNDBUFFORCE", 32)
_LINUX: Final = sys.platform.startswith("linux")

SEND_BUFFER: Final = 4 * 1024 * 1024  # bytes; the kernel caps it at net.core.wmem_max unless root
WAIT_LIMIT: Final = 1.0  # seconds per send() call and destination spent waiting for buffer space
SEND_ATTEMPTS: Final = 3  # tries per datagram when a pending ICMP error (already counted) fails a send

# struct sock_extended_err (linux/errqueue.h): ee_errno, ee_origin, ee_type, ee_code, pad, info, data.
_SOCK_EXTENDED_ERR: Final = struct.Struct("=IBBBBII")


class FailureKind(Enum):
    """Why a datagram to a flow server was lost; values are the stats names."""

    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    BUFFER_FULL = "buffer_full"
    OTHER = "other"


_KIND_BY_ERRNO: Final = {
    errno.ECONNREFUSED: FailureKind.REFUSED,
    errno.ENETUNREACH: FailureKind.UNREACHABLE,
    errno.EHOSTUNREACH: FailureKind.UNREACHABLE,
    errno.ENETDOWN: FailureKind.UNREACHABLE,
    errno.EHOSTDOWN: FailureKind.UNREACHABLE,
    errno.EADDRNOTAVAIL: FailureKind.UNREACHABLE,
    errno.EAGAIN: FailureKind.BUFFER_FULL,
    errno.ENOBUFS: FailureKind.BUFFER_FULL,
}


# Errors the kernel reports for ICMP messages about earlier datagrams (pending on the socket).
_ICMP_ERRNOS: Final = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                                 errno.EHOSTDOWN, errno.EPROTO, errno.EMSGSIZE})


class ExportSocketError(Exception):
    """A flow server's socket cannot be set up (bad address, source address not bindable)."""


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Destination(Frozen):
    """One flow server: where to send, and optionally from which local address and with which DSCP."""

    host: str
    port: int
    source_address: str | None = None
    dscp: int = 0  # flow-server dscp (0..63), written into the IPv4 ToS / IPv6 traffic class

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(slots=True, eq=False, repr=False)
class DestinationStats(Record):
    """Counters of one flow server (see the module docstring for what each one means)."""

    datagrams_sent: int = 0
    bytes_sent: int = 0
    failures: int = 0
    by_kind: dict[FailureKind, int] = field(default_factory=lambda: dict.fromkeys(FailureKind, 0))
    last_error: str = ""

    def fail(self, kind: FailureKind, reason: str, count: int = 1) -> None:
        self.failures += count
        self.by_kind[kind] += count
        self.last_error = reason


class UdpSender:
    """Connected non-blocking UDP sockets to a set of flow servers; every datagram goes to all."""

    def __init__(self, destinations: Sequence[Destination], *, wait_limit: float = WAIT_LIMIT,
                 send_buffer: int = SEND_BUFFER) -> None:
        self.destinations: tuple[Destination, ...] = tuple(destinations)
        self.stats: tuple[DestinationStats, ...] = tuple(DestinationStats() for _ in self.destinations)
        self.wait_limit = wait_limit
        self._socks: list[socket.socket] = []
        self._addrs: list[tuple[object, ...]] = []
        self._connected: list[bool] = []
        self._errqueue: list[bool] = []
        self._closed = False
        try:
            for dest in self.destinations:
                self._open(dest, send_buffer)
        except BaseException:
            self.close()
            raise

    # -- setup ---------------------------------------------------------------------------------

    def _open(self, dest: Destination, send_buffer: int) -> None:
        if not 0 < dest.port < 65536:
            raise ExportSocketError(f"flow server {dest}: port must be 1..65535")
        if not 0 <= dest.dscp <= 63:
            raise ExportSocketError(f"flow server {dest}: dscp must be 0..63, got {dest.dscp}")
        family, addr = resolve(dest)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            recverr = _configure(sock, family, dest, send_buffer)
        except BaseException:
            sock.close()
            raise
        self._socks.append(sock)
        self._addrs.append(addr)
        self._errqueue.append(recverr)
        self._connected.append(self._connect(len(self._socks) - 1) is None)

    def _connect(self, i: int) -> OSError | None:
        """Connect socket i to its flow server; a routing failure is counted at send time, not fatal."""
        try:
            self._socks[i].connect(self._addrs[i])
        except OSError as exc:
            self.stats[i].last_error = _describe(exc)
            return exc
        return None

    # -- sending -------------------------------------------------------------------------------

    def send(self, datagrams: Sequence[bytes]) -> None:
        """Send every datagram to every flow server; network errors are counted, never raised."""
        self._require_open()
        if not datagrams:
            return
        for i in range(len(self._socks)):
            self._drain_errors(i)
            if not self._connected[i]:
                exc = self._connect(i)
                if exc is not None:
                    self.stats[i].fail(_kind(exc), _describe(exc), len(datagrams))
                    continue
                self._connected[i] = True
            deadline = time.monotonic() + self.wait_limit
            start = 0
            while start < len(datagrams):
                done, error = self._send_run(i, datagrams, start)
                start += done
                if error is not None:
                    self._send_one(i, datagrams[start], deadline, error)
                    start += 1
            self._drain_errors(i)

    def _require_open(self) -> None:
        if self._closed:
            raise RuntimeError("UdpSender.send() after close()")

    def _send_run(self, i: int, datagrams: Sequence[bytes], start: int) -> tuple[int, OSError | None]:
        """Send datagrams from ``start`` on in one tight loop until one fails (the compiled loop: at most
        its batch); return how many went and the error of the one that did not (``_send_one`` takes it
        from there)."""
        st = self.stats[i]
        error: OSError | None = None
        if _SEND_DATAGRAMS is not None:
            done, octets, code = _SEND_DATAGRAMS(self._socks[i].fileno(), datagrams, start)
            if code:
                error = OSError(code, os.strerror(code))  # the errno's subclass (BlockingIOError, ...)
        else:
            send = self._socks[i].send
            done = octets = 0
            try:
                for data in datagrams[start:] if start else datagrams:
                    octets += send(data)
                    done += 1
            except OSError as exc:
                error = exc
        st.datagrams_sent += done
        st.bytes_sent += octets
        return done, error

    def _send_one(self, i: int, data: bytes, deadline: float, error: OSError | None = None) -> None:
        """Send one datagram, waiting for buffer space and retrying after pending ICMP errors; ``error``
        is what a first attempt already raised."""
        sock, st = self._socks[i], self.stats[i]
        for _ in range(SEND_ATTEMPTS):
            if error is None:
                try:
                    sent = sock.send(data)
                except OSError as exc:
                    error = exc
                else:
                    st.datagrams_sent += 1
                    st.bytes_sent += sent
                    return
            retry = self._retry(i, error, deadline)
            error = None
            if not retry:
                return
        st.fail(FailureKind.OTHER, f"gave up after {SEND_ATTEMPTS} attempts: {st.last_error}")

    def _retry(self, i: int, exc: OSError, deadline: float) -> bool:
        """Whether a datagram whose send raised ``exc`` is worth another attempt; count it lost if not."""
        st = self.stats[i]
        if isinstance(exc, BlockingIOError):
            if self._wait_writable(self._socks[i], deadline):
                return True
            st.fail(FailureKind.BUFFER_FULL, _describe(exc))
            return False
        # A pending ICMP error about an earlier datagram fails this send. With IP_RECVERR it is also
        # queued and the drain counts it; without, ECONNREFUSED (which a UDP send never reports for
        # itself) is the only sign. Either way this datagram is retried.
        pending = self._drain_errors(i)
        if not self._errqueue[i] and exc.errno == errno.ECONNREFUSED:
            st.fail(FailureKind.REFUSED, f"{_describe(exc)} (reported by ICMP)")
            pending += 1
        if pending and exc.errno in _ICMP_ERRNOS:
            return True
        st.fail(_kind(exc), _describe(exc))
        return False

    def _wait_writable(self, sock: socket.socket, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        _, writable, _ = select.select([], [sock], [], remaining)
        return bool(writable)

    def _drain_errors(self, i: int) -> int:
        """Count the ICMP errors reported on socket i since the last look; return how many."""
        sock, st, n = self._socks[i], self.stats[i], 0
        if not self._errqueue[i]:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)  # reads and clears it
            if code:
                st.fail(_kind(OSError(code, "")), f"{_describe(OSError(code, os.strerror(code)))} "
                        "(reported by ICMP)")
            return 1 if code else 0
        while True:
            try:
                _, ancdata, _, _ = sock.recvmsg(1, 512, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
            except OSError:  # EAGAIN: the queue is empty
                return n
            n += 1
            code = errno.ECONNREFUSED
            for _level, _type, payload in ancdata:
                if len(payload) >= _SOCK_EXTENDED_ERR.size:
                    code = _SOCK_EXTENDED_ERR.unpack_from(payload)[0]
            st.fail(_kind(OSError(code, "")),
                    f"{_describe(OSError(code, os.strerror(code)))} (reported by ICMP)")

    def poll_errors(self, timeout: float = 0.0) -> None:
        """Count ICMP errors that arrived since the last send, waiting up to ``timeout`` for one."""
        if timeout > 0 and self._socks:
            poller = select.poll()
            for sock in self._socks:
                poller.register(sock, select.POLLERR)
            poller.poll(timeout * 1000)
        for i in range(len(self._socks)):
            self._drain_errors(i)

    # -- reporting and teardown ----------------------------------------------------------------

    def stats_rows(self) -> list[dict[str, object]]:
        """One plain dict per flow server (the control protocol's shape), current as of this call."""
        if self._socks:
            self.poll_errors()
        return [
            {"flow_server": str(dest), "host": dest.host, "port": dest.port,
             "source_address": dest.source_address, "datagrams_sent": st.datagrams_sent,
             "bytes_sent": st.bytes_sent, "failures": st.failures,
             **{kind.value: st.by_kind[kind] for kind in FailureKind}, "last_error": st.last_error}
            for dest, st in zip(self.destinations, self.stats, strict=True)
        ]

    def close(self) -> None:
        """Collect the last ICMP errors, then close every socket (idempotent)."""
        for i in range(len(self._socks)):
            self._drain_errors(i)
        for sock in self._socks:
            sock.close()
        self._socks.clear()
        self._closed = True

    def __enter__(self) -> UdpSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def resolve(dest: Destination, kind: socket.SocketKind = socket.SOCK_DGRAM
            ) -> tuple[socket.AddressFamily, tuple[object, ...]]:
    """The address family and socket address of a flow server (UDP, or TCP with ``SOCK_STREAM``)."""
    try:  # the host is an IP address (the configuration checks it): as bytes, it skips the IDNA codec's import
        infos = socket.getaddrinfo(dest.host.encode(), dest.port, socket.AF_UNSPEC, kind, 0, socket.AI_NUMERICSERV)
    except socket.gaierror as exc:
        raise ExportSocketError(f"flow server {dest}: cannot resolve {dest.host!r}: {exc.strerror}") from None
    family, _, _, _, addr = infos[0]
    return family, tuple(addr)


def _configure(sock: socket.socket, family: socket.AddressFamily, dest: Destination,
               send_buffer: int) -> bool:
    """Non-blocking, big send buffer, DSCP, source address; return whether IP_RECVERR is on."""
    sock.setblocking(False)
    _raise_send_buffer(sock, send_buffer)
    recverr = False
    if _LINUX:
        level, opt = ((socket.IPPROTO_IP, _IP_RECVERR) if family == socket.AF_INET
                      else (socket.IPPROTO_IPV6, _IPV6_RECVERR))
        try:
            sock.setsockopt(level, opt, 1)
            recverr = True
        except OSError:
            pass
    if dest.dscp:
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, dest.dscp << 2)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, dest.dscp << 2)
    if dest.source_address is not None:
        _bind_source(sock, family, dest)
    return recverr


def _bind_source(sock: socket.socket, family: socket.AddressFamily, dest: Destination) -> None:
    source = dest.source_address or ""
    try:
        ip = ipaddress.ip_address(source)
    except ValueError:
        raise ExportSocketError(
            f"flow server {dest}: source address {source!r} is not an IP address") from None
    want = 4 if family == socket.AF_INET else 6
    if ip.version != want:
        raise ExportSocketError(
            f"flow server {dest}: source address {source} is IPv{ip.version}, the flow server is IPv{want}")
    try:
        sock.bind((source, 0))
    except OSError as exc:
        raise ExportSocketError(
            f"flow server {dest}: cannot bind source address {source}: {exc.strerror}") from None


def _raise_send_buffer(sock: socket.socket, size: int) -> None:
    """Ask for ``size`` bytes of send buffer; as root, past net.core.wmem_max (SO_SNDBUFFORCE)."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
    if _LINUX and sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < size:
        with contextlib.suppress(OSError):  # unprivileged: keep what wmem_max allows
            sock.setsockopt(socket.SOL_SOCKET, _SO_SNDBUFFORCE, size)


def _kind(exc: OSError) -> FailureKind:
    return _KIND_BY_ERRNO.get(exc.errno or 0, FailureKind.OTHER)


def _describe(exc: OSError) -> str:
    return f"{errno.errorcode.get(exc.errno or 0, 'E?')}: {exc.strerror or exc}"
