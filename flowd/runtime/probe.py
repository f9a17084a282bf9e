"""The running probe: its flow-cache shards, exporter, configuration, and the reports the show commands read.

The daemon process's own shard (``Probe.shard``) takes replays and, with one capture worker, the
live captures; with more, the capture workers (flowd.runtime.worker_pool) each run a shard of their own and send
their ended flows here for export. Synchronous and clock-driven (every method takes ``now``) except
``gather``, which asks the workers; flowd/app.py calls it from asyncio tasks and
flowd/control/methods.py reads it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING

from flowd.config.schema import Config
from flowd.core.pipeline import Pipeline
from flowd.export.exporter import ExportCounters, Exporter
from flowd.export.udp import UdpSender
from flowd.model.batch import FlowRecords, FrameBatch
from flowd.model.expiry import ExpiryReason
from flowd.runtime.routes import RouteSources
from flowd.runtime.shard import (
    ENDED_BATCH,
    RATE_WINDOW,
    Meters,
    Query,
    Shard,
    ShardReport,
    cpu_seconds,
    merge_ended,
)

if TYPE_CHECKING:
    from flowd.runtime.worker_pool import WorkerPool

__all__ = ["RATE_WINDOW", "Meters", "Probe", "cpu_seconds"]

log = logging.getLogger(__name__)


class Probe:
    """Everything the daemon runs, behind one object."""

    def __init__(self, cfg: Config, *, now: float, exporter: Exporter | None = None,
                 routes: RouteSources | None = None) -> None:
        self.cfg = cfg
        self.routes = routes if routes is not None else RouteSources(cfg.routing, time)
        self.started = now
        self.configured_at = now
        self.configured_by: str | None = None  # the user of the last commit (None: a file, SIGHUP)
        self.shard = Shard(cfg)
        self.exporter = exporter if exporter is not None else Exporter(
            cfg, boot=now, udp_factory=partial(UdpSender, wait_limit=0.0))  # never block the event loop
        self.input_state = "Monitoring"
        self.workers: WorkerPool | None = None  # the capture workers, when there are any
        self.answers: list[ShardReport] = []  # the workers' answers to the latest query
        self.firewall_cleared: dict[str, tuple[int, int]] = {}  # `clear firewall` baselines (flowd.control.firewall)
        self.paced = asyncio.Event()  # set when export records wait for pacing (flowd/app.py pumps them)
        self._held: list[Mapping[str, FlowRecords]] = []  # flows the live path ended, for the next expiry scan
        self._held_count = 0

    @property
    def pipeline(self) -> Pipeline:
        """The daemon process's own pipeline."""
        return self.shard.pipeline

    @property
    def meters(self) -> Meters:
        return self.shard.meters

    # -- the packet path -----------------------------------------------------------------------

    def ingest(self, frames: FrameBatch, now: float, interface: str | None = None) -> None:
        self.export(self.shard.process(frames, now, interface), now)

    def hold(self, ended: Mapping[str, FlowRecords], now: float) -> None:
        """Keep flows the live path ended for the next expiry scan, as capture workers do (or export them
        once ENDED_BATCH wait): one export call a scan instead of one a ring wake-up."""
        if not ended:
            return
        self._held.append(ended)
        self._held_count += sum(len(r) for r in ended.values())
        if self._held_count >= ENDED_BATCH:
            self.release(now)

    def release(self, now: float) -> None:
        """Export the held flows."""
        held, self._held, self._held_count = self._held, [], 0
        self.export(merge_ended(held), now)

    def expire(self, now: float) -> None:
        self.release(now)
        self.export(self.shard.expire(now), now)

    def flush(self, now: float, reason: ExpiryReason = ExpiryReason.FORCED_END) -> int:
        """End and export every flow cached in this process (after the held ones); return how many."""
        self.release(now)
        ended = self.shard.flush(now, reason)
        self.export(ended, now)
        return sum(len(r) for r in ended.values())

    def export(self, ended: Mapping[str, FlowRecords], now: float) -> None:
        """Export flows that ended, here or in a capture worker."""
        for family, records in ended.items():
            self.exporter.export(family, self.routes.lookup(records), now)
        if ended and self.exporter.pump(now) is not None:
            self.paced.set()

    def next_deadline(self) -> float | None:
        """When the flow cache or the exporter (records gathering into datagrams) has timed work."""
        deadlines = [d for d in (self.shard.next_deadline(), self.exporter.next_deadline()) if d is not None]
        return min(deadlines, default=None)

    # -- every shard ---------------------------------------------------------------------------

    def reports(self, now: float) -> list[ShardReport]:
        """A report of this process's shard now, then the latest of every capture worker."""
        remote = self.workers.reports() if self.workers is not None else []
        return [self.shard.report(now), *remote]

    async def gather(self, query: Query) -> None:
        """Have every capture worker act on the query; their answers are in ``answers`` until the next."""
        self.answers = await self.workers.query(query) if self.workers is not None else []

    # -- configuration -------------------------------------------------------------------------

    def reload(self, cfg: Config, now: float) -> None:
        """Swap in a validated configuration, keeping the cache (families removed are flushed)."""
        self.export(self.shard.retire(cfg, now), now)  # what the old configuration still owes
        self.exporter.reconfigure(cfg)  # may fail: then the running configuration stays
        self.shard.reconfigure(cfg, now)  # the capture workers get it from flowd/app.py
        self.cfg = cfg
        self.configured_at = now

    # -- statistics ----------------------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Feed the rate meters (called about once a second)."""
        self.shard.tick(now)
        self.exporter.tick(now)
        if self.exporter.pump(now) is not None:
            self.paced.set()

    def clear_statistics(self) -> None:
        """`clear services accounting statistics` here (the workers clear on their own query)."""
        self.shard.clear_statistics()
        self.firewall_cleared.clear()
        self.exporter.counters = ExportCounters()
        self.exporter.clear_server_stats()
