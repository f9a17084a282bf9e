"""One shard of the flow cache: a pipeline, its rate meters and live captures, and the report shows are built from.

The daemon process always runs one shard (fed by replays, and by the live captures when it captures
in-process); each capture worker (flowd.runtime.capture_worker) runs one more, fed by its share of a PACKET_FANOUT
group. Every `show services accounting` command sums the ``ShardReport`` of every shard
(flowd/control/methods.py), so the operator sees one system. Synchronous and clock-driven: every
method takes ``now``.
"""

from __future__ import annotations

import dataclasses
import math
import resource
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from flowd.config.schema import Config
from flowd.core.table_counters import TableCounters
from flowd.core.pipeline import Pipeline
from flowd.core.stats import IngestStats, RateMeter
from flowd.model.batch import FlowRecords, FrameBatch
from flowd.model.expiry import ExpiryReason
from flowd.runtime.budget import SharedBudget

if TYPE_CHECKING:  # batch mode never captures live: it need not import the capture (nor asyncio)
    from flowd.capture.live import LiveCapture

RATE_WINDOW: Final = 10.0  # seconds behind "10-second rate" and the per-second memory rates
OVERLOAD_HOLD: Final = 10.0  # seconds PPS overload stays on after the last refused or dropped packet
EVENTS_REPORTED: Final = 32  # newest interface events of each capture a report carries
ENDED_BATCH: Final = 4096  # ended flows gathered before they go to the exporter between two expiry scans


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


@dataclass(slots=True)
class Meters:
    flow_packets: RateMeter = field(default_factory=lambda: RateMeter(RATE_WINDOW))
    flow_bytes: RateMeter = field(default_factory=lambda: RateMeter(RATE_WINDOW))
    allocations: RateMeter = field(default_factory=lambda: RateMeter(RATE_WINDOW))
    frees: RateMeter = field(default_factory=lambda: RateMeter(RATE_WINDOW))
    cpu_5s: RateMeter = field(default_factory=lambda: RateMeter(5.0))
    cpu_1m: RateMeter = field(default_factory=lambda: RateMeter(60.0))


class QueryKind(Enum):
    """What the daemon asks every worker before it answers a control request."""

    REPORT = "report"  # a fresh report
    FLOWS = "flows"  # a report with the cached flows that match flow-detail params
    CLEAR_STATISTICS = "clear_statistics"  # zero the counters, then report
    CLEAR_FLOWS = "clear_flows"  # end and send every cached flow, then report


@dataclass(frozen=True, slots=True)
class Query:
    kind: QueryKind
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LiveInput:
    """One interface that feeds sampling: its name as configured and the Linux interface captured."""

    name: str
    linux: str

    @property
    def label(self) -> str:
        """How shows and logs name it: ``ge-2/3/0 (eth1)``, or ``eth1`` when the names agree."""
        return self.name if self.name == self.linux else f"{self.name} ({self.linux})"


@dataclass(frozen=True, slots=True)
class FamilyReport:
    counters: TableCounters
    active: int  # flows cached now
    memory_used: int  # bytes
    memory_ceiling: int  # bytes the table may grow to (max-flows x bytes per flow)
    memory_overload: bool
    pps_limited: int  # packets the max-packets-per-second cap refused


@dataclass(frozen=True, slots=True)
class CaptureReport:
    worker: int
    input: LiveInput
    state: str  # LiveCapture.state: up, down, detached: REASON
    ifindex: int | None
    packets: int  # PACKET_STATISTICS since start or the last clear: frames offered, drops included
    drops: int
    events: tuple[tuple[float, str], ...]  # (wall-clock time, message), oldest first


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-second rates over the meters' windows (µs of CPU per second for the CPU ones)."""

    flow_packets: int = 0
    flow_bytes: int = 0
    allocations: int = 0
    frees: int = 0
    cpu_5s: int = 0
    cpu_1m: int = 0


