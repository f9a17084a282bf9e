"""flowd.native._fastpath (flowd/native/_fastpath.c) against the pure path it replaces, in one process.

The compiled ``walk_pcap`` must give exactly what ``walking._walk_pcap_numpy`` gives (the same records,
timestamps, stop position and reason, hence the same CaptureError), and the compiled ``extract`` exactly
what ``decode_frame`` gives for every frame (hence ``decode`` == ``decode_numpy``). Inputs: the
decoder's table of shapes cut at every byte, random garbage, the synthetic generator's capture, and
every file of ../shared/pcaps/real and ../shared/pcaps/malformed. Skipped when the extension is not built.
"""

from __future__ import annotations

import gzip
import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_decode import CASES, LINKTYPES, Result, batch, per_frame

from flowd.capture import files, layouts
from flowd.capture import walk as walking
from flowd.capture.files import open_capture
from flowd.capture.layouts import PCAP_MAGICS, CaptureError
from flowd.core import decode as decoding
from flowd.core import frame_rules
from flowd.core.decode_numpy import decode_numpy
from flowd.core.frame_rules import Decoded, Packet
from flowd.model.batch import FrameBatch
from flowd.model.drops import DropReason
from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

fastpath: Any = pytest.importorskip("flowd.native._fastpath", reason="flowd.native._fastpath is not built")

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / ".." / "shared" / "pcaps"
SLOW = "slow"  # extract left the frame to decode_frame


@pytest.fixture(autouse=True)
def _fastpath_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests call both paths explicitly, whatever FLOWD_NO_FASTPATH says."""
    monkeypatch.delenv("FLOWD_NO_FASTPATH", raising=False)


def compiled_walker() -> walking._PcapWalker:
    walker = walking._compiled_walker()
    assert walker is not None
    return walker


# --- extract -------------------------------------------------------------------------------------

def extract_rows(frames: FrameBatch) -> list[Result | str]:
    """Call extract directly; each frame's row as a Packet, its drop reason, or SLOW."""
    n = len(frames)
    key, length = np.full((n, 40), 0xAA, np.uint8), np.full(n, 7, np.uint32)
    flags, ttl, status = np.full(n, 7, np.uint8), np.full(n, 7, np.uint8), np.full(n, 7, np.uint8)
    vlan, inner, mpls = np.full(n, 7, np.uint16), np.full(n, 7, np.uint16), np.full((n, 3), 7, np.uint32)
    fastpath.extract(frames.buf, frames.offset, frames.caplen, frames.linktype, frames.ifindex, frames.wirelen,
                     key, length, flags, ttl, vlan, inner, mpls, status, None)
    reasons = {code: reason for reason, code in frame_rules.DROP_CODE.items()}
    out: list[Result | str] = []
    for i in range(n):
        row = Packet(key=bytes(key[i]), length=int(length[i]), tcp_flags=int(flags[i]), ttl=int(ttl[i]),
                     vlan=int(vlan[i]), inner_vlan=int(inner[i]), mpls=(int(mpls[i, 0]), int(mpls[i, 1]),
                                                                          int(mpls[i, 2])))
        code = int(status[i])
        if code == frame_rules.OK:
            out.append(row)
            continue
        assert row == Packet(key=bytes(40), length=0, tcp_flags=0, ttl=0, vlan=0, inner_vlan=0, mpls=(0, 0, 0))
        out.append(SLOW if code == fastpath.SLOW else reasons[code])
    return out


def assert_same_decoded(got: Decoded, want: Decoded) -> None:
    assert got.drops == want.drops
    for name in ("key", "length", "ts", "tcp_flags", "ttl", "vlan", "inner_vlan", "mpls", "mac"):
        a, b = getattr(got.packets, name), getattr(want.packets, name)
        if name == "mac" and a is None and b is None:
            continue
        assert a.dtype == b.dtype and a.shape == b.shape and a.flags.writeable, name
        assert np.array_equal(a, b), name


def assert_extract_agrees(frames: FrameBatch) -> list[Result | str]:
    """extract == decode_frame frame by frame, and the compiled decode == decode_numpy."""
    got = extract_rows(frames)
    assert got == per_frame(frames)
    assert_same_decoded(decoding._decode_compiled(frames, fastpath.extract), decode_numpy(frames))
    return got


def test_tables_agree_and_the_hooks_pick_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    assert fastpath.DROP_CODES == {reason.value: code for reason, code in frame_rules.DROP_CODE.items()}
    assert fastpath.SLOW == frame_rules.SLOW
    assert fastpath.WALK_STOPS == {stop.name: stop.value for stop in walking.WalkStop}
    assert decoding._compiled_extract() is fastpath.extract
    assert walking._compiled_walker() is not None
    monkeypatch.setenv("FLOWD_NO_FASTPATH", "1")
    assert decoding._compiled_extract() is None and walking._compiled_walker() is None


