"""The compiled flow cache (flowd/native/_flowtable.c) against the numpy FlowTable and the per-packet model.

Both tables get the same batches, expiry calls and flushes; every ended flow (all columns, end
reason) and every statistic must agree, and both must agree with the per-packet reference model of
tests/flowd/test_flowtable.py. Inputs: random streams (IPv4 and IPv6, FIN/RST, idle gaps, active
splits), full tables, flushes in chunks and `clear` in the middle, reloaded timeouts, the synthetic
capture with its ground truth, and every capture of ../shared/pcaps/real. In CI (CI=true) a missing
extension fails instead of skipping, unless FLOWD_NO_FASTPATH=1 asks for the pure path.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_flowtable import ACK, FIN, RST, SYN, batch, key, reference

from flowd.capture.files import CaptureError, open_capture
from flowd.config.loader import load_config
from flowd.core.compiled_table import (
    CompiledFlowTable,
    FlowCache,
    new_flow_table,
    table_type,
)
from flowd.core.decode import decode
from flowd.core.flowtable import FlowTable
from flowd.core.pipeline import Pipeline
from flowd.model.batch import MAC_BYTES, FlowRecords, PacketBatch
from flowd.model.expiry import ExpiryReason
from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / ".." / "shared" / "pcaps" / "real"
PURE = os.environ.get("FLOWD_NO_FASTPATH") == "1"


def compiled_type() -> Any:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("FLOWD_NO_FASTPATH", raising=False)
        kind = table_type()
    if kind is None:
        if os.environ.get("CI") == "true":
            pytest.fail("flowd.native._flowtable is not built (CI builds it: tests/run.sh installs gcc and "
                        "python3-dev)")
        pytest.skip("flowd.native._flowtable is not built")
    return kind


def both(max_flows: int, active: float, inactive: float, macs: bool = False) -> tuple[FlowTable, CompiledFlowTable]:
    return (FlowTable(max_flows, active, inactive, macs),
            CompiledFlowTable(compiled_type(), max_flows, active, inactive, macs))


def rows(records: FlowRecords) -> list[tuple[Any, ...]]:
    """Every column of every flow, in a canonical order."""
    return sorted(
        (bytes(records.key[i]), int(records.packets[i]), int(records.bytes[i]), float(records.first[i]),
         float(records.last[i]), int(records.tcp_flags[i]), int(records.ttl_min[i]), int(records.ttl_max[i]),
         int(records.vlan[i]), int(records.inner_vlan[i]), tuple(int(x) for x in records.mpls[i]),
         int(records.end_reason[i]), None if records.mac is None else bytes(records.mac[i]))
        for i in range(len(records)))


def short(records: FlowRecords) -> list[tuple[bytes, int, int, float, float, int, int]]:
    return sorted((r[0], r[1], r[2], r[3], r[4], r[5], r[11]) for r in rows(records))


class Pair:
    """The two tables driven alike; each call checks that they answer alike."""

    def __init__(self, max_flows: int, active: float, inactive: float, macs: bool = False) -> None:
        self.ref, self.c = both(max_flows, active, inactive, macs)
        self.out: list[FlowRecords] = []

    def same(self, a: FlowRecords, b: FlowRecords) -> FlowRecords:
        assert rows(b) == rows(a)
        assert asdict(self.c.counters) == asdict(self.ref.counters)
        assert len(self.c) == len(self.ref)
        self.out.append(b)
        return b

    def add(self, packets: PacketBatch, now: float) -> FlowRecords:
        return self.same(self.ref.add(packets, now), self.c.add(packets, now))

    def expire(self, now: float) -> FlowRecords:
        got = self.same(self.ref.expire(now), self.c.expire(now))
        assert self.c.next_deadline() == self.ref.next_deadline()
        return got

    def flush(self, now: float, limit: int | None = None) -> FlowRecords:
        if limit is None:
            return self.same(self.ref.flush(now), self.c.flush(now))
        a, b = self.ref.flush(now, limit=limit), self.c.flush(now, limit=limit)
        assert len(a) == len(b) and asdict(self.c.counters) == asdict(self.ref.counters)
        self.out.append(b)
        return b


def random_stream(seed: int, count: int = 3000, nkeys: int = 60,
                  v6_share: float = 0.3) -> list[tuple[bytes, float, int, int]]:
    rnd = random.Random(seed)
    keys = [key(i, proto=rnd.choice((6, 6, 17, 1)), v6=rnd.random() < v6_share) for i in range(nkeys)]
    ts, packets = 0.0, []
    for _ in range(count):
        ts += rnd.expovariate(20.0) * (40 if rnd.random() < 0.01 else 1)
        packets.append((rnd.choice(keys), round(ts, 6), rnd.randint(40, 1500),
                        rnd.choice((ACK, ACK, ACK, SYN, FIN | ACK, RST, 0))))
    return packets


@pytest.mark.parametrize("seed", range(10))
def test_random_streams_match_numpy_and_the_per_packet_model(seed: int) -> None:
    packets = random_stream(seed)
    size = random.Random(seed).choice((1, 7, 100, 1000, 5000))
    pair = Pair(10_000, 20.0, 5.0)
    ends = []
    for i in range(0, len(packets), size):
        chunk = packets[i:i + size]
        pair.add(batch(chunk), now=chunk[-1][1])
        pair.expire(chunk[-1][1])
        ends.append(chunk[-1][1])
    pair.flush(now=packets[-1][1] + 1)
    assert short(FlowRecords.concat(pair.out)) == reference(packets, 20.0, 5.0, ends)
    assert len(pair.c) == 0 and pair.c.next_deadline() is None


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("max_flows", [1, 3, 20])
def test_full_tables_refuse_the_same_flows_and_count_the_same(seed: int, max_flows: int) -> None:
    packets = random_stream(seed, count=1500, nkeys=40)
    size = random.Random(seed).choice((1, 5, 50, 400))
    pair = Pair(max_flows, 20.0, 5.0)
    for i in range(0, len(packets), size):
        chunk = packets[i:i + size]
        pair.add(batch(chunk), now=chunk[-1][1])
        assert pair.c.memory_overload(chunk[-1][1]) == pair.ref.memory_overload(chunk[-1][1])
        pair.expire(chunk[-1][1])
    pair.flush(now=1e6)
    c = pair.c.counters
    assert c.dropped_no_memory > 0 and c.refused_flows > 0
    assert c.packets + c.dropped_no_memory == len(packets)


def test_equal_first_times_are_admitted_in_arrival_order() -> None:
    pair = Pair(2, 60.0, 15.0)
    pair.add(batch([(key(i, v6=i % 2 == 0), 1.0, 100 + i, ACK) for i in range(6)]), now=1.0)
    kept = {bytes(k) for k in pair.c.keys}
    assert kept == {key(0, v6=True), key(1)}


def test_lowering_max_flows_below_the_cache_refuses_every_new_flow() -> None:
    pair = Pair(100, 60.0, 15.0)
    pair.add(batch([(key(i), 1.0, 100, ACK) for i in range(10)]), now=1.0)
    pair.ref.max_flows = pair.c.max_flows = 5
    pair.add(batch([(key(i), 2.0, 100, ACK) for i in range(5, 15)]), now=2.0)
    assert pair.c.counters.refused_flows == 5 and len(pair.c) == 10


def test_timeouts_at_every_step_and_the_next_deadline() -> None:
    rnd = random.Random(7)
    pair = Pair(10_000, 8.0, 4.0)
    ts = 1_700_000_000.0
    for step in range(60):
        chunk = []
        for _ in range(rnd.randint(0, 40)):
            ts += rnd.expovariate(10.0)
            chunk.append((key(rnd.randrange(8), proto=17, v6=rnd.random() < 0.5), ts, 60, 0))
        if chunk:
            pair.add(batch(chunk), now=ts)
        for _ in range(rnd.randint(1, 3)):  # the daemon's expiry task: now moves on between batches
            ts += rnd.choice((0.0, 0.0, 0.0, 0.5, 3.9, 4.0, 4.1, 9.0))
            pair.expire(ts)
        deadline = pair.c.next_deadline()
        if deadline is not None and step % 4 == 0:  # exactly at the deadline something ends, just before it nothing does
            assert len(pair.expire(float(np.nextafter(deadline, -np.inf)))) == 0
            assert len(pair.expire(deadline)) > 0
            ts = max(ts, deadline)
    assert pair.c.counters.idle_expired > 0 and pair.c.counters.active_expired > 0


def test_reloaded_timeouts_apply_to_cached_flows() -> None:
    pair = Pair(1000, 1800.0, 1800.0)
    pair.add(batch([(key(i, proto=17), float(i), 100, 0) for i in range(50)]), now=50.0)
    pair.expire(100.0)
    for table in (pair.ref, pair.c):
        table.active_timeout, table.inactive_timeout = 60.0, 10.0
    assert pair.c.next_deadline() == pair.ref.next_deadline()
    pair.expire(70.0)
    pair.add(batch([(key(i, proto=17), 75.0, 100, 0) for i in range(0, 50, 3)]), now=75.0)
    pair.expire(200.0)
    assert len(pair.c) == 0


def test_clear_in_chunks_then_go_on() -> None:
    packets = random_stream(11, count=2000, nkeys=500)
    pair = Pair(10_000, 1800.0, 1800.0)
    pair.add(batch(packets[:1000]), now=packets[999][1])
    cached = len(pair.c)
    ended = [pair.flush(packets[999][1], limit=64) for _ in range(cached // 64 + 2)]
    assert sum(len(e) for e in ended) == cached and len(pair.c) == 0
    assert all(int(r) == ExpiryReason.FORCED_END for e in ended for r in e.end_reason)
    assert pair.c.counters.forced == cached
    pair.add(batch(packets[1000:1500]), now=packets[1499][1])
    # Half a clear, then packets again: which flows a partial flush ends is the table's choice, so
    # from here on only the compiled table goes on, and every packet must still be in exactly one flow.
    table = pair.c
    part = table.flush(packets[1499][1], limit=10)
    assert len(part) == 10
    rest = [table.add(batch(packets[1500:]), now=packets[-1][1]), table.expire(packets[-1][1]),
            table.flush(packets[-1][1])]
    ended = FlowRecords.concat([*pair.out, part, *rest])
    c = table.counters
    assert c.flows_created == c.flows_freed == len(ended) and len(table) == 0
    assert c.packets == len(packets) == int(ended.packets.sum())
    assert c.bytes == sum(p[2] for p in packets) == int(ended.bytes.sum())


def test_flush_gives_memory_back() -> None:
    _, table = both(1_000_000, 1800.0, 1800.0)
    empty = table.memory_used
    table.add(batch([(key(i, proto=17, v6=i % 3 == 0), 1.0, 100, 0) for i in range(20_000)]), now=1.0)
    assert table.memory_used > empty + 20_000 * 64
    while len(table.flush(2.0, limit=5000)):
        pass
    assert table.memory_used == empty and len(table) == 0


def test_layer2_columns_and_ttls_are_kept() -> None:
    packets = batch([(key(1), 1.0, 100, ACK), (key(1), 2.0, 100, ACK), (key(2, v6=True), 1.5, 80, ACK)])
    packets.vlan[:] = [10, 99, 20]
    packets.inner_vlan[:] = [7, 7, 0]
    packets.mpls[0] = [16 << 4 | 1, 0, 0]
    packets.mpls[2] = [17 << 4, 18 << 4, 19 << 4 | 1]
    packets.ttl[:] = [64, 3, 255]
    pair = Pair(100, 60.0, 15.0)
    pair.add(packets, now=2.0)
    top = pair.c.top(None, "bytes")
    assert rows(top) == rows(pair.ref.top(None, "bytes"))
    assert sorted(int(v) for v in top.vlan) == [10, 20] and int(top.ttl_min[0]) == 3
    pair.flush(3.0)


def test_top_and_the_flow_detail_mask() -> None:
    pair = Pair(100_000, 1800.0, 1800.0)
    n = 20_000
    pair.add(batch([(key(i, proto=17, v6=i % 7 == 0), 1.0, 40 + i % 1000, 0) for i in range(n)]), now=1.0)
    for order in ("bytes", "packets"):
        assert [int(x) for x in getattr(pair.c.top(10, order), order)] == [
            int(x) for x in getattr(pair.ref.top(10, order), order)]
    keys = pair.c.keys
    v6 = keys[:, 10] != 0xFF
    got = pair.c.top(5, "bytes", v6)
    assert len(got) == 5 and all(k[10] != 0xFF for k in got.key)
    assert [int(b) for b in got.bytes] == sorted((40 + i % 1000 for i in range(0, n, 7)), reverse=True)[:5]


def synth_batches(tmp_path: Path, spec: SynthSpec, size: int) -> list[PacketBatch]:
    path = tmp_path / "synth.pcap"
    write_capture(spec, path)
    with open_capture(str(path)) as reader:
        return [decode(frames).packets for frames in reader.batches(size)]


def drive(pair: Pair, batches: list[PacketBatch]) -> None:
    now = 0.0
    for packets in batches:
        if len(packets):
            now = max(now, float(packets.ts.max()))
            pair.add(packets, now)
        pair.expire(now)
    while len(pair.flush(now, limit=1000)):
        pass


def test_synthetic_capture_matches_the_truth(tmp_path: Path) -> None:
    spec = SynthSpec(packets=40_000, flows=4000, seed=5, duration=120.0)
    pair = Pair(1_000_000, spec.active_timeout, spec.inactive_timeout)
    path = tmp_path / "synth.pcap"
    truth = write_capture(spec, path)
    with open_capture(str(path)) as reader:
        drive(pair, [decode(frames).packets for frames in reader.batches(3000)])
    assert pair.c.counters.flows_created == len(truth.flows)
    assert pair.c.counters.packets == len(truth.packets)


def test_synthetic_capture_with_a_small_table(tmp_path: Path) -> None:
    spec = SynthSpec(packets=20_000, flows=3000, seed=8, duration=100.0)
    pair = Pair(300, spec.active_timeout, spec.inactive_timeout)
    drive(pair, synth_batches(tmp_path, spec, 2000))
    assert pair.c.counters.refused_flows > 0


def real_captures() -> list[Path]:
    return sorted(p for p in REAL.rglob("*") if p.is_file()) if REAL.is_dir() else []


REAL_CAPTURES = real_captures()


def in_time_order(batches: list[PacketBatch]) -> bool:
    """Whether every key's packets come in time order (then the two tables must agree exactly)."""
    packets = PacketBatch.concat(batches)
    order = np.lexsort((np.arange(len(packets)), *packets.key.T[::-1]))
    same_key = np.all(packets.key[order][1:] == packets.key[order][:-1], axis=1)
    return bool(np.all(np.diff(packets.ts[order])[same_key] >= 0))


