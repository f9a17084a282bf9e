"""Longest-prefix match over one address family: a range table answering whole batches of addresses.

This numpy table is the reference: the compiled table (flowd/native/_lpm.c, through
``flowd.routing.compiled_lpm``) answers alike and is used when it is built, this one with
``FLOWD_NO_FASTPATH=1`` or without the extension.

How it works (the rules live here):

* The prefixes of a table nest (two prefixes are either disjoint or one contains the other), so the
  address space splits into ranges on which the longest matching prefix does not change. The table
  keeps the sorted start address of every range (``bounds``, always starting at address 0) with the
  route id and prefix length that hold on it (-1 / -1 where no prefix matches).
* A lookup is one ``np.searchsorted`` per batch: the range holding an address is the last bound at or
  below it. The search runs on a numeric "hot" key (the IPv4 address as uint32; the upper 64 bits of
  an IPv6 address as uint64); an IPv6 address whose upper 64 bits equal those of the bound found is
  searched again on the full 16 bytes. The batch is sorted first: numpy's binary search reuses the
  previous answer as a bound for increasing keys, which more than pays for the sort.
* Building paints, in increasing prefix length, each prefix's id over the ranges inside it, so a
  longer prefix overwrites a shorter one. Prefixes of one length are disjoint: one length is one
  vectorised assignment.
* An update batch (announcements and withdrawals) first adds, in one merge, the bounds the new
  prefixes need (valued as the table answered before), then paints each change over its own ranges
  only: an announcement of P (length L) takes the ranges inside P whose current length is <= L (an
  ancestor of P, nothing, or P itself re-announced); a withdrawal gives the ranges still held by P
  (length == L) to P's longest covering prefix, found in the prefix index. Bounds that no longer
  separate different values are merged away when their number has grown by half.
* Large IPv4 tables also keep a direct table with one 32-bit entry per /24 block: the route id and
  length that hold on the whole block, or REFINE when a range starts inside it (a prefix longer than
  /24). Most addresses are then answered by one gather, without a sort or a search; the rest go
  through the range table. Updates paint it with the same rules as the ranges (a prefix longer
  than /24 marks its block REFINE).
* The prefix index (prefix → route id, for updates) is a sorted array of ``address bytes + length
  byte`` keys with a dict of recent changes in front; the dict is merged into the array when large.

Addresses are big-endian byte rows: (n, 4) for IPv4, (n, 16) for IPv6. Host bits of a prefix are
cleared. Route ids are chosen by the caller (``flowd.routing.rib``); -1 means "withdraw".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import numpy as np
import numpy.typing as npt

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I16 = npt.NDArray[np.int16]
U64 = npt.NDArray[np.uint64]
Void = npt.NDArray[np.void]

ALL: Final = np.uint64(0xFFFFFFFFFFFFFFFF)
NO_ROUTE: Final = -1
MERGE_OVERLAY: Final = 65536  # prefix-index changes kept in the dict before merging into the array
DIRECT_MIN: Final = 65536  # IPv4 tables with this many prefixes get the /24 direct table (64 MB)
BLOCK_BITS: Final = 8  # a direct-table block is a /24: 256 addresses
ID_BITS: Final = 25
ID_MASK: Final = np.uint32((1 << ID_BITS) - 1)
REFINE: Final = np.uint32(0xFFFFFFFF)  # the block holds a range bound: search the range table


def void_rows(raw: U8) -> Void:
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    return raw.view(f"V{raw.shape[1]}").ravel()


def _split(raw: U8, width: int) -> tuple[U64, U64]:
    """Address rows → (high, low) 64-bit halves of the address as an integer (IPv4: high = 0)."""
    raw = np.ascontiguousarray(raw, dtype=np.uint8)
    if width == 32:
        lo = raw.view(">u4").ravel().astype(np.uint64)
        return np.zeros(len(lo), np.uint64), lo
    words = raw.view(">u8").reshape(len(raw), 2).astype(np.uint64)
    return words[:, 0].copy(), words[:, 1].copy()


def _join(hi: U64, lo: U64, width: int) -> U8:
    """(high, low) halves → address rows."""
    if width == 32:
        return lo.astype(">u4").view(np.uint8).reshape(len(lo), 4)
    return np.stack([hi, lo], axis=1).astype(">u8").view(np.uint8).reshape(len(lo), 16)


def spans(raw: U8, lengths: npt.NDArray[np.integer], width: int) -> tuple[U8, U8, npt.NDArray[np.bool_]]:
    """For each prefix: its first address, the address after its last one, and whether that
    address is past the end of the family's space (the prefix reaches the top address)."""
    hi, lo = _split(raw, width)
    host = (width - lengths.astype(np.int64)).astype(np.uint64)  # host bit count
    lo_host = np.where(host >= 64, ALL, (np.uint64(1) << np.minimum(host, 63)) - np.uint64(1))
    hi_bits = np.where(host > 64, host - np.uint64(64), np.uint64(0))
    hi_host = np.where(host >= 128, ALL,
                       np.where(host > 64, (np.uint64(1) << np.minimum(hi_bits, 63)) - np.uint64(1),
                                np.uint64(0)))
    s_hi, s_lo = hi & ~hi_host, lo & ~lo_host
    e_hi, e_lo = s_hi | hi_host, s_lo | lo_host
    top_lo = ALL if width == 128 else np.uint64(0xFFFFFFFF)
    top_hi = ALL if width == 128 else np.uint64(0)
    over = (e_hi == top_hi) & (e_lo == top_lo)
    carry = (e_lo == ALL).astype(np.uint64)
    n_lo = np.where(over, np.uint64(0), e_lo + np.uint64(1))
    n_hi = np.where(over, np.uint64(0), e_hi + carry)
    return _join(s_hi, s_lo, width), _join(n_hi, n_lo, width), over


