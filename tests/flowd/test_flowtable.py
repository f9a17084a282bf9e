"""FlowTable against literal times and against a per-packet reference model of the same rules."""

from __future__ import annotations

import ipaddress
import random

import numpy as np
import pytest

from flowd.core.flowtable import FlowTable
from flowd.model.batch import FlowRecords, PacketBatch
from flowd.model.expiry import ExpiryReason
from flowd.model.flowkey import FlowKey

FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


def key(n: int, proto: int = 6, v6: bool = False) -> bytes:
    src = ipaddress.ip_address(f"2001:db8::{n:x}" if v6 else f"198.18.{n >> 8 & 255}.{n & 255}")
    dst = ipaddress.ip_address("2001:db8::ffff" if v6 else "198.19.0.1")
    return FlowKey(src, dst, 1000 + n % 50000, 80, proto, 0, 1).pack()


def batch(rows: list[tuple[bytes, float, int, int]]) -> PacketBatch:
    """rows: (key, ts, length, tcp_flags)"""
    n = len(rows)
    return PacketBatch(
        key=np.frombuffer(b"".join(r[0] for r in rows), np.uint8).reshape(n, 40).copy(),
        length=np.array([r[2] for r in rows], np.uint32), ts=np.array([r[1] for r in rows]),
        tcp_flags=np.array([r[3] for r in rows], np.uint8), ttl=np.full(n, 64, np.uint8),
        vlan=np.zeros(n, np.uint16), inner_vlan=np.zeros(n, np.uint16), mpls=np.zeros((n, 3), np.uint32))


def as_tuples(records: FlowRecords) -> list[tuple[bytes, int, int, float, float, int, int]]:
    return sorted(
        (bytes(records.key[i]), int(records.packets[i]), int(records.bytes[i]), float(records.first[i]),
         float(records.last[i]), int(records.tcp_flags[i]), int(records.end_reason[i]))
        for i in range(len(records)))


def test_idle_timeout_with_literal_times() -> None:
    t = FlowTable(100, active_timeout=60, inactive_timeout=15)
    assert len(t.add(batch([(key(1), 0.0, 100, 0), (key(1), 1.0, 50, 0)]), now=1.0)) == 0
    assert t.next_deadline() == pytest.approx(16.0)
    assert len(t.expire(now=16.0)) == 0  # exactly at the timeout: not yet idle
    out = t.expire(now=16.5)
    assert as_tuples(out) == [(key(1), 2, 150, 0.0, 1.0, 0, ExpiryReason.IDLE_TIMEOUT)]
    assert len(t) == 0 and t.next_deadline() is None


def test_active_timeout_splits_a_busy_flow() -> None:
    t = FlowTable(100, active_timeout=60, inactive_timeout=15)
    rows = [(key(2), float(s), 10, 0) for s in range(0, 130, 10)]  # 0..120 every 10 s
    out = t.add(batch(rows), now=120.0)
    out = FlowRecords.concat([out, t.flush(now=120.0)])
    got = as_tuples(out)
    assert sorted((p, f, l, r) for _, p, _, f, l, _, r in got) == [
        (1, 120.0, 120.0, ExpiryReason.FORCED_END), (6, 0.0, 50.0, ExpiryReason.ACTIVE_TIMEOUT),
        (6, 60.0, 110.0, ExpiryReason.ACTIVE_TIMEOUT)]


def test_fin_and_rst_end_the_flow_and_the_last_ack_starts_a_new_one() -> None:
    t = FlowTable(100, active_timeout=60, inactive_timeout=15)
    out = t.add(batch([(key(3), 0.0, 60, SYN), (key(3), 0.1, 60, ACK), (key(3), 0.2, 60, FIN | ACK),
                       (key(3), 0.3, 40, ACK), (key(4), 0.4, 40, RST)]), now=0.4)
    assert as_tuples(out) == sorted([
        (key(3), 3, 180, 0.0, 0.2, SYN | ACK | FIN, ExpiryReason.END_OF_FLOW),
        (key(4), 1, 40, 0.4, 0.4, RST, ExpiryReason.END_OF_FLOW)])
    assert len(t) == 1  # the trailing ACK
    # FIN on UDP (flag bits are only TCP's) does not end a flow
    t.add(batch([(key(5, proto=17), 1.0, 40, FIN)]), now=1.0)
    assert len(t) == 2


def test_cached_flow_continues_across_batches_and_times_out_on_arrival() -> None:
    t = FlowTable(100, active_timeout=60, inactive_timeout=15)
    t.add(batch([(key(6), 0.0, 10, 0)]), now=0.0)
    assert len(t.add(batch([(key(6), 10.0, 10, 0)]), now=10.0)) == 0
    out = t.add(batch([(key(6), 26.0, 10, 0)]), now=26.0)  # 16 s idle: old flow ends first
    assert as_tuples(out) == [(key(6), 2, 20, 0.0, 10.0, 0, ExpiryReason.IDLE_TIMEOUT)]
    assert t.counters.idle_expired == 1 and len(t) == 1