def drive_alone(table: CompiledFlowTable, batches: list[PacketBatch]) -> None:
    """The compiled table on its own: every packet in exactly one ended flow."""
    out, now = [], 0.0
    for packets in batches:
        if len(packets):
            now = max(now, float(packets.ts.max()))
            out.append(table.add(packets, now))
        out.append(table.expire(now))
    out.append(table.flush(now))
    ended = FlowRecords.concat(out)
    c = table.counters
    assert c.flows_created == c.flows_freed == len(ended) and len(table) == 0
    assert c.packets + c.dropped_no_memory == sum(len(b) for b in batches)
    assert c.packets == int(ended.packets.sum())


@pytest.mark.skipif(not REAL.is_dir(), reason="../shared/pcaps not present")
def test_every_real_capture() -> None:
    """Every file of ../shared/pcaps/real, short timeouts so they fire, and a table that fills up.

    Where a key's packets go back in time (a few merged captures), the numpy table's answer depends on
    where its batches begin (inside a batch it measures gaps from the previous packet, across batches
    from the latest), so there the compiled table is held to the accounting rules on its own.
    """
    compared = alone = 0
    for path in REAL_CAPTURES:
        try:
            with open_capture(str(path)) as reader:
                batches = [decode(frames).packets for frames in reader.batches(512)]
        except CaptureError:
            continue  # a damaged file: what was read before the damage is another test's business
        if not sum(len(b) for b in batches):
            continue
        ordered = in_time_order(batches)
        for max_flows, active, inactive in ((1_000_000, 60.0, 15.0), (50, 10.0, 2.0)):
            if ordered:
                drive(Pair(max_flows, active, inactive), batches)
            else:
                drive_alone(CompiledFlowTable(compiled_type(), max_flows, active, inactive), batches)
        compared += ordered
        alone += not ordered
    assert compared > 50 and alone < compared


