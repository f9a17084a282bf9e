"""Rows handed to batch-mode shards through shared memory: each shard gets exactly its rows, IPv4 first, each
family in file order."""

from __future__ import annotations

import numpy as np
import pytest
from test_v5 import numbered, records

from flowd.model.batch import PacketBatch
from flowd.model.flowkey import is_ipv4
from flowd.runtime.batch_shards import chunked
from flowd.runtime.shard_rows import RowSlots, group_rows, group_rows_numpy, shard_of


def packets(n: int, seed: int, macs: bool = False) -> PacketBatch:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, 256, (n, 40), dtype=np.uint8)
    keys[::3, :8], keys[::3, 16:24] = 0, 0  # every third key IPv4 (both addresses IPv4-mapped)
    keys[::3, 8:12], keys[::3, 24:28] = (0, 0, 0xFF, 0xFF), (0, 0, 0xFF, 0xFF)
    keys[n // 2:] = keys[0]  # one flow with many packets: all of them go to one shard
    return PacketBatch(key=keys, length=rng.integers(20, 1500, n, dtype=np.uint32), ts=np.sort(rng.random(n)),
                       tcp_flags=rng.integers(0, 256, n, dtype=np.uint8),
                       ttl=rng.integers(0, 256, n, dtype=np.uint8),
                       vlan=rng.integers(0, 4096, n, dtype=np.uint16),
                       inner_vlan=rng.integers(0, 4096, n, dtype=np.uint16),
                       mpls=rng.integers(0, 1 << 32, (n, 3), dtype=np.uint32),
                       mac=rng.integers(0, 256, (n, 12), dtype=np.uint8) if macs else None)


@pytest.mark.parametrize(("shards", "macs", "dropped"), [(2, False, False), (3, True, False), (5, False, False),
                                                       (2, False, True), (3, True, True)])
def test_each_shard_reads_its_own_rows_in_order(shards: int, macs: bool, dropped: bool) -> None:
    """With a status column (decode_unselected) only the accounted rows go in, as if decode had selected them."""
    slots = RowSlots(shards, tuple(range(shards)), slots=2, capacity=1000, macs=macs)
    batches = [packets(1000, 1, macs), packets(700, 2, macs)]
    statuses = [np.random.default_rng(n).integers(0, 2, n, dtype=np.uint8) if dropped else None for n in (1000, 700)]
    where = [slots.write(shards - 1, slot, batch, shards, status)
             for slot, (batch, status) in enumerate(zip(batches, statuses, strict=True))]
    batches = [b if st is None else b.take(st == 0) for b, st in zip(batches, statuses, strict=True)]
    for slot, (batch, (starts, counts)) in enumerate(zip(batches, where, strict=True)):
        owner = shard_of(batch.key, shards)
        assert sum(counts) == len(batch) and starts[0] == 0
        for shard in range(shards):
            got = slots.rows(shards - 1, slot, starts[shard], counts[shard])
            v4 = is_ipv4(batch.key)
            want = batch.take(np.concatenate((np.flatnonzero((owner == shard) & v4),
                                              np.flatnonzero((owner == shard) & ~v4))))
            assert (got.mac is None) is not macs
            for name in PacketBatch.__slots__:
                assert np.array_equal(getattr(got, name), getattr(want, name)), (shard, name)
        assert dropped or len(set(owner[len(batch) // 2:])) == 1  # a flow's packets all have one owner
        assert 0 < np.count_nonzero(is_ipv4(batch.key)) < len(batch)


@pytest.mark.parametrize("shards", [1, 2, 3, 7])
def test_the_compiled_grouping_equals_the_numpy_one(shards: int) -> None:
    """Row numbers group by group (shard, then IPv4 before IPv6), each group in row order, and the sizes."""
    rng = np.random.default_rng(7)
    for keys in (np.zeros((0, 40), np.uint8), packets(2, 5).key, packets(5000, 6).key):
        n = len(keys)
        for status in (None, rng.integers(0, 3, n, dtype=np.uint8)):  # rows with a status other than 0 left out
            order, counts = group_rows(keys, status, shards)
            want_order, want_counts = group_rows_numpy(keys, status, shards)
            assert order.tolist() == want_order.tolist() and counts.tolist() == want_counts.tolist()
            kept = np.arange(n) if status is None else np.flatnonzero(status == 0)
            owner = shard_of(keys, shards) * 2 + ~is_ipv4(keys)
            assert sorted(order.tolist()) == kept.tolist() and owner[order].tolist() == sorted(owner[kept].tolist())


def test_a_batch_larger_than_a_slot_is_refused() -> None:
    slots = RowSlots(2, (0,), slots=1, capacity=10)
    with pytest.raises(ValueError, match="do not fit"):
        slots.write(0, 0, packets(11, 3), 2)


def test_streamed_flush_pieces_are_exported_in_whole_chunks() -> None:
    """The end-of-file flush arrives in pieces from every shard; exports keep one cache's chunk sizes."""
    pieces = [records(numbered(n)) for n in (5000, 5000, 3000, 8192, 1)]
    got = list(chunked("inet", iter(pieces), 8192))
    assert [(family, len(r)) for family, r in got] == [("inet", 8192), ("inet", 8192), ("inet", 4809)]
    order = [int(p) for r in pieces for p in r.packets]
    assert [int(p) for _, r in got for p in r.packets] == order  # in the pieces' order
