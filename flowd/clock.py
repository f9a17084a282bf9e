"""Time for the daemon: a ``Clock`` protocol, and the system clock (tests drive tests/fakes.py's FakeClock).

The flow cache only ever sees ``clock.time()``: seconds on the Unix epoch scale that advance with
the monotonic clock (they never jump when the wall clock is set), so one value serves both the
timeouts and the export timestamps.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch, advancing monotonically."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``time()`` has reached ``deadline``."""
        ...


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
