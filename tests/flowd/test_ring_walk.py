"""The ring block walk: the compiled walk_tpacket (flowd/native/_fastpath.c) agrees with packet_offsets_python.

Blocks are built in memory as the kernel lays them out (tests/flowd/test_live.py's ring_block): sound
ones of many sizes, and damaged ones (a block longer than the buffer, a first packet inside the
descriptor, a tp_next_offset that leaves the block or lands off the 8-byte grid). Both walks must
give the same offsets, or the same RingError.
"""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from test_live import ring_block, udp_frame

from flowd.capture.ring_layout import BLOCK_DESC, RingError, TpStatus
from flowd.capture.ring_walk import (
    _compiled_tpacket_walk,
    packet_offsets,
    packet_offsets_python,
)

needs_compiled = pytest.mark.skipif(_compiled_tpacket_walk() is None, reason="flowd.native._fastpath is not built")


def blocks(rng: random.Random, count: int) -> tuple[bytes, list[int]]:
    """``count`` sound blocks back to back (each 0..40 packets of 60..300-byte frames)."""
    out, starts = b"", []
    for b in range(count):
        packets = []
        for i in range(rng.randrange(41)):
            frame = udp_frame("198.18.0.1", "198.19.0.1", 1000 + i, 53, b"z" * rng.randrange(18, 260))
            packets.append((frame, len(frame), TpStatus.USER, 0, 0, i))
        starts.append(len(out))
        out += ring_block(packets, sec=1_700_000_000 + b)
    return out, starts


def walks(buf: bytes, starts: list[int]) -> list[tuple[list[int], list[int]] | str]:
    """What each walk makes of the blocks: (offsets, ends), or the RingError's message."""
    results: list[tuple[list[int], list[int]] | str] = []
    for walk in (packet_offsets_python, packet_offsets):
        try:
            at, ends = walk(buf, starts)
        except RingError as exc:
            results.append(str(exc))
        else:
            assert at.dtype == np.int64 and ends.dtype == np.int64
            results.append((at.tolist(), ends.tolist()))
    return results


@needs_compiled
@pytest.mark.parametrize("seed", range(20))
def test_sound_blocks_walk_alike(seed: int) -> None:
    rng = random.Random(seed)
    buf, starts = blocks(rng, rng.randrange(1, 6))
    python, compiled = walks(buf, starts)
    assert python == compiled
    assert isinstance(python, tuple) and len(python[0]) == sum(struct.unpack_from("=I", buf, s + 12)[0]
                                                               for s in starts)


def damaged() -> list[tuple[str, bytes, list[int]]]:
    buf, starts = blocks(random.Random(99), 3)
    second = starts[1]
    first_packet = second + BLOCK_DESC.size
    cases = [("block longer than the buffer", buf[:-10], starts),
             ("first packet inside the descriptor",
              buf[:second + 16] + struct.pack("=I", 8) + buf[second + 20:], starts),
             ("next offset leaves the buffer",
              buf[:first_packet] + struct.pack("=I", 1 << 24) + buf[first_packet + 4:], starts),
             ("next offset off the grid",
              buf[:first_packet] + struct.pack("=I", 36) + buf[first_packet + 4:], starts),
             ("block start outside the buffer", buf, [*starts, len(buf) + 64])]
    return cases


@needs_compiled
@pytest.mark.parametrize(("what", "buf", "starts"), damaged(), ids=[c[0] for c in damaged()])
def test_damaged_blocks_fail_alike(what: str, buf: bytes, starts: list[int]) -> None:
    python, compiled = walks(buf, starts)
    assert isinstance(python, str) and python.startswith("ring block at "), what
    assert python == compiled


def test_without_the_extension_the_python_walk_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWD_NO_FASTPATH", "1")
    assert _compiled_tpacket_walk() is None
    buf, starts = blocks(random.Random(5), 2)
    at, ends = packet_offsets(buf, starts)
    assert (at.tolist(), ends.tolist()) == tuple(x.tolist() for x in packet_offsets_python(buf, starts))
