"""One capture worker process (`python -m flowd.runtime.capture_worker FD`): a flow-cache shard fed by its share of PACKET_FANOUT.

The daemon (flowd.runtime.worker_pool) starts one per configured worker. Each opens a ring on every captured
interface, joined to that interface's PACKET_FANOUT group in hash mode, so each flow reaches exactly
one worker; it runs its own Pipeline (its shard of the flow cache, expired on its own clock, which
is the daemon's) and sends the flows that end to the daemon, which exports them all through its one
exporter, so each flow server sees one sequence space.

Messages go over the Unix stream socket FD (one end of a socketpair) as frames of a 4-byte big-endian
length and a pickle (both ends are this program; nothing else can reach the socket):

* daemon → worker: ``Start`` (first, once), ``Ask`` (a control query; the reply is an ``Answer``),
  ``Reload`` (SIGHUP's new configuration), ``Stop``;
* worker → daemon: ``Started`` (the rings are open, or the one-line error why not), ``Ended`` (flows
  to export), ``Report`` (statistics, every second; every 30 s once nothing has changed for 90 s:
  flowd.runtime.report_pace), ``Answer``, ``Stopped`` (the last report, after the last flows).

The worker ignores SIGINT, SIGTERM and SIGHUP (a terminal's Ctrl-C and systemd's stop reach the
whole group): the daemon decides when it stops, so its last flows are always exported. It exits when
the daemon's end of the socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
import socket
import struct
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from flowd.capture.live import LiveCaptureError
from flowd.capture.ring import RingAccount
from flowd.config.schema import Config
from flowd.core.query import shard_flows
from flowd.model.batch import FlowRecords, FrameBatch
from flowd.runtime.budget import SharedBudget
from flowd.runtime.clock import SystemClock
from flowd.runtime.inputs import finish, ingest, open_capture, ring_account
from flowd.runtime.log import setup_logging
from flowd.runtime.report_pace import TICK, ReportPace
from flowd.runtime.shard import ENDED_BATCH, LiveInput, Query, QueryKind, Shard, ShardReport, merge_ended

log = logging.getLogger(__name__)

FRAME: Final = struct.Struct("!I")  # length of the pickle that follows


# --- messages -------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Start:
    index: int  # this worker's number, 0..workers-1
    workers: int
    cfg: Config
    inputs: tuple[LiveInput, ...]
    fanout_groups: tuple[int, ...]  # one per input
    clock_offset: float  # the daemon's SystemClock.offset
    budget_fd: int  # the shared max-packets-per-second budget (flowd.runtime.budget)
    log_level: str


@dataclass(frozen=True, slots=True)
class Started:
    error: str | None = None  # LiveCaptureError's one line when a ring could not open


@dataclass(frozen=True, slots=True)
class Ask:
    id: int
    query: Query


@dataclass(frozen=True, slots=True)
class Reload:
    cfg: Config


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Ended:
    flows: Mapping[str, FlowRecords]  # per family


@dataclass(frozen=True, slots=True)
class Report:
    report: ShardReport


@dataclass(frozen=True, slots=True)
class Answer:
    id: int
    report: ShardReport


@dataclass(frozen=True, slots=True)
class Stopped:
    report: ShardReport


async def send(writer: asyncio.StreamWriter, message: object) -> None:
    """Write one message and wait while the peer is behind."""
    data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
    writer.writelines((FRAME.pack(len(data)), data))
    await writer.drain()


async def receive(reader: asyncio.StreamReader) -> object:
    """The next message; raises asyncio.IncompleteReadError at the end of the stream."""
    (size,) = FRAME.unpack(await reader.readexactly(FRAME.size))
    return pickle.loads(await reader.readexactly(size))


# --- the worker -----------------------------------------------------------------------------------

class Worker:
    """A shard, the captures feeding it, and the conversation with the daemon."""

    def __init__(self, start: Start, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.start = start
        self.reader = reader
        self.writer = writer
        self.clock = SystemClock(start.clock_offset)
        self.shard = Shard(start.cfg, worker=start.index, workers=start.workers,
                           budget=SharedBudget(start.budget_fd))
        self._outbox: list[Mapping[str, FlowRecords]] = []
        self._pending = 0  # flows in the outbox
        self._last_report = float("-inf")
        self._pace = ReportPace()
        self._woken = asyncio.Event()  # set by every wake-up of an ingest task (traffic or link events)

    def _handle(self, frames: FrameBatch, now: float, interface: str) -> None:
        self._keep(self.shard.process(frames, now, interface))

    def _keep(self, ended: Mapping[str, FlowRecords]) -> None:
        if any(len(r) for r in ended.values()):
            self._outbox.append(ended)
            self._pending += sum(len(r) for r in ended.values())

    async def _flush_outbox(self) -> None:
        """Send every flow in the outbox, in one message (each family's flows in the order they ended)."""
        flows = merge_ended(self._outbox)
        self._outbox, self._pending = [], 0
        if flows:
            await send(self.writer, Ended(flows))

    async def _flush_when_full(self) -> None:
        """After a wake-up: send only once ENDED_BATCH flows are waiting; the expiry scan sends the rest.

        Flows that end between two scans so reach the exporter in large messages, at most TICK late,
        instead of one message per ring wake-up.
        """
        self._woken.set()
        if self._pending >= ENDED_BATCH:
            await self._flush_outbox()

    def _account(self, source: LiveInput) -> RingAccount:
        return ring_account(self.shard, source, self.clock, lambda ended, _now: self._keep(ended))

    async def _ingest(self, index: int) -> None:
        source, capture = self.shard.captures[index]
        await ingest(capture, source, self.clock, self._handle, self._flush_when_full, self._account(source))

    async def _expiry(self) -> None:
        while True:
            self._woken.clear()  # traffic from here on ends a quiet sleep below
            now = self.clock.time()
            self._keep(self.shard.expire(now))
            self.shard.tick(now)
            await self._flush_outbox()
            period = self._pace.period(now, self.shard.news())
            if now - self._last_report >= period:
                self._last_report = now
                await send(self.writer, Report(self.shard.report(now)))
            wake = self._last_report + period
            if (deadline := self.shard.next_deadline()) is not None:
                wake = min(wake, deadline)
            if period == TICK:
                await self.clock.sleep_until(wake)
                continue
            with contextlib.suppress(TimeoutError):  # quiet: wait for the deadline, the report, or traffic
                async with asyncio.timeout(max(0.0, wake - self.clock.time())):
                    await self._woken.wait()

    def _answer(self, query: Query) -> ShardReport:
        now = self.clock.time()
        if query.kind is QueryKind.FLOWS:  # the same selection the daemon runs on its own shard
            return self.shard.report(now, flows=shard_flows(self.shard.pipeline, query.params))
        if query.kind is QueryKind.CLEAR_STATISTICS:
            self.shard.clear_statistics()
        elif query.kind is QueryKind.CLEAR_FLOWS:
            ended = self.shard.flush(now)
            self._keep(ended)
            return self.shard.report(now, flows_cleared=sum(len(r) for r in ended.values()))
        return self.shard.report(now)

    async def run(self) -> int:
        start = self.start
        try:
            for source, group in zip(start.inputs, start.fanout_groups, strict=True):
                self.shard.add_capture(source, open_capture(start.cfg.capture, source, group))
        except LiveCaptureError as exc:
            for _, capture in self.shard.captures:
                capture.close()
            await send(self.writer, Started(str(exc)))
            return 1
        await send(self.writer, Started())
        tasks = [asyncio.create_task(self._ingest(i)) for i in range(len(self.shard.captures))]
        expiry = asyncio.create_task(self._expiry())
        everything = [*tasks, expiry]
        try:
            while True:
                receiving = asyncio.ensure_future(receive(self.reader))
                done, _ = await asyncio.wait([receiving, *everything], return_when=asyncio.FIRST_COMPLETED)
                if receiving not in done:
                    receiving.cancel()
                    for task in done:
                        task.result()  # an ingest or expiry task failed: the daemon hears of it as our exit
                    raise RuntimeError("a capture task ended")
                try:
                    message = receiving.result()
                except asyncio.IncompleteReadError:
                    log.error("worker %d: the daemon went away; exiting", start.index)
                    return 1
                if isinstance(message, Ask):
                    report = self._answer(message.query)
                    await self._flush_outbox()  # the flows a clear ended go out before its answer
                    await send(self.writer, Answer(message.id, report))
                elif isinstance(message, Reload):
                    self._keep(self.shard.reconfigure(message.cfg, self.clock.time()))
                    await self._flush_outbox()
                    self._pace.stir(self.clock.time())  # the next report shows the new limits
                    self._woken.set()
                elif isinstance(message, Stop):
                    break
        finally:
            for task in everything:
                task.cancel()
            await asyncio.gather(*everything, return_exceptions=True)
        for source, capture in self.shard.captures:
            await finish(capture, source, self.clock, self._handle, start.cfg.capture.block_timeout,
                         self._account(source))
        now = self.clock.time()
        ended = self.shard.flush(now)
        self._keep(ended)
        await self._flush_outbox()
        await send(self.writer, Stopped(self.shard.report(now, flows_cleared=sum(len(r) for r in ended.values()))))
        return 0


async def serve(sock: socket.socket) -> int:
    """Talk to the daemon over ``sock`` until it says stop (or goes away); the exit status."""
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        try:
            start = await receive(reader)
        except asyncio.IncompleteReadError:
            return 1
        if not isinstance(start, Start):
            raise TypeError(f"expected Start first, got {type(start).__name__}")
        setup_logging(start.log_level)
        return await Worker(start, reader, writer).run()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def main(argv: list[str] | None = None) -> int:
    """`python -m flowd.runtime.capture_worker FD` (started by the daemon, never by hand)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m flowd.runtime.capture_worker FD  (the daemon starts its capture workers itself)", file=sys.stderr)
        return 2
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    sock = socket.socket(fileno=int(args[0]))
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(sock))


if __name__ == "__main__":
    # Run as flowd.runtime.capture_worker, not as __main__: the daemon pickles flowd.runtime.capture_worker's message classes.
    from flowd.runtime.capture_worker import main as worker_main

    sys.exit(worker_main())
