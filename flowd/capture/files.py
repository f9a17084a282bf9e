"""Capture-file input: pcap and pcapng files (plain, gzip-compressed, or on stdin) → FrameBatch.

Formats: pcap as in draft-ietf-opsawg-pcap (§4 file header, §5 packet record) and pcapng as in
draft-ietf-opsawg-pcapng (§4.1 SHB, §4.2 IDB, §4.3 EPB, §4.4 SPB, Appendix A obsolete PB).

A plain pcap or pcapng file is memory-mapped and its batches point straight into the mapping.
A gzip file or stdin is read in bounded chunks; a record cut by a chunk edge is carried over to
the next chunk, so memory stays bounded by the chunk size plus one record (or pcapng block).
The pcap record walk is a tight ``unpack_from`` loop that collects record offsets only; every
header field is then gathered for the whole batch at once through a strided numpy view. When the
optional extension ``flowd.native._fastpath`` is built (flowd/native/_fastpath.c), its ``walk_pcap`` does the same
walk in C; FLOWD_NO_FASTPATH=1 keeps the Python one.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum, IntEnum
from types import TracebackType
from typing import IO, Final, Protocol

import numpy as np
import numpy.typing as npt

from flowd.model.batch import F64, I64, U16, U32, U64, FrameBatch
from flowd.native import compiled

MAX_CAPLEN: Final = 256 * 1024  # libpcap's MAXIMUM_SNAPLEN: a longer pcap record is damage
MAX_BLOCK: Final = 16 * 1024 * 1024  # a longer pcapng block is damage (bounds memory per block)
STREAM_CHUNK: Final = 4 * 1024 * 1024  # bytes read (or inflated) per step from a stream

STDIN_PATH: Final = "-"
STDIN_NAME: Final = "<stdin>"


class CaptureError(Exception):
    """A capture file is missing, unreadable, of unknown format, damaged or truncated."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset  # byte offset of the damage in the (decompressed) stream
        self.message = message  # one line, starting with the file name

    def __str__(self) -> str:
        return self.message


class CaptureUnreadable(CaptureError):
    """The capture file cannot be opened or read at all (missing, no permission, no standard input)."""


class CaptureFormat(Enum):
    PCAP = "pcap"
    PCAPNG = "pcapng"


class LinkType(IntEnum):
    """LINKTYPE_* numbers flowd's decoder knows; the reader passes every number through as is."""

    NULL = 0  # BSD loopback: 4-byte address family in host byte order
    ETHERNET = 1
    RAW_DLT12 = 12  # DLT_RAW on most systems; written into some files as if it were a LINKTYPE
    RAW_DLT14 = 14  # DLT_RAW on OpenBSD
    RAW = 101  # raw IPv4 or IPv6, version nibble decides
    LOOP = 108  # OpenBSD loopback: 4-byte address family in network byte order
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276


# --- wire layouts -----------------------------------------------------------------------------

GZIP_MAGIC: Final = b"\x1f\x8b"
PCAPNG_SHB_TYPE: Final = 0x0A0D0D0A  # byte-order independent (a palindrome)
PCAPNG_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
PCAPNG_BOM: Final = 0x1A2B3C4D
PCAPNG_BOM_SWAPPED: Final = 0x4D3C2B1A  # the byte-order magic read in the wrong byte order