def test_full_table_refuses_new_flows_and_counts_their_packets() -> None:
    t = FlowTable(2, active_timeout=60, inactive_timeout=15)
    t.add(batch([(key(i), float(i), 10, 0) for i in range(4)] + [(key(3), 4.0, 10, 0)]), now=4.0)
    assert len(t) == 2
    assert t.counters.dropped_no_memory == 3
    assert t.memory_overload(now=5.0)
    t.add(batch([(key(0), 5.0, 10, 0)]), now=5.0)  # an existing flow still counts
    assert t.counters.packets == 3
    t.flush(now=6.0)
    assert not t.memory_overload(now=30.0)


def reference(packets: list[tuple[bytes, float, int, int]], active: float, inactive: float,
              batches: list[float]) -> list[tuple[bytes, int, int, float, float, int, int]]:
    """The rules in flowd/core/flowtable.py's docstring, one packet at a time."""
    cache: dict[bytes, list[float | int]] = {}
    out = []

    def end(k: bytes, reason: int) -> None:
        p, b, f, l, fl = cache.pop(k)
        out.append((k, int(p), int(b), float(f), float(l), int(fl), reason))

    bi = 0

    def expiry_runs_before(ts: float) -> None:
        nonlocal bi
        while bi < len(batches) and batches[bi] < ts:  # the expiry run after each batch
            for kk in [kk for kk, v in cache.items() if batches[bi] - v[3] > inactive]:
                end(kk, 1)
            for kk in [kk for kk, v in cache.items() if batches[bi] - v[2] >= active]:
                end(kk, 2)
            bi += 1

    for k, ts, ln, flags in packets:
        expiry_runs_before(ts)
        if k in cache:
            f, l = cache[k][2], cache[k][3]
            if ts - l > inactive:
                end(k, 1)
            elif ts - f >= active:
                end(k, 2)
        if k not in cache:
            cache[k] = [0, 0, ts, ts, 0]
        v = cache[k]
        v[0] += 1; v[1] += ln; v[3] = ts; v[4] |= flags
        if k[36] == 6 and flags & (FIN | RST):
            end(k, 3)
    expiry_runs_before(float("inf"))
    for k in list(cache):
        end(k, 4)
    return sorted(out)


@pytest.mark.parametrize("seed", range(8))
def test_matches_per_packet_reference(seed: int) -> None:
    rnd = random.Random(seed)
    keys = [key(i, proto=rnd.choice((6, 6, 17, 1)), v6=rnd.random() < 0.2) for i in range(60)]
    ts, packets = 0.0, []
    for _ in range(3000):
        ts += rnd.expovariate(20.0) * (40 if rnd.random() < 0.01 else 1)
        packets.append((rnd.choice(keys), round(ts, 6), rnd.randint(40, 1500),
                        rnd.choice((ACK, ACK, ACK, SYN, FIN | ACK, RST, 0))))
    size = rnd.choice((7, 100, 1000, 5000))
    t = FlowTable(10_000, active_timeout=20.0, inactive_timeout=5.0)
    got, ends = [], []
    for i in range(0, len(packets), size):
        chunk = packets[i:i + size]
        now = chunk[-1][1]
        got.append(t.add(batch(chunk), now=now))
        got.append(t.expire(now))
        ends.append(now)
    got.append(t.flush(now=ts))
    assert as_tuples(FlowRecords.concat(got)) == reference(packets, 20.0, 5.0, ends)
    c = t.counters
    assert c.flows_created == c.flows_freed == len(reference(packets, 20.0, 5.0, ends))
    assert c.packets == len(packets)


def test_many_flows_grow_the_index_and_top_n() -> None:
    t = FlowTable(1_000_000, active_timeout=1800, inactive_timeout=1800)
    n = 50_000
    b = batch([(key(i % 3000 + 3000 * (i // 3000), v6=i % 7 == 0), 1.0, 40 + i % 1000, 0)
               for i in range(n)])
    t.add(b, now=1.0)
    t.add(b, now=2.0)
    assert len(t) == n
    top = t.top(10, order="bytes")
    assert [int(x) for x in top.bytes] == sorted([2 * (40 + i % 1000) for i in range(n)], reverse=True)[:10]
    out = t.flush(now=3.0)
    assert len(out) == n and int(out.packets.sum()) == 2 * n


def test_hash_collisions_still_keep_flows_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a hash that collides all the time, keys still group, look up and expire correctly."""
    import flowd.core.flowtable as ft

    monkeypatch.setattr(ft, "hash_words", lambda words: (words[:, 4] & np.uint64(3)).astype(np.uint64))
    rnd = random.Random(3)
    keys = [key(i) for i in range(40)]
    packets = [(rnd.choice(keys), i * 0.01, 100, ACK) for i in range(2000)]
    t = FlowTable(10_000, active_timeout=20.0, inactive_timeout=5.0)
    got, ends = [], []
    for i in range(0, len(packets), 300):
        chunk = packets[i:i + 300]
        got += [t.add(batch(chunk), now=chunk[-1][1]), t.expire(chunk[-1][1])]
        ends.append(chunk[-1][1])
    got.append(t.flush(now=100.0))
    assert as_tuples(FlowRecords.concat(got)) == reference(packets, 20.0, 5.0, ends)
