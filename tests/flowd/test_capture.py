"""Capture-file reader: every container variant built byte by byte, damage, the real corpus."""

from __future__ import annotations

import gzip
import io
import math
import mmap
import random
import shutil
import struct
import subprocess
import sys
import types
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import numpy as np
import pytest

from flowd.capture import streams
from flowd.capture.files import CaptureReader, open_capture
from flowd.capture.layouts import (
    MAX_BLOCK,
    MAX_CAPLEN,
    CaptureError,
    CaptureFormat,
    LinkType,
)
from flowd.model.batch import FrameBatch

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO / ".." / "shared" / "pcaps"


# --- writers ----------------------------------------------------------------------------------

PCAP_MAGIC = {False: 0xA1B2C3D4, True: 0xA1B23C4D}  # by nanosecond resolution


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame as a test expects it."""

    data: bytes
    wirelen: int
    ts: float
    linktype: int
    ifindex: int


def pcap_header(*, order: str = "<", nano: bool = False, linktype: int = 1,
                snaplen: int = 65535, version: tuple[int, int] = (2, 4)) -> bytes:
    return struct.pack(order + "IHHiIII", PCAP_MAGIC[nano], *version, 0, 0, snaplen, linktype)


def pcap_record(sec: int, frac: int, data: bytes, wirelen: int | None = None, *,
                order: str = "<", caplen: int | None = None) -> bytes:
    caplen = len(data) if caplen is None else caplen
    wirelen = len(data) if wirelen is None else wirelen
    return struct.pack(order + "IIII", sec, frac, caplen, wirelen) + data


def payload(i: int, size: int) -> bytes:
    return bytes((i * 7 + j) & 0xFF for j in range(size))


def sample_pcap(*, order: str = "<", nano: bool = False, linktype: int = 1,
                count: int = 5) -> tuple[bytes, list[Frame], list[int]]:
    """A pcap file, its frames and the offset of each record."""
    units = 10**9 if nano else 10**6
    out = [pcap_header(order=order, nano=nano, linktype=linktype)]
    frames, starts, pos = [], [], 24
    for i in range(count):
        data = payload(i, 40 + 13 * i)
        sec, frac = 1_700_000_000 + i, (123_457 * (i + 1)) % units
        wirelen = len(data) + 10 * i
        record = pcap_record(sec, frac, data, wirelen, order=order)
        out.append(record)
        starts.append(pos)
        pos += len(record)
        frames.append(Frame(data, wirelen, sec + frac / units, linktype, 1))
    return b"".join(out), frames, starts


def ng_block(btype: int, body: bytes, *, order: str = "<", trailer: int | None = None) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return (struct.pack(order + "II", btype, total) + body
            + struct.pack(order + "I", total if trailer is None else trailer))


def ng_option(code: int, value: bytes, order: str) -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def ng_shb(order: str = "<", version: tuple[int, int] = (1, 0)) -> bytes:
    return ng_block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, *version, -1), order=order)


def ng_idb(linktype: int, snaplen: int = 0, *, tsresol: int | None = None,
           tsoffset: int | None = None, order: str = "<") -> bytes:
    body = struct.pack(order + "HHI", linktype, 0, snaplen)
    body += ng_option(2, b"eth0", order)  # if_name: an option the reader skips
    if tsresol is not None:
        body += ng_option(9, bytes([tsresol]), order)
    if tsoffset is not None:
        body += ng_option(14, struct.pack(order + "q", tsoffset), order)
    body += ng_option(0, b"", order)
    return ng_block(1, body, order=order)


def ng_epb(ifid: int, ticks: int, data: bytes, wirelen: int | None = None, *,
           order: str = "<", caplen: int | None = None) -> bytes:
    body = struct.pack(order + "IIIII", ifid, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(data) if caplen is None else caplen,
                       len(data) if wirelen is None else wirelen) + data
    body += b"\0" * (-len(body) % 4) + ng_option(1, b"comment", order) + ng_option(0, b"", order)
    return ng_block(6, body, order=order)


def ng_pb(ifid: int, ticks: int, data: bytes, *, order: str = "<") -> bytes:
    body = struct.pack(order + "HHIIII", ifid, 0, ticks >> 32, ticks & 0xFFFFFFFF,
                       len(data), len(data)) + data
    return ng_block(2, body, order=order)


def ng_spb(data: bytes, wirelen: int, *, order: str = "<") -> bytes:
    return ng_block(3, struct.pack(order + "I", wirelen) + data, order=order)


NG_SKIPPED = (
    ng_block(4, struct.pack("<HH", 1, 8) + bytes([192, 0, 2, 1]) + b"host" + b"\0" * 4),  # NRB
    ng_block(5, struct.pack("<III", 0, 0, 0)),  # ISB
    ng_block(0x0A, b"secrets!"),  # DSB
    ng_block(0x00000BAD, struct.pack("<I", 32473) + b"custom"),  # custom block
    ng_block(0x7777, b"unknown block"),
)


def sample_pcapng() -> tuple[bytes, list[Frame], list[int]]:
    """Two sections: LE with an Ethernet µs interface and a raw-IPv4 ns interface with an
    offset, then BE (interfaces reset) with a 2^-10 s raw-IPv6 interface; EPB, PB and SPB."""
    blocks: list[bytes] = []
    frames: list[Frame] = []
    starts: list[int] = []

    def add(block: bytes, frame: Frame | None = None) -> None:
        starts.append(sum(map(len, blocks)))
        blocks.append(block)
        if frame is not None:
            frames.append(frame)

    d = [payload(i, 30 + 11 * i) for i in range(9)]
    add(ng_shb())
    add(ng_idb(LinkType.ETHERNET, 65535))
    add(NG_SKIPPED[0])
    add(ng_idb(LinkType.IPV4, 0, tsresol=9, tsoffset=-3600))
    t0 = 1_700_000_000_123_456
    add(ng_epb(0, t0, d[0], 1500), Frame(d[0], 1500, t0 / 1e6, 1, 1))
    t1 = 1_700_000_000_987_654_321
    add(ng_epb(1, t1, d[1]), Frame(d[1], len(d[1]), float(Fraction(t1, 10**9) - 3600), 228, 2))
    for i in range(10):  # a run long enough for the vectorised EPB path, both interfaces mixed
        data = payload(100 + i, 20 + i)
        if i % 3:
            add(ng_epb(0, t0 + i, data), Frame(data, len(data), (t0 + i) / 1e6, 1, 1))
        else:
            t = t1 + 1000 * i
            seconds = float(Fraction(t, 10**9) - 3600)
            add(ng_epb(1, t, data), Frame(data, len(data), seconds, 228, 2))
    for block in NG_SKIPPED[1:]:
        add(block)
    add(ng_pb(0, t0 + 5, d[2]), Frame(d[2], len(d[2]), (t0 + 5) / 1e6, 1, 1))
    # SPB on interface 0 (snaplen 65535): no timestamp, so the previous packet's
    add(ng_spb(d[3], len(d[3])), Frame(d[3], len(d[3]), (t0 + 5) / 1e6, 1, 1))
    add(ng_shb(">"))
    add(ng_idb(LinkType.IPV6, 40, tsresol=0x80 | 10, order=">"))
    t2 = 1_700_000_001 * 1024 + 512
    add(ng_epb(0, t2, d[4], 100, order=">"), Frame(d[4], 100, 1_700_000_001.5, 229, 1))
    # SPB longer than snaplen 40: caplen = snaplen
    add(ng_spb(d[5], len(d[5]), order=">"), Frame(d[5][:40], len(d[5]), 1_700_000_001.5, 229, 1))
    add(ng_idb(LinkType.ETHERNET, 0, order=">"))
    t3 = 1_700_000_002_000_001
    add(ng_epb(1, t3, d[6], order=">"), Frame(d[6], len(d[6]), t3 / 1e6, 1, 2))
    return b"".join(blocks), frames, starts


# --- reading helpers ---------------------------------------------------------------------------


def frames_of(batch: FrameBatch) -> Iterator[Frame]:
    check_batch(batch)
    buf = batch.buf
    for off, cap, wire, ts, lt, ifx in zip(batch.offset.tolist(), batch.caplen.tolist(),
                                          batch.wirelen.tolist(), batch.ts.tolist(),
                                          batch.linktype.tolist(), batch.ifindex.tolist(),
                                          strict=True):
        yield Frame(bytes(buf[off:off + cap]), wire, ts, lt, ifx)


def check_batch(batch: FrameBatch) -> None:
    n = len(batch)
    assert n > 0
    for name, dtype in (("offset", np.int64), ("caplen", np.uint32), ("wirelen", np.uint32),
                        ("ts", np.float64), ("linktype", np.uint16), ("ifindex", np.uint32)):
        column = getattr(batch, name)
        assert column.dtype == dtype and column.dtype.isnative and column.shape == (n,), name
    assert int(batch.offset.min()) >= 0
    assert int((batch.offset + batch.caplen).max()) <= len(batch.buf)


def read_all(reader: CaptureReader, batch_size: int = 65536) -> list[Frame]:
    return [f for b in reader.batches(batch_size) for f in frames_of(b)]


def read_until_error(reader: CaptureReader,
                     batch_size: int = 65536) -> tuple[list[Frame], CaptureError | None]:
    frames: list[Frame] = []
    try:
        for batch in reader.batches(batch_size):
            frames.extend(frames_of(batch))
    except CaptureError as e:
        return frames, e
    return frames, None


def assert_frames(got: list[Frame], want: list[Frame]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert (g.data, g.wirelen, g.linktype, g.ifindex) == (w.data, w.wirelen, w.linktype,
                                                             w.ifindex)
        assert math.isclose(g.ts, w.ts, rel_tol=0, abs_tol=5e-7), (g.ts, w.ts)


def fake_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", types.SimpleNamespace(buffer=io.BytesIO(data)))


def opener(mode: str, tmp_path: Path,
           monkeypatch: pytest.MonkeyPatch) -> Callable[[bytes], CaptureReader]:
    """open_capture over the given bytes as a plain file, a gzip file, or stdin."""

    def open_(data: bytes) -> CaptureReader:
        path = tmp_path / f"capture-{mode}"
        if mode == "stdin":
            fake_stdin(monkeypatch, data)
            return open_capture("-")
        if mode == "gzip-stdin":
            fake_stdin(monkeypatch, gzip.compress(data))
            return open_capture("-")
        path.write_bytes(gzip.compress(data) if mode == "gzip" else data)
        return open_capture(str(path))

    return open_


MODES = ("file", "gzip", "stdin", "gzip-stdin")


# --- pcap ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True], ids=["us", "ns"])
def test_pcap_variants(tmp_path: Path, order: str, nano: bool) -> None:
    data, want, _ = sample_pcap(order=order, nano=nano)
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    with open_capture(str(path), default_ifindex=7) as reader:
        assert reader.format is CaptureFormat.PCAP
        batches = list(reader.batches())
        assert reader.frames_read == len(want)
    got = [f for b in batches for f in frames_of(b)]
    assert_frames(got, [Frame(f.data, f.wirelen, f.ts, f.linktype, 7) for f in want])
    # µs timestamps are exactly sec + usec / 1e6, as dpkt computes them
    if not nano:
        assert [g.ts for g in got] == [w.ts for w in want]
    # a plain file is mapped, not copied
    assert isinstance(batches[0].buf, memoryview) and isinstance(batches[0].buf.obj, mmap.mmap)


@pytest.mark.parametrize("linktype", [*LinkType, 147, 65535])
def test_pcap_link_types_pass_through(tmp_path: Path, linktype: int) -> None:
    data, want, _ = sample_pcap(linktype=linktype, count=2)
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    with open_capture(str(path)) as reader:
        assert [f.linktype for f in read_all(reader)] == [linktype, linktype]


def test_pcap_fcs_bits_of_link_type_word_are_dropped(tmp_path: Path) -> None:
    data, _, _ = sample_pcap(count=1)
    path = tmp_path / "fcs.pcap"
    path.write_bytes(data[:20] + struct.pack("<I", 0x14000000 | 1) + data[24:])  # FCS 4 bytes
    with open_capture(str(path)) as reader:
        assert [f.linktype for f in read_all(reader)] == [1]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_size", [1, 3, 5, 65536])
def test_batches_keep_file_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str,
                                 batch_size: int) -> None:
    data, want, _ = sample_pcap(count=10)
    with opener(mode, tmp_path, monkeypatch)(data) as reader:
        sizes: list[int] = []
        got: list[Frame] = []
        for batch in reader.batches(batch_size):
            sizes.append(len(batch))
            got.extend(frames_of(batch))
            assert reader.frames_read == len(got)
    assert all(s <= batch_size for s in sizes) and sum(sizes) == 10
    if mode == "file":  # one mapped buffer: batches are exactly batch_size until the last
        assert sizes == [min(batch_size, 10 - i) for i in range(0, 10, batch_size)]
    assert_frames(got, want)


def test_batches_resume_after_a_consumer_stops(tmp_path: Path) -> None:
    data, want, _ = sample_pcap(count=10)
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    with open_capture(str(path)) as reader:
        first = next(iter(reader.batches(4)))
        rest = read_all(reader, 4)
    assert_frames([*frames_of(first), *rest], want)


def test_pcap_record_of_exactly_max_caplen_is_accepted(tmp_path: Path) -> None:
    big = bytes(MAX_CAPLEN)
    path = tmp_path / "big.pcap"
    path.write_bytes(pcap_header() + pcap_record(1, 2, big) + pcap_record(3, 4, b"x"))
    with open_capture(str(path)) as reader:
        assert [len(f.data) for f in read_all(reader)] == [MAX_CAPLEN, 1]


@pytest.mark.parametrize("mode", MODES)
def test_pcap_oversized_record_is_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         mode: str) -> None:
    data, want, starts = sample_pcap(count=5)
    bad = starts[3]
    data = data[:bad + 8] + struct.pack("<I", MAX_CAPLEN + 1) + data[bad + 12:]
    reader = opener(mode, tmp_path, monkeypatch)(data)
    got, error = read_until_error(reader, batch_size=2)
    assert_frames(got, want[:3])
    assert error is not None and error.offset == bad
    assert str(error) == error.message
    assert error.message.endswith(
        f"record length {MAX_CAPLEN + 1} exceeds {MAX_CAPLEN} at byte {bad}")
    # the error sticks
    with pytest.raises(CaptureError) as again:
        list(reader.batches())
    assert again.value is error
    reader.close()


@pytest.mark.parametrize("mode", MODES)
def test_pcap_truncated_at_every_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     mode: str) -> None:
    data, want, starts = sample_pcap(count=4)
    ends = [*starts[1:], len(data)]
    open_ = opener(mode, tmp_path, monkeypatch)
    for cut in range(24, len(data) + 1):
        with open_(data[:cut]) as reader:
            got, error = read_until_error(reader, batch_size=2)
        complete = sum(1 for e in ends if e <= cut)
        assert_frames(got, want[:complete])
        if cut == 24 or cut in ends:
            assert error is None, cut
            continue
        start = starts[complete]
        assert error is not None and error.offset == start, cut
        what = "header" if cut < start + 16 else "data"
        assert f"truncated record {what}" in error.message and f"at byte {start}" in error.message


@pytest.mark.parametrize("cut", [4, 10, 23])
def test_pcap_truncated_file_header(tmp_path: Path, cut: int) -> None:
    data, _, _ = sample_pcap()
    path = tmp_path / "short.pcap"
    path.write_bytes(data[:cut])
    with pytest.raises(CaptureError, match=r"short\.pcap: truncated pcap file header at byte 0$"):
        open_capture(str(path))


@pytest.mark.parametrize("version", [(1, 4), (2, 5), (3, 0)])
def test_pcap_unsupported_version(tmp_path: Path, version: tuple[int, int]) -> None:
    path = tmp_path / "v.pcap"
    path.write_bytes(pcap_header(version=version) + pcap_record(1, 1, b"abc"))
    with pytest.raises(CaptureError, match=rf"unsupported pcap version {version[0]}\.{version[1]}"):
        open_capture(str(path))


# --- pcapng -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_pcapng_sections_interfaces_and_block_kinds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    mode: str) -> None:
    data, want, _ = sample_pcapng()
    with opener(mode, tmp_path, monkeypatch)(data) as reader:
        assert reader.format is CaptureFormat.PCAPNG
        assert_frames(read_all(reader), want)
        assert reader.frames_read == len(want)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_pcapng_spb_time_carries_across_batches(tmp_path: Path, batch_size: int) -> None:
    data, want, _ = sample_pcapng()
    path = tmp_path / "capture.pcapng"
    path.write_bytes(data)
    with open_capture(str(path)) as reader:
        assert_frames(read_all(reader, batch_size), want)


def test_pcapng_spb_caplen_is_min_of_length_snaplen_and_block(tmp_path: Path) -> None:
    data = (ng_shb() + ng_idb(1, 0)
            + ng_spb(b"abcde", 5)  # padded to 8 bytes of room: original length wins
            + ng_spb(b"abcdefgh", 1000)  # longer on the wire than captured: block room wins
            + ng_epb(0, 5_000_000, b"x")
            + ng_spb(b"abcdefgh", 8))
    path = tmp_path / "spb.pcapng"
    path.write_bytes(data)
    with open_capture(str(path)) as reader:
        got = read_all(reader)
    assert [(f.data, f.wirelen) for f in got] == [
        (b"abcde", 5), (b"abcdefgh", 1000), (b"x", 1), (b"abcdefgh", 8)]
    assert [f.ts for f in got] == [0.0, 0.0, 5.0, 5.0]  # no earlier packet: time 0


@pytest.mark.parametrize(("tsresol", "units"), [(6, 10**6), (9, 10**9), (3, 10**3), (0, 1),
                                                (0x80 | 10, 1024), (0x80 | 20, 2**20),
                                                (0x80 | 64, 2**64), (19, 10**19)])
def test_pcapng_timestamp_resolutions(tmp_path: Path, tsresol: int, units: int) -> None:
    ticks = [min(int(1_700_000_000.25 * units), (1 << 64) - 2), (1 << 64) - 1, 0]
    data = ng_shb() + ng_idb(1, tsresol=tsresol, tsoffset=86400)
    data += b"".join(ng_epb(0, t, b"abcd") for t in ticks)
    path = tmp_path / "res.pcapng"
    path.write_bytes(data)
    with open_capture(str(path)) as reader:
        got = [f.ts for f in read_all(reader)]
    for ts, t in zip(got, ticks, strict=True):
        exact = Fraction(t, units) + 86400
        assert math.isclose(ts, float(exact), rel_tol=1e-15), (ts, float(exact))


@pytest.mark.parametrize(("first", "second"), [("<", "<"), ("<", ">"), (">", "<"), (">", ">")])
def test_pcapng_interface_ids_restart_in_each_section(tmp_path: Path, first: str,
                                                      second: str) -> None:
    data = (ng_shb(first) + ng_idb(1, order=first) + ng_idb(113, order=first)
            + ng_epb(1, 1, b"a", order=first)
            + ng_shb(second) + ng_idb(276, order=second) + ng_epb(0, 2, b"b", order=second))
    path = tmp_path / "sections.pcapng"
    path.write_bytes(data)
    with open_capture(str(path)) as reader:
        batches = list(reader.batches())
    got = [f for b in batches for f in frames_of(b)]
    assert [(f.data, f.linktype, f.ifindex) for f in got] == [(b"a", 113, 2), (b"b", 276, 1)]
    assert isinstance(batches[0].buf, memoryview)  # a plain pcapng file is mapped too


def ng_damaged_cases() -> list[tuple[str, bytes, str]]:
    """(name, damaged block, message fragment); each goes after 2 good frames."""
    good_epb = ng_epb(0, 9, b"zzzz")
    long_caplen = ng_epb(0, 9, b"zzzz", caplen=40)
    return [
        ("trailer", good_epb[:-4] + struct.pack("<I", len(good_epb) + 4),
         f"block trailer length {len(good_epb) + 4} differs from header length {len(good_epb)}"),
        ("caplen", long_caplen, f"captured length 40 exceeds its {len(long_caplen)}-byte block"),
        ("interface", ng_epb(5, 9, b"zzzz"), "packet on undefined interface 5"),
        ("pb-interface", ng_pb(3, 9, b"zzzz"), "packet on undefined interface 3"),
        ("not-multiple-of-4", struct.pack("<II", 6, 30) + bytes(22), "invalid block length 30"),
        ("too-short", struct.pack("<II", 6, 8), "invalid block length 8"),
        ("huge", struct.pack("<II", 6, MAX_BLOCK + 4) + bytes(8),
         f"block length {MAX_BLOCK + 4} exceeds {MAX_BLOCK}"),
        ("epb-short", ng_block(6, bytes(16)), "packet block too short (28 bytes)"),
        ("bom", ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x11223344, 1, 0, -1)),
         "bad byte-order magic 0x11223344"),
        ("version", ng_shb(version=(2, 0)), "unsupported pcapng version 2.0"),
        ("idb-option", ng_block(1, struct.pack("<HHI", 1, 0, 0) + struct.pack("<HH", 9, 200)),
         "interface option 9 runs past its block"),
        ("tsresol-length", ng_block(1, struct.pack("<HHI", 1, 0, 0) + ng_option(9, b"ab", "<")),
         "if_tsresol option has length 2, not 1"),
    ]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_size", [9, 65536])
@pytest.mark.parametrize("before", [2, 20])  # 20: the damaged EPB ends a vectorised run
@pytest.mark.parametrize(("name", "block", "message"), ng_damaged_cases(),
                         ids=[c[0] for c in ng_damaged_cases()])
def test_pcapng_damage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, before: int,
                       batch_size: int, name: str, block: bytes, message: str) -> None:
    good = [b"frame %d" % i for i in range(before)]
    head = ng_shb() + ng_idb(1) + b"".join(ng_epb(0, i * 1000, f) for i, f in enumerate(good))
    data = head + block + b"".join(ng_epb(0, 10**9 + i, b"after") for i in range(10))
    with opener(mode, tmp_path, monkeypatch)(data) as reader:
        got, error = read_until_error(reader, batch_size=batch_size)
    assert [f.data for f in got] == good
    assert error is not None and error.offset == len(head)
    assert error.message.endswith(f"{message} at byte {len(head)}"), error.message


def test_pcapng_spb_before_any_interface(tmp_path: Path) -> None:
    path = tmp_path / "spb.pcapng"
    path.write_bytes(ng_shb() + ng_spb(b"abcd", 4))
    with open_capture(str(path)) as reader, pytest.raises(
            CaptureError, match="simple packet block before any interface at byte 28"):
        list(reader.batches())


@pytest.mark.parametrize("mode", MODES)
def test_pcapng_truncated_at_every_cut(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       mode: str) -> None:
    data, want, starts = sample_pcapng()
    ends = [*starts[1:], len(data)]
    frame_ends = sorted({e for e, s in zip(ends, starts, strict=True)
                         if data[s:s + 4] in (b"\x06\0\0\0", b"\x02\0\0\0", b"\x03\0\0\0",
                                              b"\0\0\0\x06", b"\0\0\0\x03")})
    assert len(frame_ends) == len(want)
    open_ = opener(mode, tmp_path, monkeypatch)
    for cut in range(4, len(data), 3 if mode.startswith("gzip") else 1):
        with open_(data[:cut]) as reader:
            got, error = read_until_error(reader, batch_size=2)
        assert_frames(got, want[:sum(1 for e in frame_ends if e <= cut)])
        if cut in ends:
            assert error is None, cut
            continue
        start = max(s for s in starts if s < cut)
        assert error is not None and error.offset == start, cut
        assert error.message.endswith(f"truncated block at byte {start}")


# --- gzip, stdin, streaming -------------------------------------------------------------------


def test_gzip_multi_member_and_zero_padding(tmp_path: Path) -> None:
    data, want, starts = sample_pcap(count=6)
    cut = starts[3] + 5  # members split inside a record
    path = tmp_path / "multi.pcap.gz"
    path.write_bytes(gzip.compress(data[:cut]) + gzip.compress(data[cut:]) + bytes(16))
    with open_capture(str(path)) as reader:
        assert_frames(read_all(reader), want)


def test_gzip_truncated_stream_yields_everything_inflatable(tmp_path: Path) -> None:
    data, want, starts = sample_pcap(count=30)
    ends = [*starts[1:], len(data)]
    packed = gzip.compress(data)
    for cut in range(11, len(packed), max(1, len(packed) // 40)):
        inflatable = len(zlib.decompressobj(wbits=31).decompress(packed[:cut]))
        path = tmp_path / "cut.pcap.gz"
        path.write_bytes(packed[:cut])
        try:
            reader = open_capture(str(path))
        except CaptureError as e:  # not even the file header inflated
            assert inflatable < 24 and e.offset == inflatable
            continue
        with reader:
            got, error = read_until_error(reader)
        assert_frames(got, want[:sum(1 for e in ends if e <= inflatable)])
        assert error is not None and error.offset == inflatable
        assert error.message == (
            f"{path}: gzip data ends early (truncated file) at byte {inflatable}")


def test_gzip_bad_crc_after_all_data(tmp_path: Path) -> None:
    data, want, _ = sample_pcap(count=8)
    packed = bytearray(gzip.compress(data))
    packed[-8] ^= 0xFF  # CRC32 in the member trailer
    path = tmp_path / "crc.pcap.gz"
    path.write_bytes(bytes(packed))
    with open_capture(str(path)) as reader:
        got, error = read_until_error(reader)
    assert_frames(got, want)
    assert error is not None and error.offset == len(data)
    assert "corrupt gzip data" in error.message and "incorrect data check" in error.message


@pytest.mark.parametrize("chunk", [streams.STREAM_CHUNK, 100])
def test_gzip_corrupt_in_the_middle_keeps_the_prefix(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     chunk: int) -> None:
    monkeypatch.setattr(streams, "STREAM_CHUNK", chunk)
    data, want, starts = sample_pcap(count=200)
    split = starts[120] + 5
    deflate = zlib.compressobj(6, zlib.DEFLATED, 31)
    good = deflate.compress(data[:split]) + deflate.flush(zlib.Z_FULL_FLUSH)
    rest = deflate.compress(data[split:]) + deflate.flush()
    # the block after the flush point gets BFINAL=1, BTYPE=11 (reserved): zlib fails right there
    path = tmp_path / "bad.pcap.gz"
    path.write_bytes(good + b"\x07" + rest[1:])
    with open_capture(str(path)) as reader:
        got, error = read_until_error(reader)
    assert_frames(got, want[:120])
    assert error is not None and error.offset == split
    assert error.message == f"{path}: corrupt gzip data (Error -3 while decompressing data: " \
                            f"invalid block type) at byte {split}"


def test_gzip_trailing_garbage(tmp_path: Path) -> None:
    data, want, _ = sample_pcap(count=3)
    path = tmp_path / "tail.pcap.gz"
    path.write_bytes(gzip.compress(data) + b"junk")
    with open_capture(str(path)) as reader:
        got, error = read_until_error(reader)
    assert_frames(got, want)
    assert error is not None and error.offset == len(data)
    assert "trailing garbage after gzip data" in error.message


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
@pytest.mark.parametrize("mode", ["stdin", "gzip", "gzip-stdin"])
@pytest.mark.parametrize("kind", ["pcap", "pcapng"])
def test_records_straddling_stream_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          chunk: int, mode: str, kind: str) -> None:
    monkeypatch.setattr(streams, "STREAM_CHUNK", chunk)
    data, want, _ = sample_pcap(count=12) if kind == "pcap" else sample_pcapng()
    with opener(mode, tmp_path, monkeypatch)(data) as reader:
        batches = list(reader.batches(4))
    assert_frames([f for b in batches for f in frames_of(b)], want)
    assert all(isinstance(b.buf, bytes) for b in batches)


def test_stream_memory_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams, "STREAM_CHUNK", 64 * 1024)
    path = tmp_path / "many.pcap"
    count = write_synthetic_pcap(path, 20_000)
    data = path.read_bytes()
    for mode in ("stdin", "gzip"):
        with opener(mode, tmp_path, monkeypatch)(data) as reader:
            seen = 0
            for batch in reader.batches():
                assert len(batch.buf) <= 64 * 1024 + MAX_CAPLEN + 16
                seen += len(batch)
        assert seen == count


def test_stdin_through_a_real_pipe(tmp_path: Path) -> None:
    data, want, _ = sample_pcapng()
    script = ("import sys; from flowd.capture.files import open_capture\n"
              "r = open_capture('-')\n"
              "for b in r.batches():\n"
              "    for o, c in zip(b.offset.tolist(), b.caplen.tolist()):\n"
              "        sys.stdout.write(bytes(b.buf[o:o + c]).hex() + '\\n')\n")
    for stdin in (data, gzip.compress(data)):
        out = subprocess.run([sys.executable, "-c", script], input=stdin, capture_output=True,
                             cwd=REPO, check=True, timeout=60).stdout.decode().split()
        assert out == [f.data.hex() for f in want]


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty file, not a pcap or pcapng capture"),
    (b"\xd4\xc3", "not a pcap or pcapng capture (starts with d4c3)"),
    (b"hello, world\n" * 10, "not a pcap or pcapng capture (starts with 68656c6c)"),
    (bytes(range(256)), "not a pcap or pcapng capture (starts with 00010203)"),
    (gzip.compress(b"plain text inside gzip"),
     "not a pcap or pcapng capture (starts with 706c6169)"),
    (b"\x1f\x8b\x08\x00garbage", "gzip data ends early (truncated file) at byte 0"),
    (b"\x1f\x8b\x07\x00" + bytes(20),
     "corrupt gzip data (Error -3 while decompressing data: unknown compression method) at byte 0"),
], ids=["empty", "short", "text", "binary", "gzipped-text", "gzip-truncated", "gzip-bad-method"])
def test_garbage_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "garbage.bin"
    path.write_bytes(content)
    with pytest.raises(CaptureError) as caught:
        open_capture(str(path))
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


def test_missing_and_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CaptureError, match=r"nope\.pcap: No such file or directory$"):
        open_capture(str(tmp_path / "nope.pcap"))
    with pytest.raises(CaptureError, match=r": Is a directory$"):
        open_capture(str(tmp_path))
    fake_stdin(monkeypatch, b"")
    with pytest.raises(CaptureError, match=r"^<stdin>: empty file"):
        open_capture("-")


def test_bad_arguments(tmp_path: Path) -> None:
    data, _, _ = sample_pcap()
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="default_ifindex"):
        open_capture(str(path), default_ifindex=-1)
    with open_capture(str(path)) as reader, pytest.raises(ValueError, match="batch_size"):
        next(reader.batches(0))


def test_mutated_files_raise_only_capture_error(tmp_path: Path) -> None:
    rng = random.Random(20261125)
    originals = [sample_pcap(count=6)[0], sample_pcap(order=">", nano=True)[0], sample_pcapng()[0]]
    path = tmp_path / "mutant"
    for i in range(600):
        data = bytearray(originals[i % len(originals)])
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(4, len(data))] = rng.randrange(256)
        if i % 5 == 0:
            del data[rng.randrange(4, len(data)):]
        path.write_bytes(bytes(data))
        try:
            with open_capture(str(path)) as reader:
                read_until_error(reader, batch_size=rng.choice([1, 3, 100]))
        except CaptureError as e:
            assert str(e).startswith(str(path)) and "\n" not in str(e)


@pytest.mark.parametrize("kind", ["pcap", "pcapng", "pcap-damaged"])
def test_close_while_iterating_ends_the_batches(tmp_path: Path, kind: str) -> None:
    data = sample_pcap(count=10)[0] if kind != "pcapng" else sample_pcapng()[0]
    if kind == "pcap-damaged":
        data = data[:-5]
    path = tmp_path / "capture"
    path.write_bytes(data)
    reader = open_capture(str(path))
    batches = reader.batches(3)
    next(batches)
    reader.close()
    assert list(batches) == []
    assert reader.frames_read == 3


def test_batches_from_a_closed_mapping_stay_readable(tmp_path: Path) -> None:
    data, want, _ = sample_pcap()
    path = tmp_path / "capture.pcap"
    path.write_bytes(data)
    reader = open_capture(str(path))
    batches = list(reader.batches())
    reader.close()
    reader.close()
    assert list(reader.batches()) == []
    assert_frames([f for b in batches for f in frames_of(b)], want)


# --- speed ----------------------------------------------------------------------------------------


def write_synthetic_pcap(path: Path, count: int, seed: int = 1) -> int:
    """A pcap of count frames of 54..128 bytes, written with numpy (not per record)."""
    caplen = np.random.default_rng(seed).integers(54, 129, count).astype(np.uint32)
    ends = np.cumsum(caplen + 16, dtype=np.int64)
    starts = 24 + np.concatenate((np.zeros(1, np.int64), ends[:-1]))
    body = bytearray(int(starts[-1] + 16 + caplen[-1]))
    header = np.dtype([("sec", "<u4"), ("usec", "<u4"), ("caplen", "<u4"), ("wirelen", "<u4")])
    view = np.ndarray((len(body) - 15,), dtype=header, buffer=body, strides=(1,))
    records = np.zeros(count, dtype=header)
    index = np.arange(count, dtype=np.uint32)
    records["sec"], records["usec"] = 1_700_000_000 + index // 1000, index * 997 % 1_000_000
    records["caplen"], records["wirelen"] = caplen, caplen + 100
    view[starts] = records
    del view
    body[:24] = pcap_header(snaplen=128)
    path.write_bytes(body)
    return count


@pytest.mark.slow
def test_plain_pcap_of_two_million_frames(tmp_path: Path) -> None:
    """Every frame of a large file (its speed: benchmarks/component_rates.py)."""
    path = tmp_path / "2m.pcap"
    count = write_synthetic_pcap(path, 2_000_000)
    with open_capture(str(path)) as reader:
        assert sum(len(b) for b in reader.batches()) == count


# --- the shared corpus --------------------------------------------------------------------------


def corpus(*subdirs: str) -> list[Path]:
    return sorted(p for sub in subdirs if (PCAPS / sub).is_dir()
                  for p in (PCAPS / sub).rglob("*") if p.is_file() and p.suffix != ".md")


def corpus_id(path: Path) -> str:
    return str(path.relative_to(PCAPS))


needs_corpus = pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/pcaps not present")


@dataclass(frozen=True, slots=True)
class NgSummary:
    """What dpkt's pcapng reader cannot model: several sections, SPBs, mixed time settings."""

    sections: int
    has_spb: bool
    time_settings: frozenset[tuple[bytes, bytes]]


