"""The flow cache on the compiled table (flowd/native/_flowtable.c), with the numpy FlowTable's interface.

``new_flow_table`` gives this cache when the extension is built and enabled, and the numpy
``flowd.core.flowtable.FlowTable`` otherwise (or with ``FLOWD_NO_FASTPATH=1``). Both apply the rules in
flowd/core/flowtable.py's header comment and give the same flows, end reasons and statistics; the numpy table
states them and is the reference tests/flowd/test_compiled_table.py holds this one to.

The C side keeps the flows; this side keeps the statistics (``counters``, which the shows read and
``clear`` replaces) and turns the ended flows into ``FlowRecords``.
"""

from __future__ import annotations

from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from flowd.core.flowtable import FlowTable
from flowd.core.table_counters import OVERLOAD_HOLD, TableCounters
from flowd.model.batch import MAC_BYTES, FlowRecords, PacketBatch
from flowd.model.expiry import ExpiryReason
from flowd.model.flowkey import KEY_BYTES
from flowd.native import compiled

EXTENSION: Final = "flowd.native._flowtable"
REASONS: Final = {reason.name: reason.value for reason in ExpiryReason if reason <= ExpiryReason.FORCED_END}
ROW_BYTES: Final = {4: 64, 6: 88}  # one IPv4 / IPv6 flow's row (key and values) in the C table
INDEX_SHARE: Final = 8  # uint32 index entries at a load of at most one half

Bools = npt.NDArray[np.bool_]


class TableType(Protocol):
    """flowd.native._flowtable.Table, as this module uses it."""

    def __call__(self, max_flows: int, active_timeout: float, inactive_timeout: float, macs: bool) -> Any: ...


def table_type() -> TableType | None:
    """The compiled table's type, or None when it is not built or FLOWD_NO_FASTPATH=1 is set."""
    found: TableType | None = compiled("Table", module=EXTENSION, **REASONS)
    return found


def new_flow_table(max_flows: int, active_timeout: float, inactive_timeout: float, macs: bool = False) -> FlowCache:
    """The flow cache: compiled when it can be, numpy otherwise; ``macs``: flows keep their MAC addresses."""
    kind = table_type()
    if kind is None:
        return FlowTable(max_flows, active_timeout, inactive_timeout, macs)
    return CompiledFlowTable(kind, max_flows, active_timeout, inactive_timeout, macs)


