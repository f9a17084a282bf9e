"""flowd.core.decode's two batch paths, the compiled extract and numpy, against each other and ``decode_frame``.

test_decode.py checks ``decode`` (whichever path the build gives) against ``decode_frame``. Here both
paths run in the same test session, whatever FLOWD_NO_FASTPATH says, over the table, the whole of
../shared/pcaps and fuzzed frames (random mutations, cuts and wire lengths of real frames, fixed seed),
and each path is held to the work it claims: the compiled extract decides every frame itself (no row
reaches ``decode_frame``), and numpy's vectorised decoders take the common shapes (only the rare ones
go to ``decode_frame``). Disabling either path's IPv4/IPv6 decoding makes a test here fail.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from test_decode import (
    CASES,
    MALFORMED,
    REAL,
    Result,
    batch,
    needs_corpus,
    per_frame,
    read_capture,
    rows,
    snapped,
)

import flowd.core.decode
import flowd.core.frame_rules
from flowd.core.decode_numpy import decode_numpy
from flowd.core.frame_rules import Decoded, Packet, decode_frame, frame_macs
from flowd.model.batch import FrameBatch
from flowd.model.drops import DropReason


def compiled_extract() -> Callable[..., None] | None:
    """The built extract, loaded even when FLOWD_NO_FASTPATH=1 chose numpy for ``decode``."""
    saved = os.environ.pop("FLOWD_NO_FASTPATH", None)
    try:
        return flowd.core.decode._compiled_extract()
    finally:
        if saved is not None:
            os.environ["FLOWD_NO_FASTPATH"] = saved


EXTRACT = compiled_extract()
needs_extract = pytest.mark.skipif(EXTRACT is None, reason="flowd.native._fastpath is not built")


def decode_c(frames: FrameBatch, macs: bool = False) -> Decoded:
    assert EXTRACT is not None
    return flowd.core.decode._decode_compiled(frames, EXTRACT, macs)


def assert_same(got: Decoded, want: Decoded) -> None:
    """Every column of every row, and the drop counts."""
    assert got.drops == want.drops
    for name in got.packets.__slots__:
        a, b = getattr(got.packets, name), getattr(want.packets, name)
        assert (a is None and b is None) or (a.dtype == b.dtype and np.array_equal(a, b)), name


def assert_matches_frames(decoded: Decoded, frames: FrameBatch, singles: list[Result]) -> None:
    """The batch result equals ``decode_frame`` frame by frame."""
    assert rows(decoded.packets) == [r for r in singles if isinstance(r, Packet)]
    assert decoded.drops == dict(Counter(r for r in singles if isinstance(r, DropReason)))


class Refused(AssertionError):
    """A frame went to the per-frame decoder where the batch path must decide it."""


@pytest.fixture
def count_per_frame(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts the frames that reach ``decode_frame`` from the batch paths (``calls['frames']``)."""
    calls: Counter[str] = Counter()
    real = flowd.core.frame_rules.decode_frame

    def counted(*args: object, **kwargs: object) -> Packet | DropReason:
        calls["frames"] += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flowd.core.frame_rules, "decode_frame", counted)
    return calls


# --- the build ---------------------------------------------------------------------------------

def test_compiled_extract_is_built_unless_disabled() -> None:
    """CI installs a compiler and the Python headers: a missing extension is a failure, not a skip."""
    if os.environ.get("FLOWD_NO_FASTPATH") == "1":
        assert flowd.core.decode._EXTRACT is None  # decode is the numpy path
    else:
        assert flowd.core.decode._EXTRACT is not None, "flowd.native._fastpath is not built (or its tables differ)"
    assert EXTRACT is not None, "flowd.native._fastpath is not built (or its tables differ)"


# --- the table -----------------------------------------------------------------------------------

TABLE_FRAMES = [c[1] for c in CASES] * 2
TABLE_LINKTYPES = [c[2] for c in CASES] * 2


@needs_extract
def test_compiled_decides_every_table_frame_itself(count_per_frame: Counter[str]) -> None:
    frames = batch(TABLE_FRAMES, TABLE_LINKTYPES, gap=1)
    decoded = decode_c(frames)
    assert count_per_frame["frames"] == 0
    assert_matches_frames(decoded, frames, [c[3] for c in CASES] * 2)


def test_numpy_agrees_with_the_table() -> None:
    frames = batch(TABLE_FRAMES, TABLE_LINKTYPES, gap=1)
    assert_matches_frames(decode_numpy(frames), frames, [c[3] for c in CASES] * 2)


# --- the corpus ----------------------------------------------------------------------------------

def corpus_batches(paths: list[Path]) -> Iterator[tuple[str, FrameBatch]]:
    for path in paths:
        frames, linktype = read_capture(path)
        if frames:
            yield path.name, batch(frames, linktype, ifindex=7)


@needs_corpus
@needs_extract
@pytest.mark.integration
@pytest.mark.parametrize("kind", ["real", "malformed"])
def test_paths_agree_on_the_corpus(kind: str, count_per_frame: Counter[str]) -> None:
    """Column for column on every file; the compiled path never falls back to ``decode_frame``."""
    compared = 0
    for name, frames in corpus_batches(REAL if kind == "real" else MALFORMED):
        fast = decode_c(frames)
        assert count_per_frame["frames"] == 0, name
        assert_same(decode_numpy(frames), fast)
        count_per_frame["frames"] = 0
        compared += len(frames)
    assert compared > 1000


