"""The routes of one source (BGP session, kernel FIB, prefix file): attributes as columns behind LPM.

A ``SourceRib`` keeps, per family, a longest-prefix-match table (prefix → route id: the compiled
table of ``flowd.routing.compiled_lpm`` when it is built, the numpy ``LpmTable`` otherwise) and the
attributes of every route id as numpy columns: origin AS (last AS of the path), peer AS (first AS of
the path, the neighbour's), next hop, BGP next hop and output interface index. Ids of withdrawn
routes are reused.
``lookup`` answers a batch of addresses with a ``Match`` of columns; ``RouteSet`` in
``flowd.routing.resolve`` combines the sources.

Counters kept for `show services accounting routing`: prefixes per family, announcements,
withdrawals, flushes (routes dropped when a session went down or a file was replaced), the time of
the last change and the last error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.routing.compiled_lpm import Lpm, new_lpm_table
from flowd.routing.lpm import NO_ROUTE, void_rows

WIDTH: Final = {4: 32, 6: 128}
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Route:
    """One route as a source reports it."""

    prefix: Network
    origin_as: int = 0
    peer_as: int = 0
    next_hop: str | None = None
    bgp_next_hop: str | None = None
    ifindex: int = 0


@dataclass(slots=True)
class Match:
    """Per address: the matched route's prefix length (-1: no route) and its attributes."""

    length: npt.NDArray[np.int16]
    origin_as: npt.NDArray[np.uint32]
    peer_as: npt.NDArray[np.uint32]
    next_hop: npt.NDArray[np.uint8]  # (n, 4 or 16)
    bgp_next_hop: npt.NDArray[np.uint8]
    ifindex: npt.NDArray[np.uint32]

    @staticmethod
    def empty(n: int, nbytes: int) -> Match:
        return Match(np.full(n, -1, np.int16), np.zeros(n, np.uint32), np.zeros(n, np.uint32),
                     np.zeros((n, nbytes), np.uint8), np.zeros((n, nbytes), np.uint8), np.zeros(n, np.uint32))


class Columns:
    """Attribute columns indexed by route id, as one record array (a lookup is one gather per
    address); ``resize`` keeps the leading rows."""

    NAMES: Final = ("origin_as", "peer_as", "next_hop", "bgp_next_hop", "ifindex")

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.dtype = np.dtype([("origin_as", np.uint32), ("peer_as", np.uint32), ("ifindex", np.uint32),
                               ("next_hop", f"V{nbytes}"), ("bgp_next_hop", f"V{nbytes}")])
        self.rows = np.zeros(1, self.dtype)

    def resize(self, n: int) -> None:
        """Room for ``n`` routes plus the all-zero row that route id -1 (no route) reads."""
        rows = np.zeros(n + 1, self.dtype)
        k = min(n, len(self.rows) - 1)
        rows[:k] = self.rows[:k]
        self.rows = rows

    @property
    def origin_as(self) -> npt.NDArray[np.uint32]:
        return self.rows["origin_as"]

    @property
    def peer_as(self) -> npt.NDArray[np.uint32]:
        return self.rows["peer_as"]

    @property
    def ifindex(self) -> npt.NDArray[np.uint32]:
        return self.rows["ifindex"]

    @property
    def next_hop(self) -> npt.NDArray[np.void]:
        return self.rows["next_hop"]

    @property
    def bgp_next_hop(self) -> npt.NDArray[np.void]:
        return self.rows["bgp_next_hop"]

    def __len__(self) -> int:
        return max(0, len(self.rows) - 1)


