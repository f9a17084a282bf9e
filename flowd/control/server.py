"""The control socket: an asyncio Unix-socket server that answers NDJSON requests from flowcli and scripts.

Who may do what (SO_PEERCRED): root and the daemon's own user may call every method. Everyone
else who can open the socket (mode 0660: its owner and group) may call the show methods, provided
they belong to `flowd control read-group` when one is configured; the `clear` methods need
membership in `flowd control admin-group`. A refused call gets a ``permission-denied`` reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import logging
import os
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flowd.control import methods
from flowd.control.protocol import (
    MAX_LINE, ErrorCode, ProtocolError, Response, decode_request, encode_response)
from flowd.probe import Probe

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660
PEERCRED = struct.Struct("3i")  # pid, uid, gid


@dataclass(frozen=True, slots=True)
class Peer:
    pid: int
    uid: int
    gid: int

    def groups(self) -> set[int]:
        """The peer's primary and supplementary groups (from /proc, as the kernel has them)."""
        gids = {self.gid}
        with contextlib.suppress(OSError):
            with open(f"/proc/{self.pid}/status") as fh:
                for line in fh:
                    if line.startswith("Groups:"):
                        gids.update(int(g) for g in line.split()[1:])
        return gids


def peer_of(writer: asyncio.StreamWriter) -> Peer:
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, PEERCRED.size)
    return Peer(*PEERCRED.unpack(raw))


def _gid(name: str | None) -> int | None:
    if name is None:
        return None
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        log.warning("control group %r does not exist; only root may use what it guards", name)
        return -1


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
        self._server = await asyncio.start_unix_server(self._serve, path=self.path, limit=MAX_LINE)
        os.chmod(self.path, SOCKET_MODE)
        if self.read_gid is not None and self.read_gid >= 0 and os.geteuid() == 0:
            os.chown(self.path, -1, self.read_gid)
        log.info("control socket listening on %s", self.path)
        return self

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
        gid, group = (self.admin_gid, self.admin_group) if admin else (self.read_gid, self.read_group)
        if gid is None:
            return "only root or the flowd user may do this" if admin else None
        if gid in peer.groups():
            return None
        return f"membership in group '{group}' is required"

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
                await self._reply(writer, self.answer(line, peer))
        except (ConnectionError, asyncio.CancelledError):
            return
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def answer(self, line: bytes, peer: Peer) -> Response:
        """The reply to one request line."""
        try:
            req = decode_request(line)
        except ProtocolError as exc:
            return exc.to_response()
        spec = methods.METHODS.get(req.method)
        if spec is None:
            return Response.failure(req.id, ErrorCode.UNKNOWN_METHOD, f"unknown method '{req.method}'")
        why = self.allowed(peer, spec.admin)
        if why is not None:
            return Response.failure(req.id, ErrorCode.PERMISSION_DENIED, why)
        try:
            return Response.success(req.id, methods.call(self.probe, req.method, req.params, self.now()))
        except methods.BadParams as exc:
            return Response.failure(req.id, ErrorCode.BAD_PARAMS, str(exc))
        except Exception:
            log.exception("control method %s failed", req.method)
            return Response.failure(req.id, ErrorCode.INTERNAL, f"{req.method} failed; see the daemon log")

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, response: Response) -> None:
        writer.write(encode_response(response))
        await writer.drain()
