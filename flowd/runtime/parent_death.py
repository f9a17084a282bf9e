"""A child process that must not outlive the process that started it, however that one ends (kill -9 too)."""

from __future__ import annotations

import ctypes
import os
import signal
from typing import Final

_PR_SET_PDEATHSIG: Final = 1  # linux/prctl.h


def die_with_parent(parent: int, signum: int = signal.SIGTERM) -> None:
    """In the child: have the kernel send ``signum`` when the parent (pid ``parent``) dies, and end now if it
    died before this call took effect."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)
