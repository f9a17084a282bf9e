"""Live-capture plumbing without root: `flowd capture` config, per-interface filters, the shared pps budget,
shard reports summed by the show methods, and real capture-worker processes (with no interface to capture).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Mapping
from pathlib import Path

import dpkt
import numpy as np
import pytest

from flowd.config.loader import load_config, parse_config
from flowd.config.overrides import with_overrides
from flowd.config.schema import ConfigError
from flowd.control import methods
from flowd.control.streamed import whole
from flowd.core.query import shard_flows
from flowd.core.sampling import Sampler
from flowd.model.batch import FlowRecords, FrameBatch
from flowd.model.drops import DropReason
from flowd.runtime.budget import SharedBudget
from flowd.runtime.probe import Probe
from flowd.runtime.report_pace import IDLE_TICK, QUIET, TICK, ReportPace
from flowd.runtime.shard import (
    ENDED_BATCH,
    LiveInput,
    Query,
    QueryKind,
    Shard,
    ShardReport,
    merge_ingest,
)
from flowd.runtime.worker_pool import WorkerError, WorkerPool

T0 = 1_700_000_000.0


def frames(src: str, count: int, ts: float = T0, proto: int = 17, ifindex: int = 7) -> FrameBatch:
    """`count` packets of one IPv4 flow src:5000 -> 198.19.0.1:53 (UDP) or an IPv6 one when src has ':'."""
    payload = dpkt.udp.UDP(sport=5000, dport=53, data=b"x" * 20)
    if ":" in src:
        ip: dpkt.Packet = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, src), nxt=proto, hlim=64,
                                       dst=socket.inet_pton(socket.AF_INET6, "2001:db8::53"), data=payload)
        ip.plen = len(payload)
        kind = dpkt.ethernet.ETH_TYPE_IP6
    else:
        ip = dpkt.ip.IP(src=socket.inet_aton(src), dst=socket.inet_aton("198.19.0.1"), p=proto, data=payload)
        ip.len = len(bytes(ip))
        kind = dpkt.ethernet.ETH_TYPE_IP
    frame = bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=kind, data=ip))
    n = len(frame)
    return FrameBatch(buf=frame * count, offset=np.arange(count, dtype=np.int64) * n,
                      caplen=np.full(count, n, np.uint32), wirelen=np.full(count, n, np.uint32),
                      ts=np.full(count, ts), linktype=np.ones(count, np.uint16),
                      ifindex=np.full(count, ifindex, np.uint32))


# --- configuration ----------------------------------------------------------------------------------

def test_capture_settings_parse_and_default() -> None:
    cfg = parse_config("flowd:\n  capture: {workers: 3, ring-blocks: 8, block-size: 65536, block-timeout: 5,"
                       " promiscuous: true, direction: both, snaplen: 128}\n", source="t.yaml", syntax="yaml")
    c = cfg.capture
    assert (c.workers, c.ring_blocks, c.block_size, c.block_timeout, c.promiscuous, c.direction, c.snaplen) == \
        (3, 8, 65536, 5, True, "both", 128)
    assert c.worker_count() == 3
    default = load_config(None).capture
    assert default.workers is None and default.worker_count() == len(os.sched_getaffinity(0))
    assert (default.ring_blocks, default.block_size, default.direction, default.promiscuous) == (16, 4 << 20, "in", False)
    curly = parse_config("flowd { capture { workers 2; promiscuous; direction in; } }", source="t.conf",
                         syntax="junos")
    assert (curly.capture.workers, curly.capture.promiscuous) == (2, True)


@pytest.mark.parametrize(("text", "error"), [
    ("flowd:\n  capture: {workers: 0}\n", "t.yaml:2: flowd.capture.workers: expected 1..1024, got 0"),
    ("flowd:\n  capture: {direction: out}\n", "t.yaml:2: flowd.capture.direction: expected in or both, got out"),
    ("flowd:\n  capture: {block-size: 5000}\n",
     "t.yaml:2: flowd.capture.block-size: expected a multiple of 4096, got 5000"),
    ("flowd:\n  capture: {block-size: 4096, snaplen: 4000}\n",
     "t.yaml:2: flowd.capture.snaplen: snaplen 4000 needs a block-size of at least 4256, got 4096"),
    ("flowd:\n  capture: {promiscuous: false}\n",
     ("t.yaml:2: flowd.capture.promiscuous: expected a flag (true; delete the statement to turn it off), "
      "got a flag (false)")),
    ("flowd:\n  capture: {ring: 3}\n",
     ("t.yaml:2: flowd.capture.ring: unknown statement (expected one of: workers, ring-blocks, block-size, "
      "block-timeout, snaplen, promiscuous, direction)")),
])
def test_bad_capture_settings(text: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, source="t.yaml", syntax="yaml")
    assert str(caught.value) == error


def test_live_interfaces_follow_the_map_and_the_command_line() -> None:
    cfg = load_config(None)  # ge-2/3/0 filter input catch_all, mapped to lo
    assert cfg.live_interfaces() == (("ge-2/3/0", "lo"),)
    over = with_overrides(cfg, interfaces=["veth1", "ge-2/3/0"])
    assert {(b.interface, b.family, b.filter) for b in over.inputs} == {("veth1", "inet", None),
                                                                         ("ge-2/3/0", "inet", None)}
    assert dict(over.live_interfaces()) == {"veth1": "veth1", "ge-2/3/0": "lo"}
    with pytest.raises(ConfigError, match=r"^command line: --interface: expected a Linux interface name"):
        with_overrides(cfg, interfaces=["eth0/1"])
    with pytest.raises(ConfigError, match=r"^command line: --interface: eth0 is given twice$"):
        with_overrides(cfg, interfaces=["eth0", "eth0"])


DUAL = """
forwarding-options:
  sampling:
    family: {inet: {output: {flow-active-timeout: 1800, flow-inactive-timeout: 1800}}, inet6: {}}
