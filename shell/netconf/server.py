"""NETCONF over SSH (RFC 6242) on asyncssh: public-key logins, the `netconf` subsystem, session limits.

A user logs in with a key from its authorized-keys file (the configured pattern, `%u` = user name); the
user must exist on the host. Each session talks to the daemon's control socket on the user's behalf
(the daemon trusts that only from root or its own user, which this process runs as), so the daemon
gives it the same class as the user would get from flowcli. Limits: sessions at once (refused at
login beyond it), message size (a larger message ends the session), idle time (a session with no
message for that long is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh

from shell.client import Client
from shell.netconf.framing import Deframer, FramingError, encode
from shell.netconf.session import (
    BASE_1_1,
    RpcError,
    Session,
    client_capabilities,
    hello,
)

log = logging.getLogger(__name__)

READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Settings:
    """What `flowd netconf { ... }` configures (the daemon passes it on the command line)."""

    socket: str
    listen: str = "127.0.0.1"
    port: int = 830
    authorized_keys: str = "/etc/flowd/netconf/%u.keys"
    host_key: str = ""
    max_sessions: int = 8
    idle_timeout: float = 600.0
    max_message: int = 1 << 20


def load_host_key(path: str) -> asyncssh.SSHKey:
    """The server's key, created (Ed25519, mode 0600) when the file does not exist."""
    file = Path(path)
    if not file.exists():
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key.export_private_key())
        log.info("created NETCONF host key %s", file)
        return key
    return asyncssh.read_private_key(str(file))


class NetconfServer:
    """The SSH listener and its sessions."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sessions: dict[int, tuple[str, asyncssh.SSHServerProcess[bytes]]] = {}
        self._ids = itertools.count(1)
        self._server: asyncssh.SSHAcceptor | None = None

    async def start(self) -> int:
        """Listen; returns the port."""
        s = self.settings
        key = load_host_key(s.host_key)
        self._server = await asyncssh.create_server(
            lambda: _Auth(self), s.listen, s.port, server_host_keys=[key], process_factory=self._handle,
            encoding=None, allow_scp=False, agent_forwarding=False, x11_forwarding=False,
            login_timeout=30, keepalive_interval=60)
        port: int = self._server.sockets[0].getsockname()[1]
        log.info("NETCONF over SSH on %s port %d", s.listen, port)
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for _, process in list(self.sessions.values()):
            process.close()

    def kill(self, user: str, session_id: int) -> bool:
        """End another session of ``user``; False when there is no such session."""
        entry = self.sessions.get(session_id)
        if entry is None or entry[0] != user:
            return False
        entry[1].close()
        return True

    async def _handle(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        if process.subsystem != "netconf":
            process.stderr.write(b"flowd serves the netconf subsystem only\n")
            process.exit(1)
            return
        user = str(process.get_extra_info("username"))
        session_id = next(self._ids)
        self.sessions[session_id] = (user, process)
        client = Client(self.settings.socket, user=user)
        session = Session(session_id, user, client.call, kill=lambda n: self.kill(user, n))
        try:
            await self._run(process, session)
        except (asyncssh.Error, ConnectionError, asyncssh.BreakReceived, asyncssh.TerminalSizeChanged):
            pass
        finally:
            self.sessions.pop(session_id, None)
            await client.close()
            with contextlib.suppress(Exception):
                process.exit(0)

    async def _run(self, process: asyncssh.SSHServerProcess[bytes], session: Session) -> None:
        process.stdout.write(encode(hello(session.session_id).encode(), chunked=False))
        deframer = Deframer(self.settings.max_message)
        greeted = False
        while True:
            try:
                data = await asyncio.wait_for(process.stdin.read(READ_SIZE), self.settings.idle_timeout)
            except TimeoutError:
                log.info("NETCONF session %d (%s) idle, closed", session.session_id, session.user)
                return
            if not data:
                return
            try:
                messages = deframer.feed(data)
            except FramingError as exc:
                log.info("NETCONF session %d (%s): %s; closed", session.session_id, session.user, exc)
                return
            for message in messages:
                if not greeted:
                    try:
                        caps = client_capabilities(message)
                    except RpcError as exc:
                        log.info("NETCONF session %d: bad hello (%s); closed", session.session_id, exc.message)
                        return
                    greeted = True
                    deframer.chunked = BASE_1_1 in caps
                    continue
                reply = await session.answer(message)
                process.stdout.write(encode(reply.text.encode(), deframer.chunked))
                if reply.close:
                    return


class _Auth(asyncssh.SSHServer):
    """Public-key logins only, for users that exist here and have an authorized-keys file."""

    def __init__(self, server: NetconfServer) -> None:
        self.server = server
        self._conn: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn

    def begin_auth(self, username: str) -> bool:
        assert self._conn is not None
        if len(self.server.sessions) >= self.server.settings.max_sessions:
            raise asyncssh.DisconnectError(asyncssh.DISC_TOO_MANY_CONNECTIONS,
                                           f"at most {self.server.settings.max_sessions} NETCONF sessions")
        try:
            pwd.getpwnam(username)
        except KeyError:
            return True  # no such user: no key will do, and the client cannot tell
        path = self.server.settings.authorized_keys.replace("%u", username)
        try:
            self._conn.set_authorized_keys(path)
        except (OSError, ValueError) as exc:
            log.info("NETCONF login of %s: no usable authorized keys (%s)", username, exc)
        return True

    def password_auth_supported(self) -> bool:
        return False

    def kbdint_auth_supported(self) -> bool:
        return False

    def public_key_auth_supported(self) -> bool:
        return True


async def serve(settings: Settings, ready: Any = None) -> None:
    """Run until cancelled."""
    server = NetconfServer(settings)
    port = await server.start()
    if ready is not None:
        ready(port)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()
