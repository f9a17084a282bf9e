"""The daemon's route sources (`flowd routing`): their life cycle, reloads, and the lookup the export uses.

* Prefix files are read at start (a bad file stops the start with ``FILE:LINE: message``) and again on
  every reload; a file that fails to load on reload keeps its previous routes and records the error.
* Each BGP neighbor runs its own supervised ExaBGP (flowd.routing.bgp); a reload restarts the sessions
  whose settings changed, stops removed ones and starts new ones.
* ``kernel;`` follows this host's main routing table (flowd.routing.kernel).

``route_set`` lists the sources in the configured precedence (bgp, kernel, prefix-file by default;
within a kind, in configuration order). ``lookup`` gives a batch of finished flows its route columns.
"""

from __future__ import annotations

import logging
import shlex
import socket
from typing import TYPE_CHECKING, Any

import numpy as np

from flowd.config.schema import BgpNeighbor, RoutingConfig
from flowd.model.batch import FlowRecords
from flowd.routing.prefixfile import PrefixFileError, read_prefix_file
from flowd.routing.resolve import RouteSet
from flowd.routing.rib import SourceRib

if TYPE_CHECKING:  # imported where a session or the kernel table is started: batch mode needs neither
    from flowd.routing.bgp import BgpSession, BgpSpeaker
    from flowd.routing.kernel import KernelRoutes

log = logging.getLogger(__name__)


def session_for(neighbor: BgpNeighbor) -> BgpSession:
    from flowd.routing.bgp import BgpSession
    return BgpSession(neighbor=neighbor.address, peer_as=neighbor.peer_as, local_as=neighbor.local_as,
                      local_address=neighbor.local_address, router_id=neighbor.router_id,
                      passive=neighbor.passive, port=neighbor.port, speaker=tuple(shlex.split(neighbor.speaker)))


class RouteSources:
    """Every configured route source and the RouteSet built from them."""

    def __init__(self, cfg: RoutingConfig, clock: Any) -> None:
        self.cfg = cfg
        self.clock = clock
        self.files: dict[str, SourceRib] = {}
        self.bgp: dict[BgpNeighbor, tuple[SourceRib, BgpSpeaker]] = {}
        self.kernel: tuple[SourceRib, KernelRoutes] | None = None
        self.route_set = RouteSet([])
        self.load_files(strict=True)

    def sources(self) -> list[tuple[str, SourceRib]]:
        """(kind, source) in precedence order."""
        kinds: dict[str, list[SourceRib]] = {
            "bgp": [rib for rib, _ in self.bgp.values()],
            "kernel": [self.kernel[0]] if self.kernel is not None else [],
            "prefix-file": [self.files[f.path] for f in self.cfg.prefix_files if f.path in self.files],
        }
        return [(kind, rib) for kind in self.cfg.precedence for rib in kinds[kind]]

    def _rebuild(self) -> None:
        snmp: dict[int, int] = {}
        for name, index in self.cfg.snmp_index:
            try:
                snmp[socket.if_nametoindex(name)] = index
            except OSError:
                log.warning("flowd routing snmp-index: no interface %s here (yet)", name)
        self.route_set = RouteSet([rib for _, rib in self.sources()], input_map=snmp)

    def lookup(self, records: FlowRecords) -> FlowRecords:
        """The records with their route columns (unchanged when no source is configured)."""
        if not self.cfg.lookups or not len(records):
            return records
        ifindex = ((records.key[:, 38].astype(np.uint16) << 8) | records.key[:, 39]).astype(np.uint16)
        return records.with_routes(self.route_set.flow_routes(records.key, ifindex))

    # -- prefix files ------------------------------------------------------------------------------

    def load_files(self, *, strict: bool) -> None:
        """(Re)read every prefix file; ``strict`` raises PrefixFileError instead of keeping old routes."""
        now = self.clock.time()
        kept: dict[str, SourceRib] = {}
        for spec in self.cfg.prefix_files:
            old = self.files.get(spec.path)
            try:
                parsed = read_prefix_file(spec.path, spec.format)
            except PrefixFileError as exc:
                if strict:
                    raise
                log.error("prefix file not reloaded, keeping its previous routes: %s", exc)
                rib = old if old is not None else SourceRib(spec.path, state="Idle")
                rib.error(str(exc))
                kept[spec.path] = rib
                continue
            rib = SourceRib(spec.path, state="Loaded")
            if old is not None:  # the counters go on
                rib.errors, rib.last_error, rib.flushed = old.errors, old.last_error, old.flushed
                rib.announced, rib.withdrawn = old.announced, old.withdrawn
            for version, fam in parsed.items():
                rib.families[version].load(fam.nets, fam.lengths, origin_as=fam.origin_as, next_hop=fam.next_hop)
            rib.announced += sum(len(f) for f in parsed.values())
            rib.last_update = now
            kept[spec.path] = rib
        self.files = kept
        self._rebuild()

    # -- sessions --------------------------------------------------------------------------------

    async def start(self) -> None:
        for neighbor in self.cfg.bgp:
            await self._start_bgp(neighbor)
        if self.cfg.kernel:
            await self._start_kernel()
        self._rebuild()

    async def stop(self) -> None:
        for _, speaker in self.bgp.values():
            await speaker.stop()
        self.bgp = {}
        if self.kernel is not None:
            await self.kernel[1].stop()
            self.kernel = None

    async def reconfigure(self, cfg: RoutingConfig) -> None:
        """Apply a reloaded `flowd routing`: files re-read, changed sessions restarted."""
        self.cfg = cfg
        self.load_files(strict=False)
        for neighbor in list(self.bgp):
            if neighbor not in cfg.bgp:
                await self.bgp.pop(neighbor)[1].stop()
        for neighbor in cfg.bgp:
            if neighbor not in self.bgp:
                await self._start_bgp(neighbor)
        if cfg.kernel and self.kernel is None:
            await self._start_kernel()
        elif not cfg.kernel and self.kernel is not None:
            await self.kernel[1].stop()
            self.kernel = None
        self._rebuild()

    async def _start_bgp(self, neighbor: BgpNeighbor) -> None:
        from flowd.routing.bgp import BgpSpeaker
        rib = SourceRib(f"bgp {neighbor.address}")
        speaker = BgpSpeaker(session_for(neighbor), rib, self.clock)
        await speaker.start()
        self.bgp[neighbor] = (rib, speaker)

    async def _start_kernel(self) -> None:
        from flowd.routing.kernel import KernelRoutes
        rib = SourceRib("kernel")
        follower = KernelRoutes(rib, self.clock)
        await follower.start()
        self.kernel = (rib, follower)
