"""The flow cache: columnar numpy storage behind a vectorised open-addressing hash index.

How flows start and end (the rules every test and the synthetic ground truth share)
-----------------------------------------------------------------------------------
A flow is the set of packets with one key (flowd.model.flowkey). Time is the packet's own timestamp, so a
capture file processed in batch mode exports exactly what a live run would have exported.

* A packet at time ``t`` for a cached flow (first packet ``f``, last packet ``l``) joins it unless the
  flow had already timed out by then: ``t - l > inactive`` (idle) or ``t - f >= active`` (active). A
  timed-out flow is expired first, with that reason, and the packet starts a new flow.
* A TCP packet carrying FIN or RST joins its flow, and the flow ends at once (END_OF_FLOW). A later
  packet of the same key (the last ACK of a close) starts a new flow.
* ``expire(now)`` ends every flow for which the same two timeout conditions hold at ``now``; the
  daemon calls it at ``next_deadline()``, batch mode after every batch.
* ``flush(now, reason)`` ends everything (shutdown, ``clear services accounting flow``, end of file).
* With ``macs`` (a bridge template exports them) a flow keeps the MAC addresses of its first packet
  in arrival order (docs/accuracy.md); later packets of the flow never change them.
* When the table holds ``max_flows`` flows, a packet that would start a new flow is not accounted: it
  counts in ``dropped_no_memory`` and ``memory_overload`` turns on. Cached flows are never evicted early.
  The room is judged per batch: it is ``max_flows`` less the flows cached before the batch that are
  still cached once their packets in it are accounted; the flows the batch starts (including those
  that also end in it) are admitted earliest first (at equal times, the earlier first packet) while
  there is room, and the packets of the others are dropped.

How a batch is merged
---------------------
``add`` never loops over packets in Python. It hashes every 40-byte key (five 64-bit words mixed
together), sorts the batch by hash (stable, so each key's packets stay in arrival order), and marks
segment starts: the first packet of a key, the packet after a FIN/RST, and a packet after an idle gap.
Segments that outlast the active timeout are split again, in a few vectorised rounds. Per-segment sums
come from ``np.add.reduceat``. Only the first segment of a key can continue a cached flow, and only the
last can stay cached; segments in between are whole flows that begin and end inside the batch.

The index is an int32 open-addressing table (linear probing, load kept at or under one half) mapping a
key's hash position to its slot in the columns. Lookups and inserts probe all pending keys at once;
deleted entries become tombstones and the index is rebuilt when they pile up. Memory per flow is the
40-byte key row, about 50 bytes of value columns, and 8 to 16 bytes of index: about 110 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.core.batch_groups import Grouped, group, hash_words, key_words
from flowd.model.batch import MAC_BYTES, FlowRecords, PacketBatch
from flowd.model.expiry import ExpiryReason
from flowd.model.flowkey import KEY_BYTES, PROTO
from flowd.core.table_counters import OVERLOAD_HOLD, TableCounters
from flowd.model.record import Record

EMPTY: Final = -1
TOMBSTONE: Final = -2
TCP: Final = 6
FIN_OR_RST: Final = 0x01 | 0x04
MIN_CAPACITY: Final = 1024

Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]


# The value columns, one row per slot: (attribute, dtype, width; 0 = one value per slot).
COLUMNS: Final = (
    ("keys", np.uint8, KEY_BYTES), ("pos", np.int64, 0), ("live", np.bool_, 0), ("packets", np.uint64, 0),
    ("bytes", np.uint64, 0), ("first", np.float64, 0), ("last", np.float64, 0), ("tcp_flags", np.uint8, 0),
    ("ttl_min", np.uint8, 0), ("ttl_max", np.uint8, 0), ("vlan", np.uint16, 0), ("inner_vlan", np.uint16, 0),
    ("mpls", np.uint32, 3),
)
MAC_COLUMN: Final = ("mac", np.uint8, MAC_BYTES)  # with macs: the first packet's MAC addresses


@dataclass(slots=True, eq=False, repr=False)
class _Segments(Record):
    """A batch's packets cut into flow segments, with each segment's sums."""

    starts: Ints  # sorted position of each segment's first packet
    key: Ints  # key group of each segment
    src: Ints  # batch row of each segment's first packet
    first_seg: Bools  # the key's first segment (the one that may continue a cached flow)
    closes: Bools  # the segment ends its flow inside this batch
    reason: npt.NDArray[np.uint8]  # why it ends (when it does)
    packets: npt.NDArray[np.uint64]
    bytes: npt.NDArray[np.uint64]
    flags: npt.NDArray[np.uint8]
    first: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    ttl_min: npt.NDArray[np.uint8]
    ttl_max: npt.NDArray[np.uint8]
    merged: Bools = field(default_factory=lambda: np.zeros(0, np.bool_))  # folded into a cached flow


class FlowTable:
    """The flow cache. Pure: no I/O, no clock; every method takes ``now`` in packet time."""

    keys: npt.NDArray[np.uint8]
    pos: npt.NDArray[np.int64]  # index position of each slot
    live: npt.NDArray[np.bool_]
    packets: npt.NDArray[np.uint64]
    bytes: npt.NDArray[np.uint64]
    first: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]
    tcp_flags: npt.NDArray[np.uint8]
    ttl_min: npt.NDArray[np.uint8]
    ttl_max: npt.NDArray[np.uint8]
    vlan: npt.NDArray[np.uint16]
    inner_vlan: npt.NDArray[np.uint16]
    mpls: npt.NDArray[np.uint32]
    mac: npt.NDArray[np.uint8]  # no rows unless ``macs``

    def __init__(self, max_flows: int, active_timeout: float, inactive_timeout: float, macs: bool = False) -> None:
        self.max_flows = max_flows
        self.active_timeout = float(active_timeout)
        self.inactive_timeout = float(inactive_timeout)
        self.counters = TableCounters()
        self._n = 0  # live flows
        self._cap = 0
        self._used = 0  # index entries that are not EMPTY (live + tombstones)
        self._index = np.full(2 * MIN_CAPACITY, EMPTY, np.int32)
        self._free = np.zeros(0, np.int64)  # stack of freed slots below _top, reused before growing
        self._nfree = 0
        self._top = 0  # slots [0, _top) have been handed out at least once
        self._columns = COLUMNS + ((MAC_COLUMN,) if macs else ())
        self.mac = np.zeros((0, MAC_BYTES), np.uint8)
        self._alloc(MIN_CAPACITY)

    # -- storage -------------------------------------------------------------------------------

    def _alloc(self, cap: int) -> None:
        """(Re)allocate every column for ``cap`` slots, keeping the slots handed out so far."""
        for name, dtype, width in self._columns:
            new = np.zeros((cap, width) if width else (cap,), dtype)
            if self._cap and self._top:
                new[: self._top] = getattr(self, name)[: self._top]
            setattr(self, name, new)
        self._cap = cap

    def __len__(self) -> int:
        return self._n

    @property
    def macs(self) -> bool:
        """Whether flows keep their first packet's MAC addresses (a bridge template exports them)."""
        return MAC_COLUMN in self._columns

    @macs.setter
    def macs(self, on: bool) -> None:  # a reload: flows cached before MACs were kept end with zeros
        self._columns = COLUMNS + ((MAC_COLUMN,) if on else ())
        self.mac = np.zeros((self._cap if on else 0, MAC_BYTES), np.uint8)

    @property
    def memory_used(self) -> int:
        """Bytes allocated for the cache (columns and index)."""
        return int(sum(getattr(self, name).nbytes for name, _, _ in self._columns) + self._index.nbytes)

    @property
    def bytes_per_flow(self) -> int:
        """Bytes one cached flow occupies in the columns plus its index share."""
        row = sum(np.dtype(dtype).itemsize * (width or 1) for _, dtype, width in self._columns)
        return int(row + 2 * self._index.itemsize)

    def memory_overload(self, now: float) -> bool:
        return self._n >= self.max_flows or now < self.counters.overload_until

    # -- the hash index ------------------------------------------------------------------------

    def _lookup(self, words: npt.NDArray[np.uint64], h: npt.NDArray[np.uint64]) -> Ints:
        """Slot of each key, or -1 when it is not cached. Keys must be unique."""
        mask = np.uint64(self._index.shape[0] - 1)
        pos = (h & mask).astype(np.int64)
        found = np.full(h.shape[0], -1, np.int64)
        pending = np.arange(h.shape[0])
        table_words = key_words(self.keys)
        while pending.size:
            p = pos[pending]
            slot = self._index[p]
            occupied = slot >= 0
            match = np.zeros(pending.shape[0], np.bool_)
            if occupied.any():
                cand = pending[occupied]
                s = slot[occupied].astype(np.int64)
                match[occupied] = np.all(table_words[s] == words[cand], axis=1)
            found[pending[match]] = slot[match]
            go_on = ~match & (slot != EMPTY)
            pending = pending[go_on]
            pos[pending] = (pos[pending] + 1) & int(mask)
        return found

    def _insert(self, h: npt.NDArray[np.uint64], slots: Ints) -> None:
        """Enter new, not yet cached keys (their slots) into the index."""
        if self._used + slots.shape[0] > self._index.shape[0] // 2:
            self._rebuild(self._n + slots.shape[0])
        mask = self._index.shape[0] - 1
        pos = (h & np.uint64(mask)).astype(np.int64)
        pending = np.arange(slots.shape[0])
        while pending.size:
            cand = pending[self._index[pos[pending]] == EMPTY]
            # Several new keys may want the same empty position: scatter them all, read back who won.
            self._index[pos[cand]] = slots[cand]
            winners = cand[self._index[pos[cand]] == slots[cand]]
            self.pos[slots[winners]] = pos[winners]
            done = np.zeros(slots.shape[0], np.bool_)
            done[winners] = True
            pending = pending[~done[pending]]
            pos[pending] = (pos[pending] + 1) & mask
        self._used += slots.shape[0]

    def _remove(self, slots: Ints) -> None:
        self._index[self.pos[slots]] = TOMBSTONE
        self.live[slots] = False
        need = self._nfree + slots.shape[0]
        if need > self._free.shape[0]:
            grown = np.zeros(max(need, 2 * self._free.shape[0]), np.int64)
            grown[: self._nfree] = self._free[: self._nfree]
            self._free = grown
        self._free[self._nfree: need] = slots
        self._nfree = need
        self._n -= slots.shape[0]

    def _rebuild(self, want: int) -> None:
        """Resize the index for ``want`` live keys and drop tombstones."""
        size = self._index.shape[0]
        while want * 4 > size:  # keep the load at or under a quarter right after a rebuild
            size *= 2
        while size > 2 * MIN_CAPACITY and want * 8 < size:
            size //= 2
        self._index = np.full(size, EMPTY, np.int32)
        self._used = 0
        slots = np.flatnonzero(self.live[: self._top]).astype(np.int64)
        if slots.size:
            self._insert(hash_words(key_words(self.keys[slots])), slots)

    def _take_slots(self, count: int) -> Ints:
        reuse = min(count, self._nfree)
        out = np.empty(count, np.int64)
        if reuse:
            out[:reuse] = self._free[self._nfree - reuse: self._nfree]
            self._nfree -= reuse
        fresh = count - reuse
        if fresh:
            if self._top + fresh > self._cap:
                cap = self._cap
                while self._top + fresh > cap:
                    cap *= 2
                self._alloc(cap)
            out[reuse:] = np.arange(self._top, self._top + fresh)
            self._top += fresh
        return out

    # -- adding packets ------------------------------------------------------------------------

    def add(self, batch: PacketBatch, now: float) -> FlowRecords:
        """Account a batch of packets; return the flows that ended while doing so.

        Packet timestamps drive every decision inside the batch; ``now`` only stamps overload.
        """
        if len(batch) == 0:
            return FlowRecords.empty()
        g = group(batch)
        slot, cached, carry_first, ended = self._continuing(g)
        seg = self._segments(batch, g, cached, carry_first)
        ended += self._fold(seg, slot, cached)
        ended += self._admit(batch, g, seg, now)
        return FlowRecords.concat(ended)

    def _continuing(self, g: Grouped) -> tuple[Ints, Bools, npt.NDArray[np.float64], list[FlowRecords]]:
        """Which keys continue a cached flow, and which cached flows timed out before this batch."""
        nkeys = g.key_start.shape[0]
        slot = self._lookup(g.ws[g.key_start], g.hs[g.key_start])
        cached = slot >= 0
        t0 = g.ts[g.key_start]
        ended: list[FlowRecords] = []
        carry_first = np.full(nkeys, np.nan)
        if cached.any():
            cs = slot[cached]
            idle = t0[cached] - self.last[cs] > self.inactive_timeout
            active = ~idle & (t0[cached] - self.first[cs] >= self.active_timeout)
            stale = idle | active
            if stale.any():
                reasons = np.where(idle[stale], ExpiryReason.IDLE_TIMEOUT,
                                   ExpiryReason.ACTIVE_TIMEOUT).astype(np.uint8)
                ended.append(self._evict(cs[stale], reasons))
                drop = np.flatnonzero(cached)[stale]
                slot[drop] = -1
                cached[drop] = False
            carry_first[cached] = self.first[slot[cached]]
        return slot, cached, carry_first, ended

    def _segments(self, batch: PacketBatch, g: Grouped, cached: Bools,
                  carry_first: npt.NDArray[np.float64]) -> _Segments:
        """Cut the packets of each key into flows (FIN/RST, inactive gaps, active timeouts) and sum them."""
        n, ts, new_key = len(batch), g.ts, g.new_key
        proto = batch.key[g.order, PROTO]
        flags = batch.tcp_flags[g.order]
        ends = (proto == TCP) & ((flags & FIN_OR_RST) != 0)
        seg_start = new_key.copy()
        seg_start[1:] |= ends[:-1] & ~new_key[1:]
        gap = np.zeros(n, np.bool_)
        gap[1:] = (ts[1:] - ts[:-1] > self.inactive_timeout) & ~new_key[1:]
        seg_start |= gap
        reason_split = np.zeros(n, np.uint8)  # why the segment *before* this start ended
        reason_split[gap] = ExpiryReason.IDLE_TIMEOUT
        earliest = min(float(ts.min()), float(np.nanmin(carry_first)) if cached.any() else np.inf)
        if float(ts.max()) - earliest >= self.active_timeout:  # else no segment can be that long
            seg_start, reason_split = self._split_active(ts, seg_start, new_key, g.key_of, carry_first,
                                                         reason_split)
        starts = np.flatnonzero(seg_start)
        nseg = starts.shape[0]
        seg_end = np.empty(nseg, np.int64)
        seg_end[:-1] = starts[1:] - 1
        seg_end[-1] = n - 1
        last_seg = np.ones(nseg, np.bool_)
        last_seg[:-1] = new_key[starts[1:]]
        fin_end = ends[seg_end]
        # A segment ends as a flow: by FIN/RST, or by the reason recorded where the next one starts.
        reason = np.zeros(nseg, np.uint8)
        reason[:-1] = reason_split[starts[1:]]
        reason[fin_end] = ExpiryReason.END_OF_FLOW
        lengths = batch.length[g.order].astype(np.uint64)
        ttl = batch.ttl[g.order]
        return _Segments(
            starts=starts, key=g.key_of[starts], src=g.order[starts], first_seg=new_key[starts],
            closes=fin_end | ~last_seg, reason=reason,
            packets=np.diff(np.append(starts, n)).astype(np.uint64), bytes=np.add.reduceat(lengths, starts),
            flags=np.bitwise_or.reduceat(flags, starts), first=np.minimum.reduceat(ts, starts),
            last=np.maximum.reduceat(ts, starts), ttl_min=np.minimum.reduceat(ttl, starts),
            ttl_max=np.maximum.reduceat(ttl, starts))

    def _fold(self, seg: _Segments, slot: Ints, cached: Bools) -> list[FlowRecords]:
        """Fold the segments that continue a cached flow into the cache; return the flows they end."""
        merge = seg.first_seg & cached[seg.key]
        seg.merged = merge
        mslots = slot[seg.key[merge]]
        self.packets[mslots] += seg.packets[merge]
        self.bytes[mslots] += seg.bytes[merge]
        self.tcp_flags[mslots] |= seg.flags[merge]
        self.first[mslots] = np.minimum(self.first[mslots], seg.first[merge])
        self.last[mslots] = np.maximum(self.last[mslots], seg.last[merge])
        self.ttl_min[mslots] = np.minimum(self.ttl_min[mslots], seg.ttl_min[merge])
        self.ttl_max[mslots] = np.maximum(self.ttl_max[mslots], seg.ttl_max[merge])
        self.counters.packets += int(seg.packets[merge].sum())
        self.counters.bytes += int(seg.bytes[merge].sum())
        done = merge & seg.closes
        return [self._evict(slot[seg.key[done]], seg.reason[done])] if done.any() else []

    def _admit(self, batch: PacketBatch, g: Grouped, seg: _Segments, now: float) -> list[FlowRecords]:
        """New flows: admitted in time order while there is room, the rest refused; return those already ended."""
        new = np.flatnonzero(~seg.merged)
        if not new.size:
            return []
        ended: list[FlowRecords] = []
        room = self.max_flows - self._n
        if new.size > room:  # the earliest first; at equal times, the earlier first packet
            by_time = new[np.lexsort((seg.src[new], seg.first[new]))]
            refused = by_time[max(room, 0):]
            new = np.sort(by_time[: max(room, 0)])
            self.counters.dropped_no_memory += int(seg.packets[refused].sum())
            self.counters.refused_flows += int(refused.size)
            self.counters.overload_until = now + OVERLOAD_HOLD
        self.counters.flows_created += int(new.size)
        self.counters.packets += int(seg.packets[new].sum())
        self.counters.bytes += int(seg.bytes[new].sum())
        whole = new[seg.closes[new]]  # begin and end inside this batch
        if whole.size:
            self.counters.flows_freed += int(whole.size)
            self.counters.max_allocated = max(self.counters.max_allocated, self._n + 1)
            rows = seg.src[whole]
            ended.append(FlowRecords(
                key=batch.key[rows], packets=seg.packets[whole], bytes=seg.bytes[whole], first=seg.first[whole],
                last=seg.last[whole], tcp_flags=seg.flags[whole], ttl_min=seg.ttl_min[whole],
                ttl_max=seg.ttl_max[whole], vlan=batch.vlan[rows], inner_vlan=batch.inner_vlan[rows],
                mpls=batch.mpls[rows], end_reason=seg.reason[whole],
                mac=self._first_macs(batch, rows) if self.macs else None))
            self._count_reasons(seg.reason[whole])
        keep = new[~seg.closes[new]]
        if keep.size:
            slots = self._take_slots(int(keep.size))
            rows = seg.src[keep]
            self.keys[slots] = batch.key[rows]
            self.packets[slots] = seg.packets[keep]
            self.bytes[slots] = seg.bytes[keep]
            self.first[slots] = seg.first[keep]
            self.last[slots] = seg.last[keep]
            self.tcp_flags[slots] = seg.flags[keep]
            self.ttl_min[slots] = seg.ttl_min[keep]
            self.ttl_max[slots] = seg.ttl_max[keep]
            self.vlan[slots] = batch.vlan[rows]
            self.inner_vlan[slots] = batch.inner_vlan[rows]
            self.mpls[slots] = batch.mpls[rows]
            if self.macs:
                self.mac[slots] = self._first_macs(batch, rows)
            self._insert(g.hs[seg.starts[keep]], slots)
            self.live[slots] = True
            self._n += int(keep.size)
            self.counters.max_allocated = max(self.counters.max_allocated, self._n)
        return ended

    @staticmethod
    def _first_macs(batch: PacketBatch, rows: Ints) -> npt.NDArray[np.uint8]:
        """The MAC rows of the flows' first packets (zeros when the batch has none)."""
        return np.zeros((rows.shape[0], MAC_BYTES), np.uint8) if batch.mac is None else batch.mac[rows]

    def _split_active(self, ts: npt.NDArray[np.float64], seg_start: Bools, new_key: Bools,
                      key_of: Ints, carry_first: npt.NDArray[np.float64],
                      reason_split: npt.NDArray[np.uint8]) -> tuple[Bools, npt.NDArray[np.uint8]]:
        """Start a new segment wherever a packet comes ``active`` seconds after its segment began."""
        idx = np.arange(ts.shape[0])
        while True:
            start_idx = np.maximum.accumulate(np.where(seg_start, idx, 0))
            begin = ts[start_idx]
            # The first segment of a key that continues a cached flow began with that flow.
            carried = new_key[start_idx] & ~np.isnan(carry_first[key_of])
            begin = np.where(carried, carry_first[key_of], begin)
            late = (ts - begin >= self.active_timeout) & ~seg_start
            if not late.any():
                return seg_start, reason_split
            # Split only at the first late packet of each segment, then look again.
            late_idx = np.flatnonzero(late)
            _, first_of_seg = np.unique(start_idx[late_idx], return_index=True)
            cut = late_idx[first_of_seg]
            seg_start = seg_start.copy()
            seg_start[cut] = True
            reason_split[cut] = ExpiryReason.ACTIVE_TIMEOUT

    # -- ending flows --------------------------------------------------------------------------

    def _evict(self, slots: Ints, reasons: npt.NDArray[np.uint8]) -> FlowRecords:
        records = self.snapshot(slots)
        records.end_reason = np.asarray(reasons, np.uint8)
        self._remove(slots)
        self.counters.flows_freed += int(slots.shape[0])
        self._count_reasons(records.end_reason)
        return records

    def _count_reasons(self, reasons: npt.NDArray[np.uint8]) -> None:
        counts = np.bincount(reasons, minlength=6)
        self.counters.idle_expired += int(counts[ExpiryReason.IDLE_TIMEOUT])
        self.counters.active_expired += int(counts[ExpiryReason.ACTIVE_TIMEOUT])
        self.counters.end_of_flow += int(counts[ExpiryReason.END_OF_FLOW])
        self.counters.forced += int(counts[ExpiryReason.FORCED_END])

    def live_slots(self) -> Ints:
        return np.flatnonzero(self.live[: self._top]).astype(np.int64)

    def expire(self, now: float) -> FlowRecords:
        """End every flow that has timed out at ``now``."""
        if self._n == 0:
            return FlowRecords.empty()
        top = self._top
        live = self.live[:top]
        idle = live & (now - self.last[:top] > self.inactive_timeout)
        active = live & ~idle & (now - self.first[:top] >= self.active_timeout)
        slots = np.flatnonzero(idle | active).astype(np.int64)
        if slots.size == 0:
            return FlowRecords.empty()
        reasons = np.where(idle[slots], ExpiryReason.IDLE_TIMEOUT,
                           ExpiryReason.ACTIVE_TIMEOUT).astype(np.uint8)
        return self._evict(slots, reasons)

    def next_deadline(self) -> float | None:
        """The earliest time at which ``expire`` will end a flow, or None when the cache is empty."""
        if self._n == 0:
            return None
        live = self.live[: self._top]
        idle = float(self.last[: self._top][live].min()) + self.inactive_timeout
        active = float(self.first[: self._top][live].min()) + self.active_timeout
        # Idle expiry needs `now - last` to exceed the timeout strictly.
        return min(float(np.nextafter(idle, np.inf)), active)

    def flush(self, now: float, reason: ExpiryReason = ExpiryReason.FORCED_END,
              limit: int | None = None) -> FlowRecords:
        """End every cached flow now, or at most ``limit`` of them (call again until it returns none)."""
        del now
        slots = self.live_slots()
        if slots.size == 0:
            return FlowRecords.empty()
        if limit is not None and limit < slots.size:
            return self._evict(slots[slots.size - limit:], np.full(limit, reason, np.uint8))
        records = self._evict(slots, np.full(slots.shape[0], reason, np.uint8))
        self._top = 0
        self._nfree = 0
        self._rebuild(0)
        return records

    # -- reading -------------------------------------------------------------------------------

    def snapshot(self, slots: Ints) -> FlowRecords:
        """Copies of the given cached flows (end reason 0: still active)."""
        return FlowRecords(
            key=self.keys[slots], packets=self.packets[slots], bytes=self.bytes[slots],
            first=self.first[slots], last=self.last[slots], tcp_flags=self.tcp_flags[slots],
            ttl_min=self.ttl_min[slots], ttl_max=self.ttl_max[slots], vlan=self.vlan[slots],
            inner_vlan=self.inner_vlan[slots], mpls=self.mpls[slots],
            end_reason=np.zeros(slots.shape[0], np.uint8), mac=self.mac[slots] if self.macs else None)

    def top(self, limit: int | None, order: str = "bytes", mask: Bools | None = None) -> FlowRecords:
        """The cached flows, largest first by ``order`` ("bytes" or "packets"), optionally filtered.

        ``mask`` selects among slots ``[0, top)``. Uses argpartition, so 10 of 1M flows cost milliseconds.
        """
        top = self._top
        keep = self.live[:top] if mask is None else self.live[:top] & mask[:top]
        slots = np.flatnonzero(keep)
        column = (self.bytes if order == "bytes" else self.packets)[:top][slots]
        if limit is not None and limit < slots.size:
            part = np.argpartition(column, slots.size - limit)[slots.size - limit:]
            slots, column = slots[part], column[part]
        slots = slots[np.argsort(column, kind="stable")[::-1]]
        return self.snapshot(slots.astype(np.int64))