def test_the_pipeline_takes_the_compiled_table_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled_type()
    monkeypatch.delenv("FLOWD_NO_FASTPATH", raising=False)
    table: FlowCache = new_flow_table(10, 60.0, 15.0)
    assert isinstance(table, CompiledFlowTable)
    assert all(isinstance(p.table, CompiledFlowTable) for p in Pipeline(load_config(None)).paths.values())
    monkeypatch.setenv("FLOWD_NO_FASTPATH", "1")
    assert isinstance(new_flow_table(10, 60.0, 15.0), FlowTable)
    assert all(isinstance(p.table, FlowTable) for p in Pipeline(load_config(None)).paths.values())


def test_the_suite_runs_the_path_it_was_asked_for() -> None:
    """Guard: under FLOWD_NO_FASTPATH=1 the pipeline's flow cache is numpy's; otherwise the C one."""
    if not PURE:
        compiled_type()
    want = FlowTable if PURE else CompiledFlowTable
    assert all(type(p.table) is want for p in Pipeline(load_config(None)).paths.values())


def with_macs(packets: list[tuple[bytes, float, int, int]]) -> tuple[PacketBatch, dict[tuple[bytes, float], bytes]]:
    """The batch with a different MAC row per packet, and the first MAC row seen for each (key, time)."""
    out = batch(packets)
    mac = np.random.default_rng(len(packets)).integers(0, 256, (len(packets), MAC_BYTES), dtype=np.uint8)
    out.mac = mac
    first: dict[tuple[bytes, float], bytes] = {}
    for i, (k, ts, _, _) in enumerate(packets):
        first.setdefault((k, ts), bytes(mac[i]))
    return out, first


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("max_flows", [5, 10_000])
def test_flows_keep_their_first_packets_macs_in_both_tables(seed: int, max_flows: int) -> None:
    packets = random_stream(seed, count=2000, nkeys=40)
    size = random.Random(seed).choice((1, 9, 120, 2000))
    pair = Pair(max_flows, 20.0, 5.0, macs=True)
    firsts: dict[tuple[bytes, float], bytes] = {}
    for i in range(0, len(packets), size):
        chunk = packets[i:i + size]
        packed, first = with_macs(chunk)
        for k, mac in first.items():
            firsts.setdefault(k, mac)
        pair.add(packed, now=chunk[-1][1])
        pair.expire(chunk[-1][1])
    top = pair.c.top(None)
    assert top.mac is not None and rows(top) == rows(pair.ref.top(None))
    pair.flush(now=1e6)
    ended = FlowRecords.concat(pair.out)
    assert ended.mac is not None and len(ended) >= 5
    for i in range(len(ended)):  # a flow's MACs are its first packet's, whatever came after
        assert bytes(ended.mac[i]) == firsts[bytes(ended.key[i]), float(ended.first[i])]


def test_macs_are_kept_only_when_asked() -> None:
    pair = Pair(100, 60.0, 15.0)
    packets = [(key(i, v6=i % 2 == 0), 1.0, 100, ACK) for i in range(6)]
    assert pair.add(with_macs(packets)[0], now=1.0).mac is None
    assert pair.flush(2.0).mac is None
    memory = pair.c.memory_used, pair.ref.memory_used
    for table in (pair.ref, pair.c):
        table.macs = True  # a reload added a bridge template: cached flows end with zeros
    assert pair.c.memory_used > memory[0] and pair.ref.memory_used > memory[1]
    pair.add(batch(packets), now=3.0)  # no MAC column in the batch: zeros
    packed, first = with_macs([(key(9), 4.0, 100, ACK)])
    pair.add(packed, now=4.0)
    ended = pair.flush(5.0)
    assert ended.mac is not None
    assert sorted(bytes(m) for m in ended.mac) == sorted([bytes(12)] * 6 + [first[key(9), 4.0]])
    for table in (pair.ref, pair.c):
        table.macs = False
    assert pair.c.memory_used == memory[0] and pair.ref.memory_used == memory[1]
