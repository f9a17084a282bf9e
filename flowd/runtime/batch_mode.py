"""Batch mode (`flowd --read FILE`): a capture file through the pipeline as fast as it goes, then a summary.

Time is packet time throughout, so the export equals what a live run over the same packets would
have sent; at the end of the file every cached flow is flushed, FLUSH_CHUNK flows at a time. Export
is gathered into full datagrams as in the daemon (flowd.export.outbox) and sent as fast as it is
encoded, unless a `flow-export-rate` is configured: then it is paced at that rate, and the flush waits
for each chunk to leave before it ends the next, so the records waiting stay few.
"""

from __future__ import annotations

import contextlib
import gc
import sys
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, TextIO

from flowd.capture.files import CaptureReader, open_capture
from flowd.capture.layouts import CaptureError, CaptureUnreadable
from flowd.config.schema import Config
from flowd.core.pipeline import Pipeline
from flowd.export.exporter import Exporter
from flowd.export.udp import ExportSocketError
from flowd.export.udp_background import udp_sender
from flowd.model.batch import FlowRecords
from flowd.model.drops import DropReason
from flowd.runtime.batch_plan import Step, flows_created_by, workers_for
from flowd.runtime.batch_summary import ServerLine, Summary
from flowd.runtime.exit_status import ExitStatus
from flowd.runtime.read_ahead import decoded_batches

if TYPE_CHECKING:  # imported where shard processes start: one process does without multiprocessing
    from flowd.runtime.batch_shards import Shards

BATCH = 32768  # frames per batch: larger batches save little time and cost memory at every stage
FLUSH_CHUNK = 8192  # flows ended and exported at a time by the end-of-file flush


def run_batch(path: str, cfg: Config, *, out: TextIO = sys.stdout, batch_size: int = BATCH,
              workers: int | None = 1) -> int:
    """Process one capture file; print the summary; return the exit status.

    With ``workers`` above 1 the flow cache is split across that many processes; ``None`` lets
    flowd.runtime.batch_plan choose (it also says when it falls back to one).
    """
    started = time.perf_counter()
    error: str | None = None
    now = 0.0
    try:
        reader = open_capture(path)
        # fail fast on a flow server that cannot be set up; datagrams go out while the next ones are encoded
        exporter = Exporter(cfg, boot=0.0, default_rate=None, udp_factory=udp_sender)
    except (CaptureError, ExportSocketError) as exc:
        return _cannot_start(exc)
    routes: Callable[[FlowRecords], FlowRecords] = lambda records: records
    if cfg.routing.lookups:  # the routing tables only when a route source is configured
        from flowd.routing.prefixfile import PrefixFileError
        from flowd.runtime.routes import RouteSources

        try:
            routes = RouteSources(cfg.routing, time).lookup  # prefix files only: BGP and kernel need the daemon
        except PrefixFileError as exc:
            return _cannot_start(exc)
    gc.freeze()  # what is loaded by now lives to the end: collections skip it, and forked shards share it
    count = workers_for(path, cfg, workers)
    shards: Shards | None = None
    if count > 1:
        from flowd.runtime.batch_shards import Shards

        shards = Shards(path, cfg, count, batch_size)
    pipeline = shards.pipeline if shards is not None else Pipeline(cfg)
    first_batch = True
    try:
        with reader:
            steps = shards.steps() if shards is not None else _steps(reader, pipeline, batch_size)
            with contextlib.closing(steps):  # closed before the reader: its thread stops walking
                for step in steps:
                    if step.error is not None:
                        error = step.error
                        break
                    now = step.now
                    if first_batch:  # sysUptime starts with the first packet
                        exporter.start_uptime(step.ts_min)
                        first_batch = False
                    for family, records in step.flows:
                        exporter.export(family, routes(records), now)
                    exporter.tick_aggregates(now)
                    exporter.wait_below(FLUSH_CHUNK)  # paced: what waits stays bounded while reading goes on
        flushed = shards.finish(now, FLUSH_CHUNK) if shards is not None else \
            pipeline.flush_chunks(now, FLUSH_CHUNK)
        for family, records in flushed:
            exporter.export(family, routes(records), now)
            exporter.wait_below(FLUSH_CHUNK)  # paced: what waits stays bounded
        exporter.flush_aggregates(now)
        exporter.flush()  # every held record (at the flow-export-rate when configured)
    finally:
        if shards is not None:
            shards.close()
    exporter.close()
    st = shards.stats if shards is not None else pipeline.stats
    flows_created = shards.flows_created if shards is not None else flows_created_by(pipeline)
    summary = Summary(
        frames=st.frames, packets_sampled=st.sampled,
        drops={r.value: n for r, n in st.drops.items() if r is not DropReason.DISCARDED},
        discarded=st.drops[DropReason.DISCARDED], not_sampled=st.not_sampled,
        flows_created=flows_created,
        flows_exported=exporter.counters.flows_exported,
        not_exportable=exporter.counters.not_exportable,
        servers=[ServerLine.from_row(row) for row in exporter.server_stats()],
        elapsed=time.perf_counter() - started, error=error)
    for line in summary.lines():
        print(line, file=out)
    for server in summary.failed_servers:
        print(f"flowd: every export to flow server {server.server} (family {server.family}) failed"
              + (f": {server.last_error}" if server.last_error else ""), file=sys.stderr)
    if error:
        print(f"flowd: {error}", file=sys.stderr)
        return ExitStatus.DATAERR
    return ExitStatus.UNAVAILABLE if summary.failed_servers else ExitStatus.OK


def _cannot_start(exc: Exception) -> int:
    """Report what stopped the start (the capture, a flow server's socket, a prefix file); its exit status."""
    print(f"flowd: {exc}", file=sys.stderr)
    if isinstance(exc, CaptureUnreadable):
        return ExitStatus.NOINPUT
    return ExitStatus.DATAERR if isinstance(exc, CaptureError) else ExitStatus.UNAVAILABLE


def _steps(reader: CaptureReader, pipeline: Pipeline, batch_size: int) -> Generator[Step, None, None]:
    """One process: decode in a second thread, account here; a Step per batch."""
    now = 0.0
    for item in decoded_batches(reader, batch_size, bool(pipeline.macs)):
        if isinstance(item, CaptureError):
            yield Step(now, now, [], str(item))
            return
        frames, decoded = item
        now = max(now, float(frames.ts.max()))
        ended = pipeline.account(decoded, len(frames), now)
        yield Step(float(frames.ts.min()), now, [*ended.items(), *pipeline.expire(now).items()])
