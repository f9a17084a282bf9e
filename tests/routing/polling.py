"""Waiting for an external process (a BGP speaker, the kernel) to reach a state, with a bound, never a pause."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(what: str, done: Callable[[], bool], bound: float = 60.0) -> None:
    """Return once ``done()`` holds; AssertionError naming ``what`` after ``bound`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    while not done():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)