class CompiledFlowTable:
    """The flow cache in C. Pure: no I/O, no clock; every method takes ``now`` in packet time."""

    def __init__(self, kind: TableType, max_flows: int, active_timeout: float, inactive_timeout: float,
                 macs: bool = False) -> None:
        self._max_flows = int(max_flows)
        self._active = float(active_timeout)
        self._inactive = float(inactive_timeout)
        self._macs = bool(macs)
        self._table = kind(self._max_flows, self._active, self._inactive, self._macs)
        self.counters = TableCounters()

    # -- settings (a reload changes them and keeps the flows) ---------------------------------

    @property
    def max_flows(self) -> int:
        return self._max_flows

    @max_flows.setter
    def max_flows(self, value: int) -> None:
        self._configure(max_flows=int(value))

    @property
    def active_timeout(self) -> float:
        return self._active

    @active_timeout.setter
    def active_timeout(self, value: float) -> None:
        self._configure(active=float(value))

    @property
    def inactive_timeout(self) -> float:
        return self._inactive

    @inactive_timeout.setter
    def inactive_timeout(self, value: float) -> None:
        self._configure(inactive=float(value))

    @property
    def macs(self) -> bool:
        """Whether flows keep their first packet's MAC addresses (a bridge template exports them)."""
        return self._macs

    @macs.setter
    def macs(self, on: bool) -> None:
        self._table.keep_macs(bool(on))
        self._macs = bool(on)

    def _configure(self, *, max_flows: int | None = None, active: float | None = None,
                   inactive: float | None = None) -> None:
        self._max_flows = self._max_flows if max_flows is None else max_flows
        self._active = self._active if active is None else active
        self._inactive = self._inactive if inactive is None else inactive
        self._table.configure(self._max_flows, self._active, self._inactive)

    # -- the flow cache ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._table)

    def add(self, batch: PacketBatch, now: float) -> FlowRecords:
        """Account a batch of packets; return the flows that ended while doing so."""
        if len(batch) == 0:
            return FlowRecords.empty()
        c = np.ascontiguousarray
        ended = self._table.add(c(batch.key), c(batch.length, np.uint32), c(batch.ts, np.float64),
                                c(batch.tcp_flags, np.uint8), c(batch.ttl, np.uint8), c(batch.vlan, np.uint16),
                                c(batch.inner_vlan, np.uint16), c(batch.mpls, np.uint32),
                                None if batch.mac is None or not self._macs else c(batch.mac, np.uint8), float(now))
        return self.drain(ended, now)

    def expire(self, now: float) -> FlowRecords:
        """End every flow that has timed out at ``now``."""
        return self.drain(self._table.expire(float(now)), now)

    def next_deadline(self) -> float | None:
        """The earliest time at which ``expire`` will end a flow, or None when the cache is empty."""
        deadline: float | None = self._table.next_deadline()
        return deadline

    def flush(self, now: float, reason: ExpiryReason = ExpiryReason.FORCED_END,
              limit: int | None = None) -> FlowRecords:
        """End every cached flow now, or at most ``limit`` of them (call again until it returns none)."""
        return self.drain(self._table.flush(int(reason), -1 if limit is None else int(limit)), now)

    @property
    def native(self) -> Any:
        """The flowd.native._flowtable.Table itself (the live ingest adds to it in C, then calls ``drain``)."""
        return self._table

    def drain(self, count: int, now: float) -> FlowRecords:
        """The ``count`` flows the table ended since the last drain, its statistics added to ``counters``."""
        out = FlowRecords(
            key=np.empty((count, KEY_BYTES), np.uint8), packets=np.empty(count, np.uint64),
            bytes=np.empty(count, np.uint64), first=np.empty(count, np.float64), last=np.empty(count, np.float64),
            tcp_flags=np.empty(count, np.uint8), ttl_min=np.empty(count, np.uint8), ttl_max=np.empty(count, np.uint8),
            vlan=np.empty(count, np.uint16), inner_vlan=np.empty(count, np.uint16),
            mpls=np.empty((count, 3), np.uint32), end_reason=np.empty(count, np.uint8), mac=self._mac_column(count))
        stats = self._table.drain(out.key, out.packets, out.bytes, out.first, out.last, out.tcp_flags,
                                  out.ttl_min, out.ttl_max, out.vlan, out.inner_vlan, out.mpls, out.end_reason,
                                  out.mac)
        (packets, octets, created, freed, dropped, refused, idle, active, end_of_flow, forced, peak) = stats
        c = self.counters
        c.packets += packets
        c.bytes += octets
        c.flows_created += created
        c.flows_freed += freed
        c.dropped_no_memory += dropped
        c.refused_flows += refused
        c.idle_expired += idle
        c.active_expired += active
        c.end_of_flow += end_of_flow
        c.forced += forced
        c.max_allocated = max(c.max_allocated, peak)
        if refused:
            c.overload_until = now + OVERLOAD_HOLD
        return out

    # -- sizes ---------------------------------------------------------------------------------

    @property
    def memory_used(self) -> int:
        """Bytes allocated for the cache (rows, indexes, the layer-2 pool, the wheel)."""
        used: int = self._table.memory()
        return used

    @property
    def bytes_per_flow(self) -> int:
        """Bytes one cached IPv6 flow (the larger row) occupies, with its index share (and MACs, if kept)."""
        return ROW_BYTES[6] + INDEX_SHARE + (MAC_BYTES if self._macs else 0)

    def memory_overload(self, now: float) -> bool:
        return len(self) >= self.max_flows or now < self.counters.overload_until

    # -- reading -------------------------------------------------------------------------------

    def _ids(self) -> npt.NDArray[np.int64]:
        ids = np.empty(len(self), np.int64)
        return ids[: self._table.ids(ids)]

    @property
    def keys(self) -> npt.NDArray[np.uint8]:
        """The 40-byte key of every cached flow, in the order ``top``'s mask follows."""
        ids = self._ids()
        keys = np.empty((ids.shape[0], KEY_BYTES), np.uint8)
        self._table.read(ids, keys, *(None,) * 11)
        return keys

    def snapshot(self, ids: npt.NDArray[np.int64]) -> FlowRecords:
        """Copies of the given cached flows (end reason 0: still active)."""
        n = ids.shape[0]
        out = FlowRecords(
            key=np.empty((n, KEY_BYTES), np.uint8), packets=np.empty(n, np.uint64), bytes=np.empty(n, np.uint64),
            first=np.empty(n, np.float64), last=np.empty(n, np.float64), tcp_flags=np.empty(n, np.uint8),
            ttl_min=np.empty(n, np.uint8), ttl_max=np.empty(n, np.uint8), vlan=np.empty(n, np.uint16),
            inner_vlan=np.empty(n, np.uint16), mpls=np.empty((n, 3), np.uint32), end_reason=np.zeros(n, np.uint8),
            mac=self._mac_column(n))
        self._table.read(np.ascontiguousarray(ids, np.int64), out.key, out.packets, out.bytes, out.first, out.last,
                         out.tcp_flags, out.ttl_min, out.ttl_max, out.vlan, out.inner_vlan, out.mpls, out.mac)
        return out

    def _mac_column(self, n: int) -> npt.NDArray[np.uint8] | None:
        return np.empty((n, MAC_BYTES), np.uint8) if self._macs else None

    def top(self, limit: int | None, order: str = "bytes", mask: Bools | None = None) -> FlowRecords:
        """The cached flows, largest first by ``order`` ("bytes" or "packets"), optionally filtered.

        ``mask`` has one entry per row of ``keys`` (the cached flows in the table's order).
        """
        ids = self._ids()
        if mask is not None:
            ids = ids[mask[: ids.shape[0]]]
        column = np.empty(ids.shape[0], np.uint64)
        outputs: list[Any] = [None] * 11
        outputs[1 if order == "bytes" else 0] = column
        self._table.read(ids, None, *outputs)
        if limit is not None and limit < ids.shape[0]:
            part = np.argpartition(column, ids.shape[0] - limit)[ids.shape[0] - limit:]
            ids, column = ids[part], column[part]
        return self.snapshot(ids[np.argsort(column, kind="stable")[::-1]])


FlowCache = FlowTable | CompiledFlowTable
