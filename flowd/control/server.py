"""The control socket: an asyncio Unix-socket server that answers NDJSON requests from flowcli and scripts.

Who may do what (SO_PEERCRED, and SO_PEERGROUPS for the peer's groups as they were at connect
time): root and the daemon's own user may call every method. Everyone else who can open the socket
(mode 0660: its owner and its group, which is `flowd control read-group` when one is configured)
may call the show methods, provided they belong to the read group or the admin group; the `clear`
methods need membership in `flowd control admin-group`. A refused call gets a ``permission-denied``
reply. Opening the socket needs its group, so admins belong to both groups (`flowd
--install-service --admin USER` does that); the daemon warns at start about admins who do not.

The socket gets its mode and group before it even appears at its path (flowd/control/socketfile.py
binds it in a private directory and renames it into place), so no peer ever connects through a wider
mode than 0660, and nobody can make the daemon chmod another file by swapping the path.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import pwd
import socket
import struct
from collections.abc import Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from flowd.control import methods
from flowd.control.admission import DEFAULT_LIMITS, Admission, Limits
from flowd.control.protocol import (
    MAX_LINE,
    ErrorCode,
    ProtocolError,
    RequestId,
    Response,
    decode_request,
    encode_chunks,
    encode_end,
    encode_head,
    encode_response,
)
from flowd.control.rpcs import RPCS
from flowd.control.socketfile import bind_restricted, check_path
from flowd.control.streamed import Streamed
from flowd.model.clock import Clock
from flowd.runtime.log import Throttle
from flowd.runtime.probe import Probe

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
PEERCRED = struct.Struct("3i")  # pid, uid, gid
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; Python 3.11 lacks the name
PEERGROUPS_BUFFER = 1024  # bytes (256 groups): the most Python's getsockopt will read
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is on the other end of a connection, as the kernel reports it."""

    pid: int
    uid: int
    gid: int
    supplementary: frozenset[int] | None = None  # None: read from /proc when asked

    def groups(self) -> set[int]:
        """The peer's primary and supplementary groups."""
        gids = {self.gid}
        if self.supplementary is not None:
            return gids | self.supplementary
        with contextlib.suppress(OSError):  # a kernel without SO_PEERGROUPS: ask /proc while the peer lives
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith("Groups:"):
                        gids.update(int(g) for g in line.split()[1:])
        return gids


def peer_groups(sock: socket.socket) -> frozenset[int] | None:
    """The supplementary groups the peer had when it connected (SO_PEERGROUPS).

    None when the kernel lacks SO_PEERGROUPS or the peer has more groups than fit the buffer.
    """
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, SO_PEERGROUPS, PEERGROUPS_BUFFER)
    except OSError:  # ENOPROTOOPT: kernel < 4.13; ERANGE: more than 256 groups
        return None
    return frozenset(struct.unpack(f"{len(raw) // 4}I", raw))