firewall:
  family:
    inet:
      filter:
        only_tcp:
          term:
            tcp: {from: {protocol: tcp}, then: {sample: true}}
interfaces:
  eth1: {unit: {0: {family: {inet: {filter: {input: only_tcp}}}}}}
  eth2: {unit: {0: {family: {inet: {sampling: {input: true}}, inet6: {sampling: {input: true}}}}}}
"""


def test_each_interface_has_its_own_filter_and_families() -> None:
    shard = Shard(parse_config(DUAL, source="t.yaml", syntax="yaml"))
    shard.process(frames("198.18.0.1", 3), T0, "eth1")  # UDP: only_tcp does not sample it
    shard.process(frames("198.18.0.1", 3, proto=6), T0, "eth1")
    shard.process(frames("2001:db8::1", 2), T0, "eth1")  # eth1 has no inet6 binding
    shard.process(frames("198.18.0.2", 4), T0, "eth2")
    shard.process(frames("2001:db8::2", 5), T0, "eth2")
    stats = shard.pipeline.stats
    assert (stats.frames, stats.drops[DropReason.DISCARDED], stats.sampled) == (17, 3, 12)
    assert stats.drops[DropReason.NOT_IPV4] == 2
    report = shard.report(T0)
    assert (report.families["inet"].counters.packets, report.families["inet6"].counters.packets) == (7, 5)


# --- the shared max-packets-per-second budget -------------------------------------------------------

def test_two_samplers_share_one_budget_per_second() -> None:
    budget = SharedBudget()
    try:
        twin = SharedBudget(budget.fileno())  # what a worker maps

        def sampler(shared: SharedBudget) -> Sampler:
            s = Sampler(max_packets_per_second=10)
            s.budget = lambda second, wanted: shared.claim("inet", second, wanted, 10)
            return s

        a, b = sampler(budget), sampler(twin)
        ts = np.array([T0 + 0.1] * 6 + [T0 + 1.5] * 4)
        kept = [a.select(ts[:6]), b.select(ts[:6]), a.select(ts[6:]), b.select(ts[6:]), b.select(ts[6:])]
        assert [int(k.sum()) for k in kept] == [6, 4, 4, 4, 2]  # 10 in second T0, then 10 in T0+1
        assert a.pps_limited + b.pps_limited == 2 + 2
        assert budget.claim("inet", T0, 5, 10) == 0  # the second before is spent
        assert budget.claim("inet", T0 - 1, 5, 10) == 0  # older: no longer counted, refused
        assert budget.claim("inet6", T0 + 1, 5, 10) == 5  # each family has its own budget
        twin.close()
    finally:
        budget.close()


# --- shard reports and the show methods -------------------------------------------------------------

def test_reports_sum_in_the_shows() -> None:
    """Two shards' traffic: the shows print the sum, flow-detail merges and ranks, clears reach both."""
    cfg = with_overrides(load_config(None), flow_servers=[], interfaces=["eth1"])
    probe = Probe(cfg, now=T0)
    other = Shard(cfg, worker=1, workers=2)
    probe.shard.process(frames("198.18.0.1", 3), T0, "eth1")
    other.process(frames("198.18.0.2", 5), T0, "eth1")
    other.process(frames("198.18.0.3", 1), T0, "eth1")

    class Pool:
        """Stands in for WorkerPool: the other shard's reports."""

        def reports(self) -> list[ShardReport]:
            return [other.report(T0)]

        async def query(self, query: Query) -> list[ShardReport]:
            if query.kind is QueryKind.CLEAR_FLOWS:
                ended = other.flush(T0)
                return [other.report(T0, flows_cleared=sum(len(r) for r in ended.values()))]
            if query.kind is QueryKind.CLEAR_STATISTICS:
                other.clear_statistics()
            flows = shard_flows(other.pipeline, query.params) if query.kind is QueryKind.FLOWS \
                else None
            return [other.report(T0, flows=flows)]

    probe.workers = Pool()  # type: ignore[assignment]

    def call(method: str, params: Mapping[str, object] | None = None) -> dict[str, object]:
        result = whole(asyncio.run(methods.call(probe, method, params or {}, lambda: T0)))
        return result["interfaces"][0] if "interfaces" in result else result

    flow = call("accounting.flow")
    assert (flow["flow_packets"], flow["active_flows"], flow["total_flows"]) == (9, 3, 3)
    detail = call("accounting.flow_detail", {"limit": 2, "order": "packets"})
    assert [(f["source_address"], f["packets"]) for f in detail["flows"]] == [("198.18.0.2", 5),  # type: ignore
                                                                               ("198.18.0.1", 3)]
    sizes = call("accounting.packet_size_distribution")
    assert sum(r["packets"] for r in sizes["ranges"]) == 9  # type: ignore[attr-defined]
    assert merge_ingest([probe.shard.pipeline.stats, other.pipeline.stats]).frames == 9
    memory = call("accounting.memory")
    assert memory["allocation_count"] == 3
    with pytest.raises(methods.BadParams, match="limit"):
        call("accounting.flow_detail", {"limit": 0})
    assert call("accounting.clear_flows") == {"flows_cleared": 3}
    call("accounting.clear_statistics")
    assert call("accounting.flow")["flow_packets"] == 0


