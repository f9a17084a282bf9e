"""The daemon's capture workers: start them, forward their flows to the exporter, ask them for shows, stop them.

With `flowd capture workers N` above 1 the daemon starts N processes (`python -m flowd.runtime.capture_worker`, see
that module for what each does and the messages), each connected by its own socketpair. What comes
back is handled as it arrives: ``Ended`` flows go straight to the daemon's exporter (one sequence
space per flow server), ``Report``s are kept as the latest statistics of each worker, ``Answer``s
resolve the query that asked. A show asks every worker at once and waits for all (flowd/control/methods.py
then sums the reports). Stopping sends ``Stop`` to every worker and waits for each to send its last
flows and its ``Stopped``; a worker whose stream ends otherwise has died, and the daemon stops with
an error (``watch``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import flowd
from flowd.capture.live import LiveCaptureError
from flowd.config.schema import Config
from flowd.model.batch import FlowRecords
from flowd.runtime.budget import SharedBudget
from flowd.runtime.capture_worker import (
    Answer,
    Ask,
    Ended,
    Reload,
    Report,
    Start,
    Started,
    Stop,
    Stopped,
    receive,
    send,
)
from flowd.runtime.inputs import fanout_groups
from flowd.runtime.shard import LiveInput, Query, ShardReport

log = logging.getLogger(__name__)

START_TIMEOUT: Final = 60.0  # seconds for a worker to import, open its rings and say so
QUERY_TIMEOUT: Final = 10.0  # seconds for every worker to answer a show
STOP_TIMEOUT: Final = 60.0  # seconds for a worker to send its last flows after Stop
EXIT_TIMEOUT: Final = 5.0  # seconds for a worker process to exit after Stopped, before it is killed


class WorkerError(Exception):
    """A capture worker died, or did not answer in time; ``str()`` is one line."""


@dataclass(slots=True)
class _Worker:
    index: int
    proc: asyncio.subprocess.Process
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    report: ShardReport | None = None
    stopped: bool = False
    reading: asyncio.Task[None] | None = None
    waiting: dict[int, asyncio.Future[ShardReport]] = field(default_factory=dict)


def _environment() -> dict[str, str]:
    """The daemon's environment, with this flowd's directory first on PYTHONPATH (for a checkout)."""
    root = str(Path(flowd.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}"}


class WorkerPool:
    """N capture worker processes (see the module docstring)."""

    def __init__(self, cfg: Config, inputs: list[LiveInput], count: int, *, clock_offset: float,
                 on_flows: Callable[[Mapping[str, FlowRecords]], None], log_level: str = "info") -> None:
        self.cfg = cfg
        self.inputs = inputs
        self.count = count
        self.clock_offset = clock_offset
        self.on_flows = on_flows
        self.log_level = log_level
        self.workers: list[_Worker] = []
        self._ids = itertools.count(1)
        self._died: asyncio.Future[None] | None = None
        self._budget: SharedBudget | None = None

    # -- start ---------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until each has opened its rings; LiveCaptureError when one could not."""
        self._died = asyncio.get_running_loop().create_future()
        self._budget = SharedBudget()
        groups = tuple(fanout_groups(self.inputs))
        env = _environment()
        for index in range(self.count):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "flowd.runtime.capture_worker", str(theirs.fileno()),
                    pass_fds=(theirs.fileno(), self._budget.fileno()), env=env, stdin=subprocess.DEVNULL)
            finally:
                theirs.close()
            reader, writer = await asyncio.open_unix_connection(sock=ours)
            self.workers.append(_Worker(index, proc, reader, writer))
            await send(writer, Start(index=index, workers=self.count, cfg=self.cfg, inputs=tuple(self.inputs),
                                     fanout_groups=groups, clock_offset=self.clock_offset,
                                     budget_fd=self._budget.fileno(), log_level=self.log_level))
        errors: list[str] = []
        for worker in self.workers:
            try:
                async with asyncio.timeout(START_TIMEOUT):
                    reply = await receive(worker.reader)
            except (asyncio.IncompleteReadError, TimeoutError):
                errors.append(f"capture worker {worker.index} exited while starting (see the log above)")
                continue
            if not isinstance(reply, Started):
                errors.append(f"capture worker {worker.index} sent {type(reply).__name__} before Started")
            elif reply.error is not None:
                errors.append(reply.error)
        if errors:
            await self._abandon()
            raise LiveCaptureError(errors[0])
        for worker in self.workers:
            worker.reading = asyncio.create_task(self._read(worker), name=f"capture worker {worker.index}")
        log.info("%d capture workers (pids %s) share %s", self.count,
                 ", ".join(str(w.proc.pid) for w in self.workers), ", ".join(i.label for i in self.inputs))

    async def _abandon(self) -> None:
        """Close every worker's socket (they exit on the end of the stream) and wait for them."""
        for worker in self.workers:
            worker.writer.close()
        await self._reap()
        if self._budget is not None:
            self._budget.close()
            self._budget = None

    # -- while running -------------------------------------------------------------------------

    async def _read(self, worker: _Worker) -> None:
        while True:
            try:
                message = await receive(worker.reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                if not worker.stopped:
                    self._fail(worker)
                return
            if isinstance(message, Ended):
                self.on_flows(message.flows)
            elif isinstance(message, Report):
                worker.report = message.report
            elif isinstance(message, Answer):
                worker.report = message.report
                waiter = worker.waiting.pop(message.id, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(message.report)
            elif isinstance(message, Stopped):
                worker.report = message.report
                worker.stopped = True

    def _fail(self, worker: _Worker) -> None:
        status = worker.proc.returncode
        how = f"exited with status {status}" if status is not None else "closed its connection"
        error = WorkerError(f"capture worker {worker.index} (pid {worker.proc.pid}) {how}")
        for waiter in worker.waiting.values():
            if not waiter.done():
                waiter.set_exception(error)
        worker.waiting.clear()
        if self._died is not None and not self._died.done():
            self._died.set_exception(error)

    async def watch(self) -> None:
        """Return never; raise WorkerError once a worker dies (the daemon runs this as a task)."""
        assert self._died is not None, "start() first"
        await asyncio.shield(self._died)  # cancelling the watch leaves the future for stop() to read

    @property
    def flushed_at_stop(self) -> int:
        """Flows the workers had cached when they stopped (sent for export with their last flows)."""
        return sum(w.report.flows_cleared for w in self.workers if w.stopped and w.report is not None)

    def reports(self) -> list[ShardReport]:
        """The latest report of every worker, in worker order."""
        return [w.report for w in self.workers if w.report is not None]

    async def query(self, query: Query) -> list[ShardReport]:
        """Ask every running worker, wait for every answer; raise WorkerError if one does not answer."""
        waiters: list[asyncio.Future[ShardReport]] = []
        loop = asyncio.get_running_loop()
        for worker in self.workers:
            if worker.stopped or worker.reading is None or worker.reading.done():
                continue
            ident = next(self._ids)
            waiter: asyncio.Future[ShardReport] = loop.create_future()
            worker.waiting[ident] = waiter
            waiters.append(waiter)
            await send(worker.writer, Ask(ident, query))
        try:
            async with asyncio.timeout(QUERY_TIMEOUT):
                return list(await asyncio.gather(*waiters))
        except TimeoutError:
            raise WorkerError(f"a capture worker did not answer within {QUERY_TIMEOUT:g} s") from None

    async def reload(self, cfg: Config) -> None:
        """Hand a reloaded (already validated) configuration to every worker."""
        self.cfg = cfg
        for worker in self.workers:
            if not worker.stopped and not worker.writer.is_closing():
                with contextlib.suppress(ConnectionError):
                    await send(worker.writer, Reload(cfg))

    # -- stop ----------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Ask every worker to stop, forward its last flows, and wait for it to exit."""
        for worker in self.workers:
            if worker.reading is not None and not worker.reading.done():
                with contextlib.suppress(ConnectionError):
                    await send(worker.writer, Stop())
        readers = [w.reading for w in self.workers if w.reading is not None]
        if readers:
            _, late = await asyncio.wait(readers, timeout=STOP_TIMEOUT)
            for task in late:
                log.error("a capture worker did not stop within %g s; its cached flows are lost", STOP_TIMEOUT)
                task.cancel()
        for worker in self.workers:
            worker.writer.close()
        await self._reap()
        if self._budget is not None:
            self._budget.close()
            self._budget = None
        died = self._died
        if died is not None and died.done() and not died.cancelled() and (error := died.exception()) is not None:
            raise error  # the daemon exits with an error: a worker's cached flows were lost

    async def _reap(self) -> None:
        """Wait for every worker process to exit, killing one that takes longer than EXIT_TIMEOUT."""
        for worker in self.workers:
            try:
                async with asyncio.timeout(EXIT_TIMEOUT):
                    await worker.proc.wait()
            except TimeoutError:
                log.error("capture worker %d (pid %d) did not exit; killing it", worker.index, worker.proc.pid)
                worker.proc.kill()
                await worker.proc.wait()
