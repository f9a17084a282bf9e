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
import numpy as np
import numpy.typing as npt

from flowd.model.routes import FlowRoutes
from flowd.routing.rib import Match, SourceRib

_V4_MAPPED = np.frombuffer(bytes(10) + b"\xff\xff", np.uint8)


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
        """Routes of each flow key row (n, 40): source and destination lookups, both families."""
        n = len(keys)
        out = FlowRoutes.empty(n)
        out.input_if = self._snmp(ifindex.astype(np.uint32))
        v4 = np.all(keys[:, 0:12] == _V4_MAPPED, axis=1) & np.all(keys[:, 16:28] == _V4_MAPPED, axis=1)
        for version, rows, lo in ((4, np.flatnonzero(v4), 12), (6, np.flatnonzero(~v4), 0)):
            if not len(rows):
                continue
            src = self.match(version, keys[rows, lo:16])
            dst = self.match(version, keys[rows, 16 + lo:32])
            out.src_origin_as[rows] = src.origin_as
            out.src_peer_as[rows] = src.peer_as
            out.src_mask[rows] = np.maximum(src.length, 0)
            out.dst_origin_as[rows] = dst.origin_as
            out.dst_peer_as[rows] = dst.peer_as
            out.dst_mask[rows] = np.maximum(dst.length, 0)
            out.next_hop[rows, lo:16] = dst.next_hop
            out.bgp_next_hop[rows, lo:16] = dst.bgp_next_hop
            out.output_if[rows] = self._snmp(dst.ifindex)
            if version == 4:
                out.next_hop[rows, 10:12] = np.where(dst.next_hop.any(axis=1), 0xFF, 0)[:, None]
                out.bgp_next_hop[rows, 10:12] = np.where(dst.bgp_next_hop.any(axis=1), 0xFF, 0)[:, None]
        return out

    def _snmp(self, ifindex: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
        """Linux interface indexes → the configured SNMP indexes (`flowd routing snmp-index`)."""
        out = ifindex.astype(np.uint32)
        for linux, snmp in self.input_map.items():
            out[ifindex == linux] = snmp
        return out
