"""The system clock: wall time at start, advanced by the monotonic clock (implements flowd.model.clock.Clock)."""

from __future__ import annotations

import asyncio
import time


class SystemClock:
    """The real clock: the wall time at start, advanced by the monotonic clock."""

    def __init__(self, offset: float | None = None) -> None:
        """``offset``: another SystemClock's, to keep exactly its time (the daemon's capture workers)."""
        self.offset = time.time() - time.monotonic() if offset is None else offset

    def time(self) -> float:
        return time.monotonic() + self.offset

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - self.time()
        if delay > 0:
            await asyncio.sleep(delay)
