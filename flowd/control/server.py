"""The control socket: an asyncio Unix-socket server that answers NDJSON requests from flowcli and scripts.

Who may do what (SO_PEERCRED, and SO_PEERGROUPS for the peer's groups as they were at connect
time): root and the daemon's own user may call every method. Everyone else who can open the socket
(mode 0660: its owner and its group, which is `flowd control read-group` when one is configured)
may call the show methods, provided they belong to the read group or the admin group; the `clear`
methods need membership in `flowd control admin-group`. A refused call gets a ``permission-denied``
reply. Opening the socket needs its group, so admins belong to both groups (`flowd
--install-service --admin USER` does that); the daemon warns at start about admins who do not.

The socket gets its mode and group before it listens, so no peer ever connects through a wider
mode than 0660 (connecting to a bound socket that does not listen yet is refused).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flowd.control import methods
from flowd.control.protocol import (
    MAX_LINE,
    ErrorCode,
    ProtocolError,
    Response,
    decode_request,
    encode_response,
)
from flowd.control.rpcs import RPCS
from flowd.runtime.probe import Probe

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
PEERCRED = struct.Struct("3i")  # pid, uid, gid
SO_PEERGROUPS = getattr(socket, "SO_PEERGROUPS", 59)  # Linux >= 4.13; Python 3.11 lacks the name
PEERGROUPS_BUFFER = 1024  # bytes (256 groups): the most Python's getsockopt will read


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

    def __init__(self, path: str, probe: Probe, now: Callable[[], float], *,
                 read_group: str | None = None, admin_group: str | None = None) -> None:
        self.path = path
        self.probe = probe
        self.now = now
        self.read_gid = _gid(read_group)
        self.admin_gid = _gid(admin_group)
        self.admin_group = admin_group
        self.read_group = read_group
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ControlServer:
        path = Path(self.path)
        if path.is_socket():
            with socket.socket(socket.AF_UNIX) as probe_sock:
                try:
                    probe_sock.connect(self.path)
                except OSError:
                    path.unlink()  # stale socket of a daemon that died
                else:
                    raise OSError(f"another flowd is already listening on {self.path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
        except BaseException:
            sock.close()
            raise
        try:
            self._restrict()  # before listen(): until then every connect() is refused
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

    def _restrict(self) -> None:
        """Mode 0660, group = the read group when the daemon may give it (root, or a member)."""
        os.chmod(self.path, SOCKET_MODE)
        gid = self.read_gid
        if gid is None or gid < 0 or os.stat(self.path).st_gid == gid:
            return
        if os.geteuid() == 0 or gid in os.getgroups() or gid == os.getegid():
            os.chown(self.path, -1, gid)
        else:
            log.warning("cannot give %s to group %r: the daemon is neither root nor a member; only "
                        "members of its group can connect", self.path, self.read_group)

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

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients.add(task)
        try:
            peer = peer_of(writer)
            while True:
                try:
                    line = await reader.readuntil(b"\n")
                except asyncio.IncompleteReadError:
                    return  # client went away (possibly mid-request)
                except asyncio.LimitOverrunError:
                    await self._reply(writer, Response.failure(
                        None, ErrorCode.TOO_LARGE, f"request longer than {MAX_LINE} bytes"))
                    return  # cannot find the next request boundary: close this connection
                await self._reply(writer, await self.answer(line, peer))
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def answer(self, line: bytes, peer: Peer) -> Response:
        """The reply to one request line."""
        try:
            req = decode_request(line)
        except ProtocolError as exc:
            return exc.to_response()
        rpc = RPCS.get(req.method)
        if rpc is None or req.method not in methods.METHODS:
            return Response.failure(req.id, ErrorCode.UNKNOWN_METHOD, f"unknown method '{req.method}'")
        why = self.allowed(peer, rpc.admin)
        if why is not None:
            return Response.failure(req.id, ErrorCode.PERMISSION_DENIED, why)
        try:
            return Response.success(req.id, await methods.call(self.probe, req.method, req.params, self.now))
        except methods.BadParams as exc:
            return Response.failure(req.id, ErrorCode.BAD_PARAMS, str(exc))
        except Exception:
            log.exception("control method %s failed", req.method)
            return Response.failure(req.id, ErrorCode.INTERNAL, f"{req.method} failed; see the daemon log")

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, response: Response) -> None:
        writer.write(encode_response(response))
        await writer.drain()