class LpmTable:
    """Longest-prefix match for one family (``width`` 32 or 128) over batches of addresses."""

    def __init__(self, width: int) -> None:
        if width not in (32, 128):
            raise ValueError(f"address width {width}: expected 32 or 128")
        self.width = width
        self.nbytes = width // 8
        self._hot_dtype = np.uint32 if width == 32 else np.uint64
        zero = np.zeros((1, self.nbytes), np.uint8)
        self._set_bounds(void_rows(zero), np.full(1, NO_ROUTE, np.int32), np.full(1, -1, np.int16))
        self._keys: Void = np.zeros(0, f"V{self.nbytes + 1}")
        self._key_ids: I32 = np.zeros(0, np.int32)
        self._overlay: dict[bytes, int] = {}
        self._count = 0
        self._compacted = 1
        self._direct: npt.NDArray[np.uint32] | None = None

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def build(cls, width: int, nets: U8, lengths: npt.NDArray[np.integer], ids: I32) -> LpmTable:
        """A table holding ``nets/lengths → ids``; of duplicate prefixes the last one counts."""
        table = cls(width)
        table.load(nets, lengths, ids)
        return table

    def load(self, nets: U8, lengths: npt.NDArray[np.integer], ids: I32) -> None:
        """Replace the whole content (bulk: vectorised, no per-prefix Python work)."""
        lengths = np.asarray(lengths, np.int64)
        if len(lengths) and (lengths.min() < 0 or lengths.max() > self.width):
            raise ValueError(f"prefix length outside 0..{self.width}")
        starts, ends, over = spans(nets, lengths, self.width)
        keys = self._key_column(starts, lengths)
        _, last = np.unique(keys[::-1], return_index=True)  # last occurrence of each prefix
        keep = np.sort(len(keys) - 1 - last)
        starts, ends, over = starts[keep], ends[keep], over[keep]
        lengths, ids = lengths[keep], np.asarray(ids, np.int32)[keep]
        keys = keys[keep]
        order = np.argsort(keys, kind="stable")
        self._keys, self._key_ids = keys[order], ids[order]
        self._overlay = {}
        self._count = len(keys)
        zero = void_rows(np.zeros((1, self.nbytes), np.uint8))
        bounds = np.unique(np.concatenate([zero, void_rows(starts), void_rows(ends[~over])]))
        self._set_bounds(bounds, np.full(len(bounds), NO_ROUTE, np.int32), np.full(len(bounds), -1, np.int16))
        for length in np.unique(lengths):
            sel = lengths == length
            i0 = self._locate(starts[sel], "left")
            i1 = np.where(over[sel], len(bounds), self._locate(ends[sel], "left"))
            rows = _ranges(i0, i1)
            self._ids[rows] = np.repeat(ids[sel], i1 - i0)
            self._lens[rows] = length
        self._compacted = len(self._bounds)
        self._direct = self._build_direct() if self.width == 32 and len(keys) >= DIRECT_MIN else None

    # -- lookups ------------------------------------------------------------------------------

    def lookup(self, addrs: U8) -> tuple[I32, I16]:
        """Route id (-1: none) and matched prefix length (-1: none) for each address row."""
        n = len(addrs)
        if n == 0:
            return np.zeros(0, np.int32), np.zeros(0, np.int16)
        hot = self._hot_of(addrs)
        if self._direct is None:
            return self._search(addrs, hot)
        code = self._direct[hot >> np.uint32(BLOCK_BITS)]
        ids = (code & ID_MASK).astype(np.int32) - 1
        lens = (code >> np.uint32(ID_BITS)).astype(np.int16) - 1
        refine = np.flatnonzero(code == REFINE)
        if len(refine):
            ids[refine], lens[refine] = self._search(np.ascontiguousarray(addrs)[refine], hot[refine])
        return ids, lens

    def _search(self, addrs: U8, hot: npt.NDArray[np.unsignedinteger]) -> tuple[I32, I16]:
        """The range-table lookup: sort, then one binary search per address (see the module docstring)."""
        order = np.argsort(hot)
        at = np.empty(len(hot), np.intp)
        at[order] = self._locate(addrs, "right", hot[order], order) - 1
        return self._ids[at], self._lens[at]

    def _build_direct(self) -> npt.NDArray[np.uint32] | None:
        if len(self._ids) and int(self._ids.max()) >= int(ID_MASK):
            return None  # ids do not fit the packed entry
        blocks = 1 << (32 - BLOCK_BITS)
        direct = np.empty(blocks, np.uint32)
        hot = self._hot.astype(np.int64)
        step = 1 << 20
        for first in range(0, blocks, step):
            start = np.arange(first, first + step, dtype=np.int64) << BLOCK_BITS
            at = np.searchsorted(hot, start, "right") - 1
            nxt = np.minimum(at + 1, len(hot) - 1)
            uniform = (at + 1 >= len(hot)) | (hot[nxt] >= start + (1 << BLOCK_BITS))
            direct[first:first + step] = np.where(uniform, _pack(self._ids[at], self._lens[at]), REFINE)
        return direct

    def _paint_direct(self, net: bytes, length: int, rid: int, rlen: int, *, announce: bool) -> None:
        """Mirror one change in the direct table: the blocks it sets get route ``rid`` of length ``rlen``."""
        if self._direct is None:
            return
        block = int.from_bytes(net, "big") >> BLOCK_BITS
        if length > 32 - BLOCK_BITS:
            self._direct[block] = REFINE  # a range starts inside the block (it may already)
            return
        part = self._direct[block:block + (1 << (32 - BLOCK_BITS - length))]
        lens = (part >> np.uint32(ID_BITS)).astype(np.int16) - 1  # REFINE reads as 126: never painted
        mask = lens <= length if announce else lens == length
        part[mask] = _pack(np.array([rid], np.int32), np.array([rlen], np.int16))[0]

    def __len__(self) -> int:
        return self._count

    @property
    def ranges(self) -> int:
        """Number of ranges in the table (for sizing figures)."""
        return len(self._bounds)

    def nbytes_used(self) -> int:
        """Bytes held by the table's arrays."""
        arrays = (self._bounds, self._hot, self._ids, self._lens, self._keys, self._key_ids)
        direct = self._direct.nbytes if self._direct is not None else 0
        return sum(a.nbytes for a in arrays) + direct + 120 * len(self._overlay)

    def find(self, net: bytes, length: int) -> int | None:
        """The route id of exactly this prefix, or None."""
        key = self._key(net, length)
        got = self._overlay.get(key)
        if got is not None:
            return None if got == NO_ROUTE else got
        probe = np.frombuffer(key, f"V{self.nbytes + 1}")
        i = int(np.searchsorted(self._keys, probe[0]))
        if i < len(self._keys) and bytes(self._keys[i]) == key:
            return int(self._key_ids[i])
        return None

    # -- updates ------------------------------------------------------------------------------

    def apply(self, changes: Sequence[tuple[bytes, int, int]]) -> int:
        """Apply announcements ``(net, length, id)`` and withdrawals ``(net, length, -1)`` in order.

        Returns how many changed the table (re-announcing the same id or withdrawing an unknown
        prefix changes nothing).
        """
        if not changes:
            return 0
        raw = np.frombuffer(b"".join(c[0] for c in changes), np.uint8).reshape(len(changes), self.nbytes)
        lengths = np.array([c[1] for c in changes], np.int64)
        if lengths.min() < 0 or lengths.max() > self.width:
            raise ValueError(f"prefix length outside 0..{self.width}")
        starts, ends, over = spans(raw, lengths, self.width)
        announce = np.array([c[2] != NO_ROUTE for c in changes])
        need = np.concatenate([starts[announce], ends[announce & ~over]])
        if len(need):
            self._add_bounds(need)
        i0 = self._locate(starts, "left")
        i1 = np.where(over, len(self._bounds), self._locate(ends, "left"))
        changed = 0
        for k, (_, length, rid) in enumerate(changes):
            net = starts[k].tobytes()
            old = self.find(net, length)
            if old == rid or (old is None and rid == NO_ROUTE):
                continue
            part = slice(int(i0[k]), int(i1[k]))
            lens = self._lens[part]
            if rid != NO_ROUTE:
                mask = lens <= length
                self._ids[part][mask] = rid
                lens[mask] = length
                self._count += old is None
                self._paint_direct(net, length, rid, length, announce=True)
            else:
                parent, plen = self._covering(net, length)
                mask = lens == length
                self._ids[part][mask] = parent
                lens[mask] = plen
                self._count -= 1
                if length <= 32 - BLOCK_BITS:  # a longer prefix's block stays REFINE
                    self._paint_direct(net, length, parent, plen, announce=False)
            self._overlay[self._key(net, length)] = rid
            changed += 1
        if len(self._overlay) > MERGE_OVERLAY:
            self._merge_overlay()
        if len(self._bounds) > self._compacted * 3 // 2:
            self.compact()
        return changed

    def compact(self) -> None:
        """Drop bounds that start a range with the same value as the range before."""
        keep = np.ones(len(self._bounds), np.bool_)
        keep[1:] = (self._ids[1:] != self._ids[:-1]) | (self._lens[1:] != self._lens[:-1])
        self._set_bounds(self._bounds[keep], self._ids[keep], self._lens[keep])
        self._compacted = max(1, len(self._bounds))

    # -- internals -----------------------------------------------------------------------------

    def _set_bounds(self, bounds: Void, ids: I32, lens: I16) -> None:
        self._bounds = bounds
        self._ids = ids
        self._lens = lens
        self._hot = self._hot_of(bounds.view(np.uint8).reshape(len(bounds), self.nbytes))

    def _hot_of(self, raw: U8) -> npt.NDArray[np.unsignedinteger]:
        raw = np.ascontiguousarray(raw, dtype=np.uint8)
        if self.width == 32:
            return raw.view(">u4").ravel().astype(np.uint32)
        return np.ascontiguousarray(raw[:, :8]).view(">u8").ravel().astype(np.uint64)

    def _locate(self, raw: U8, side: str, hot: npt.NDArray[np.unsignedinteger] | None = None,
                order: npt.NDArray[np.intp] | None = None) -> npt.NDArray[np.intp]:
        """``np.searchsorted(bounds, raw[order], side)`` on the hot key, refined on full IPv6
        addresses; ``hot`` is the hot key of ``raw[order]`` when given."""
        if hot is None:
            hot = self._hot_of(raw if order is None else raw[order])
        at: npt.NDArray[np.intp] = np.searchsorted(self._hot, hot, side)  # type: ignore[call-overload]
        if self.width == 32 or len(at) == 0:
            return at
        near = np.clip(at - 1 if side == "right" else at, 0, len(self._hot) - 1)
        amb = np.flatnonzero(self._hot[near] == hot)
        if len(amb):
            rows = amb if order is None else order[amb]
            at[amb] = np.searchsorted(self._bounds, void_rows(raw[rows]), side)  # type: ignore[call-overload]
        return at

    def _add_bounds(self, raw: U8) -> None:
        new = np.unique(void_rows(raw))
        at = self._locate(new.view(np.uint8).reshape(len(new), self.nbytes), "left")
        fresh = (at >= len(self._bounds)) | (self._bounds[np.minimum(at, len(self._bounds) - 1)] != new)
        new, at = new[fresh], at[fresh]
        if not len(new):
            return
        before = at - 1  # the range each new bound splits
        self._set_bounds(np.insert(self._bounds, at, new), np.insert(self._ids, at, self._ids[before]),
                         np.insert(self._lens, at, self._lens[before]))

    def _covering(self, net: bytes, length: int) -> tuple[int, int]:
        """The longest prefix shorter than ``length`` containing ``net``: (id, length) or (-1, -1)."""
        value = int.from_bytes(net, "big")
        for shorter in range(length - 1, -1, -1):
            masked = value & ~((1 << (self.width - shorter)) - 1)
            rid = self.find(masked.to_bytes(self.nbytes, "big"), shorter)
            if rid is not None:
                return rid, shorter
        return NO_ROUTE, -1

    def _key(self, net: bytes, length: int) -> bytes:
        return net + bytes((length,))

    def _key_column(self, starts: U8, lengths: npt.NDArray[np.integer]) -> Void:
        rows = np.concatenate([starts, lengths.astype(np.uint8)[:, None]], axis=1)
        return void_rows(rows)

    def _unchanged(self) -> npt.NDArray[np.bool_]:
        """Which rows of the prefix-index array no change in the overlay replaces."""
        stay = np.ones(len(self._keys), np.bool_)
        if len(self._keys) and self._overlay:
            changed = np.sort(np.frombuffer(b"".join(self._overlay), f"V{self.nbytes + 1}"))
            at = np.minimum(np.searchsorted(self._keys, changed), len(self._keys) - 1)
            hit = self._keys[at] == changed
            stay[at[hit]] = False
        return stay

    def live_ids(self) -> I32:
        """The route id of every prefix in the table."""
        extra = np.array([v for v in self._overlay.values() if v != NO_ROUTE], np.int32)
        return np.concatenate([self._key_ids[self._unchanged()], extra])

    def _merge_overlay(self) -> None:
        stay = self._unchanged()
        live = [(k, v) for k, v in self._overlay.items() if v != NO_ROUTE]
        add_keys = np.frombuffer(b"".join(k for k, _ in live), f"V{self.nbytes + 1}")
        add_ids = np.array([v for _, v in live], np.int32)
        keys_all = np.concatenate([self._keys[stay], add_keys])
        ids_all = np.concatenate([self._key_ids[stay], add_ids])
        order = np.argsort(keys_all, kind="stable")
        self._keys, self._key_ids = keys_all[order], ids_all[order]
        self._overlay = {}


def _pack(ids: I32, lens: I16) -> npt.NDArray[np.uint32]:
    """Direct-table entries: (length + 1) above ID_BITS, (id + 1) below; 0 is "no route"."""
    return ((lens.astype(np.int64) + 1) << ID_BITS | (ids.astype(np.int64) + 1)).astype(np.uint32)


def _ranges(i0: npt.NDArray[np.intp], i1: npt.NDArray[np.intp]) -> npt.NDArray[np.intp]:
    """The concatenation of ``range(a, b)`` for each pair."""
    counts = i1 - i0
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.intp)
    offsets = np.cumsum(counts) - counts
    rows: npt.NDArray[np.intp] = np.arange(total, dtype=np.intp) - np.repeat(offsets - i0, counts)
    return rows