# pcap magic bytes as they appear in the file -> (byte order, timestamp fraction units per second)
PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
PCAP_FILE_HEADER_LEN: Final = 24
PCAP_RECORD_HEADER_LEN: Final = 16
# after the magic: version major, minor, thiszone, sigfigs, snaplen, link-type word
PCAP_FILE_HEADER: Final = {order: struct.Struct(order + "4xHHiIII") for order in "<>"}
PCAP_VERSIONS_OK: Final = ((2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (543, 0))  # as libpcap
LINKTYPE_MASK: Final = 0x0000FFFF  # the link-type word: FCS length in bits 28-31, F bit 26
LINKTYPE_RESERVED: Final = 0x03FF0000  # must be zero (libpcap rejects the file otherwise)
PCAPNG_VERSIONS_OK: Final = ((1, 0), (1, 2))  # as libpcap


class BlockType(IntEnum):
    """pcapng block types this reader interprets; every other block is skipped."""

    IDB = 1
    PB = 2  # obsolete Packet Block
    SPB = 3
    EPB = 6
    SHB = PCAPNG_SHB_TYPE


class IdbOption(IntEnum):
    END = 0
    IF_TSRESOL = 9
    IF_TSOFFSET = 14


@dataclass(frozen=True, slots=True)
class _PcapngLayout:
    """The struct layouts of one pcapng byte order (each section picks one)."""

    order: str  # "<" or ">"
    u32: struct.Struct
    block_head: struct.Struct  # type, total length
    shb: struct.Struct  # byte-order magic, major, minor, section length
    idb: struct.Struct  # link type, reserved, snaplen
    epb: struct.Struct  # interface id, ts high, ts low, captured length, original length
    pb: struct.Struct  # interface id (u16), drops (u16), ts high, ts low, captured, original
    option: struct.Struct  # code, length
    tsoffset: struct.Struct

    @staticmethod
    def of(order: str) -> _PcapngLayout:
        return _PcapngLayout(
            order=order, u32=struct.Struct(order + "I"), block_head=struct.Struct(order + "II"),
            shb=struct.Struct(order + "IHHq"), idb=struct.Struct(order + "HHI"),
            epb=struct.Struct(order + "IIIII"), pb=struct.Struct(order + "HHIIII"),
            option=struct.Struct(order + "HH"), tsoffset=struct.Struct(order + "q"),
        )


PCAPNG_LAYOUTS: Final = {"<": _PcapngLayout.of("<"), ">": _PcapngLayout.of(">")}
SHB_MIN_LEN: Final = 28  # type, length, BOM, major, minor, section length, trailer
IDB_MIN_LEN: Final = 20  # type, length, link type, reserved, snaplen, trailer
EPB_MIN_LEN: Final = 32  # type, length, 5 x u32 fields, trailer
SPB_MIN_LEN: Final = 16  # type, length, original length, trailer
EPB_RUN_MIN: Final = 8  # shorter runs of EPBs are parsed one by one

Buffer = bytes | mmap.mmap


# --- input streams ----------------------------------------------------------------------------


class _StreamDamage(Exception):
    """A stream failed below the capture format (bad gzip data, read error)."""

    def __init__(self, offset: int, text: str) -> None:
        super().__init__(text)
        self.offset = offset
        self.text = text


class _Stream(Protocol):
    def read(self) -> bytes:
        """Return the next chunk, b"" at the end; raise _StreamDamage on damage."""
        ...


class _RawStream:
    """Chunks of a binary file object (stdin, a pipe, a gzip file's compressed bytes)."""

    def __init__(self, fileobj: IO[bytes], head: bytes = b"") -> None:
        self._head = head
        self._total = len(head)
        read1 = getattr(fileobj, "read1", None)
        self._read: Callable[[int], bytes] = read1 if read1 is not None else fileobj.read

    def read(self) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            return head
        try:
            chunk = self._read(STREAM_CHUNK)
        except OSError as e:
            raise _StreamDamage(self._total, f"read error ({e.strerror or e})") from None
        self._total += len(chunk)
        return chunk

    def read_at_least(self, n: int) -> bytes:
        """Read until n bytes or the end; the next read() returns them again."""
        data, self._head = self._head, b""
        while len(data) < n:
            chunk = self.read()
            if not chunk:
                break
            data += chunk
        self._head = data
        return data


class _GzipStream:
    """Inflated chunks of a (possibly multi-member) gzip stream.

    On corrupt data every byte inflated before the damage is still returned, then the next read
    raises; zlib drops a failing call's output, so the longest good input prefix is re-inflated.
    """

    def __init__(self, raw: _RawStream) -> None:
        self._raw = raw
        self._inflater: zlib._Decompress | None = None  # None between members
        self._input = b""
        self._raw_done = False
        self._pending = False  # the last inflate filled its output limit: zlib may hold more
        self._total = 0
        self._damage: _StreamDamage | None = None

    def _fill(self) -> bool:
        if self._raw_done:
            return False
        chunk = self._raw.read()
        if not chunk:
            self._raw_done = True
            return False
        self._input = self._input + chunk if self._input else chunk
        return True

    def read(self) -> bytes:
        while True:
            if self._damage is not None:
                raise self._damage
            inflater = self._inflater
            if inflater is None:
                # Between members: gzip(1) tolerates zero padding, then wants a member or the end.
                self._input = self._input.lstrip(b"\0")
                if len(self._input) < len(GZIP_MAGIC) and self._fill():
                    continue
                if not self._input:
                    return b""
                if not self._input.startswith(GZIP_MAGIC):
                    raise _StreamDamage(self._total, "trailing garbage after gzip data")
                inflater = self._inflater = zlib.decompressobj(wbits=31)
            if not self._input and not self._pending and not self._fill():
                raise _StreamDamage(self._total, "gzip data ends early (truncated file)")
            out = self._inflate(inflater)
            self._pending = len(out) >= STREAM_CHUNK
            if inflater.eof:
                self._input, self._inflater = inflater.unused_data, None
            else:
                self._input = inflater.unconsumed_tail
            if out:
                self._total += len(out)
                return out

    def _inflate(self, inflater: zlib._Decompress) -> bytes:
        saved = inflater.copy()
        try:
            return inflater.decompress(self._input, STREAM_CHUNK)
        except zlib.error as e:
            good = _salvage(saved, self._input)
            self._damage = _StreamDamage(self._total + len(good), f"corrupt gzip data ({e})")
            self._input = b""
            return good


def _salvage(inflater: zlib._Decompress, data: bytes) -> bytes:
    """Inflate the longest prefix of data that does not fail (output stays below STREAM_CHUNK)."""

    def inflates(n: int) -> bool:
        try:
            inflater.copy().decompress(data[:n], STREAM_CHUNK)
        except zlib.error:
            return False
        return True

    lo, hi = 0, len(data)  # data[:lo] inflates, data[:hi] fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if inflates(mid):
            lo = mid
        else:
            hi = mid
    return inflater.copy().decompress(data[:lo], STREAM_CHUNK)


class _Feed:
    """The input not yet parsed: a whole mapped file, or a window over a stream that refills."""

    def __init__(self, buf: Buffer, stream: _Stream | None) -> None:
        self.buf: Buffer = buf
        self.base = 0  # stream offset of buf[0]
        self.stream = stream

    def more(self, pos: int) -> bool:
        """Keep buf[pos:], append the next chunk; False when the input has ended."""
        if self.stream is None:
            return False
        chunk = self.stream.read()
        if not chunk:
            return False
        rest = self.buf[pos:]
        self.buf = rest + chunk if rest else chunk
        self.base += pos
        return True

    def fill_to(self, n: int) -> bool:
        """Read until buf holds at least n bytes; False if the input ends first."""
        while len(self.buf) < n:
            if not self.more(0):
                return False
        return True


# --- column helpers ---------------------------------------------------------------------------


def _pcap_header_dtype(order: str) -> np.dtype[np.void]:
    return np.dtype([("sec", order + "u4"), ("frac", order + "u4"),
                     ("caplen", order + "u4"), ("wirelen", order + "u4")])


PCAP_HEADER_DTYPES: Final = {"<": _pcap_header_dtype("<"), ">": _pcap_header_dtype(">")}
PCAP_CAPLEN_AT: Final = {order: struct.Struct(order + "I").unpack_from for order in "<>"}
EPB_DTYPES: Final = {  # an EPB from its first byte up to its packet data
    order: np.dtype([(name, order + "u4") for name in
                     ("type", "length", "ifid", "high", "low", "caplen", "wirelen")])
    for order in "<>"
}
U32_DTYPES: Final = {order: np.dtype(order + "u4") for order in "<>"}


def _gather_records(buf: Buffer, offsets: I64, dtype: np.dtype[np.void]) -> npt.NDArray[np.void]:
    """Copy the record headers starting at each offset out of buf (one strided view, one gather)."""
    rows = len(buf) - dtype.itemsize + 1
    view = np.ndarray(shape=(max(rows, 0),), dtype=dtype, buffer=buf, strides=(1,))
    return view[offsets]


def _ticks_to_seconds(ticks: U64, units: U64, units_float: F64) -> F64:
    """Seconds for timestamps counted in 1/units s (whole seconds split off for precision).

    A units of 0 stands for a resolution too fine for uint64; units_float holds it.
    """
    exact = units != 0
    divisor = np.where(exact, units, np.uint64(1))
    whole = ticks // divisor
    seconds: F64 = whole.astype(np.float64) + (ticks - whole * divisor) / units_float
    if not exact.all():
        seconds = np.where(exact, seconds, ticks / units_float)
    return seconds


def _walk_pcap(buf: Buffer, pos: int, limit: int,
               caplen_at: Callable[[Buffer, int], tuple[int, ...]]) -> list[int]:
    """Offsets of up to limit consecutive records from pos; unchecked (see _walk_pcap_numpy).

    Stops early when a record header would start past the buffer; that last offset is included.
    """
    offsets: list[int] = []
    append = offsets.append
    try:
        for _ in range(limit):
            append(pos)
            pos += 16 + caplen_at(buf, pos + 8)[0]
    except struct.error:
        pass
    return offsets


class _WalkStop(IntEnum):
    """Why a pcap record walk stopped; the same numbers as walk_pcap's in flowd/native/_fastpath.c."""

    FULL = 0  # the batch is full
    HEADER = 1  # the buffer ends at or inside the next record header
    TOO_LONG = 2  # the next record's captured length exceeds MAX_CAPLEN
    DATA = 3  # the buffer ends inside the next record's data


@dataclass(frozen=True, slots=True)
class _PcapWalk:
    """The sound records a walk took (data offset, lengths, time) and where and why it stopped."""

    offset: I64
    caplen: U32
    wirelen: U32
    ts: F64
    end: int  # the first byte after the last record taken
    stop: _WalkStop


_PcapWalker = Callable[[Buffer, int, int, str, int], _PcapWalk]  # buf, pos, limit, byte order, units


def _walk_pcap_numpy(buf: Buffer, pos: int, limit: int, order: str, units: int) -> _PcapWalk:
    """Up to limit sound records from pos: the Python walk, then one numpy gather of the headers."""
    end = len(buf)
    offsets = np.array(_walk_pcap(buf, pos, limit, PCAP_CAPLEN_AT[order]), dtype=np.int64)
    # Offsets increase, so the records whose 16-byte header is present form a prefix.
    complete = int(np.searchsorted(offsets, end - PCAP_RECORD_HEADER_LEN, side="right"))
    headers = _gather_records(buf, offsets[:complete], PCAP_HEADER_DTYPES[order])
    caplen = headers["caplen"].astype(np.uint32)
    data = offsets[:complete] + PCAP_RECORD_HEADER_LEN
    bad = np.flatnonzero((caplen > MAX_CAPLEN) | (data + caplen > end))
    good = int(bad[0]) if bad.size else complete
    if good == len(offsets):  # only a walk that took limit records has no incomplete last one
        stop = _WalkStop.FULL
    elif good == complete:
        stop = _WalkStop.HEADER
    else:
        stop = _WalkStop.TOO_LONG if caplen[good] > MAX_CAPLEN else _WalkStop.DATA
    head = headers[:good]
    return _PcapWalk(offset=data[:good], caplen=caplen[:good],
                     wirelen=head["wirelen"].astype(np.uint32),
                     ts=head["sec"] + head["frac"] / float(units),
                     end=int(data[good - 1]) + int(caplen[good - 1]) if good else pos, stop=stop)


def _compiled_walker() -> _PcapWalker | None:
    """_walk_pcap_numpy's C twin (flowd.native._fastpath); None if unbuilt, disabled or mismatched."""
    walk = compiled("walk_pcap", WALK_STOPS={stop.name: stop.value for stop in _WalkStop})
    if walk is None:
        return None
    swapped = {"<": sys.byteorder != "little", ">": sys.byteorder == "little"}

    def walk_pcap_compiled(buf: Buffer, pos: int, limit: int, order: str, units: int) -> _PcapWalk:
        offset, caplen = np.empty(limit, np.int64), np.empty(limit, np.uint32)
        wirelen, ts = np.empty(limit, np.uint32), np.empty(limit, np.float64)
        count, end, stop = walk(buf, pos, len(buf), limit, swapped[order], units == 1_000_000_000,
                                offset, caplen, wirelen, ts, MAX_CAPLEN)
        return _PcapWalk(offset=offset[:count], caplen=caplen[:count], wirelen=wirelen[:count],
                         ts=ts[:count], end=end, stop=_WalkStop(stop))

    return walk_pcap_compiled


_WALK_PCAP: _PcapWalker = _compiled_walker() or _walk_pcap_numpy


@dataclass(frozen=True, slots=True)
class _Interface:
    """One pcapng interface, as its IDB described it."""

    linktype: int
    snaplen: int  # 0 = no limit
    units: int  # timestamp ticks per second (if_tsresol)
    tsoffset: int  # seconds added to every timestamp (if_tsoffset)


class _InterfaceTable:
    """Every pcapng interface of the file, in IDB order, with numpy columns for per-frame lookup."""

    def __init__(self) -> None:
        self.items: list[_Interface] = []
        self.linktype: U16 = np.zeros(8, dtype=np.uint16)
        self.units: U64 = np.zeros(8, dtype=np.uint64)  # 0: too fine for uint64, see units_float
        self.units_float: F64 = np.ones(8, dtype=np.float64)
        self.tsoffset: F64 = np.zeros(8, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.items)

    def append(self, interface: _Interface) -> None:
        n = len(self.items)
        if n == len(self.linktype):  # grow by doubling: a file may hold very many IDBs
            self.linktype = np.resize(self.linktype, 2 * n)
            self.units = np.resize(self.units, 2 * n)
            self.units_float = np.resize(self.units_float, 2 * n)
            self.tsoffset = np.resize(self.tsoffset, 2 * n)
        self.items.append(interface)
        self.linktype[n] = interface.linktype
        self.units[n] = interface.units if interface.units < 1 << 64 else 0
        self.units_float[n] = float(interface.units)
        self.tsoffset[n] = float(interface.tsoffset)


class _NgRows:
    """The frames of a pcapng batch being collected: numpy runs of EPBs, Python rows otherwise."""

    Run = tuple[I64, U32, U32, U64, I64, U32]  # offset, caplen, wirelen, ticks, slot, ifid

    def __init__(self) -> None:
        self.count = 0
        self.untimed: list[int] = []  # rows of SPBs, which carry no timestamp
        self._runs: list[_NgRows.Run] = []
        self._rows: list[tuple[int, int, int, int, int, int]] = []

    def add(self, offset: int, caplen: int, wirelen: int, ticks: int, slot: int, ifid: int,
            *, timed: bool = True) -> None:
        """Add one frame; slot indexes CaptureReader._interfaces."""
        if not timed:
            self.untimed.append(self.count)
        self._rows.append((offset, caplen, wirelen, ticks, slot, ifid))
        self.count += 1

    def add_run(self, offset: I64, caplen: U32, wirelen: U32, ticks: U64, slot: I64,
                ifid: U32) -> None:
        self._flush()
        self._runs.append((offset, caplen, wirelen, ticks, slot, ifid))
        self.count += len(offset)

    def _flush(self) -> None:
        if self._rows:
            offset, caplen, wirelen, ticks, slot, ifid = zip(*self._rows, strict=True)
            self._runs.append((
                np.array(offset, dtype=np.int64), np.array(caplen, dtype=np.uint32),
                np.array(wirelen, dtype=np.uint32), np.array(ticks, dtype=np.uint64),
                np.array(slot, dtype=np.int64), np.array(ifid, dtype=np.uint32)))
            self._rows = []

    def columns(self) -> _NgRows.Run:
        self._flush()
        if len(self._runs) == 1:
            return self._runs[0]
        offset, caplen, wirelen, ticks, slot, ifid = zip(*self._runs, strict=True)
        return (np.concatenate(offset), np.concatenate(caplen), np.concatenate(wirelen),
                np.concatenate(ticks), np.concatenate(slot), np.concatenate(ifid))


# --- the reader -------------------------------------------------------------------------------


class CaptureReader:
    """The frames of one capture file, read in file order as FrameBatch batches."""

    def __init__(self, name: str, fmt: CaptureFormat, feed: _Feed, *, default_ifindex: int,
                 closers: tuple[Callable[[], None], ...]) -> None:
        self.name = name
        self.format = fmt
        self.frames_read = 0
        self._feed = feed
        self._closers = closers
        self._default_ifindex = default_ifindex
        self._pos = 0  # next unparsed byte in feed.buf
        self._error: CaptureError | None = None
        self._done = False  # every frame has been read, or the reader is closed
        self._closed = False
        self._view: memoryview | None = None  # the mapped file, shared by every batch
        # pcap
        self._order = "<"
        self._units = 1_000_000
        self._linktype = 0
        # pcapng
        self._layout: _PcapngLayout | None = None  # None until the first SHB is read
        self._interfaces = _InterfaceTable()  # every IDB of every section
        self._first = 0  # index in _interfaces of this section's interface 0
        self._last_ts = 0.0
        if fmt is CaptureFormat.PCAP:
            self._read_pcap_header()

    def __enter__(self) -> CaptureReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Release the file; batches already yielded from a mapped file stay readable."""
        self._done = self._closed = True
        self._view = None
        self._feed.buf = b""
        self._feed.stream = None
        closers, self._closers = self._closers, ()
        for close in closers:
            close()

    def batches(self, batch_size: int = 65536) -> Iterator[FrameBatch]:
        """Yield batches of up to batch_size frames in file order.

        On damage, every complete frame before it is yielded first, then CaptureError is raised.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if self._error is not None:
            raise self._error
        if self._done:
            return
        parts = self._pcap_batches if self.format is CaptureFormat.PCAP else self._pcapng_batches
        try:
            for batch in parts(batch_size):
                self.frames_read += len(batch)
                yield batch
        except _StreamDamage as e:
            self._error = self._damage(e.offset, e.text)
            raise self._error from None
        except CaptureError as e:
            self._error = e
            raise
        self._done = True

    # -- helpers shared by both formats --

    def _damage(self, offset: int, what: str) -> CaptureError:
        return CaptureError(offset, f"{self.name}: {what} at byte {offset}")

    def _batch_buffer(self) -> bytes | memoryview:
        buf = self._feed.buf
        if isinstance(buf, mmap.mmap):
            if self._view is None:
                self._view = memoryview(buf)
            return self._view
        return buf

    # -- pcap --

    def _read_pcap_header(self) -> None:
        feed = self._feed
        if not feed.fill_to(PCAP_FILE_HEADER_LEN):
            raise self._damage(0, "truncated pcap file header")
        order, units = PCAP_MAGICS[bytes(feed.buf[:4])]
        major, minor, _zone, _sigfigs, _snaplen, network = (
            PCAP_FILE_HEADER[order].unpack_from(feed.buf, 0))
        if (major, minor) not in PCAP_VERSIONS_OK:
            raise self._damage(4, f"unsupported pcap version {major}.{minor}")
        if network & LINKTYPE_RESERVED:
            raise self._damage(20, f"link-type reserved bits set ({network:#010x})")
        self._order, self._units, self._linktype = order, units, network & LINKTYPE_MASK
        self._pos = PCAP_FILE_HEADER_LEN

    def _pcap_batches(self, limit: int) -> Iterator[FrameBatch]:
        feed = self._feed
        caplen_at = PCAP_CAPLEN_AT[self._order]
        while not self._closed:
            walk = _WALK_PCAP(feed.buf, self._pos, limit, self._order, self._units)
            self._pos = walk.end
            good = len(walk.offset)
            if good:
                yield FrameBatch(
                    buf=self._batch_buffer(), offset=walk.offset, caplen=walk.caplen,
                    wirelen=walk.wirelen, ts=walk.ts,
                    linktype=np.full(good, self._linktype, np.uint16),
                    ifindex=np.full(good, self._default_ifindex, np.uint32),
                )
                if self._closed:
                    return
            if walk.stop is _WalkStop.FULL:
                continue  # a full batch of good records; walk on
            at = feed.base + self._pos
            if walk.stop is _WalkStop.TOO_LONG:
                caplen = caplen_at(feed.buf, self._pos + 8)[0]
                raise self._damage(at, f"record length {caplen} exceeds {MAX_CAPLEN}")
            if feed.more(self._pos):
                self._pos = 0
                continue
            if self._pos == len(feed.buf):
                return
            if walk.stop is _WalkStop.HEADER:
                raise self._damage(at, "truncated record header")
            caplen = caplen_at(feed.buf, self._pos + 8)[0]
            present = len(feed.buf) - self._pos - PCAP_RECORD_HEADER_LEN
            raise self._damage(
                at, f"truncated record data ({caplen} bytes announced, {present} present)")

    # -- pcapng --

    def _pcapng_batches(self, limit: int) -> Iterator[FrameBatch]:
        feed = self._feed
        while not self._closed:
            rows = _NgRows()
            failure, full = self._walk_pcapng(rows, limit)
            if rows.count:
                yield self._pcapng_batch(rows)
                if self._closed:
                    return
            if failure is not None:
                raise failure
            if full:
                continue
            if feed.more(self._pos):
                self._pos = 0
                continue
            if self._pos == len(feed.buf):
                return
            raise self._damage(feed.base + self._pos, "truncated block")

    def _walk_pcapng(self, rows: _NgRows, limit: int) -> tuple[CaptureError | None, bool]:
        """Parse whole blocks from self._pos into rows; return (damage found, batch full).

        Runs of EPBs take the fast path (_epb_run); every other block, and an EPB the fast
        path refused, is parsed here one at a time with every check spelled out.
        """
        buf = self._feed.buf
        base = self._feed.base
        end = len(buf)
        pos = self._pos
        layout = self._layout or PCAPNG_LAYOUTS["<"]  # the first block is an SHB (by its magic)
        first = self._first
        interfaces = self._interfaces
        failure: CaptureError | None = None
        full = False
        while True:
            pos = self._epb_run(rows, buf, pos, limit - rows.count, layout)
            if rows.count >= limit:
                full = True
                break
            if pos + 12 > end:  # type, length and (for an SHB) the byte-order magic
                break
            btype, blen = layout.block_head.unpack_from(buf, pos)
            if btype == BlockType.SHB:
                bom = layout.u32.unpack_from(buf, pos + 8)[0]
                if bom == PCAPNG_BOM_SWAPPED:
                    layout = PCAPNG_LAYOUTS[">" if layout.order == "<" else "<"]
                elif bom != PCAPNG_BOM:
                    failure = self._damage(base + pos, f"bad byte-order magic {bom:#010x}")
                    break
                blen = layout.u32.unpack_from(buf, pos + 4)[0]
            if blen < 12 or blen % 4:
                failure = self._damage(base + pos, f"invalid block length {blen}")
                break
            if blen > MAX_BLOCK:
                failure = self._damage(base + pos, f"block length {blen} exceeds {MAX_BLOCK}")
                break
            if pos + blen > end:
                break
            trailer = layout.u32.unpack_from(buf, pos + blen - 4)[0]
            if trailer != blen:
                failure = self._damage(
                    base + pos, f"block trailer length {trailer} differs from header length {blen}")
                break
            if btype == BlockType.EPB or btype == BlockType.PB:
                if blen < EPB_MIN_LEN:
                    failure = self._damage(base + pos, f"packet block too short ({blen} bytes)")
                    break
                if btype == BlockType.EPB:
                    ifid, high, low, caplen, wirelen = layout.epb.unpack_from(buf, pos + 8)
                else:
                    ifid, _drops, high, low, caplen, wirelen = layout.pb.unpack_from(buf, pos + 8)
                if ifid >= len(interfaces) - first:
                    failure = self._damage(base + pos, f"packet on undefined interface {ifid}")
                    break
                if caplen > blen - EPB_MIN_LEN:
                    failure = self._damage(
                        base + pos, f"captured length {caplen} exceeds its {blen}-byte block")
                    break
                rows.add(pos + 28, caplen, wirelen, high << 32 | low, first + ifid, ifid)
            elif btype == BlockType.SPB:
                if len(interfaces) == first:
                    failure = self._damage(base + pos, "simple packet block before any interface")
                    break
                if blen < SPB_MIN_LEN:
                    failure = self._damage(
                        base + pos, f"simple packet block too short ({blen} bytes)")
                    break
                wirelen = layout.u32.unpack_from(buf, pos + 8)[0]
                snaplen = interfaces.items[first].snaplen
                caplen = min(wirelen, blen - SPB_MIN_LEN)
                if snaplen:
                    caplen = min(caplen, snaplen)
                rows.add(pos + 12, caplen, wirelen, 0, first, 0, timed=False)
            elif btype == BlockType.IDB:
                interface = self._interface(buf, pos, blen, layout)
                if isinstance(interface, str):
                    failure = self._damage(base + pos, interface)
                    break
                interfaces.append(interface)
            elif btype == BlockType.SHB:
                if blen < SHB_MIN_LEN:
                    failure = self._damage(
                        base + pos, f"section header block too short ({blen} bytes)")
                    break
                _bom, major, minor, _length = layout.shb.unpack_from(buf, pos + 8)
                if (major, minor) not in PCAPNG_VERSIONS_OK:
                    failure = self._damage(
                        base + pos, f"unsupported pcapng version {major}.{minor}")
                    break
                first = self._first = len(interfaces)
            pos += blen
        self._pos = pos
        self._layout = layout
        return failure, full

    def _epb_run(self, rows: _NgRows, buf: Buffer, pos: int, room: int,
                 layout: _PcapngLayout) -> int:
        """Take up to room consecutive sound EPBs from pos into rows; return where they end.

        The walk reads only each block's type and length; the other checks (the ones
        _walk_pcapng makes) run over the whole run at once. The run stops before the first
        block that is not an EPB or fails a check, and _walk_pcapng takes that block on; so
        does it a run too short to repay numpy's per-call cost.
        """
        head = layout.block_head.unpack_from
        end = len(buf)
        starts: list[int] = []
        append = starts.append
        try:
            for _ in range(room):
                btype, blen = head(buf, pos)
                if btype != BlockType.EPB or blen < EPB_MIN_LEN or pos + blen > end:
                    break
                append(pos)
                pos += blen
        except struct.error:  # fewer than 8 bytes left
            pass
        if len(starts) < EPB_RUN_MIN:
            return starts[0] if starts else pos
        at = np.array(starts, dtype=np.int64)
        fields = _gather_records(buf, at, EPB_DTYPES[layout.order])
        length = fields["length"].astype(np.int64)
        trailer = _gather_records(buf, at + length - 4, U32_DTYPES[layout.order])
        caplen = fields["caplen"].astype(np.uint32)
        ifid = fields["ifid"].astype(np.uint32)
        bad = np.flatnonzero((length % 4 != 0) | (length > MAX_BLOCK) | (trailer != length)
                             | (ifid >= len(self._interfaces) - self._first)
                             | (caplen > length - EPB_MIN_LEN))
        good = int(bad[0]) if bad.size else len(starts)
        if good:
            ticks = fields["high"][:good].astype(np.uint64) << np.uint64(32) | fields["low"][:good]
            rows.add_run(at[:good] + 28, caplen[:good], fields["wirelen"][:good].astype(np.uint32),
                         ticks, ifid[:good].astype(np.int64) + self._first, ifid[:good])
        return pos if good == len(starts) else starts[good]

    @staticmethod
    def _interface(buf: Buffer, pos: int, blen: int, layout: _PcapngLayout) -> _Interface | str:
        """The interface an IDB describes, or what is wrong with the block."""
        if blen < IDB_MIN_LEN:
            return f"interface description block too short ({blen} bytes)"
        linktype, _reserved, snaplen = layout.idb.unpack_from(buf, pos + 8)
        units, tsoffset = 1_000_000, 0
        opt, end = pos + 16, pos + blen - 4
        while opt + 4 <= end:
            code, length = layout.option.unpack_from(buf, opt)
            if code == IdbOption.END:
                break
            value = opt + 4
            if value + length > end:
                return f"interface option {code} runs past its block"
            if code == IdbOption.IF_TSRESOL:
                if length != 1:
                    return f"if_tsresol option has length {length}, not 1"
                resol = buf[value]
                units = 2 ** (resol & 0x7F) if resol & 0x80 else 10 ** resol
            elif code == IdbOption.IF_TSOFFSET:
                if length != 8:
                    return f"if_tsoffset option has length {length}, not 8"
                tsoffset = layout.tsoffset.unpack_from(buf, value)[0]
            opt = value + (length + 3) // 4 * 4
        return _Interface(linktype=linktype, snaplen=snaplen, units=units, tsoffset=tsoffset)

    def _pcapng_batch(self, rows: _NgRows) -> FrameBatch:
        offset, caplen, wirelen, ticks, slot, ifid = rows.columns()
        table = self._interfaces
        ts = (_ticks_to_seconds(ticks, table.units[slot], table.units_float[slot])
              + table.tsoffset[slot])
        if rows.untimed:
            # SPBs carry no time: each takes the previous frame's (the previous batch's if first).
            timed = np.ones(len(ts), dtype=np.bool_)
            timed[rows.untimed] = False
            last = np.maximum.accumulate(np.where(timed, np.arange(len(ts)), -1))
            ts = np.where(last >= 0, ts[np.maximum(last, 0)], self._last_ts)
        self._last_ts = float(ts[-1])
        return FrameBatch(buf=self._batch_buffer(), offset=offset, caplen=caplen, wirelen=wirelen,
                          ts=ts, linktype=table.linktype[slot], ifindex=ifid + np.uint32(1))


# --- opening ----------------------------------------------------------------------------------


def _detect(name: str, magic: bytes) -> CaptureFormat:
    if magic in PCAP_MAGICS:
        return CaptureFormat.PCAP
    if magic == PCAPNG_MAGIC:
        return CaptureFormat.PCAPNG
    if not magic:
        raise CaptureError(0, f"{name}: empty file, not a pcap or pcapng capture")
    raise CaptureError(0, f"{name}: not a pcap or pcapng capture (starts with {magic.hex()})")


def _open_stream(name: str, fileobj: IO[bytes], head: bytes,
                 closers: tuple[Callable[[], None], ...], default_ifindex: int) -> CaptureReader:
    raw = _RawStream(fileobj, head)
    first = raw.read_at_least(len(GZIP_MAGIC))
    stream: _Stream = _GzipStream(raw) if first.startswith(GZIP_MAGIC) else raw
    feed = _Feed(b"", stream)
    try:
        feed.fill_to(4)
    except _StreamDamage as e:
        raise CaptureError(e.offset, f"{name}: {e.text} at byte {e.offset}") from None
    fmt = _detect(name, bytes(feed.buf[:4]))
    try:
        return CaptureReader(name, fmt, feed, default_ifindex=default_ifindex, closers=closers)
    except _StreamDamage as e:
        raise CaptureError(e.offset, f"{name}: {e.text} at byte {e.offset}") from None


def open_capture(path: str, *, default_ifindex: int = 1) -> CaptureReader:
    """Open a pcap or pcapng file, plain or gzip-compressed, by its magic; "-" reads stdin.

    Args:
        default_ifindex: the input interface index given to every frame of a pcap file
            (pcapng frames get their interface id + 1).
    """
    if not 0 <= default_ifindex <= 0xFFFFFFFF:
        raise ValueError(f"default_ifindex must be 0..4294967295, got {default_ifindex}")
    if path == STDIN_PATH:
        stdin = getattr(sys.stdin, "buffer", None)
        if stdin is None:
            raise CaptureUnreadable(0, f"{STDIN_NAME}: no standard input to read")
        return _open_stream(STDIN_NAME, stdin, b"", (), default_ifindex)
    try:
        fileobj = open(path, "rb")  # noqa: SIM115 - the reader owns and closes it
    except OSError as e:
        raise CaptureUnreadable(0, f"{path}: {e.strerror or e}") from None
    try:
        return _open_file(path, fileobj, default_ifindex)
    except OSError as e:
        fileobj.close()
        raise CaptureUnreadable(0, f"{path}: {e.strerror or e}") from None
    except BaseException:
        fileobj.close()
        raise


def _open_file(path: str, fileobj: IO[bytes], default_ifindex: int) -> CaptureReader:
    """Map a plain regular file; read anything else (gzip, pipe, device) as a stream."""
    regular = stat.S_ISREG(os.fstat(fileobj.fileno()).st_mode)
    magic = fileobj.read(4)
    if not regular or magic.startswith(GZIP_MAGIC) or len(magic) < 4:
        return _open_stream(path, fileobj, magic, (fileobj.close,), default_ifindex)
    fmt = _detect(path, magic)
    try:
        mapped = mmap.mmap(fileobj.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):  # a file system without mmap support
        fileobj.seek(0)
        return _open_stream(path, fileobj, b"", (fileobj.close,), default_ifindex)

    def close_mapping() -> None:
        with contextlib.suppress(BufferError):  # batches still point into it: unmapped with them
            mapped.close()

    try:
        return CaptureReader(path, fmt, _Feed(mapped, None), default_ifindex=default_ifindex,
                             closers=(close_mapping, fileobj.close))
    except BaseException:
        close_mapping()
        raise
