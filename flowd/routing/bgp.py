"""BGP routes through ExaBGP: the daemon runs the speaker as a child process and reads its JSON feed.

flowd does not speak BGP itself. For each configured session it writes an ExaBGP configuration
(one neighbor, IPv4 and IPv6 unicast, ``api { receive { parsed; update; } neighbor-changes; }``)
whose API process is a two-line script running ``cat`` into a FIFO, both in a private (0700)
runtime directory, beside the speaker's log (``exabgp.log``) and standard error; flowd reads
the FIFO line by line (``ExaBgpFeed``, pure) into the session's ``SourceRib``:

* ``update``: every ``announce`` NLRI becomes a route with the message's AS path (origin AS = last
  AS of the path's sequence, peer AS = first; an empty path, a route of the neighbour's own AS
  inside iBGP, gives 0 for both) and the announced next hop as BGP next hop; every ``withdraw``
  NLRI removes its prefix. IPv4 and IPv6 unicast; other families are ignored.
* ``state``: ``connected`` → Connect, ``up`` → Established, ``down`` → Idle, and every route of
  the session is flushed (counted in the source's ``flushed``); the reason is kept as last error.
* A line that is not ExaBGP JSON is counted as an error and skipped.

Supervision (``BgpSpeaker``): when the speaker exits, the session's routes are flushed, its exit is
recorded as the last error, and it is started again after ``RESTART_DELAY`` seconds (real time: it
is a process restart, not a protocol timer). Stopping first stops reading the feed (so the routes
stay for the daemon's final flush, though ExaBGP reports the session down as it exits), then
terminates the speaker (SIGTERM, then SIGKILL after ``STOP_TIMEOUT``) and removes the runtime directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from flowd.routing.rib import Network, Route, SourceRib

RESTART_DELAY: Final = 5.0
STOP_TIMEOUT: Final = 5.0
FAMILIES: Final = ("ipv4 unicast", "ipv6 unicast")
STATES: Final = {"connected": "Connect", "up": "Established", "down": "Idle"}


@dataclass(frozen=True, slots=True)
class BgpSession:
    """One BGP session to the router flowd watches (a ``flowd routing bgp`` entry)."""

    neighbor: str
    peer_as: int
    local_as: int
    local_address: str
    router_id: str
    passive: bool = True  # wait for the router to connect (listen on ``port``); else connect to it
    port: int = 179
    speaker: tuple[str, ...] = ("exabgp",)  # the ExaBGP command


def exabgp_config(session: BgpSession, relay: Path) -> str:
    """The ExaBGP configuration for one session whose API output goes to the ``relay`` script."""
    port = f"listen {session.port};" if session.passive else f"connect {session.port};"
    return f"""\
process flowd {{
    run {relay};
    encoder json;
}}
neighbor {session.neighbor} {{
    router-id {session.router_id};
    local-address {session.local_address};
    local-as {session.local_as};
    peer-as {session.peer_as};
    passive {"true" if session.passive else "false"};
    {port}
    family {{
        ipv4 unicast;
        ipv6 unicast;
    }}
    api {{
        processes [ flowd ];
        neighbor-changes;
        receive {{
            parsed;
            update;
        }}
    }}
}}
"""


def speaker_env(base: Mapping[str, str], log: Path) -> dict[str, str]:
    """The environment ExaBGP runs with: in the foreground, as the current user, no CLI pipes."""
    env = dict(base)
    env.update({
        "exabgp.daemon.daemonize": "false",
        "exabgp.daemon.user": _user(),
        "exabgp.daemon.drop": "false",
        "exabgp.api.cli": "false",
        "exabgp.log.destination": str(log),
        "exabgp.log.level": "INFO",
    })
    return env


def _user() -> str:
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


class ExaBgpFeed:
    """ExaBGP JSON lines → changes of one session's routes (pure; takes ``now``)."""

    def __init__(self, rib: SourceRib) -> None:
        self.rib = rib

    def line(self, text: str, now: float) -> None:
        text = text.strip()
        if not text:
            return
        try:
            msg = json.loads(text)
            kind = msg.get("type")
            neighbor = msg["neighbor"] if kind in ("state", "update") else None
        except (ValueError, KeyError, TypeError, AttributeError):
            self.rib.error(f"not ExaBGP JSON: {text[:80]}")
            return
        if kind == "state":
            self._state(neighbor, now)  # type: ignore[arg-type]
        elif kind == "update":
            try:
                message = neighbor["message"]  # type: ignore[index]
                if "update" in message:  # "eor" (end of RIB) carries no routes
                    self._update(message["update"], now)
            except (KeyError, TypeError, ValueError) as exc:
                self.rib.error(f"bad update: {exc}")

    def _state(self, neighbor: Mapping[str, Any], now: float) -> None:
        state = str(neighbor.get("state", ""))
        self.rib.state = STATES.get(state, state.capitalize() or self.rib.state)
        if state == "down":
            self.rib.flush(now)
            reason = neighbor.get("reason")
            if reason:
                self.rib.last_error = f"session down: {reason}"

    def _update(self, update: Mapping[str, Any], now: float) -> None:
        attrs = update.get("attribute", {})
        path = [int(a) for a in attrs.get("as-path", [])]
        as_set = [int(a) for a in attrs.get("as-set", [])]
        origin = (as_set or path)[-1] if (as_set or path) else 0
        peer = path[0] if path else (as_set[0] if as_set else 0)
        routes: dict[Network, Route] = {}
        withdrawn: list[Network] = []
        for family, hops in update.get("announce", {}).items():
            if family not in FAMILIES:
                continue
            for hop, nlris in hops.items():
                bgp_hop = None if hop in ("null", "") else hop
                local = bgp_hop is not None and ipaddress.ip_address(bgp_hop).is_link_local
                for nlri in nlris:
                    net = _prefix(nlri)
                    if local and net in routes:
                        continue  # an IPv6 route's link-local next hop, listed beside its global one
                    routes[net] = Route(net, origin_as=origin, peer_as=peer, bgp_next_hop=bgp_hop,
                                        next_hop=bgp_hop)
        for family, nlris in update.get("withdraw", {}).items():
            if family in FAMILIES:
                withdrawn.extend(_prefix(nlri) for nlri in nlris)
        if routes or withdrawn:
            self.rib.change(routes.values(), withdrawn, now)


