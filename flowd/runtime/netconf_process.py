"""The NETCONF server process (`python -m shell.netconf`), started and supervised for `flowd netconf { ... }`.

NETCONF is a front end of the shell (it renders with the shell's grammar and renderers), so it runs as
a child process that reaches the daemon through the control socket, on behalf of each logged-in
user. The daemon restarts it when it dies (backing off up to a minute) and stops it first at shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Final

from flowd.config.schema import NetconfConfig

log = logging.getLogger(__name__)

HOST_KEY_NAME: Final = "netconf_host_key"
STOP_GRACE: Final = 5.0  # seconds between SIGTERM and SIGKILL
MAX_BACKOFF: Final = 60.0


def command(cfg: NetconfConfig, socket_path: str) -> list[str]:
    """The child's command line."""
    host_key = cfg.host_key or str(Path(socket_path).parent / HOST_KEY_NAME)
    return [sys.executable, "-m", "shell.netconf", "--socket", socket_path, "--listen", cfg.listen,
            "--port", str(cfg.port), "--authorized-keys", cfg.authorized_keys, "--host-key", host_key,
            "--max-sessions", str(cfg.max_sessions), "--idle-timeout", str(cfg.idle_timeout),
            "--max-message", str(cfg.max_message)]


class NetconfProcess:
    """Keeps one NETCONF server process running while entered (an async context manager)."""

    def __init__(self, cfg: NetconfConfig, socket_path: str) -> None:
        self.argv = command(cfg, socket_path)
        self.process: asyncio.subprocess.Process | None = None
        self.restarts = 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> NetconfProcess:
        self._task = asyncio.ensure_future(self._supervise())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stop()

    async def _supervise(self) -> None:
        backoff = 1.0
        while True:
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            self.process = await asyncio.create_subprocess_exec(*self.argv, stdin=asyncio.subprocess.DEVNULL,
                                                                env=env)
            code = await self.process.wait()
            log.error("the NETCONF server exited with %s; restarting in %.0f s", code, backoff)
            self.restarts += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE)
        except TimeoutError:
            process.kill()
            await process.wait()
