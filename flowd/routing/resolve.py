"""Routes for a batch of flows, across every source: the columns the export templates fill.

Precedence (documented in docs/config.md, `flowd routing precedence`): for each address the longest
matching prefix of any source wins; between sources that match with the same length, the one
listed first in ``precedence`` wins. Each attribute is then taken from the best-ranked match that
has it, so a BGP route (AS numbers, BGP next hop) and a kernel route (next hop, output interface)
for the same destination complete each other, as a router's forwarding table does.

Which address gives what, as on a Junos router: the source address gives source AS and mask; the
destination address gives destination AS, mask, next hop, BGP next hop and output interface. Input
interface: the capture interface index in the flow key; both interfaces are exported as their
`flowd routing snmp-index` entry when they have one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.model.flowkey import V4_MAPPED_PREFIX, is_ipv4
from flowd.model.routes import FlowRoutes
from flowd.routing.rib import Match, SourceRib


MAPPED_WORD: Final = np.frombuffer(V4_MAPPED_PREFIX[8:], np.uint32)[0]  # bytes 8..11 of an IPv4-mapped address


def _mapped(hops: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """IPv4 addresses (n, 4) as IPv4-mapped 16-byte rows, like the flow key (all zeros when there is none)."""
    words = np.ascontiguousarray(hops).view(np.uint32).ravel()
    out = np.zeros((len(words), 4), np.uint32)
    out[:, 2] = np.where(words != 0, MAPPED_WORD, np.uint32(0))
    out[:, 3] = words
    return out.view(np.uint8)


def combine(matches: Sequence[Match], nbytes: int, n: int) -> Match:
    """One Match from the matches of each source, ordered by precedence (see the module docstring)."""
    if not matches:
        return Match.empty(n, nbytes)
    if len(matches) == 1:
        return matches[0]
    s = len(matches)
    lengths = np.stack([m.length.astype(np.int32) for m in matches])  # (s, n)
    rank = lengths * (s + 1) + (s - np.arange(s))[:, None]  # longer first, then precedence
    order = np.argsort(-rank, axis=0, kind="stable")
    cols = np.arange(n)
    best = Match.empty(n, nbytes)
    best.length = lengths[order[0], cols].astype(np.int16)
    for name in ("origin_as", "peer_as", "ifindex", "next_hop", "bgp_next_hop"):
        stacked = np.stack([getattr(m, name) for m in matches])[order, cols]  # ranked per row
        present = stacked != 0 if stacked.ndim == 2 else stacked.any(axis=2)
        present &= (lengths[order, cols] >= 0)
        first = np.argmax(present, axis=0)
        setattr(best, name, stacked[first, cols])
    return best


class RouteSet:
    """The sources in precedence order, and the per-flow lookup."""

    def __init__(self, sources: Sequence[SourceRib], input_map: Mapping[int, int] | None = None) -> None:
        self.sources = list(sources)
        self.input_map = dict(input_map or {})

    def match(self, version: int, addrs: npt.NDArray[np.uint8]) -> Match:
        nbytes = 4 if version == 4 else 16
        return combine([s.families[version].lookup(addrs) for s in self.sources], nbytes, len(addrs))

    def flow_routes(self, keys: npt.NDArray[np.uint8], ifindex: npt.NDArray[np.uint16]) -> FlowRoutes:
        """Routes of each flow key row (n, 40): source and destination lookups, both families.

        Each family's rows are looked up as one contiguous block; a mixed batch is put back in row
        order with one gather per column.
        """
        n = len(keys)
        v4 = is_ipv4(keys)
        blocks: list[FlowRoutes] = []
        order: list[npt.NDArray[np.intp]] = []
        for version, mask, lo in ((4, v4, 12), (6, ~v4, 0)):
            rows = np.flatnonzero(mask)
            if not len(rows):
                continue
            part = keys if len(rows) == n else np.take(keys, rows, axis=0)
            blocks.append(self._family(version, part, lo))
            order.append(rows)
        if not blocks:
            out = FlowRoutes.empty(0)
        elif len(blocks) == 1:
            out = blocks[0]
        else:
            inverse = np.empty(n, np.intp)
            inverse[np.concatenate(order)] = np.arange(n)
            out = FlowRoutes.concat(blocks).take(inverse)
        out.input_if = self._snmp(ifindex.astype(np.uint32))
        return out

    def _family(self, version: int, keys: npt.NDArray[np.uint8], lo: int) -> FlowRoutes:
        """The routes of flow keys that are all of one family (``lo``: where the address starts); the
        addresses are passed as views into the key rows."""
        n = len(keys)
        src = self.match(version, keys[:, lo:16])
        dst = self.match(version, keys[:, 16 + lo:32])
        hops = [_mapped(found) if version == 4 else found for found in (dst.next_hop, dst.bgp_next_hop)]
        return FlowRoutes(src.origin_as, src.peer_as, dst.origin_as, dst.peer_as,
                          np.maximum(src.length, 0).astype(np.uint8), np.maximum(dst.length, 0).astype(np.uint8),
                          hops[0], hops[1], self._snmp(dst.ifindex), np.zeros(n, np.uint32))

    def _snmp(self, ifindex: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
        """Linux interface indexes → the configured SNMP indexes (`flowd routing snmp-index`)."""
        out = ifindex.astype(np.uint32)
        for linux, snmp in self.input_map.items():
            out[ifindex == linux] = snmp
        return out