@dataclass(slots=True)
class FamilyRib:
    """One family's routes of one source."""

    version: int
    table: Lpm = field(init=False)
    columns: Columns = field(init=False)
    free: list[int] = field(default_factory=list)
    used: int = 0  # ids handed out so far (the high-water mark)

    def __post_init__(self) -> None:
        self.table = new_lpm_table(WIDTH[self.version])
        self.columns = Columns(WIDTH[self.version] // 8)

    def _new_id(self) -> int:
        if self.free:
            return self.free.pop()
        if self.used == len(self.columns):
            self.columns.resize(max(1024, 2 * self.used))
        self.used += 1
        return self.used - 1

    def load(self, nets: npt.NDArray[np.uint8], lengths: npt.NDArray[np.integer], *,
             origin_as: npt.NDArray[np.uint32] | None = None, peer_as: npt.NDArray[np.uint32] | None = None,
             next_hop: npt.NDArray[np.uint8] | None = None, bgp_next_hop: npt.NDArray[np.uint8] | None = None,
             ifindex: npt.NDArray[np.uint32] | None = None) -> None:
        """Replace every route of this family at once (vectorised)."""
        n = len(lengths)
        self.columns = Columns(self.columns.nbytes)
        self.columns.resize(n)
        for name, value in zip(Columns.NAMES, (origin_as, peer_as, next_hop, bgp_next_hop, ifindex)):
            if value is not None:
                column = getattr(self.columns, name)
                column[:n] = void_rows(value) if column.dtype.kind == "V" else value  # type: ignore[arg-type]
        self.table.load(nets, lengths, np.arange(n, dtype=np.int32))
        self.used = n
        self.free = []

    def change(self, routes: Sequence[Route], withdrawn: Sequence[Network]) -> int:
        """Withdraw, then announce (replacing any route of the same prefix). Returns changes made."""
        batch: list[tuple[bytes, int, int]] = []
        for net in withdrawn:
            rid = self.table.find(net.network_address.packed, net.prefixlen)
            if rid is not None:
                batch.append((net.network_address.packed, net.prefixlen, NO_ROUTE))
                self.free.append(rid)
        changed = self.table.apply(batch)
        batch = []
        for route in routes:
            net = route.prefix
            rid = self.table.find(net.network_address.packed, net.prefixlen)
            if rid is None:
                rid = self._new_id()
            self._set(rid, route)
            batch.append((net.network_address.packed, net.prefixlen, rid))
        return changed + self.table.apply(batch)

    def clear(self) -> int:
        """Drop every route; returns how many there were."""
        dropped = len(self.table)
        self.__post_init__()
        self.free, self.used = [], 0
        return dropped

    def _set(self, rid: int, route: Route) -> None:
        c = self.columns
        c.origin_as[rid] = route.origin_as
        c.peer_as[rid] = route.peer_as
        c.next_hop[rid] = np.void(_packed(route.next_hop, c.nbytes))
        c.bgp_next_hop[rid] = np.void(_packed(route.bgp_next_hop, c.nbytes))
        c.ifindex[rid] = route.ifindex

    def lookup(self, addrs: npt.NDArray[np.uint8]) -> Match:
        ids, lens = self.table.lookup(addrs)
        found = np.take(self.columns.rows, ids)  # one gather (take: far faster than [] on records); -1: zero row
        nbytes = self.columns.nbytes
        return Match(lens, found["origin_as"], found["peer_as"], _rows(found["next_hop"], nbytes),
                     _rows(found["bgp_next_hop"], nbytes), found["ifindex"])

    def nbytes_used(self) -> int:
        return self.table.nbytes_used() + self.columns.rows.nbytes


def _rows(column: npt.NDArray[np.void], nbytes: int) -> npt.NDArray[np.uint8]:
    """A void column (a field of a record array) as (n, nbytes) address rows."""
    return np.frombuffer(np.ascontiguousarray(column).tobytes(), np.uint8).reshape(len(column), nbytes)


def _packed(address: str | None, nbytes: int) -> bytes:
    if not address:
        return bytes(nbytes)
    packed = ipaddress.ip_address(address).packed
    if len(packed) != nbytes:
        return bytes(nbytes)  # an IPv4 next hop for an IPv6 route (or the reverse) is not kept
    return packed


@dataclass(slots=True)
class SourceRib:
    """Every route of one source, both families, with the counters its show prints."""

    name: str
    families: dict[int, FamilyRib] = field(default_factory=lambda: {4: FamilyRib(4), 6: FamilyRib(6)})
    state: str = "Idle"
    announced: int = 0
    withdrawn: int = 0
    flushed: int = 0  # routes dropped by a session loss or a replaced file
    errors: int = 0
    last_error: str = ""
    last_update: float | None = None

    def change(self, routes: Iterable[Route], withdrawn: Iterable[Network], now: float) -> None:
        """Apply one update message's worth of announcements and withdrawals."""
        adds: dict[int, list[Route]] = {4: [], 6: []}
        dels: dict[int, list[Network]] = {4: [], 6: []}
        for route in routes:
            adds[route.prefix.version].append(route)
        for net in withdrawn:
            dels[net.version].append(net)
        for version, fam in self.families.items():
            if adds[version] or dels[version]:
                fam.change(adds[version], dels[version])
        self.announced += sum(len(v) for v in adds.values())
        self.withdrawn += sum(len(v) for v in dels.values())
        self.last_update = now

    def flush(self, now: float) -> int:
        """Drop every route (session down, file gone); counted in ``flushed``."""
        dropped = sum(fam.clear() for fam in self.families.values())
        self.flushed += dropped
        if dropped:
            self.last_update = now
        return dropped

    def prefixes(self, version: int) -> int:
        return len(self.families[version].table)

    def error(self, message: str) -> None:
        self.errors += 1
        self.last_error = message
