"""Longest-prefix match on the compiled table (flowd/native/_lpm.c), with the numpy LpmTable's interface.

``new_lpm_table`` gives this table when the extension is built and enabled, and the numpy
``flowd.routing.lpm.LpmTable`` otherwise (or with ``FLOWD_NO_FASTPATH=1``). Both answer every lookup
alike and take the same loads and updates; the numpy table is the reference
tests/routing/test_compiled_lpm.py holds this one to. The C table's structure (a direct table over the
top bits of the address, sorted ranges for the blocks that need them, a prefix index) is described in
its header comment. Route ids here are 0..``MAX_ID`` (16,777,214); ``flowd.routing.rib`` hands out
dense ids, so a family would need that many prefixes to reach the limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

import numpy as np
import numpy.typing as npt

from flowd.native import compiled
from flowd.routing.lpm import I16, I32, U8, LpmTable

EXTENSION: Final = "flowd.native._lpm"
MAX_ID: Final = (1 << 24) - 2


class Lpm(Protocol):
    """A longest-prefix-match table for one family: what ``flowd.routing.rib`` uses."""

    width: int

    def load(self, nets: U8, lengths: npt.NDArray[np.integer], ids: I32) -> None: ...

    def lookup(self, addrs: U8) -> tuple[I32, I16]: ...

    def find(self, net: bytes, length: int) -> int | None: ...

    def apply(self, changes: Sequence[tuple[bytes, int, int]]) -> int: ...

    def live_ids(self) -> I32: ...

    def nbytes_used(self) -> int: ...

    def __len__(self) -> int: ...


class LpmType(Protocol):
    """flowd.native._lpm.Table, as this module uses it."""

    def __call__(self, width: int, big_at: int = ...) -> Any: ...


def lpm_type() -> LpmType | None:
    """The compiled table's type, or None when it is not built or FLOWD_NO_FASTPATH=1 is set."""
    found: LpmType | None = compiled("Table", module=EXTENSION, MAX_ID=MAX_ID)
    return found


def new_lpm_table(width: int) -> Lpm:
    """A table for one family (``width`` 32 or 128): compiled when it can be, numpy otherwise."""
    kind = lpm_type()
    return LpmTable(width) if kind is None else CompiledLpm(kind, width)


class CompiledLpm:
    """Longest-prefix match for one family in C, over whole columns of addresses."""

    def __init__(self, kind: LpmType, width: int, big_at: int | None = None) -> None:
        self.width = width
        self._table = kind(width) if big_at is None else kind(width, big_at)

    def load(self, nets: U8, lengths: npt.NDArray[np.integer], ids: I32) -> None:
        """Replace the whole content; of duplicate prefixes the last one counts."""
        lengths = np.asarray(lengths, np.int64)
        if len(lengths) and (lengths.min() < 0 or lengths.max() > self.width):
            raise ValueError(f"prefix length outside 0..{self.width}")
        raw = np.ascontiguousarray(nets, np.uint8)
        self._table.load(len(lengths), raw, lengths.astype(np.uint8), np.ascontiguousarray(ids, np.int32))

    def lookup(self, addrs: U8) -> tuple[I32, I16]:
        """Route id (-1: none) and matched prefix length (-1: none) for each address row; the rows
        may be a strided view (the addresses inside flow keys), read in place."""
        if addrs.dtype != np.uint8 or addrs.strides[1:] != (1,):
            addrs = np.ascontiguousarray(addrs, np.uint8)
        ids, lens = np.empty(len(addrs), np.int32), np.empty(len(addrs), np.int16)
        self._table.lookup(addrs, ids, lens)
        return ids, lens

    def find(self, net: bytes, length: int) -> int | None:
        """The route id of exactly this prefix, or None."""
        rid: int = self._table.find(net, length)
        return None if rid < 0 else rid

    def apply(self, changes: Sequence[tuple[bytes, int, int]]) -> int:
        """Apply announcements ``(net, length, id)`` and withdrawals ``(net, length, -1)`` in order;
        returns how many changed the table. Every change is checked before the first is applied."""
        changed: int = self._table.apply(changes)
        return changed

    def live_ids(self) -> I32:
        """The route id of every prefix in the table."""
        out = np.empty(len(self), np.int32)
        self._table.live_ids(out)
        return out

    def nbytes_used(self) -> int:
        """Bytes held by the table (direct table, buckets, prefix index)."""
        used: int = self._table.memory()
        return used

    def shape(self) -> tuple[int, int, int]:
        """The direct table's bits, the buckets in use and the ranges they hold (for sizing figures)."""
        bits, buckets, ranges = self._table.shape()
        return int(bits), int(buckets), int(ranges)

    def __len__(self) -> int:
        return len(self._table)
