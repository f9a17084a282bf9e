"""Replay a capture file into the daemon: at packet timing, N times faster, or as fast as it goes.

Replayed packets are re-stamped onto the daemon's clock (the first packet of each pass is "now"),
so timeouts, rates and export times behave as they would for live traffic. At maximum speed every
frame of a batch is stamped with the time it was ingested.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from flowd.capture.files import open_capture
from flowd.model.batch import FrameBatch
from flowd.model.clock import Clock

MAX_SPEED = 0.0  # `--replay-speed max` (flowd/__main__.py spells the same value)
PACE_BATCH = 4096  # frames read at a time when pacing
MAX_BATCH = 65536


@dataclass(slots=True)
class ReplayState:
    """What `show` commands report about the replay."""

    passes: int = 0  # completed passes over the file
    frames: int = 0
    finished: bool = False


class Replay:
    """An async iterator of frame batches from one capture file."""

    def __init__(self, path: str, clock: Clock, *, speed: float = 1.0, loop: bool = False) -> None:
        self.path = path
        self.clock = clock
        self.speed = speed
        self.loop = loop
        self.state = ReplayState()

    async def batches(self) -> AsyncIterator[FrameBatch]:
        """Frame batches, re-stamped on the clock; raises CaptureError for a damaged file."""
        while True:
            frames_before = self.state.frames
            with open_capture(self.path) as reader:
                origin: tuple[float, float] | None = None
                paced = self.speed != MAX_SPEED
                for batch in reader.batches(PACE_BATCH if paced else MAX_BATCH):
                    if not len(batch):
                        continue
                    if not paced:
                        now = self.clock.time()
                        self.state.frames += len(batch)
                        yield batch.slice(0, len(batch), np.full(len(batch), now))
                        await asyncio.sleep(0)
                        continue
                    if origin is None:
                        origin = (float(batch.ts[0]), self.clock.time())
                    stamped = origin[1] + (batch.ts - origin[0]) / self.speed
                    due = np.maximum.accumulate(stamped)  # pace on a non-decreasing view
                    start = 0
                    while start < len(batch):
                        stop = int(np.searchsorted(due, self.clock.time(), side="right"))
                        if stop <= start:
                            await self.clock.sleep_until(float(due[start]))
                            continue
                        self.state.frames += stop - start
                        yield batch.slice(start, stop, due[start:stop])
                        start = stop
            self.state.passes += 1
            if not self.loop or self.state.frames == frames_before:  # an empty file is never looped
                self.state.finished = True
                return
