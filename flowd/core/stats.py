"""Counters and rates behind `show services accounting errors | flow | memory | packet-size-distribution`."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.model.drops import DropReason
from flowd.model.record import Record

# Packet-size ranges (IP length in bytes, both ends inclusive). Fixed once; docs/commands.md lists them.
SIZE_RANGES: Final = ((0, 63), (64, 96), (97, 128), (129, 256), (257, 512), (513, 1024),
                      (1025, 1518), (1519, 9192), (9193, 65535))
SIZE_EDGES: Final = np.array([lo for lo, _ in SIZE_RANGES[1:]], np.uint32)
# each length's range, for lengths up to 65535 (longer ones, IPv6 jumbo-ish, fall in the last range):
# one gather instead of a binary search per packet
_SIZE_RANGE_OF: Final = np.repeat(np.arange(len(SIZE_RANGES), dtype=np.uint8),
                                  np.diff([0, *SIZE_EDGES.tolist(), 1 << 16]))


class RateMeter:
    """Rate of a growing total over a sliding window of (clock) time."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: deque[tuple[float, int]] = deque()

    def update(self, now: float, total: int) -> None:
        self._samples.append((now, total))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def rate(self, now: float) -> int:
        """Per-second increase since the newest sample at least one window old (or the oldest)."""
        if not self._samples:
            return 0
        t0, v0 = self._samples[0]
        span = now - t0
        return int((self._samples[-1][1] - v0) / span) if span > 0 else 0

    def reset(self) -> None:
        self._samples.clear()


@dataclass(slots=True, eq=False, repr=False)
class IngestStats(Record):
    """What happened to every frame read, and the sizes of the packets that were sampled."""

    frames: int = 0
    drops: dict[DropReason, int] = field(default_factory=lambda: {r: 0 for r in DropReason})
    not_sampled: int = 0  # passed over by 1-in-N / run-length / pps cap
    sampled: int = 0  # packets handed to the flow cache
    filter_counters: dict[str, int] = field(default_factory=dict)  # "FILTER/COUNTER" -> packets a `count` term took
    filter_bytes: dict[str, int] = field(default_factory=dict)  # "FILTER/COUNTER" -> their IP bytes
    sizes: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(len(SIZE_RANGES), np.int64))

    def count_sizes(self, lengths: npt.NDArray[np.uint32]) -> None:
        self.sizes += np.bincount(_SIZE_RANGE_OF[np.minimum(lengths, 0xFFFF)], minlength=len(SIZE_RANGES))

    def size_distribution(self) -> list[dict[str, int]]:
        """Only the ranges that hold packets, with whole-number percentages."""
        total = int(self.sizes.sum())
        return [{"start": lo, "end": hi, "packets": int(n), "percentage": int(100 * int(n) // total)}
                for (lo, hi), n in zip(SIZE_RANGES, self.sizes) if n]