# --- how often an idle worker reports -------------------------------------------------------------------

def test_report_pace_slows_down_only_after_a_quiet_spell() -> None:
    pace = ReportPace()
    assert pace.period(T0, ("a",)) == TICK
    assert pace.period(T0 + QUIET - 1, ("a",)) == TICK  # the rate windows and overload holds have not passed
    assert pace.period(T0 + QUIET, ("a",)) == IDLE_TICK
    assert pace.period(T0 + QUIET + 5, ("b",)) == TICK  # news: every second again, and a new spell
    assert pace.period(T0 + 2 * QUIET + 4, ("b",)) == TICK
    assert pace.period(T0 + 2 * QUIET + 5, ("b",)) == IDLE_TICK
    pace.stir(T0 + 2 * QUIET + 6)  # a reload: the limits in the report change
    assert pace.period(T0 + 2 * QUIET + 7, ("b",)) == TICK


def test_news_changes_with_traffic_and_expiry_not_with_the_clock() -> None:
    cfg = with_overrides(load_config(None), flow_servers=[], interfaces=["eth1"], active_timeout=60,
                         inactive_timeout=15)
    shard = Shard(cfg)
    quiet = shard.news()
    shard.tick(T0 + 5)
    shard.expire(T0 + 5)
    assert shard.news() == quiet  # time alone changes no counter a report shows
    shard.process(frames("198.18.0.1", 3), T0 + 6, "eth1")
    busy = shard.news()
    assert busy != quiet
    shard.tick(T0 + 7)
    assert shard.news() == busy
    assert shard.expire(T0 + 60) and shard.news() != busy  # the flow ended at its inactive timeout


