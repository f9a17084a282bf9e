"""The daemon: compose ingest, expiry and the control server, start them in order, stop them in reverse.

Start: watchdog pings → exporter sockets (in Probe) → control server → expiry → ingest; once the
control socket accepts and every input has opened, systemd hears READY=1 (flowd/runtime/notify.py), then a
STATUS= line every few seconds. Stop (SIGTERM/SIGINT, or a task that died): systemd hears STOPPING=1;
ingest stops first, so nothing new arrives; every cached flow is flushed to the flow servers; the
control server closes and removes its socket; the watchdog pings stop last. A task that dies
unexpectedly stops the daemon and `run` re-raises its error, so the process never lingers half alive.

Live inputs (flowd.runtime.inputs) open after expiry starts: with `flowd capture workers 1` the rings are
read here, into the probe's own shard; with more, the capture workers (flowd.runtime.worker_pool) start and this
process exports what they send. At stop the rings give up their last frames first, then the workers
flush and send their flows, then this process's own cache is flushed, so everything is exported.
A worker that dies stops the daemon with an error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from flowd.capture.layouts import CaptureError
from flowd.capture.live import LiveCapture
from flowd.capture.replay import Replay
from flowd.config.schema import Config, ConfigError
from flowd.control.database import Database, run_confirm_timer
from flowd.control.metrics import MetricsServer
from flowd.control.server import ControlServer
from flowd.export.outbox import STOP_LIMIT
from flowd.export.udp import ExportSocketError
from flowd.model.clock import Clock
from flowd.runtime.clock import SystemClock
from flowd.runtime.inputs import finish, ingest, open_capture, ring_account
from flowd.runtime.netconf_process import NetconfProcess
from flowd.runtime.notify import Notifier, ping_watchdog
from flowd.runtime.probe import Probe
from flowd.runtime.routes import RouteSources
from flowd.runtime.shard import LiveInput
from flowd.runtime.worker_pool import WorkerPool

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between rate-meter samples and expiry scans when no deadline is nearer
STATUS_INTERVAL = 5.0  # seconds (on the daemon clock) between STATUS= lines to systemd


class App:
    """One running daemon."""

    def __init__(self, cfg: Config, *, socket_path: str, clock: Clock, replays: list[Replay],
                 load_config: Callable[[], Config] | None = None, notifier: Notifier | None = None,
                 live: list[LiveInput] | None = None, log_level: str = "info") -> None:
        self.clock = clock
        self.probe = Probe(cfg, now=clock.time(), routes=RouteSources(cfg.routing, clock))
        self.socket_path = socket_path
        self.replays = replays
        self.live = live or []  # interfaces to capture
        self.log_level = log_level  # for the capture workers
        self.load_config = load_config
        self.stopping = asyncio.Event()
        self.notifier = notifier if notifier is not None else Notifier.from_environ()
        self._ready = False
        self._packet_rate = 0  # packets/s over the last STATUS_INTERVAL, for STATUS= lines
        self._failure: BaseException | None = None
        self.database: Database | None = None  # configuration mode (a daemon started with --config)

    def stop(self) -> None:
        """Ask the daemon to shut down (signal handlers call this)."""
        self.stopping.set()

    def reload(self, user: str | None = None) -> bool:
        """Re-read and validate the configuration; keep the running one when the new one is bad.

        ``user``: who committed it (configuration mode), for `show system uptime`'s `Last configured`.
        """
        if self.load_config is None:
            return False
        if self._ready:
            self.notifier.reloading()
        ok = False
        try:
            cfg = self.load_config()
            self.probe.reload(cfg, self.clock.time())
            self.probe.configured_by = user
        except (ConfigError, ExportSocketError) as exc:
            log.error("configuration reload failed, keeping the running configuration: %s", exc)
        except Exception as exc:  # noqa: BLE001 - whatever the file did, one line, and the daemon goes on
            log.error("configuration reload failed, keeping the running configuration: %s: %s",
                      type(exc).__name__, exc)
        else:
            log.info("configuration reloaded from %s", cfg.source)
            ok = True
            self._start(self.probe.routes.reconfigure(cfg.routing), "reload route sources")
            if self.probe.workers is not None:
                self._start(self.probe.workers.reload(cfg), "reload capture workers")
        finally:
            if self._ready:  # every RELOADING=1 is followed by READY=1, whatever happened
                self.notifier.reloaded(self.status_line())
        return ok

    async def run(self) -> None:
        async with AsyncExitStack() as stack:
            stack.callback(self.notifier.close)
            if self.notifier.watchdog_interval is not None:
                watchdog = self._start(ping_watchdog(self.notifier), "watchdog")
                stack.push_async_callback(_cancel, watchdog)
            cfg = self.probe.cfg.control
            await stack.enter_async_context(ControlServer(
                self.socket_path, self.probe, self.clock,
                read_group=cfg.read_group, admin_group=cfg.admin_group, database=self.database))
            if self.database is not None:
                confirm = self._start(run_confirm_timer(self.database, self.clock), "commit confirmed timer")
                stack.push_async_callback(_cancel, confirm)
            if self.probe.cfg.metrics is not None:
                metrics = self.probe.cfg.metrics
                await stack.enter_async_context(MetricsServer(metrics.listen, metrics.port, self.probe,
                                                              self.clock.time))
            if self.probe.cfg.netconf is not None:
                await stack.enter_async_context(NetconfProcess(self.probe.cfg.netconf, self.socket_path))
            pacing = self._start(self._pace(), "export pacing")
            stack.push_async_callback(_cancel, pacing)
            stack.push_async_callback(self._final_flush)
            await self.probe.routes.start()  # BGP sessions and the kernel table; prefix files are loaded
            stack.push_async_callback(self.probe.routes.stop)
            expiry = self._start(self._expiry(), "expiry")
            stack.push_async_callback(_cancel, expiry)
            if self.live:
                await self._start_live(stack)
            opened: list[asyncio.Future[None]] = []
            for replay in self.replays:
                opened.append(asyncio.get_running_loop().create_future())
                ingest = self._start(self._ingest(replay, opened[-1]), f"replay {replay.path}")
                stack.push_async_callback(_cancel, ingest)
            if self.notifier.enabled:
                report = self._start(self._report(opened), "systemd status")
                stack.push_async_callback(_cancel, report)
            await self.stopping.wait()
            self.notifier.stopping()  # before the final flush, which may take a while
        if self._failure is not None:
            raise self._failure

    async def _start_live(self, stack: AsyncExitStack) -> None:
        """Open the live inputs here (one worker) or start the capture workers; LiveCaptureError if one fails."""
        cfg = self.probe.cfg
        count = cfg.capture.worker_count()
        if count <= 1:
            for source in self.live:
                capture = open_capture(cfg.capture, source, None)
                self.probe.shard.add_capture(source, capture)
                account = ring_account(self.probe.shard, source, self.clock, self.probe.hold)
                task = self._start(ingest(capture, source, self.clock, self.probe.ingest, account=account),
                                   f"capture {source.label}")
                stack.push_async_callback(self._stop_capture, task, capture, source)
            return
        offset = self.clock.offset if isinstance(self.clock, SystemClock) else self.clock.time() - time.monotonic()
        pool = WorkerPool(cfg, self.live, count, clock_offset=offset, log_level=self.log_level,
                          on_flows=lambda flows: self.probe.export(flows, self.clock.time()))
        self.probe.workers = pool  # from now on a reload reaches the workers (the ones not started yet too)
        try:
            await pool.start()
        except BaseException:
            self.probe.workers = None
            raise
        stack.push_async_callback(pool.stop)
        watch = self._start(pool.watch(), "capture workers")
        stack.push_async_callback(_cancel, watch)

    async def _stop_capture(self, task: asyncio.Task[None], capture: LiveCapture, source: LiveInput) -> None:
        await _cancel(task)
        await finish(capture, source, self.clock, self.probe.ingest, self.probe.cfg.capture.block_timeout,
                     ring_account(self.probe.shard, source, self.clock, self.probe.hold))

    def _start(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._failure is None:
            log.error("%s failed: %r; shutting down", task.get_name(), exc)
            self._failure = exc
            self.stopping.set()

    async def _ingest(self, replay: Replay, opened: asyncio.Future[None]) -> None:
        batches = replay.batches()
        try:
            try:
                first = await anext(batches, None)  # the file is open once it has given a batch (or none)
            finally:
                if not opened.done():
                    opened.set_result(None)
            if first is not None:
                self.probe.ingest(first, self.clock.time())
                async for frames in batches:
                    self.probe.ingest(frames, self.clock.time())
                    await asyncio.sleep(0)
        except CaptureError as exc:
            log.error("replay stopped: %s", exc)
        if not self.live:
            self.probe.input_state = "Idle"
        log.info("replay of %s finished after %d frames", replay.path, replay.state.frames)

    async def _expiry(self) -> None:
        while True:
            now = self.clock.time()
            self.probe.expire(now)
            self.probe.tick(now)
            deadline = self.probe.next_deadline()
            wake = now + TICK if deadline is None else min(deadline, now + TICK)
            await self.clock.sleep_until(wake)

    async def _report(self, opened: list[asyncio.Future[None]]) -> None:
        """READY=1 once every input is open (the control socket already accepts), then STATUS= lines."""
        await asyncio.gather(*opened)
        self._ready = True
        self.notifier.ready(self.status_line())
        log.debug("told systemd we are ready")
        last = (self.probe.started, 0)  # the first rate covers startup
        while True:
            await self.clock.sleep_until(last[0] + STATUS_INTERVAL)
            now = self.clock.time()
            frames = sum(r.ingest.frames for r in self.probe.reports(now))
            if now > last[0]:  # a `clear ... statistics` restarts the count: never a negative rate
                self._packet_rate = round(max(frames - last[1], 0) / (now - last[0]))
            self.notifier.status(self.status_line())
            last = (now, frames)

    def status_line(self) -> str:
        """What `systemctl status flowd` shows: input state, packet rate, cached and exported flows."""
        active = sum(f.active for r in self.probe.reports(self.clock.time()) for f in r.families.values())
        return (f"{self.probe.input_state}: {self._packet_rate} packets/s, "
                f"{active} active flows, "
                f"{self.probe.exporter.counters.flows_exported} flows exported")

    async def _pace(self) -> None:
        """Send export records as the flow-export-rate lets them go (real time: the collector's)."""
        while True:
            wait = self.probe.exporter.pump(self.clock.time())
            if wait is None:
                self.probe.paced.clear()
                await self.probe.paced.wait()
            else:
                await asyncio.sleep(wait)

    async def _final_flush(self) -> None:
        """Export every cached flow, paced, within STOP_LIMIT seconds (the unit's TimeoutStopSec allows it)."""
        flushed = self.probe.flush(self.clock.time())
        if self.probe.workers is not None:
            flushed += self.probe.workers.flushed_at_stop
        self.probe.exporter.flush_aggregates(self.clock.time())
        exporter = self.probe.exporter
        held = exporter.held()
        deadline = time.monotonic() + STOP_LIMIT + 1.0  # the drain's own bound, plus a safety margin
        wait = exporter.drain(STOP_LIMIT)
        while wait is not None and time.monotonic() < deadline:
            await asyncio.sleep(wait)
            wait = exporter.pump()
        if held:
            log.info("sent %d held export records, paced, in the final export", held)
        exporter.close()
        frames = sum(r.state.frames for r in self.replays)
        if self.live:  # every frame read, from the rings and the replays, in every shard
            frames = sum(r.ingest.frames for r in self.probe.reports(self.clock.time()))
        log.info("stopping: %d frames ingested; exported %d cached flows before exit", frames, flushed)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # already recorded by the done callback
        pass