def summarize_pcapng(raw: bytes) -> NgSummary:
    """Walk the blocks with dpkt's own block classes (independently of the reader under test)."""
    pos, sections, has_spb, settings = 0, 0, False, set()
    order = "<" if raw[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    while pos + 8 <= len(raw):
        btype, blen = struct.unpack_from(order + "II", raw, pos)
        if blen < 12:
            break
        sections += btype == 0x0A0D0D0A
        has_spb |= btype == 3
        if btype == 1:
            idb_class = (dpkt.pcapng.InterfaceDescriptionBlockLE if order == "<"
                         else dpkt.pcapng.InterfaceDescriptionBlock)
            opts = {o.code: o.data for o in idb_class(raw[pos:pos + blen]).opts}
            settings.add((opts.get(9, b"\x06"), opts.get(14, bytes(8))))
        pos += blen
    return NgSummary(sections, has_spb, frozenset(settings))


def tshark_times(path: Path) -> list[float] | None:
    if shutil.which("tshark") is None:
        return None
    command = ["tshark", "-n", "-r", str(path), "-T", "fields", "-e", "frame.time_epoch"]
    out = subprocess.run(command, capture_output=True, check=True, timeout=120, text=True).stdout
    return [float(line) for line in out.split()]


@pytest.mark.integration
@needs_corpus
@pytest.mark.parametrize("path", corpus("real"), ids=corpus_id)
def test_real_corpus_matches_dpkt(path: Path) -> None:
    raw = path.read_bytes()
    if raw.startswith(b"\x1f\x8b"):
        raw = gzip.decompress(raw)
    summary = summarize_pcapng(raw) if raw[:4] == b"\n\r\r\n" else None
    if summary is not None and (summary.sections > 1 or summary.has_spb):
        pytest.skip("dpkt reads only the first section and skips SPBs")
    try:
        reader_class = dpkt.pcapng.Reader if summary is not None else dpkt.pcap.Reader
        want = [(float(ts), bytes(frame)) for ts, frame in reader_class(io.BytesIO(raw))]
    except (ValueError, dpkt.Error, struct.error) as e:
        pytest.skip(f"dpkt cannot read it: {e}")
    with open_capture(str(path)) as reader:
        got = read_all(reader)
    assert [g.data for g in got] == [w[1] for w in want]
    if summary is not None and len(summary.time_settings) > 1:
        # dpkt applies the first interface's if_tsresol/if_tsoffset to every packet: ask tshark
        times = tshark_times(path)
        if times is None:
            pytest.skip("interfaces differ in time resolution and tshark is not installed")
    else:
        times = [w[0] for w in want]
    assert len(times) == len(got)
    worst = max((abs(g.ts - t) for g, t in zip(got, times, strict=True)),
                default=0.0)
    assert worst <= 1e-6


@pytest.mark.integration
@needs_corpus
@pytest.mark.parametrize("path", corpus("real", "malformed", "flow-export"), ids=corpus_id)
def test_corpus_reads_or_raises_capture_error(path: Path) -> None:
    try:
        with open_capture(str(path)) as reader:
            _, error = read_until_error(reader, batch_size=1000)
    except CaptureError as e:
        error = e
    if error is not None:
        assert str(error).startswith(f"{path}: ") and "\n" not in str(error)


@pytest.mark.integration
@needs_corpus
def test_corpus_streamed_equals_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every real file, read from stdin in small chunks, gives what the mapped file gives."""
    monkeypatch.setattr(streams, "STREAM_CHUNK", 4096 + 3)
    for path in corpus("real"):
        with open_capture(str(path)) as reader:
            mapped, mapped_error = read_until_error(reader)
        fake_stdin(monkeypatch, path.read_bytes())
        with open_capture("-") as reader:
            streamed, streamed_error = read_until_error(reader)
        assert streamed == mapped, path
        assert (mapped_error is None) == (streamed_error is None), path