def test_every_table_shape_in_one_batch() -> None:
    frames = batch([c[1] for c in CASES] * 2, [c[2] for c in CASES] * 2, gap=5, ifindex=0x12345)
    got = assert_extract_agrees(frames)
    assert SLOW not in got


@pytest.mark.parametrize("name, frame, linktype", [c[:3] for c in CASES], ids=[c[0] for c in CASES])
def test_every_table_shape_cut_at_every_byte(name: str, frame: bytes, linktype: int) -> None:
    """Each prefix in one batch whose buffer holds the whole frame: nothing past a caplen is read."""
    n = len(frame) + 1
    jumbo = [len(frame) + 70000] * n  # the wire length only matters to an IPv6 payload length of 0
    assert_extract_agrees(batch([frame] * n, linktype, caplens=range(n), wirelens=jumbo))


def test_frames_at_the_very_end_of_the_buffer() -> None:
    """Cut frames that end where the buffer ends: a read past the caplen would leave the buffer."""
    for _, frame, linktype, _ in CASES:
        for cut in range(len(frame) + 1):
            frames = batch([frame[:cut]], linktype)  # the buffer is exactly the cut frame
            assert extract_rows(frames) == per_frame(frames)


def test_random_garbage_frames() -> None:
    rng = np.random.default_rng(20261126)
    frames = [rng.bytes(int(size)) for size in rng.integers(0, 160, 20_000)]
    linktypes = rng.choice(LINKTYPES, len(frames)).tolist()
    caplens = [int(rng.integers(0, len(f) + 1)) if rng.random() < 0.5 else len(f) for f in frames]
    wirelens = rng.integers(0, 2**32, len(frames)).tolist()
    assert_extract_agrees(batch(frames, linktypes, caplens=caplens, wirelens=wirelens, gap=1))


def test_damaged_table_shapes() -> None:
    """Table frames with random bytes overwritten, so most headers are plausible but wrong."""
    rng = np.random.default_rng(11)
    frames, linktypes = [], []
    for _, frame, linktype, _ in CASES * 60:
        raw = bytearray(frame)
        for _ in range(int(rng.integers(1, 4))):
            if raw:
                raw[int(rng.integers(0, len(raw)))] = int(rng.integers(0, 256))
        frames.append(bytes(raw))
        linktypes.append(linktype)
    got = assert_extract_agrees(batch(frames, linktypes))
    assert {type(r) for r in got} == {Packet, DropReason}


def test_frame_outside_the_buffer_is_left_to_the_slow_path() -> None:
    frames = batch([CASES[0][1], CASES[0][1]])
    frames.offset[1] = len(frames.buf) - 10  # runs 50 bytes past the end
    assert extract_rows(frames) == [per_frame(frames)[0], SLOW]
    frames.offset[1] = -1
    assert extract_rows(frames)[1] == SLOW


def test_rows_left_slow_are_decoded_by_decode_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    """decode's hook: status 255 rows go through decode_frame and land in their input positions."""
    frames = batch([c[1] for c in CASES], [c[2] for c in CASES], gap=2)

    def extract_leaving_every_third(*args: Any) -> None:
        fastpath.extract(*args)
        args[13][::3] = fastpath.SLOW  # the status column

    monkeypatch.setattr(decoding, "_EXTRACT", extract_leaving_every_third)
    assert_same_decoded(decoding.decode(frames), decode_numpy(frames))
    assert_same_decoded(decoding.decode(frames, macs=True), decode_numpy(frames, macs=True))
    monkeypatch.setattr(decoding, "_EXTRACT", None)
    assert_same_decoded(decoding.decode(frames), decode_numpy(frames))


def extract_args(n: int) -> list[Any]:
    return [b"\0" * 64, np.zeros(n, np.int64), np.zeros(n, np.uint32), np.ones(n, np.uint16),
            np.zeros(n, np.uint32), np.zeros(n, np.uint32), np.zeros((n, 40), np.uint8), np.zeros(n, np.uint32),
            np.zeros(n, np.uint8), np.zeros(n, np.uint8), np.zeros(n, np.uint16), np.zeros(n, np.uint16),
            np.zeros((n, 3), np.uint32), np.zeros(n, np.uint8), np.zeros((n, 12), np.uint8)]


