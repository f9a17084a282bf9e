"""Columnar batches that flow through the pipeline: raw frames, decoded packets, finished flows.

Every stage works on whole batches (numpy columns), never on single packets; see
../shared/guide/performance.md for the measurements behind that choice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Final, cast

import numpy as np
import numpy.typing as npt

from flowd.model.flowkey import KEY_BYTES
from flowd.model.record import Record
from flowd.model.routes import FlowRoutes

U8 = npt.NDArray[np.uint8]
U16 = npt.NDArray[np.uint16]
U32 = npt.NDArray[np.uint32]
U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MAC_BYTES: Final = 12  # a MAC column row: destination then source address, as in an Ethernet header


@dataclass(slots=True, eq=False, repr=False)
class FrameBatch(Record):
    """Raw link-layer frames as read from a capture file or ring, in arrival order.

    Frame i is ``buf[offset[i] : offset[i] + caplen[i]]``.
    """

    buf: bytes | memoryview
    offset: I64
    caplen: U32
    wirelen: U32
    ts: F64  # seconds since the epoch
    linktype: U16  # LINKTYPE_* number of each frame
    ifindex: U32  # input interface index (SNMP index) of each frame

    def __len__(self) -> int:
        return int(self.offset.shape[0])

    @staticmethod
    def empty() -> FrameBatch:
        return FrameBatch(buf=b"", offset=np.zeros(0, np.int64), caplen=np.zeros(0, np.uint32),
                          wirelen=np.zeros(0, np.uint32), ts=np.zeros(0, np.float64), linktype=np.zeros(0, np.uint16),
                          ifindex=np.zeros(0, np.uint32))

    def slice(self, start: int, stop: int, ts: F64 | None = None) -> FrameBatch:
        """Frames ``[start, stop)``, optionally with new timestamps (replay rebases them)."""
        return FrameBatch(buf=self.buf, offset=self.offset[start:stop], caplen=self.caplen[start:stop],
                          wirelen=self.wirelen[start:stop],
                          ts=self.ts[start:stop] if ts is None else ts,
                          linktype=self.linktype[start:stop], ifindex=self.ifindex[start:stop])


@dataclass(slots=True, eq=False, repr=False)
class PacketBatch(Record):
    """Accountable IP packets, one row each, in arrival order.

    ``key`` rows follow flowd.model.flowkey; every other column is per packet.
    """

    key: U8  # shape (n, KEY_BYTES)
    length: U32  # bytes counted: IPv4 total length, IPv6 payload length + 40
    ts: F64
    tcp_flags: U8
    ttl: U8  # IPv4 TTL or IPv6 hop limit
    vlan: U16  # outer VLAN id, 0 when untagged
    inner_vlan: U16  # inner (customer) VLAN id of QinQ, 0 when absent
    mpls: U32  # shape (n, 3): top three label stack entries (label<<4 | exp<<1 | s), 0 when absent
    mac: U8 | None = None  # shape (n, MAC_BYTES) (flowd.core.frame_rules.frame_macs); None: not decoded

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_]) -> PacketBatch:
        """Return the rows selected by an index array or a boolean mask."""
        if index.dtype == np.bool_:  # np.compress: several times faster than a boolean index on the (n, 40) key
            mask = cast(npt.NDArray[np.bool_], index)

            def pick(column: Any) -> Any:
                return np.compress(mask, column, axis=0)
        else:
            def pick(column: Any) -> Any:
                return column[index]
        return PacketBatch(
            key=pick(self.key), length=pick(self.length), ts=pick(self.ts), tcp_flags=pick(self.tcp_flags),
            ttl=pick(self.ttl), vlan=pick(self.vlan), inner_vlan=pick(self.inner_vlan), mpls=pick(self.mpls),
            mac=None if self.mac is None else pick(self.mac),
        )

    def rows(self, rows: slice) -> PacketBatch:
        """Return a run of rows, as views (no copy)."""
        return PacketBatch(
            key=self.key[rows], length=self.length[rows], ts=self.ts[rows], tcp_flags=self.tcp_flags[rows],
            ttl=self.ttl[rows], vlan=self.vlan[rows], inner_vlan=self.inner_vlan[rows], mpls=self.mpls[rows],
            mac=None if self.mac is None else self.mac[rows],
        )

    @staticmethod
    def empty() -> PacketBatch:
        return PacketBatch(
            key=np.zeros((0, KEY_BYTES), np.uint8), length=np.zeros(0, np.uint32),
            ts=np.zeros(0, np.float64), tcp_flags=np.zeros(0, np.uint8), ttl=np.zeros(0, np.uint8),
            vlan=np.zeros(0, np.uint16), inner_vlan=np.zeros(0, np.uint16),
            mpls=np.zeros((0, 3), np.uint32),
        )

    @staticmethod
    def concat(parts: list[PacketBatch]) -> PacketBatch:
        if not parts:
            return PacketBatch.empty()
        if len(parts) == 1:
            return parts[0]
        return PacketBatch(
            key=np.concatenate([p.key for p in parts]),
            length=np.concatenate([p.length for p in parts]),
            ts=np.concatenate([p.ts for p in parts]),
            tcp_flags=np.concatenate([p.tcp_flags for p in parts]),
            ttl=np.concatenate([p.ttl for p in parts]),
            vlan=np.concatenate([p.vlan for p in parts]),
            inner_vlan=np.concatenate([p.inner_vlan for p in parts]),
            mpls=np.concatenate([p.mpls for p in parts]),
            mac=concat_macs([(len(p), p.mac) for p in parts]),
        )


@dataclass(slots=True, eq=False, repr=False)
class FlowRecords(Record):
    """Finished (expired) flows, one row each, ready for the encoders.

    Times are in the flow table's time base (packet time); the exporter converts them.
    """

    key: U8  # shape (n, KEY_BYTES)
    packets: U64
    bytes: U64
    first: F64
    last: F64
    tcp_flags: U8
    ttl_min: U8
    ttl_max: U8
    vlan: U16
    inner_vlan: U16
    mpls: U32  # shape (n, 3)
    end_reason: U8  # flowd.model.expiry.ExpiryReason values
    mac: U8 | None = None  # shape (n, MAC_BYTES): the first packet's addresses; None: the cache keeps none
    routes: FlowRoutes | None = None  # what the route lookup found (set at export), None: no lookup

    def __len__(self) -> int:
        return int(self.packets.shape[0])

    def take(self, index: npt.NDArray[np.intp] | npt.NDArray[np.bool_] | slice) -> FlowRecords:
        """Return the rows selected by an index array or a boolean mask (copies), or a slice (views)."""
        return FlowRecords(
            key=self.key[index], packets=self.packets[index], bytes=self.bytes[index],
            first=self.first[index], last=self.last[index], tcp_flags=self.tcp_flags[index],
            ttl_min=self.ttl_min[index], ttl_max=self.ttl_max[index], vlan=self.vlan[index],
            inner_vlan=self.inner_vlan[index], mpls=self.mpls[index],
            end_reason=self.end_reason[index], mac=None if self.mac is None else self.mac[index],
            routes=None if self.routes is None else self.routes.take(index),
        )

    def with_routes(self, routes: FlowRoutes | None) -> FlowRecords:
        """The same rows carrying these route columns."""
        return replace(self, routes=routes)

    def route_columns(self) -> FlowRoutes:
        """The route columns, or "no route" rows (input interface from the flow key) without a lookup."""
        if self.routes is not None:
            return self.routes
        return FlowRoutes.for_keys(self.key)

    @staticmethod
    def empty() -> FlowRecords:
        return FlowRecords(
            key=np.zeros((0, KEY_BYTES), np.uint8), packets=np.zeros(0, np.uint64),
            bytes=np.zeros(0, np.uint64), first=np.zeros(0, np.float64),
            last=np.zeros(0, np.float64), tcp_flags=np.zeros(0, np.uint8),
            ttl_min=np.zeros(0, np.uint8), ttl_max=np.zeros(0, np.uint8),
            vlan=np.zeros(0, np.uint16), inner_vlan=np.zeros(0, np.uint16),
            mpls=np.zeros((0, 3), np.uint32), end_reason=np.zeros(0, np.uint8),
        )

    @staticmethod
    def concat(parts: list[FlowRecords]) -> FlowRecords:
        parts = [p for p in parts if len(p)]
        if not parts:
            return FlowRecords.empty()
        if len(parts) == 1:
            return parts[0]
        routes = None
        if all(p.routes is not None for p in parts):
            routes = FlowRoutes.concat([p.routes for p in parts if p.routes is not None])
        columns = {f: np.concatenate([getattr(p, f) for p in parts]) for f in FlowRecords.__slots__
                   if f not in ("routes", "mac")}
        return FlowRecords(**columns, mac=concat_macs([(len(p), p.mac) for p in parts]), routes=routes)

    def mac_columns(self) -> U8:
        """The MAC rows, or zeros when the flows kept none."""
        return np.zeros((len(self), MAC_BYTES), np.uint8) if self.mac is None else self.mac


def concat_macs(parts: list[tuple[int, U8 | None]]) -> U8 | None:
    """The MAC columns of concatenated batches: None when no part has them, zeros for a part without."""
    if all(mac is None for _, mac in parts):
        return None
    return np.concatenate([np.zeros((n, MAC_BYTES), np.uint8) if mac is None else mac for n, mac in parts])
