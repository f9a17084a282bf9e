"""A packets-per-second budget the capture workers share, so max-packets-per-second caps all of them at once.

The daemon creates one small anonymous shared file (memfd) and hands its descriptor to every worker,
which maps it. Each sampling family has a slot holding the second being counted and the packets
granted in it, plus the second before (a worker may still be finishing a batch of that second when
another has moved on). A claim holds a POSIX record lock (``lockf``: per process, so it excludes the
other workers even though they share the descriptor) for a few loads and stores, once per batch and
second, so its cost is spread over the whole batch. A claim for an older second is refused: it can
no longer be counted, and refusing keeps the cap a cap.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from typing import Final

SLOT: Final = struct.Struct("=dqdq")  # current second, granted in it, previous second, granted in that
FAMILY_SLOTS: Final = {"inet": 0, "inet6": 1}
NEVER: Final = float("-inf")


class SharedBudget:
    """Per-second packet budgets in shared memory (see the module docstring)."""

    def __init__(self, fd: int | None = None) -> None:
        """Create the shared file (``fd`` None) or map the one the daemon passed down."""
        self._owned = fd is None
        if fd is None:
            fd = os.memfd_create("flowd-pps-budget", os.MFD_CLOEXEC)
            os.ftruncate(fd, SLOT.size * len(FAMILY_SLOTS))
            self._fd = fd
            self._map = mmap.mmap(fd, SLOT.size * len(FAMILY_SLOTS))
            for slot in FAMILY_SLOTS.values():
                SLOT.pack_into(self._map, slot * SLOT.size, NEVER, 0, NEVER, 0)
        else:
            self._fd = fd
            self._map = mmap.mmap(fd, SLOT.size * len(FAMILY_SLOTS))

    def fileno(self) -> int:
        return self._fd

    def claim(self, family: str, second: float, wanted: int, limit: int) -> int:
        """Grant up to ``wanted`` packets of ``second`` (whole seconds) under ``limit`` per second; return how many."""
        at = FAMILY_SLOTS[family] * SLOT.size
        fcntl.lockf(self._fd, fcntl.LOCK_EX)
        try:
            current, granted, previous, before = SLOT.unpack_from(self._map, at)
            if second > current:
                previous, before = (current, granted) if second == current + 1 else (NEVER, 0)
                current, granted = second, 0
            if second == current:
                give = max(0, min(wanted, limit - granted))
                granted += give
            elif second == previous:
                give = max(0, min(wanted, limit - before))
                before += give
            else:
                give = 0
            SLOT.pack_into(self._map, at, current, granted, previous, before)
        finally:
            fcntl.lockf(self._fd, fcntl.LOCK_UN)
        return int(give)

    def close(self) -> None:
        self._map.close()
        if self._owned:
            os.close(self._fd)