def peer_of(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
    pid, uid, gid = PEERCRED.unpack(raw)
    return Peer(pid, uid, gid, peer_groups(sock))


def _gid(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        log.warning("control group %r does not exist; only root may use what it guards", name)
        return -1


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


class ControlServer:
    """Serve the control socket while the daemon runs (an async context manager)."""

    def __init__(self, path: str, probe: Probe, clock: Clock, *, read_group: str | None = None,
                 admin_group: str | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
        self.path = path
        self.probe = probe
        self.clock = clock
        self.limits = limits
        self.admission = Admission(limits)
        self.throttle = Throttle()
        self._refusing = 0  # refused connections waiting for their first request
        self.read_gid = _gid(read_group)
        self.admin_gid = _gid(admin_group)
        self.admin_group = admin_group
        self.read_group = read_group
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ControlServer:
        path = Path(self.path)
        check_path(path)
        if path.is_socket():
            with socket.socket(socket.AF_UNIX) as probe_sock:
                try:
                    probe_sock.connect(self.path)
                except OSError:
                    pass  # stale socket of a daemon that died: the new one replaces it
                else:
                    raise OSError(f"another flowd is already listening on {self.path}")
        sock = bind_restricted(path, SOCKET_MODE, self._socket_gid())
        try:
            self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_LINE)
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
            raise
        log.info("control socket listening on %s (mode %04o, group %s)", self.path, SOCKET_MODE,
                 _group_name(os.stat(self.path).st_gid))
        self._warn_unreachable_admins()
        return self

    def _socket_gid(self) -> int | None:
        """The read group when the daemon may give it to the socket (root, or a member), else None."""
        gid = self.read_gid
        if gid is None or gid < 0:
            return None
        if os.geteuid() == 0 or gid in os.getgroups() or gid == os.getegid():
            return gid
        log.warning("cannot give %s to group %r: the daemon is neither root nor a member; only "
                    "members of its group can connect", self.path, self.read_group)
        return None

    def _warn_unreachable_admins(self) -> None:
        """Log admin-group members who cannot open the socket (they need its group as well)."""
        if self.admin_gid is None or self.admin_gid < 0:
            return
        sock_gid = os.stat(self.path).st_gid
        if sock_gid == self.admin_gid:
            return
        admins = set(grp.getgrgid(self.admin_gid).gr_mem)
        admins |= {p.pw_name for p in pwd.getpwall() if p.pw_gid == self.admin_gid}
        try:
            socket_group = grp.getgrgid(sock_gid)
        except KeyError:
            return
        members = set(socket_group.gr_mem) | {p.pw_name for p in pwd.getpwall() if p.pw_gid == sock_gid}
        if stranded := sorted(admins - members):
            log.warning("members of admin group %r who are not in group %r cannot open %s: %s "
                        "(add them to both: usermod -aG %s,%s USER)", self.admin_group, socket_group.gr_name,
                        self.path, ", ".join(stranded), socket_group.gr_name, self.admin_group)

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._clients):
            task.cancel()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    @staticmethod
    def acting_for(peer: Peer, user: str) -> Peer | str:
        """The peer a trusted front end (root or the daemon's user: NETCONF) acts for, or why it may not."""
        if peer.uid not in (0, os.geteuid()):
            return "only root or the flowd user may act for another user"
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            return f"no user '{user}' on this host"
        return Peer(0, entry.pw_uid, entry.pw_gid, frozenset(os.getgrouplist(user, entry.pw_gid)))

    def allowed(self, peer: Peer, admin: bool) -> str | None:
        """None when the peer may call the method, else why not."""
        if peer.uid in (0, os.geteuid()):
            return None
        groups = peer.groups()
        if self.admin_gid is not None and self.admin_gid in groups:
            return None  # the admin group may do everything, shows included
        if admin:
            if self.admin_gid is None:
                return "only root or the flowd user may do this (no admin-group is configured)"
            return f"membership in group '{self.admin_group}' is required"
        if self.read_gid is None or self.read_gid in groups:
            return None
        return f"membership in group '{self.read_group}' is required"

    def privileged(self, peer: Peer) -> bool:
        """Root, the daemon's own user and the admin group: they may use the connections kept in reserve."""
        if peer.uid in (0, os.geteuid()):
            return True
        return self.admin_gid is not None and self.admin_gid in peer.groups()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        writer.transport.set_write_buffer_limits(high=self.limits.buffer)
        peer: Peer | None = None
        try:
            peer = peer_of(writer)
            refused = self.admission.admit(peer.uid, _user_name(peer.uid), self.privileged(peer))
            if refused is not None:
                peer = None  # not counted
                await self._refuse(reader, writer, refused)
                return
            while True:
                try:
                    line = await self._within(reader.readuntil(b"\n"), self.clock.time() + self.limits.idle)
                except TimeoutError:
                    log.debug("closing an idle control connection (uid %d)", peer.uid)
                    return
                except asyncio.IncompleteReadError:
                    return  # client went away (possibly mid-request)
                except asyncio.LimitOverrunError:
                    await self._send(writer, encode_response(Response.failure(
                        None, ErrorCode.TOO_LARGE, f"request longer than {MAX_LINE} bytes")))
                    return  # cannot find the next request boundary: close this connection
                answer = await self.answer(line, peer)
                if isinstance(answer, Response):
                    await self._send(writer, self._encode(answer))
                else:
                    await self._stream(writer, *answer)
        except _Stalled:
            self._throttled(logging.WARNING, "dropped a control connection of %s: it read no reply for %g s",
                            _user_name(peer.uid) if peer else "?", self.limits.stalled)
            writer.transport.abort()  # discard what it did not read
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            if peer is not None:
                self.admission.release(peer.uid)
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, why: str) -> None:
        """Answer the connection's first request with ``busy`` (when few refusals are pending), then close."""
        if self._refusing >= self.limits.refusals:
            return
        self._refusing += 1
        try:
            line = await self._within(reader.readuntil(b"\n"), self.clock.time() + self.limits.refusal_wait)
            try:
                request_id: RequestId | None = decode_request(line).id
            except ProtocolError as exc:
                request_id = exc.request_id
            await self._send(writer, encode_response(Response.failure(request_id, ErrorCode.BUSY, why)))
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._refusing -= 1

    async def _within(self, awaitable: Awaitable[T], deadline: float) -> T:
        """The awaitable's result, or TimeoutError once the daemon clock reaches ``deadline``."""
        work = asyncio.ensure_future(awaitable)
        timer = asyncio.ensure_future(self.clock.sleep_until(deadline))
        try:
            await asyncio.wait((work, timer), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled from outside: take both down with us
            timer.cancel()
            work.cancel()
            raise
        timer.cancel()
        if not work.done():
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
            raise TimeoutError
        return work.result()

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        """Write, then wait until the client has taken enough to stay under the buffer; `_Stalled` if it reads
        nothing for `Limits.stalled` seconds."""
        writer.write(data)
        try:
            await self._within(writer.drain(), self.clock.time() + self.limits.stalled)
        except TimeoutError:
            raise _Stalled from None

    def _throttled(self, level: int, message: str, *args: object) -> None:
        """Log one line, unless too many came lately (then count it and say so with the next one let through)."""
        now = self.clock.time()
        allowed, suppressed = self.throttle.allow(now)
        if allowed:
            if suppressed:
                message += f" ({suppressed} similar lines suppressed)"
            log.log(level, message, *args)

    def _encode(self, response: Response, more: tuple[str | int, ...] | None = None) -> bytes:
        """The reply line (the head of a stream with ``more``); an ``internal`` error when the result cannot be
        written as JSON in UTF-8."""
        try:
            if more is None or response.id is None:
                return encode_response(response)
            return encode_head(response.id, response.result, more)
        except (ValueError, TypeError) as exc:  # UnicodeEncodeError is a ValueError
            self._throttled(logging.ERROR, "a control reply could not be encoded: %s", exc)
            return encode_response(Response.failure(response.id, ErrorCode.INTERNAL,
                                                    "the reply could not be encoded; see the daemon log"))

    async def _stream(self, writer: asyncio.StreamWriter, request_id: RequestId, result: Streamed) -> None:
        """Send a streamed result: the head, each batch of rows as it is built (yielding to the loop and waiting
        for the client in between), then the end line; an error line instead when a batch cannot be built."""
        await self._send(writer, self._encode(Response(request_id, True, result.head), more=result.into))
        count = 0
        while True:
            try:
                batch = next(result.batches, None)
                lines = list(encode_chunks(request_id, batch)) if batch is not None else []
            except Exception:
                log.exception("a streamed control reply failed after %d rows", count)
                await self._send(writer, encode_response(Response.failure(
                    request_id, ErrorCode.INTERNAL, "the reply failed part way; see the daemon log")))
                return
            if batch is None:
                break
            for line in lines:
                await self._send(writer, line)
            count += len(batch)
            await asyncio.sleep(0)  # other connections and the daemon's own tasks run between batches
        await self._send(writer, encode_end(request_id, count))

    async def answer(self, line: bytes, peer: Peer) -> Response | tuple[RequestId, Streamed]:
        """The reply to one request line (a streamed result with its request's id)."""
        try:
            req = decode_request(line)
        except ProtocolError as exc:
            self._throttled(logging.WARNING, "refused a control request from %s: %s: %s", _user_name(peer.uid),
                            exc.code.value, exc.message)
            return exc.to_response()
        rpc = RPCS.get(req.method)
        if rpc is None or req.method not in methods.METHODS:
            return Response.failure(req.id, ErrorCode.UNKNOWN_METHOD, f"unknown method '{req.method}'")
        if req.user is not None:
            acting = self.acting_for(peer, req.user)
            if isinstance(acting, str):
                return Response.failure(req.id, ErrorCode.PERMISSION_DENIED, acting)
            peer = acting
        why = self.allowed(peer, rpc.admin)
        if why is not None:
            return Response.failure(req.id, ErrorCode.PERMISSION_DENIED, why)
        try:
            result = await methods.call(self.probe, req.method, req.params, self.clock.time)
            return (req.id, result) if isinstance(result, Streamed) else Response.success(req.id, result)
        except methods.BadParams as exc:
            return Response.failure(req.id, ErrorCode.BAD_PARAMS, str(exc))
        except Exception:
            log.exception("control method %s failed", req.method)
            return Response.failure(req.id, ErrorCode.INTERNAL, f"{req.method} failed; see the daemon log")



class _Stalled(Exception):
    """The client read nothing for `Limits.stalled` seconds while a reply waited."""


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)
