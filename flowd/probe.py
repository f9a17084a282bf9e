"""The running probe: pipeline, exporter, configuration and the rates the show commands report.

Synchronous and clock-driven (every method takes ``now``); flowd/app.py calls it from asyncio tasks
and flowd/control/methods.py reads it.
"""

from __future__ import annotations

import logging
import resource
from dataclasses import dataclass, field

from flowd.batch import FlowRecords, FrameBatch
from flowd.config import Config
from flowd.expiry import ExpiryReason
from flowd.exporter import ExportCounters, Exporter
from flowd.flowtable import TableCounters
from flowd.pipeline import Pipeline
from flowd.stats import IngestStats, RateMeter

log = logging.getLogger(__name__)

RATE_WINDOW = 10.0  # seconds behind "10-second rate" and the per-second memory rates


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


class Probe:
    """Everything the daemon runs, behind one object."""

    def __init__(self, cfg: Config, *, now: float, exporter: Exporter | None = None) -> None:
        self.cfg = cfg
        self.started = now
        self.configured_at = now
        self.pipeline = Pipeline(cfg)
        self.exporter = exporter if exporter is not None else Exporter(cfg, boot=now)
        self.meters = Meters()
        self.input_state = "Monitoring"

    # -- the packet path -----------------------------------------------------------------------

    def ingest(self, frames: FrameBatch, now: float) -> None:
        self._export(self.pipeline.process(frames, now), now)

    def expire(self, now: float) -> None:
        self._export(self.pipeline.expire(now), now)

    def flush(self, now: float, reason: ExpiryReason = ExpiryReason.FORCED_END) -> int:
        """End and export every cached flow; return how many."""
        ended = self.pipeline.flush(now, reason)
        self._export(ended, now)
        return sum(len(r) for r in ended.values())

    def _export(self, ended: dict[str, FlowRecords], now: float) -> None:
        for family, records in ended.items():
            self.exporter.export(family, records, now)

    def next_deadline(self) -> float | None:
        return self.pipeline.next_deadline()

    # -- configuration -------------------------------------------------------------------------

    def reload(self, cfg: Config, now: float) -> None:
        """Swap in a validated configuration, keeping the cache (families removed are flushed)."""
        for family, path in self.pipeline.paths.items():
            if family not in cfg.families:  # export what the old configuration still owes
                self.exporter.export(family, path.table.flush(now), now)
        self.exporter.reconfigure(cfg)  # may fail: then the running configuration stays
        self.pipeline.reconfigure(cfg)
        self.cfg = cfg
        self.configured_at = now

    # -- statistics ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Feed the rate meters (called about once a second)."""
        m = self.meters
        tables = [p.table.counters for p in self.pipeline.paths.values()]
        m.flow_packets.update(now, sum(c.packets for c in tables))
        m.flow_bytes.update(now, sum(c.bytes for c in tables))
        m.allocations.update(now, sum(c.flows_created for c in tables))
        m.frees.update(now, sum(c.flows_freed for c in tables))
        cpu_us = int(cpu_seconds() * 1e6)
        m.cpu_5s.update(now, cpu_us)
        m.cpu_1m.update(now, cpu_us)

    def clear_statistics(self) -> None:
        """`clear services accounting statistics`: zero every counter; cached flows stay."""
        self.pipeline.stats = IngestStats()
        for path in self.pipeline.paths.values():
            path.table.counters = TableCounters(max_allocated=len(path.table))
            path.sampler.pps_limited = 0
        self.exporter.counters = ExportCounters()
        self.exporter.clear_server_stats()
        self.meters = Meters()
