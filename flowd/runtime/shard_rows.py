"""Decoded packet rows handed between batch-mode processes through shared memory, split by flow-key hash.

Each process that decodes (a producer) owns a ring of ``slots`` slots in an anonymous shared mapping
made before the fork. A slot holds the packet rows of one decoded batch in PacketBatch's columns,
ordered by the shard that owns each row (``shard_of``), within a shard the IPv4 rows before the IPv6
ones (so the pipeline takes each family as a view), and within a family in file order; shard ``q``
reads rows ``starts[q] : starts[q] + counts[q]`` of every column as numpy views, with no copy and
nothing pickled per packet. A producer may refill a slot only when every shard has given it back:
one counting semaphore per (producer, shard) pair holds the slots that shard has not yet been handed
(``Credits``).
"""

from __future__ import annotations

import mmap
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from flowd.core.batch_groups import key_words
from flowd.model.batch import MAC_BYTES, PacketBatch
from flowd.model.flowkey import KEY_BYTES, is_ipv4
from flowd.native import compiled

if TYPE_CHECKING:  # multiprocessing is imported when shards start: a one-process run does without it
    from multiprocessing.context import BaseContext
    from multiprocessing.synchronize import Semaphore

ALIGN: Final = 64  # each column of a slot starts on a cache line
# PacketBatch's columns: dtype and values per row
COLUMNS: Final[dict[str, tuple[np.dtype[Any], int]]] = {  # PacketBatch's columns: dtype, values per row
    "key": (np.dtype(np.uint8), KEY_BYTES), "length": (np.dtype(np.uint32), 1), "ts": (np.dtype(np.float64), 1),
    "tcp_flags": (np.dtype(np.uint8), 1), "ttl": (np.dtype(np.uint8), 1), "vlan": (np.dtype(np.uint16), 1),
    "inner_vlan": (np.dtype(np.uint16), 1), "mpls": (np.dtype(np.uint32), 3)}
MAC_COLUMN: Final = ("mac", (np.dtype(np.uint8), MAC_BYTES))  # only when a family keeps MAC addresses
_MIX: Final = np.uint64(0x9E3779B97F4A7C15)  # odd: 2**64 / golden ratio (Fibonacci hashing)
WAIT_STEP: Final = 0.2  # seconds between looks at the stop event while waiting for a slot


def shard_of(keys: npt.NDArray[np.uint8], shards: int) -> npt.NDArray[np.intp]:
    """Each (n, 40) flow key's shard: its words folded by XOR, mixed by one multiplication, scaled to ``shards``."""
    words = key_words(keys)
    folded = words[:, 0] ^ words[:, 1]  # column by column: several times faster than a reduce along rows
    for column in range(2, words.shape[1]):
        folded ^= words[:, column]
    folded *= _MIX
    shard: npt.NDArray[np.intp] = ((folded >> np.uint64(32)) * np.uint64(shards) >> np.uint64(32)).astype(np.intp)
    return shard


Groups = tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]  # row numbers group by group; each group's size
Grouper = Callable[[npt.NDArray[np.uint8], npt.NDArray[np.uint8] | None, int], Groups]


def group_rows_numpy(keys: npt.NDArray[np.uint8], status: npt.NDArray[np.uint8] | None, shards: int) -> Groups:
    """The rows grouped by owner, group ``2 * shard`` (IPv4) then ``2 * shard + 1`` (IPv6), each group in row
    order; only rows whose ``status`` is 0 (flowd.core.frame_rules.OK) count, every row when it is None."""
    rows = np.arange(len(keys)) if status is None else np.flatnonzero(status == 0)
    kept = keys[rows]
    owner = shard_of(kept, shards) * 2 + ~is_ipv4(kept)
    order: npt.NDArray[np.int64] = rows[np.argsort(owner, kind="stable")].astype(np.int64, copy=False)
    return order, np.bincount(owner, minlength=2 * shards).astype(np.int64)