def _prefix(nlri: Any) -> Network:
    text = nlri["nlri"] if isinstance(nlri, dict) else nlri
    return ipaddress.ip_network(str(text), strict=False)


class BgpSpeaker:
    """Runs and supervises ExaBGP for one session; feeds its output into the session's routes.

    ``clock`` gives the daemon's time for the routes' last-update stamps.
    """

    def __init__(self, session: BgpSession, rib: SourceRib, clock: Any,
                 env: Mapping[str, str] | None = None) -> None:
        self.session = session
        self.rib = rib
        self.feed = ExaBgpFeed(rib)
        self.clock = clock
        self.env = dict(os.environ if env is None else env)
        self.restarts = 0
        self._dir: Path | None = None
        self._task: asyncio.Task[None] | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def log_path(self) -> Path | None:
        return None if self._dir is None else self._dir / "exabgp.log"

    async def start(self) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="flowd-bgp-"))
        os.chmod(self._dir, 0o700)
        fifo = self._dir / "feed"
        os.mkfifo(fifo, 0o600)
        # ExaBGP runs the relay with the API output on its standard input, and takes the end of its
        # standard output for its death: so the shell stays, holding stdout, while cat copies.
        relay = self._dir / "relay"
        relay.write_text(f'#!/bin/sh\ncat > "{fifo}"\n')
        relay.chmod(0o700)
        (self._dir / "exabgp.conf").write_text(exabgp_config(self.session, relay))
        self._task = asyncio.get_running_loop().create_task(self._supervise(fifo))

    async def stop(self) -> None:
        """Stop reading first (ExaBGP reports the session down as it exits: the routes stay, for the
        final flush), then terminate the speaker."""
        self._stopping = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._terminate()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    async def __aenter__(self) -> BgpSpeaker:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _supervise(self, fifo: Path) -> None:
        assert self._dir is not None
        while not self._stopping:
            reader = self._reader = asyncio.get_running_loop().create_task(self._read(fifo))
            log = self._dir / "exabgp.log"
            with open(self._dir / "exabgp.stderr", "ab") as stderr:
                self._proc = await asyncio.create_subprocess_exec(
                    *self.session.speaker, str(self._dir / "exabgp.conf"),
                    env=speaker_env(self.env, log), stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL, stderr=stderr, start_new_session=True)
            self.rib.state = "Active" if not self.session.passive else "Idle"
            code = await self._proc.wait()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            if self._stopping:
                return
            self.rib.flush(self.clock.time())
            self.rib.state = "Idle"
            self.rib.error(f"speaker exited with status {code}"
                           f"{_last_line(log) or _last_line(self._dir / 'exabgp.stderr')}")
            self.restarts += 1
            await asyncio.sleep(RESTART_DELAY)

    async def _read(self, fifo: Path) -> None:
        loop = asyncio.get_running_loop()
        while True:
            fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)  # holding a write end: no EOF between writers
            reader = asyncio.StreamReader(limit=1 << 24)
            transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0))
            try:
                while line := await reader.readline():
                    self.feed.line(line.decode("utf-8", "replace"), self.clock.time())
            finally:
                transport.close()

    async def _terminate(self) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()


def _last_line(log: Path) -> str:
    try:
        lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return f": {lines[-1].strip()[-160:]}" if lines else ""


def sessions_env_ok(speaker: Sequence[str]) -> str | None:
    """Why the speaker cannot run here (for a clear error), or None."""
    if shutil.which(speaker[0]) is None:
        return f"BGP speaker {speaker[0]!r} not found (install ExaBGP: Debian exabgp or PyPI exabgp)"
    return None
