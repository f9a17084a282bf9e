"""LpmTable against a brute-force longest-prefix match, both families, bulk loads and updates."""

from __future__ import annotations

import random

import numpy as np
import pytest

from flowd.routing import lpm
from flowd.routing.lpm import NO_ROUTE, LpmTable


def brute(prefixes: dict[tuple[int, int], int], addr: int, width: int) -> tuple[int, int]:
    best = (NO_ROUTE, -1)
    for (net, length), rid in prefixes.items():
        if length > best[1] and (addr >> (width - length) if length else 0) == (net >> (width - length) if length else 0):
            best = (rid, length)
    return best


def random_prefixes(rng: random.Random, width: int, count: int) -> list[tuple[int, int]]:
    """Prefixes drawn around a few hot spots so that many of them nest, plus the extremes."""
    spots = [rng.getrandbits(width) for _ in range(4)] + [0, (1 << width) - 1]
    out = []
    for _ in range(count):
        base = rng.choice(spots) ^ rng.getrandbits(rng.randrange(0, width // 2 + 1))
        length = rng.randrange(0, width + 1)
        mask = ((1 << width) - 1) ^ ((1 << (width - length)) - 1)
        out.append((base & mask, length))
    return out


def queries(rng: random.Random, width: int, prefixes: list[tuple[int, int]], count: int) -> list[int]:
    out = [0, (1 << width) - 1]
    for net, length in prefixes:
        last = net | ((1 << (width - length)) - 1)
        out += [net, last, (last + 1) % (1 << width), (net - 1) % (1 << width)]
    out += [rng.getrandbits(width) for _ in range(count)]
    return out


def rows(values: list[int], width: int) -> np.ndarray:
    n = width // 8
    return np.frombuffer(b"".join(v.to_bytes(n, "big") for v in values), np.uint8).reshape(len(values), n)


def check(table: LpmTable, truth: dict[tuple[int, int], int], addrs: list[int], width: int) -> None:
    ids, lens = table.lookup(rows(addrs, width))
    want = [brute(truth, a, width) for a in addrs]
    assert list(zip(ids.tolist(), lens.tolist())) == want
    assert len(table) == len(truth)
    assert sorted(table.live_ids().tolist()) == sorted(truth.values())


# (width, with the /24 direct table, seeds): IPv4 with and without it (large tables only get one)
CASES = [(32, False, s) for s in range(6)] + [(128, False, s) for s in range(6)] + [(32, True, s) for s in range(3)]


@pytest.mark.parametrize("width, direct, seed", CASES)
def test_bulk_load_matches_brute_force(width: int, direct: bool, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    if direct:
        monkeypatch.setattr(lpm, "DIRECT_MIN", 0)
    rng = random.Random(seed * 1000 + width)
    prefixes = random_prefixes(rng, width, 120)
    ids = list(range(len(prefixes)))
    truth: dict[tuple[int, int], int] = {}
    for p, rid in zip(prefixes, ids):
        truth[p] = rid  # the last of duplicate prefixes counts
    table = LpmTable.build(width, rows([p[0] for p in prefixes], width),
                           np.array([p[1] for p in prefixes]), np.array(ids, np.int32))
    assert (table._direct is not None) == (direct and width == 32)
    check(table, truth, queries(rng, width, prefixes, 300), width)


@pytest.mark.parametrize("merge_at", [3, 65536])
@pytest.mark.parametrize("width, direct, seed", CASES)
def test_updates_match_brute_force(width: int, direct: bool, seed: int, merge_at: int,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lpm, "MERGE_OVERLAY", merge_at)  # also run the index merge often
    if direct:
        monkeypatch.setattr(lpm, "DIRECT_MIN", 0)
    rng = random.Random(seed * 77 + width)
    prefixes = random_prefixes(rng, width, 80)
    truth = {p: i for i, p in enumerate(prefixes[:40])}
    table = LpmTable.build(width, rows([p[0] for p in truth], width), np.array([p[1] for p in truth]),
                           np.array(list(truth.values()), np.int32))
    assert (table._direct is not None) == direct
    next_id = 1000
    for _ in range(8):
        batch = []
        for _ in range(rng.randrange(1, 15)):
            p = rng.choice(prefixes)
            if rng.random() < 0.45 and truth:
                p = rng.choice(list(truth))
                batch.append((p[0].to_bytes(width // 8, "big"), p[1], NO_ROUTE))
                truth.pop(p)
            else:
                batch.append((p[0].to_bytes(width // 8, "big"), p[1], next_id))
                truth[p] = next_id
                next_id += 1
        table.apply(batch)
        check(table, truth, queries(rng, width, prefixes, 100), width)
    table.compact()
    check(table, truth, queries(rng, width, prefixes, 100), width)


def test_withdrawing_unknown_prefix_changes_nothing() -> None:
    table = LpmTable.build(32, rows([0x0A000000], 32), np.array([8]), np.array([5], np.int32))
    assert table.apply([(bytes(4), 16, NO_ROUTE), (bytes((10, 0, 0, 0)), 8, 5)]) == 0
    assert table.apply([(bytes((10, 1, 2, 3)), 8, 6)]) == 1  # host bits are cleared
    ids, lens = table.lookup(rows([0x0A010101, 0x0B000000], 32))
    assert ids.tolist() == [6, -1] and lens.tolist() == [8, -1]


def test_bad_length_is_refused() -> None:
    with pytest.raises(ValueError, match="prefix length outside 0..32"):
        LpmTable.build(32, rows([0], 32), np.array([33]), np.array([1], np.int32))