def _compiled_grouper() -> Grouper | None:
    """group_rows_numpy's C twin (flowd.native._fastpath.group_rows); None if unbuilt or disabled."""
    group = compiled("group_rows")
    if group is None:
        return None

    def group_rows_compiled(keys: npt.NDArray[np.uint8], status: npt.NDArray[np.uint8] | None, shards: int) -> Groups:
        order, counts = np.empty(len(keys), np.int64), np.empty(2 * shards, np.int64)
        kept = group(np.ascontiguousarray(keys), status, shards, order, counts)
        return order[:kept], counts

    return group_rows_compiled


group_rows: Grouper = _compiled_grouper() or group_rows_numpy


def _column_bytes(capacity: int, dtype: np.dtype[Any], width: int) -> int:
    return -(-capacity * width * dtype.itemsize // ALIGN) * ALIGN


class RowSlots:
    """Every producer's ring of slots (see the module docstring); made before the fork, shared after it."""

    def __init__(self, processes: int, producers: tuple[int, ...], slots: int, capacity: int,
                 macs: bool = False) -> None:
        self.slots = slots
        self.capacity = capacity
        self.columns = dict(COLUMNS)
        if macs:
            self.columns.update((MAC_COLUMN,))
        size = sum(_column_bytes(capacity, dtype, width) for dtype, width in self.columns.values())
        self._maps = [mmap.mmap(-1, slots * size, flags=mmap.MAP_SHARED) if p in producers else None
                      for p in range(processes)]
        # _columns[producer][slot][name]: the whole column of a slot
        self._columns: list[list[dict[str, npt.NDArray[Any]]]] = []
        for region in self._maps:
            if region is None:
                self._columns.append([])
                continue
            ring = []
            for slot in range(slots):
                at = slot * size
                columns: dict[str, npt.NDArray[Any]] = {}
                for name, (dtype, width) in self.columns.items():
                    shape = (capacity, width) if width > 1 else (capacity,)
                    columns[name] = np.ndarray(shape, dtype, buffer=region, offset=at)
                    at += _column_bytes(capacity, dtype, width)
                ring.append(columns)
            self._columns.append(ring)

    def write(self, producer: int, slot: int, packets: PacketBatch, shards: int,
              status: npt.NDArray[np.uint8] | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Put a batch's rows into a slot, grouped by shard in file order; each shard's first row and count.

        With ``status`` (flowd.core.decode.decode_unselected) only the rows it says are accounted go in.
        """
        order, counts = group_rows(packets.key, status, shards)
        n = len(order)
        if n > self.capacity:
            raise ValueError(f"{n} rows do not fit a slot of {self.capacity}")
        columns = self._columns[producer][slot]
        for name in self.columns:  # mode="clip": no bounds check, and no copy of the output first
            np.take(getattr(packets, name), order, axis=0, out=columns[name][:n], mode="clip")
        per_shard = counts.reshape(shards, 2).sum(axis=1)
        starts = np.concatenate(([0], np.cumsum(per_shard)[:-1]))
        return tuple(int(x) for x in starts), tuple(int(x) for x in per_shard)

    def rows(self, producer: int, slot: int, start: int, count: int) -> PacketBatch:
        """One shard's rows of a slot, as views into the shared mapping (valid until the slot is given back)."""
        columns = self._columns[producer][slot]
        return PacketBatch(**{name: columns[name][start:start + count] for name in self.columns})


@dataclass(frozen=True, slots=True)
class Credits:
    """For each (producer, shard) pair, the slots of that producer's ring the shard has given back."""

    free: tuple[tuple[Semaphore, ...], ...]  # free[producer][shard]; empty for a process that produces nothing

    @classmethod
    def make(cls, context: BaseContext, shards: int, producers: tuple[int, ...], slots: int) -> Credits:
        return cls(tuple(tuple(context.Semaphore(slots) for _ in range(shards)) if p in producers else ()
                         for p in range(shards)))

    def claim(self, producer: int, stop: threading.Event) -> bool:
        """Wait until every shard has given back the producer's next slot; False if stopped first."""
        for credit in self.free[producer]:
            while not credit.acquire(timeout=WAIT_STEP):
                if stop.is_set():
                    return False
        return True

    def give_back(self, producer: int, shard: int) -> None:
        self.free[producer][shard].release()