# --- real worker processes ------------------------------------------------------------------------------

def pool_for(tmp_path: Path, count: int, received: list[Mapping[str, FlowRecords]]) -> WorkerPool:
    cfg = with_overrides(load_config(None), flow_servers=[])
    return WorkerPool(cfg, [], count, clock_offset=0.0, on_flows=received.append, log_level="warning")


def test_workers_start_answer_clear_and_stop(tmp_path: Path) -> None:
    async def main() -> None:
        received: list[Mapping[str, FlowRecords]] = []
        pool = pool_for(tmp_path, 2, received)
        await pool.start()
        try:
            answers = await pool.query(Query(QueryKind.REPORT))
            assert sorted(a.worker for a in answers) == [0, 1]  # type: ignore[type-var]
            cleared = await pool.query(Query(QueryKind.CLEAR_FLOWS))
            assert [a.flows_cleared for a in cleared] == [0, 0]
            await pool.reload(with_overrides(load_config(None), flow_servers=[], active_timeout=120))
            assert len(await pool.query(Query(QueryKind.REPORT))) == 2
        finally:
            await pool.stop()
        assert all(w.proc.returncode == 0 for w in pool.workers)
        assert len(pool.reports()) == 2 and pool.flushed_at_stop == 0

    asyncio.run(main())


def test_a_worker_that_dies_is_reported(tmp_path: Path) -> None:
    async def main() -> None:
        pool = pool_for(tmp_path, 2, [])
        await pool.start()
        watch = asyncio.ensure_future(pool.watch())
        os.kill(pool.workers[1].proc.pid, signal.SIGKILL)
        with pytest.raises(WorkerError, match=r"^capture worker 1 \(pid \d+\) (exited with status -9|closed its "
                                              r"connection)$"):
            await asyncio.wait_for(watch, 30)
        with pytest.raises(WorkerError):
            await pool.stop()  # the survivor stops cleanly; the daemon still exits with the error
        assert pool.workers[0].proc.returncode == 0

    asyncio.run(main())


def test_label() -> None:
    assert LiveInput("ge-2/3/0", "eth1").label == "ge-2/3/0 (eth1)"
    assert LiveInput("eth1", "eth1").label == "eth1"


def test_flows_the_live_path_ends_wait_for_the_expiry_scan_or_a_full_batch() -> None:
    """Probe.hold: one export call per expiry scan (or per ENDED_BATCH flows), as the capture workers send theirs."""
    cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", 9)], interfaces=["eth1"])
    probe = Probe(cfg, now=T0)
    other = Shard(cfg)
    other.process(frames("198.18.0.1", 3), T0, "eth1")
    other.process(frames("198.18.0.2", 2), T0, "eth1")
    ended = other.flush(T0)
    probe.hold(ended, T0)
    probe.hold(ended, T0)
    exported = probe.exporter.counters
    assert exported.flows_exported == 0  # held
    probe.expire(T0 + 0.5)
    assert exported.flows_exported == 4  # both calls' flows, in the scan's export
    many = FlowRecords.concat([ended["inet"]] * (ENDED_BATCH // 2))
    probe.hold({"inet": many}, T0 + 0.6)
    assert exported.flows_exported == 4 + ENDED_BATCH  # a full batch goes at once
