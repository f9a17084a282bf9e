"""A packet batch sorted into key groups: 64-bit key hashes, one sort, arrival order kept within a key.

Pure numpy; the flow table (flowd.core.flowtable) merges batches through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.model.batch import PacketBatch
from flowd.model.flowkey import KEY_BYTES
from flowd.model.record import Record

Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

_M1: Final = np.uint64(0xFF51AFD7ED558CCD)
_M2: Final = np.uint64(0xC4CEB9FE1A85EC53)
_SEED: Final = np.uint64(0x9E3779B97F4A7C15)


def key_words(keys: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """View (n, 40) key bytes as (n, 5) native 64-bit words (for hashing and equality)."""
    return np.ascontiguousarray(keys).view(np.uint64).reshape(-1, KEY_BYTES // 8)


def hash_words(words: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """A 64-bit hash per row (murmur3-style mixing; numpy uint64 arithmetic wraps)."""
    h = np.full(words.shape[0], _SEED, np.uint64)
    for j in range(words.shape[1]):
        h ^= words[:, j]
        h *= _M1
        h ^= h >> np.uint64(33)
    h *= _M2
    h ^= h >> np.uint64(29)
    return h


@dataclass(slots=True, eq=False, repr=False)
class Grouped(Record):
    """A batch sorted into key groups (arrival order kept within a key)."""

    order: Ints  # batch row of each sorted packet
    ws: npt.NDArray[np.uint64]  # key words, sorted
    ts: npt.NDArray[np.float64]  # timestamps, sorted
    hs: npt.NDArray[np.uint64]  # full key hashes, sorted
    new_key: Bools  # the sorted packet starts a key group
    key_start: Ints  # sorted position of each key group's first packet
    key_of: Ints  # key group of each sorted packet


def group(batch: PacketBatch) -> Grouped:
    """Sort a batch by key hash, keeping arrival order within a key, and mark the key groups."""
    n = len(batch)
    words = key_words(batch.key)
    h = hash_words(words)
    # Sort by hash, keeping arrival order within a hash: the row number fills the hash's low
    # bits, so one plain (SIMD) sort of unique values replaces a much slower stable argsort.
    low = np.uint64((1 << max(int(n - 1).bit_length(), 1)) - 1)
    packed = np.sort((h & ~low) | np.arange(n, dtype=np.uint64))
    order = (packed & low).astype(np.intp)
    hs = packed & ~low  # the hash's high bits: what the grouping sorted on
    ws, ts = words[order], batch.ts[order]
    new_key = np.ones(n, np.bool_)
    new_key[1:] = (hs[1:] != hs[:-1]) | np.any(ws[1:] != ws[:-1], axis=1)
    key_start = np.flatnonzero(new_key)
    if _has_split_keys(hs, ws, key_start):
        order = np.lexsort(tuple(words[:, j] for j in range(words.shape[1] - 1, -1, -1)))
        ws, ts = words[order], batch.ts[order]
        new_key[1:] = np.any(ws[1:] != ws[:-1], axis=1)
        key_start = np.flatnonzero(new_key)
    return Grouped(order=order, ws=ws, ts=ts, hs=h[order], new_key=new_key, key_start=key_start,
                    key_of=np.cumsum(new_key) - 1)


def _has_split_keys(hs: npt.NDArray[np.uint64], ws: npt.NDArray[np.uint64], key_start: Ints) -> bool:
    """True when two different keys share a hash and their packets interleave after the sort."""
    if key_start.shape[0] < 2:
        return False
    same = hs[key_start[1:]] == hs[key_start[:-1]]
    if not same.any():
        return False
    # Only groups whose hash collides with a neighbour's can repeat a key; look for a repeat there.
    collide = np.zeros(key_start.shape[0], np.bool_)
    collide[1:] |= same
    collide[:-1] |= same
    rows = ws[key_start[collide]]
    return bool(np.unique(rows, axis=0).shape[0] != rows.shape[0])
