"""The daemon: compose ingest, expiry and the control server, start them in order, stop them in reverse.

Start: exporter sockets (in Probe) → control server → expiry → ingest. Stop (SIGTERM/SIGINT, or a
task that died): ingest stops first, so nothing new arrives; every cached flow is flushed to the flow
servers; the control server closes and removes its socket last. A task that dies unexpectedly stops
the daemon and `run` re-raises its error, so the process never lingers half alive.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from contextlib import AsyncExitStack
from typing import Any

from flowd.capture.files import CaptureError
from flowd.capture.replay import Replay
from flowd.clock import Clock
from flowd.config import Config, ConfigError
from flowd.control.server import ControlServer
from flowd.export.udp import ExportSocketError
from flowd.probe import Probe

log = logging.getLogger(__name__)

TICK = 1.0  # seconds between rate-meter samples and expiry scans when no deadline is nearer


class App:
    """One running daemon."""

    def __init__(self, cfg: Config, *, socket_path: str, clock: Clock, replays: list[Replay],
                 load_config: Callable[[], Config] | None = None) -> None:
        self.clock = clock
        self.probe = Probe(cfg, now=clock.time())
        self.socket_path = socket_path
        self.replays = replays
        self.load_config = load_config
        self.stopping = asyncio.Event()
        self._failure: BaseException | None = None

    def stop(self) -> None:
        """Ask the daemon to shut down (signal handlers call this)."""
        self.stopping.set()

    def reload(self) -> bool:
        """Re-read and validate the configuration; keep the running one when the new one is bad."""
        if self.load_config is None:
            return False
        try:
            cfg = self.load_config()
            self.probe.reload(cfg, self.clock.time())
        except (ConfigError, ExportSocketError) as exc:
            log.error("configuration reload failed, keeping the running configuration: %s", exc)
            return False
        log.info("configuration reloaded from %s", cfg.source)
        return True

    async def run(self) -> None:
        async with AsyncExitStack() as stack:
            cfg = self.probe.cfg.control
            await stack.enter_async_context(ControlServer(
                self.socket_path, self.probe, self.clock.time,
                read_group=cfg.read_group, admin_group=cfg.admin_group))
            stack.push_async_callback(self._final_flush)
            expiry = self._start(self._expiry(), "expiry")
            stack.push_async_callback(_cancel, expiry)
            for replay in self.replays:
                ingest = self._start(self._ingest(replay), f"replay {replay.path}")
                stack.push_async_callback(_cancel, ingest)
            await self.stopping.wait()
        if self._failure is not None:
            raise self._failure

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

    async def _ingest(self, replay: Replay) -> None:
        try:
            async for frames in replay.batches():
                self.probe.ingest(frames, self.clock.time())
                await asyncio.sleep(0)
        except CaptureError as exc:
            log.error("replay stopped: %s", exc)
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

    async def _final_flush(self) -> None:
        flushed = self.probe.flush(self.clock.time())
        self.probe.exporter.close()
        frames = sum(r.state.frames for r in self.replays)
        log.info("stopping: %d frames ingested; exported %d cached flows before exit", frames, flushed)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:  # already recorded by the done callback
        pass
