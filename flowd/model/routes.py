"""Route columns of a batch of flows: what the route lookup found for each row, as the encoders read it.

Filled by flowd.routing.resolve (the runtime wires the two); read by the v5, v8, v9 and IPFIX
encoders and the shows. Addresses are 16-byte rows, IPv4 as IPv4-mapped IPv6 like the flow key;
0 everywhere means "no route".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from flowd.model.record import Record


@dataclass(slots=True, eq=False, repr=False)
class FlowRoutes(Record):
    """Per flow row; addresses are 16-byte rows (IPv4 as IPv4-mapped IPv6, like the flow key)."""

    src_origin_as: npt.NDArray[np.uint32]
    src_peer_as: npt.NDArray[np.uint32]
    dst_origin_as: npt.NDArray[np.uint32]
    dst_peer_as: npt.NDArray[np.uint32]
    src_mask: npt.NDArray[np.uint8]
    dst_mask: npt.NDArray[np.uint8]
    next_hop: npt.NDArray[np.uint8]
    bgp_next_hop: npt.NDArray[np.uint8]
    output_if: npt.NDArray[np.uint32]
    input_if: npt.NDArray[np.uint32]

    @staticmethod
    def empty(n: int) -> FlowRoutes:
        z32 = np.zeros(n, np.uint32)
        return FlowRoutes(z32, z32.copy(), z32.copy(), z32.copy(), np.zeros(n, np.uint8), np.zeros(n, np.uint8),
                          np.zeros((n, 16), np.uint8), np.zeros((n, 16), np.uint8), z32.copy(), z32.copy())

    @staticmethod
    def for_keys(keys: npt.NDArray[np.uint8]) -> FlowRoutes:
        """No route for any row; the input interface is the flow key's. The other columns are read-only
        zeros that take no memory per row (the encoders only read them)."""
        n = len(keys)
        z32 = np.broadcast_to(np.zeros(1, np.uint32), (n,))
        z8 = np.broadcast_to(np.zeros(1, np.uint8), (n,))
        z16 = np.broadcast_to(np.zeros((1, 16), np.uint8), (n, 16))
        input_if = ((keys[:, 38].astype(np.uint32) << 8) | keys[:, 39]).astype(np.uint32)
        return FlowRoutes(z32, z32, z32, z32, z8, z8, z16, z16, z32, input_if)

    @staticmethod
    def concat(parts: list[FlowRoutes]) -> FlowRoutes:
        return FlowRoutes(*(np.concatenate([getattr(p, f) for p in parts]) for f in FlowRoutes.__slots__))

    def as_type(self, peer: bool) -> FlowRoutes:
        """These routes with the origin AS columns holding the AS the flow server asked for
        (`autonomous-system-type peer`: the neighbour's AS); the encoders read the origin columns."""
        if not peer:
            return self
        return replace(self, src_origin_as=self.src_peer_as, dst_origin_as=self.dst_peer_as)

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_] | slice) -> FlowRoutes:
        """The rows selected by an index array or a boolean mask (copies), or a slice (views)."""
        if isinstance(index, slice):
            return FlowRoutes(*(getattr(self, f)[index] for f in FlowRoutes.__slots__))
        if index.dtype == np.bool_:
            index = np.flatnonzero(index)
        return FlowRoutes(*(np.take(getattr(self, f), index, axis=0) for f in FlowRoutes.__slots__))
