"""The daemon's live inputs: which interfaces feed sampling, how their rings are opened, and the ingest loop.

Used by the daemon process when it captures itself (one worker) and by every capture worker
(flowd.runtime.capture_worker). Kernel timestamps (CLOCK_REALTIME) are moved onto the daemon clock, which is the wall
time at start advanced by the monotonic clock (flowd.model.clock): each batch keeps the kernel's spacing
between its frames, so max-packets-per-second counts wall-clock seconds, while a wall-clock step
(NTP, an operator) never makes flows look expired or from the future.

Where the compiled live path applies (flowd.core.live_path: no filter, no packets-per-second cap),
``ring_account`` hands each wake-up's ready blocks to it, so frames are decoded and cached in C, once
per wake-up instead of once per block, and only the flows that ended come back.

Stopping a capture: the ingest task is cancelled; if the block the kernel is filling holds frames, the
capture waits until the kernel retires it (its timer does within one block timeout; the wait gives up
after two), then hands back those last frames before its rings close. An idle ring closes at once.
"""

from __future__ import annotations

import asyncio
import os
import time
import zlib
import mmap
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from flowd.capture.live import LiveCapture
from flowd.capture.ring import RingAccount
from flowd.config.schema import CaptureConfig, Config
from flowd.core.live_path import ingest_ring
from flowd.model.batch import FlowRecords, FrameBatch
from flowd.model.clock import Clock
from flowd.runtime.shard import LiveInput, Shard

MAX_FANOUT_GROUP: Final = 0xFFFF
FINAL_WAIT_TIMEOUTS: Final = 2  # block timeouts to wait at most at stop for the kernel to retire the open block
FINAL_WAIT_MIN: Final = 0.02  # seconds, at least
FINAL_POLL: Final = 0.01  # seconds between looks at the open block while waiting for it
FINAL_READS: Final = 4  # reads of the ring after that wait

Handler = Callable[[FrameBatch, float, str], None]  # (frames, now, interface as configured)
Keep = Callable[[Mapping[str, FlowRecords], float], None]  # (flows that ended, per family; now)


def live_inputs(cfg: Config) -> list[LiveInput]:
    """Every interface with an input binding, on the Linux interface `flowd interface-map` gives it."""
    return [LiveInput(name, linux) for name, linux in cfg.live_interfaces()]


def fanout_groups(inputs: list[LiveInput], seed: int | None = None) -> list[int]:
    """A PACKET_FANOUT group id per input, distinct, derived from the daemon's pid (ids are per namespace)."""
    base = zlib.crc32(f"flowd-{os.getpid() if seed is None else seed}".encode()) & MAX_FANOUT_GROUP
    return [(base + i) & MAX_FANOUT_GROUP for i in range(len(inputs))]


def open_capture(cfg: CaptureConfig, source: LiveInput, fanout_group: int | None) -> LiveCapture:
    """A ring on the input's Linux interface; raises LiveCaptureError (one line) when it cannot open."""
    return LiveCapture(source.linux, ring_blocks=cfg.ring_blocks, block_size=cfg.block_size,
                       block_timeout_ms=cfg.block_timeout, promiscuous=cfg.promiscuous, direction=cfg.direction,
                       fanout_group=fanout_group, snaplen=cfg.snaplen)


def restamp(frames: FrameBatch, now: float) -> FrameBatch:
    """The frames with their kernel (wall-clock) timestamps moved onto the daemon clock, ``now`` being its time."""
    shift = now - time.time()
    return frames.slice(0, len(frames), frames.ts + shift)


def ring_account(shard: Shard, source: LiveInput, clock: Clock, keep: Keep) -> RingAccount:
    """The compiled live path of one input into a shard, for LiveCapture.batches; ended flows go to ``keep``."""
    def account(ring: mmap.mmap, first: int, size: int, count: int, linktype: int, ifindex: int
                ) -> tuple[int, int, int] | None:
        now = clock.time()
        done = ingest_ring(shard.pipeline, (ring, first, size, count, linktype, ifindex), now, now - time.time(),
                           source.name)
        if done is None:
            return None
        if done.ended:
            keep(done.ended, now)
        return done.status, done.next, done.blocks

    return account


async def ingest(capture: LiveCapture, source: LiveInput, clock: Clock, handle: Handler,
                 after: Callable[[], Awaitable[None]] | None = None, account: RingAccount | None = None) -> None:
    """Hand every batch the capture reads to ``handle`` (then await ``after``) until cancelled or closed.

    With ``account`` (``ring_account``) the blocks it takes never become batches.
    """
    async for frames in capture.batches(account):
        if len(frames):
            now = clock.time()
            handle(restamp(frames, now), now, source.name)
        if after is not None:
            await after()
        await asyncio.sleep(0)  # let the control socket and the other inputs in between batches


async def finish(capture: LiveCapture, source: LiveInput, clock: Clock, handle: Handler,
                 block_timeout_ms: int, account: RingAccount | None = None) -> None:
    """Read what the kernel still holds (the block it was filling included), then close the capture."""
    try:
        give_up = time.monotonic() + max(FINAL_WAIT_MIN, FINAL_WAIT_TIMEOUTS * block_timeout_ms / 1000)
        while capture.filling() and time.monotonic() < give_up:
            await asyncio.sleep(FINAL_POLL)
        for _ in range(FINAL_READS):  # traffic that keeps coming is not waited for
            if (frames := capture.read_blocks(account)) is None:
                break
            now = clock.time()
            handle(restamp(frames, now), now, source.name)
    finally:
        capture.close()