@needs_corpus
@pytest.mark.integration
def test_numpy_vectorises_the_real_corpus(count_per_frame: Counter[str]) -> None:
    """Frames of well-formed captures take numpy's vectorised path; only rare shapes go one by one."""
    total = accounted = 0
    for _, frames in corpus_batches(REAL):
        accounted += len(decode_numpy(frames).packets)
        total += len(frames)
    assert accounted > 0.9 * total
    # IPv6 extension chains, deep VLAN/MPLS stacks, jumbograms and damaged frames: about 1%
    assert count_per_frame["frames"] < 0.03 * total, f"{count_per_frame['frames']} of {total} frames one by one"


# --- fuzzed frames -------------------------------------------------------------------------------

def fuzzed(rng: np.random.Generator, sources: list[tuple[bytes, int]], n: int) -> tuple[list[bytes], list[int]]:
    """``n`` damaged copies of the source frames: bytes overwritten (mostly in the headers), cut short,
    given a wire length that is shorter, longer or equal, or snapped (captured part of a longer wire)."""
    frames: list[bytes] = []
    linktypes: list[int] = []
    for pick in rng.integers(0, len(sources), n).tolist():
        frame, linktype = sources[pick]
        raw = bytearray(frame)
        for _ in range(int(rng.integers(0, 4))):
            if raw:
                at = int(rng.integers(0, min(len(raw), 80 if rng.random() < 0.8 else len(raw))))
                raw[at] = int(rng.integers(0, 256))
        roll = rng.random()
        if roll < 0.2:
            raw = raw[:int(rng.integers(0, len(raw) + 1))]  # cut on the wire
        data = bytes(raw)
        if 0.2 <= roll < 0.4:  # a snaplen: captured part of the frame, the wire had it all
            data = snapped(data[:int(rng.integers(0, len(data) + 1))], len(data))
        elif 0.4 <= roll < 0.5:  # a wire length that disagrees with the capture (damaged files)
            data = snapped(data, max(0, len(data) + int(rng.integers(-40, 40))))
        frames.append(data)
        linktypes.append(linktype)
    return frames, linktypes


def fuzz_sources() -> list[tuple[bytes, int]]:
    sources = [(c[1], c[2]) for c in CASES]
    rng = np.random.default_rng(11)
    for path in REAL:
        frames, linktype = read_capture(path)
        for i in rng.choice(len(frames), min(len(frames), 20), replace=False).tolist() if frames else []:
            sources.append((bytes(frames[i]), linktype))
    return sources


@needs_extract
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_paths_agree_with_decode_frame_on_fuzzed_frames(seed: int, count_per_frame: Counter[str]) -> None:
    sources = fuzz_sources()
    frames, linktypes = fuzzed(np.random.default_rng(seed), sources, 6000)
    fb = batch(frames, linktypes, gap=int(seed))
    singles = per_frame(fb)
    count_per_frame["frames"] = 0
    fast = decode_c(fb)
    assert count_per_frame["frames"] == 0
    assert_matches_frames(fast, fb, singles)
    assert_same(decode_numpy(fb), fast)
    reasons = {r for r in singles if isinstance(r, DropReason)}
    assert {DropReason.TRUNCATED, DropReason.HEADER_TOO_SMALL, DropReason.BAD_IP_HEADER} <= reasons
    assert sum(isinstance(r, Packet) for r in singles) > len(singles) // 4


# --- MAC addresses ----------------------------------------------------------------------------------

def frame_rule_macs(frames: FrameBatch) -> bytes:
    """``frame_macs`` of every frame ``decode_frame`` accounts, in order."""
    buf = bytes(frames.buf)
    out = []
    for o, c, lt, w, ifx in zip(frames.offset, frames.caplen, frames.linktype, frames.wirelen, frames.ifindex,
                                strict=True):
        frame = buf[int(o):int(o) + int(c)]
        if isinstance(decode_frame(frame, int(lt), int(w), int(ifx)), Packet):
            out.append(frame_macs(frame, int(lt)))
    return b"".join(out)


@pytest.mark.parametrize("seed", [0, 4, 5])
def test_both_paths_give_frame_macs(seed: int) -> None:
    """The table (Ethernet, SLL, SLL2, raw, null links) and fuzzed copies (damaged address lengths too)."""
    frames, linktypes = TABLE_FRAMES, TABLE_LINKTYPES
    if seed:
        frames, linktypes = fuzzed(np.random.default_rng(seed), fuzz_sources(), 4000)
    fb = batch(frames, linktypes, gap=seed)
    want = frame_rule_macs(fb)
    paths = [decode_numpy] + ([] if EXTRACT is None else [lambda f, macs: decode_c(f, macs)])
    for path in paths:
        decoded = path(fb, True)
        assert decoded.packets.mac is not None and decoded.packets.mac.tobytes() == want
        assert path(fb, False).packets.mac is None  # not asked for: not decoded
    assert want.count(bytes(12)) < len(want) // 12  # most frames carry addresses


def test_frame_macs_per_link_type() -> None:
    ipv4 = [c[1] for c in CASES if c[0] == "ether-ipv4-tcp"][0][14:]
    source = bytes.fromhex("020000000001")
    cooked = struct.pack("!HHH8sH", 4, 1, 6, source + bytes(2), 0x0800) + ipv4  # outgoing: our own address
    assert frame_macs(bytes.fromhex("0a0b0c0d0e0f") + source + b"\x08\x00" + ipv4, 1) == (
        bytes.fromhex("0a0b0c0d0e0f") + source)
    assert frame_macs(cooked, 113) == bytes(6) + source
    assert frame_macs(cooked[:5] + b"\x08" + cooked[6:], 113) == bytes(12)  # an 8-byte address is no MAC
    assert frame_macs(struct.pack("!HHIHBB8s", 0x0800, 0, 3, 1, 0, 6, source + bytes(2)) + ipv4, 276) == (
        bytes(6) + source)
    assert frame_macs(ipv4, 101) == frame_macs(b"\x02\x00\x00\x00" + ipv4, 0) == bytes(12)
