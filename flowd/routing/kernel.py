"""Kernel FIB routes through netlink (pyroute2): dump the main table at start, then follow its changes.

For a probe that runs on the forwarding box itself. The source subscribes to the IPv4 and IPv6 route
groups first and dumps the table second, so no change is missed. Each unicast route of the table
(``flowd routing kernel``: the main table, 254) becomes a route with its prefix length, gateway as next
hop (none for a directly connected prefix) and output interface index; of a multipath route the
first next hop counts. RTM_DELROUTE withdraws the prefix. Kernel routes carry no AS numbers (0).

``route_from_message`` (pure) turns one netlink message into a change; ``KernelRoutes`` runs the
subscription on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from typing import Any, Final

from flowd.routing.rib import Network, Route, SourceRib

MAIN_TABLE: Final = 254
RTN_UNICAST: Final = 1
RTMGRP_IPV4_ROUTE: Final = 0x40
RTMGRP_IPV6_ROUTE: Final = 0x400
FAMILIES: Final = {socket.AF_INET: 4, socket.AF_INET6: 6}


def route_from_message(msg: Any, table: int = MAIN_TABLE) -> tuple[str, Route | Network] | None:
    """("add", Route) or ("del", prefix) for a route message of ``table``; None for anything else."""
    version = FAMILIES.get(msg["family"])
    if version is None:
        return None
    if (msg.get("table") or msg.get("RTA_TABLE") or msg["table"]) != table:
        return None
    event = msg.get("event")
    dst = msg.get("dst") or ("0.0.0.0" if version == 4 else "::")
    prefix = ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False)
    if event == "RTM_DELROUTE":
        return "del", prefix
    if msg["type"] != RTN_UNICAST:
        return None
    gateway, oif = msg.get("gateway"), msg.get("oif")
    multipath = msg.get("multipath")
    if multipath:
        first = multipath[0]
        gateway = gateway or first.get("gateway")
        oif = oif or first.get("oif") or first.get("ifindex")
    return "add", Route(prefix, next_hop=gateway, ifindex=int(oif or 0))


class KernelRoutes:
    """Follows the kernel's routing table into a SourceRib (``clock.time()`` stamps the changes)."""

    def __init__(self, rib: SourceRib, clock: Any, table: int = MAIN_TABLE) -> None:
        self.rib = rib
        self.clock = clock
        self.table = table
        self._task: asyncio.Task[None] | None = None
        self.synced = asyncio.Event()  # set once the first dump is in

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        from pyroute2 import AsyncIPRoute  # the optional dependency, needed only with `kernel;`

        try:
            async with AsyncIPRoute() as ipr:
                await ipr.bind(groups=RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE)
                for family in FAMILIES:
                    self._apply([m async for m in await ipr.route("dump", family=family)])
                self.rib.state = "Established"
                self.synced.set()
                while True:
                    self._apply([m async for m in ipr.get()])
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # netlink gone: keep nothing stale
            self.rib.flush(self.clock.time())
            self.rib.state = "Idle"
            self.rib.error(f"netlink: {exc}")
            self.synced.set()

    def _apply(self, messages: list[Any]) -> None:
        adds: list[Route] = []
        dels: list[Network] = []
        for msg in messages:
            try:
                change = route_from_message(msg, self.table)
            except (KeyError, ValueError, TypeError) as exc:
                self.rib.error(f"netlink message: {exc}")
                continue
            if change is None:
                continue
            kind, item = change
            if kind == "add":
                assert isinstance(item, Route)
                adds.append(item)
            else:
                assert not isinstance(item, Route)
                dels.append(item)
        if adds or dels:
            # a delete after an add of the same prefix in one batch: the delete wins (it is newer)
            gone = set(dels)
            self.rib.change([r for r in adds if r.prefix not in gone], dels, self.clock.time())
