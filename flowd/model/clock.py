"""Time for the daemon: the ``Clock`` protocol (flowd.runtime.clock has the system clock; tests drive tests/fakes.py's FakeClock).

The flow cache only ever sees ``clock.time()``: seconds on the Unix epoch scale that advance with
the monotonic clock (they never jump when the wall clock is set), so one value serves both the
timeouts and the export timestamps.
"""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Seconds since the epoch, advancing monotonically."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``time()`` has reached ``deadline``."""
        ...