@pytest.mark.parametrize("index, bad, message", [
    (1, np.zeros(4, np.float64), "offsets: expected at least 4 native 'q' items"),
    (2, np.zeros(4, np.uint16), "caplens: expected at least 4 native 'I' items"),
    (3, np.zeros(4, ">u2"), "linktypes: expected"),
    (6, np.zeros((3, 40), np.uint8), "key_out: expected at least 160"),
    (12, np.zeros((4, 2), np.uint32), "mpls_out: expected at least 12"),
    (13, np.zeros(8, np.uint8)[::2], "ndarray is not C-contiguous"),
    (14, np.zeros((3, 12), np.uint8), "mac_out: expected at least 48"),
    (7, b"\0" * 16, "(read-only|not writable)"),
])
def test_extract_refuses_bad_arrays(index: int, bad: Any, message: str) -> None:
    args = extract_args(4)
    args[index] = bad
    with pytest.raises((ValueError, BufferError, TypeError), match=message):
        fastpath.extract(*args)


# --- walk_pcap -----------------------------------------------------------------------------------

def assert_walks_agree(buf: layouts.Buffer, pos: int, limit: int, order: str, units: int) -> walking._PcapWalk:
    want = walking._walk_pcap_numpy(buf, pos, limit, order, units)
    got = compiled_walker()(buf, pos, limit, order, units)
    assert (got.end, got.stop) == (want.end, want.stop)
    for name in ("offset", "caplen", "wirelen", "ts"):
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    return want


def walk_all(buf: layouts.Buffer, order: str, units: int, limit: int) -> list[walking._PcapWalk]:
    """Walk a whole pcap buffer batch by batch, checking both walks agree at every step."""
    walks, pos = [], layouts.PCAP_FILE_HEADER_LEN
    while True:
        walk = assert_walks_agree(buf, pos, limit, order, units)
        walks.append(walk)
        pos = walk.end
        if walk.stop is not walking.WalkStop.FULL:
            return walks


def pcap_layout(data: bytes) -> tuple[str, int] | None:
    """(byte order, units) of a classic pcap, None for anything else."""
    return PCAP_MAGICS.get(data[:4])


def read_both(path: Path, monkeypatch: pytest.MonkeyPatch, batch_size: int = 65536) -> list[FrameBatch]:
    """Read a capture with the compiled and the Python walk: the same batches, the same error."""
    results = []
    for walker in (compiled_walker(), walking._walk_pcap_numpy):
        monkeypatch.setattr(files, "WALK_PCAP", walker)
        batches: list[FrameBatch] = []
        error: tuple[int, str] | None = None
        try:
            with open_capture(str(path)) as reader:
                batches.extend(reader.batches(batch_size))
        except CaptureError as e:
            error = (e.offset, e.message)
        results.append((batches, error))
    (got, got_error), (want, want_error) = results
    assert got_error == want_error
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        for name in ("offset", "caplen", "wirelen", "ts", "linktype", "ifindex"):
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype and np.array_equal(x, y), name
        assert bytes(a.buf) == bytes(b.buf)
    return got


def record(sec: int, frac: int, data: bytes, order: str = "<", caplen: int | None = None,
           wirelen: int | None = None) -> bytes:
    return struct.pack(order + "IIII", sec, frac, len(data) if caplen is None else caplen,
                       len(data) if wirelen is None else wirelen) + data


def sample(order: str, count: int = 6) -> bytes:
    header = struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    sizes = [0, 1, 60, 15, 16, 17, 200, 3]
    return header + b"".join(record(1_700_000_000 + i, 999_999 - i, bytes([i]) * sizes[i % len(sizes)], order,
                                    wirelen=1514 + i) for i in range(count))


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("units", [1_000_000, 1_000_000_000])
def test_walk_cut_at_every_byte(order: str, units: int) -> None:
    data = sample(order)
    for cut in range(layouts.PCAP_FILE_HEADER_LEN, len(data) + 1):
        for limit in (1, 2, 5, 100):
            walk_all(data[:cut], order, units, limit)


def test_walk_oversized_records_and_extreme_fields() -> None:
    big = layouts.MAX_CAPLEN
    data = sample("<", 3) + record(2**32 - 1, 2**32 - 1, bytes(big), wirelen=2**32 - 1)
    data += record(0, 0, b"", caplen=big + 1) + record(5, 5, b"x")
    walks = walk_all(data, "<", 1_000_000_000, 65536)
    assert walks[-1].stop is walking.WalkStop.TOO_LONG and len(walks[-1].offset) == 4
    walks = walk_all(sample("<", 3) + record(0, 0, b"", caplen=2**32 - 1), "<", 1_000_000, 2)
    assert [(len(w.offset), w.stop) for w in walks] == [(2, walking.WalkStop.FULL), (1, walking.WalkStop.TOO_LONG)]


