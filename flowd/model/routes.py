"""Route columns of a batch of flows: what the route lookup found for each row, as the encoders read it.

Filled by flowd.routing.resolve (the runtime wires the two); read by the v5, v8, v9 and IPFIX
encoders and the shows. Addresses are 16-byte rows, IPv4 as IPv4-mapped IPv6 like the flow key;
0 everywhere means "no route".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(slots=True)
class FlowRoutes:
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

    def src_as(self, peer: bool) -> npt.NDArray[np.uint32]:
        """`autonomous-system-type`: origin (default) or peer."""
        return self.src_peer_as if peer else self.src_origin_as

    def dst_as(self, peer: bool) -> npt.NDArray[np.uint32]:
        return self.dst_peer_as if peer else self.dst_origin_as

    @staticmethod
    def empty(n: int) -> FlowRoutes:
        z32 = np.zeros(n, np.uint32)
        return FlowRoutes(z32, z32.copy(), z32.copy(), z32.copy(), np.zeros(n, np.uint8), np.zeros(n, np.uint8),
                          np.zeros((n, 16), np.uint8), np.zeros((n, 16), np.uint8), z32.copy(), z32.copy())

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> FlowRoutes:
        """The rows selected by an index array or a boolean mask."""
        return FlowRoutes(*(getattr(self, f)[index] for f in FlowRoutes.__slots__))