@dataclass(frozen=True, slots=True)
class ShardReport:
    """Everything `show` needs from one shard, as plain picklable data."""

    worker: int | None  # None: the daemon process's own shard
    ingest: IngestStats
    families: Mapping[str, FamilyReport]
    rates: Rates
    cpu_us: int
    pps_overload: bool
    captures: tuple[CaptureReport, ...] = ()
    flows: FlowRecords | None = None  # answer to a FLOWS query
    flows_cleared: int = 0  # answer to a CLEAR_FLOWS query


def shard_config(cfg: Config, workers: int) -> Config:
    """The configuration one of ``workers`` shards runs: max-flows split between them."""
    if workers <= 1:
        return cfg
    share = math.ceil(cfg.flow_table.max_flows / workers)
    return replace(cfg, flow_table=replace(cfg.flow_table, max_flows=share))


class Shard:
    """A pipeline with its meters, the captures feeding it, and its report (see the module docstring)."""

    def __init__(self, cfg: Config, *, worker: int | None = None, workers: int = 1,
                 budget: SharedBudget | None = None) -> None:
        self.worker = worker
        self.workers = workers
        self.budget = budget
        self.pipeline = Pipeline(shard_config(cfg, workers))
        self.meters = Meters()
        self.captures: list[tuple[LiveInput, LiveCapture]] = []
        self._kernel_base: dict[int, tuple[int, int]] = {}  # id(capture) -> stats at the last clear
        self._overload_seen = (0, 0)  # (pps refused, kernel drops) at the last look
        self._overload_at = -math.inf
        self._share_budget()

    def _share_budget(self) -> None:
        """Draw every family's max-packets-per-second from the shared budget (workers only)."""
        if self.budget is None:
            return
        budget = self.budget
        for family, path in self.pipeline.paths.items():
            sampler = path.sampler

            def claim(second: float, wanted: int, family: str = family, sampler: Any = sampler) -> int:
                limit = sampler.max_packets_per_second
                return wanted if limit is None else budget.claim(family, second, wanted, limit)

            sampler.budget = claim

    def add_capture(self, source: LiveInput, capture: LiveCapture) -> None:
        self.captures.append((source, capture))

    # -- the packet path -----------------------------------------------------------------------

    def process(self, frames: FrameBatch, now: float, interface: str | None = None) -> dict[str, FlowRecords]:
        return self.pipeline.process(frames, now, interface)

    def expire(self, now: float) -> dict[str, FlowRecords]:
        return self.pipeline.expire(now)

    def flush(self, now: float, reason: ExpiryReason = ExpiryReason.FORCED_END) -> dict[str, FlowRecords]:
        return self.pipeline.flush(now, reason)

    def next_deadline(self) -> float | None:
        return self.pipeline.next_deadline()

    def retire(self, cfg: Config, now: float) -> dict[str, FlowRecords]:
        """End the cached flows of the families a reloaded configuration removes; return them."""
        ended = {family: path.table.flush(now) for family, path in self.pipeline.paths.items()
                 if family not in cfg.families}
        return {family: records for family, records in ended.items() if len(records)}

    def reconfigure(self, cfg: Config, now: float) -> dict[str, FlowRecords]:
        """Take a reloaded configuration, keeping the cache; return the flows of families it removes."""
        ended = self.retire(cfg, now)
        self.pipeline.reconfigure(shard_config(cfg, self.workers))
        self._share_budget()
        return ended

    # -- statistics ----------------------------------------------------------------------------

    def news(self) -> tuple[object, ...]:
        """What a report shows that changes only with traffic, expiry or link events (not with the clock
        alone): ingest counts, each family's flows and counters, each capture's counters, state and last
        event (flowd.runtime.report_pace)."""
        stats = self.pipeline.stats
        families = tuple((len(p.table), p.table.counters.packets, p.table.counters.flows_created,
                          p.table.counters.flows_freed) for p in self.pipeline.paths.values())
        captures = tuple((self.kernel_stats(c), c.state, c.events[-1] if c.events else None)
                         for _, c in self.captures)
        return stats.frames, stats.sampled, stats.not_sampled, families, captures

    def kernel_stats(self, capture: LiveCapture) -> tuple[int, int]:
        """(packets, drops) of a capture since start or the last clear."""
        packets, drops = capture.stats()
        base = self._kernel_base.get(id(capture), (0, 0))
        return packets - base[0], drops - base[1]

    def _note_overload(self, now: float) -> None:
        refused = sum(p.sampler.pps_limited for p in self.pipeline.paths.values())
        dropped = sum(self.kernel_stats(c)[1] for _, c in self.captures)
        seen = (refused, dropped)
        if seen[0] > self._overload_seen[0] or seen[1] > self._overload_seen[1]:
            self._overload_at = now
        self._overload_seen = seen

    def tick(self, now: float) -> None:
        """Feed the rate meters and the overload watch (called about once a second)."""
        m = self.meters
        tables = [p.table.counters for p in self.pipeline.paths.values()]
        m.flow_packets.update(now, sum(c.packets for c in tables))
        m.flow_bytes.update(now, sum(c.bytes for c in tables))
        m.allocations.update(now, sum(c.flows_created for c in tables))
        m.frees.update(now, sum(c.flows_freed for c in tables))
        cpu_us = int(cpu_seconds() * 1e6)
        m.cpu_5s.update(now, cpu_us)
        m.cpu_1m.update(now, cpu_us)
        self._note_overload(now)

    def clear_statistics(self) -> None:
        """`clear services accounting statistics`: zero every counter; cached flows stay."""
        self.pipeline.stats = IngestStats()
        for path in self.pipeline.paths.values():
            path.table.counters = TableCounters(max_allocated=len(path.table))
            path.sampler.pps_limited = 0
        self.meters = Meters()
        self._kernel_base = {id(c): c.stats() for _, c in self.captures}
        self._overload_seen = (0, 0)
        self._overload_at = -math.inf

    def report(self, now: float, *, flows: FlowRecords | None = None, flows_cleared: int = 0) -> ShardReport:
        self._note_overload(now)
        m = self.meters
        families = {
            family: FamilyReport(
                counters=replace(path.table.counters), active=len(path.table), memory_used=path.table.memory_used,
                memory_ceiling=path.table.max_flows * path.table.bytes_per_flow,
                memory_overload=path.table.memory_overload(now), pps_limited=path.sampler.pps_limited)
            for family, path in self.pipeline.paths.items()}
        captures = tuple(
            CaptureReport(worker=self.worker or 0, input=source, state=capture.state, ifindex=capture.ifindex,
                          packets=packets, drops=drops, events=tuple(capture.events[-EVENTS_REPORTED:]))
            for source, capture in self.captures for packets, drops in [self.kernel_stats(capture)])
        rates = Rates(flow_packets=m.flow_packets.rate(now), flow_bytes=m.flow_bytes.rate(now),
                      allocations=m.allocations.rate(now), frees=m.frees.rate(now),
                      cpu_5s=m.cpu_5s.rate(now), cpu_1m=m.cpu_1m.rate(now))
        return ShardReport(worker=self.worker, ingest=self.pipeline.stats, families=families, rates=rates,
                           cpu_us=int(cpu_seconds() * 1e6), pps_overload=now - self._overload_at < OVERLOAD_HOLD,
                           captures=captures, flows=flows, flows_cleared=flows_cleared)


def merge_ended(parts: Sequence[Mapping[str, FlowRecords]]) -> dict[str, FlowRecords]:
    """Flows ended in several calls, per family, in one FlowRecords each (each family's in the order they ended)."""
    families: dict[str, list[FlowRecords]] = {}
    for ended in parts:
        for family, records in ended.items():
            if len(records):
                families.setdefault(family, []).append(records)
    return {family: FlowRecords.concat(records) for family, records in families.items()}


def merge_ingest(parts: Sequence[IngestStats]) -> IngestStats:
    """The sum of several shards' ingest statistics: counts added, counter tables added key by key."""
    total = IngestStats()
    for part in parts:
        for f in dataclasses.fields(IngestStats):
            mine, theirs = getattr(total, f.name), getattr(part, f.name)
            if isinstance(mine, dict):
                for key, n in theirs.items():
                    mine[key] = mine.get(key, 0) + n
            elif isinstance(mine, np.ndarray):
                setattr(total, f.name, mine + np.asarray(theirs, mine.dtype))
            else:
                setattr(total, f.name, mine + theirs)
    return total