@pytest.mark.parametrize("units", [1_000_000, 1_000_000_000])
def test_walk_timestamps_to_the_last_bit(units: int) -> None:
    """Small seconds keep every bit of the fraction's quotient, so any other rounding shows."""
    rng = np.random.default_rng(3)
    fracs = rng.integers(0, units, 2000).tolist() + [0, 1, units - 1, 2**32 - 1]
    data = sample(">", 0) + b"".join(record(i % 3, frac, b"ab", ">") for i, frac in enumerate(fracs))
    walks = walk_all(data, ">", units, 65536)
    assert walks[0].ts[-1] == 2 + (2**32 - 1) / units


def test_walk_random_garbage() -> None:
    rng = np.random.default_rng(5)
    header = sample("<", 0)
    for _ in range(300):
        # small captured lengths, so that garbage walks on for a while before it goes wrong
        body = bytearray(rng.bytes(int(rng.integers(0, 400))))
        for at in range(8, len(body) - 4, 16):
            body[at:at + 4] = struct.pack("<I", int(rng.integers(0, 40)) if rng.random() < 0.9
                                          else int(rng.integers(0, 2**32)))
        for order in "<>":
            walk_all(header + bytes(body), order, 1_000_000, int(rng.integers(1, 8)))


def test_walk_reads_a_mapping_and_takes_no_record_when_asked_for_none() -> None:
    data = sample("<", 8)
    with mmap.mmap(-1, len(data)) as mapped:
        mapped.write(data)
        walk = assert_walks_agree(mapped, layouts.PCAP_FILE_HEADER_LEN, 0, "<", 1_000_000)
        assert (len(walk.offset), walk.end, walk.stop) == (0, layouts.PCAP_FILE_HEADER_LEN, walking.WalkStop.FULL)
        assert_walks_agree(mapped, len(data), 4, "<", 1_000_000)
        assert len(walk_all(mapped, "<", 1_000_000, 3)) == 3


@pytest.mark.parametrize("args, message", [
    ((b"x" * 32, 10, 5, 1), "0 <= start <= end <= len"),
    ((b"x" * 32, 0, 33, 1), "0 <= start <= end <= len"),
    ((b"x" * 32, 0, 32, -1), "max_records >= 0"),
    ((b"x" * 32, 0, 32, 5), "offset_out: expected at least 5"),
])
def test_walk_refuses_bad_arguments(args: tuple[bytes, int, int, int], message: str) -> None:
    outputs = (np.zeros(4, np.int64), np.zeros(4, np.uint32), np.zeros(4, np.uint32), np.zeros(4, np.float64))
    with pytest.raises(ValueError, match=message):
        fastpath.walk_pcap(*args, False, False, *outputs, layouts.MAX_CAPLEN)


# --- whole captures ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "synth-50k.pcap"
    write_capture(SynthSpec(packets=50_000, flows=5_000), path)
    return path


def test_synthetic_capture(synthetic: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = synthetic.read_bytes()
    layout = pcap_layout(data)
    assert layout is not None
    for limit in (1000, 65536):
        walks = walk_all(data, *layout, limit)
        assert sum(len(w.offset) for w in walks) == 50_000 and walks[-1].end == len(data)
    batches = read_both(synthetic, monkeypatch, batch_size=16384)
    assert sum(len(b) for b in batches) == 50_000
    for frames in batches:
        assert_same_decoded(decoding._decode_compiled(frames, fastpath.extract), decode_numpy(frames))
    first = batches[0]  # frame by frame as well, on a slice of the first batch
    assert extract_rows(first.slice(0, 5000)) == per_frame(first.slice(0, 5000))


def corpus(kind: str) -> list[Path]:
    root = PCAPS / kind
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else []


CORPUS = corpus("real") + corpus("malformed")


def _id(path: Path) -> str:
    return str(path.relative_to(PCAPS))


@pytest.mark.integration
@pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/pcaps not present")
@pytest.mark.parametrize("path", CORPUS, ids=[_id(p) for p in CORPUS])
def test_corpus(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every capture: the same batches and error both ways, and both decoders agree on every batch."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    layout = pcap_layout(data)
    if layout is not None and len(data) >= layouts.PCAP_FILE_HEADER_LEN:
        walk_all(data, *layout, 65536)
        for limit in (1, 7):  # small batches over the start (and a cut record at 100 kB)
            walk_all(data[:100_000], *layout, limit)
    for frames in read_both(path, monkeypatch):
        assert_same_decoded(decoding._decode_compiled(frames, fastpath.extract), decode_numpy(frames))


@pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/pcaps not present")
def test_corpus_is_listed() -> None:
    assert len(CORPUS) > 400
