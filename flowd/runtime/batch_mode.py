"""Batch mode (`flowd --read FILE`): a capture file through the pipeline as fast as it goes, then a summary.

Time is packet time throughout, so the export equals what a live run over the same packets would
have sent; at the end of the file every cached flow is flushed. Export is gathered into full
datagrams and paced at the `flow-export-rate` as in the daemon (flowd.export.outbox), so the end of a
big file waits for the last records to leave at that rate rather than overrunning the collector.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

from flowd.capture.files import CaptureReader, open_capture
from flowd.capture.layouts import CaptureError, CaptureUnreadable
from flowd.config.schema import Config
from flowd.core.decode import Decoded, decode
from flowd.core.pipeline import Pipeline
from flowd.export.exporter import Exporter
from flowd.routing.prefixfile import PrefixFileError
from flowd.runtime.routes import RouteSources
from flowd.export.udp import ExportSocketError
from flowd.model.batch import FrameBatch
from flowd.model.drops import DropReason
from flowd.runtime.batch_summary import ServerLine, Summary
from flowd.runtime.exit_status import ExitStatus

READ_AHEAD = 2  # decoded batches waiting for the flow cache
BATCH = 32768  # frames per batch: larger batches save little time and cost memory at every stage
FLUSH_CHUNK = 8192  # flows ended and exported at a time by the end-of-file flush


def decoded_batches(reader: CaptureReader, batch_size: int) -> Iterator[tuple[FrameBatch, Decoded] | CaptureError]:
    """Read and decode in a second thread, so the flow cache works on one batch while the next is decoded.

    The compiled record walk and decoder release the GIL, as numpy does, so the two overlap on two cores.
    A CaptureError ends the stream as its last item.
    """
    out: queue.Queue[tuple[FrameBatch, Decoded] | CaptureError | None] = queue.Queue(maxsize=READ_AHEAD)
    stop = threading.Event()

    def produce() -> None:
        try:
            for frames in reader.batches(batch_size):
                if stop.is_set():
                    return
                if len(frames):
                    out.put((frames, decode(frames)))
        except CaptureError as exc:
            out.put(exc)
        finally:
            out.put(None)

    worker = threading.Thread(target=produce, name="flowd-read", daemon=True)
    worker.start()
    try:
        while (item := out.get()) is not None:
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # let the reader see the stop and finish
            try:
                out.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


def run_batch(path: str, cfg: Config, *, out: TextIO = sys.stdout, batch_size: int = BATCH) -> int:
    """Process one capture file; print the summary; return the exit status."""
    started = time.perf_counter()
    pipeline = Pipeline(cfg)
    error: str | None = None
    now = 0.0
    try:
        reader = open_capture(path)
        exporter = Exporter(cfg, boot=0.0)  # fail fast on a flow server that cannot be set up
        routes = RouteSources(cfg.routing, time)  # prefix files only: BGP and kernel need the daemon
    except (CaptureError, ExportSocketError, PrefixFileError) as exc:
        print(f"flowd: {exc}", file=sys.stderr)
        if isinstance(exc, CaptureUnreadable):
            return ExitStatus.NOINPUT
        return ExitStatus.DATAERR if isinstance(exc, CaptureError) else ExitStatus.UNAVAILABLE
    first_batch = True
    with reader:
        for item in decoded_batches(reader, batch_size):
            if isinstance(item, CaptureError):
                error = str(item)
                break
            frames, decoded = item
            now = max(now, float(frames.ts.max()))
            if first_batch:  # sysUptime starts with the first packet
                exporter.start_uptime(float(frames.ts.min()))
                first_batch = False
            for family, records in pipeline.account(decoded, len(frames), now).items():
                exporter.export(family, routes.lookup(records), now)
            for family, records in pipeline.expire(now).items():
                exporter.export(family, routes.lookup(records), now)
            exporter.tick_aggregates(now)
    for family, records in pipeline.flush_chunks(now, FLUSH_CHUNK):
        exporter.export(family, routes.lookup(records), now)
    exporter.flush_aggregates(now)
    exporter.flush()  # every held record, at the flow-export-rate: waits as long as that takes
    exporter.close()
    st = pipeline.stats
    tables = [p.table.counters for p in pipeline.paths.values()]
    summary = Summary(
        frames=st.frames, packets_sampled=st.sampled,
        drops={r.value: n for r, n in st.drops.items() if r is not DropReason.DISCARDED},
        discarded=st.drops[DropReason.DISCARDED], not_sampled=st.not_sampled,
        flows_created=sum(c.flows_created for c in tables),
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
