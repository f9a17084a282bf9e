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
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import IO, Final

import numpy as np

from flowd.capture.layouts import (
    EPB_MIN_LEN,
    EPB_RUN_MIN,
    GZIP_MAGIC,
    IDB_MIN_LEN,
    LINKTYPE_MASK,
    LINKTYPE_RESERVED,
    MAX_BLOCK,
    MAX_CAPLEN,
    PCAP_FILE_HEADER,
    PCAP_FILE_HEADER_LEN,
    PCAP_MAGICS,
    PCAP_RECORD_HEADER_LEN,
    PCAP_VERSIONS_OK,
    PCAPNG_BOM,
    PCAPNG_BOM_SWAPPED,
    PCAPNG_LAYOUTS,
    PCAPNG_MAGIC,
    PCAPNG_VERSIONS_OK,
    SHB_MIN_LEN,
    SPB_MIN_LEN,
    STDIN_NAME,
    STDIN_PATH,
    BlockType,
    Buffer,
    CaptureError,
    CaptureFormat,
    CaptureUnreadable,
    IdbOption,
    PcapngLayout,
)
from flowd.capture.streams import Feed, GzipStream, RawStream, Stream, StreamDamage
from flowd.capture.walk import (
    EPB_DTYPES,
    PCAP_CAPLEN_AT,
    U32_DTYPES,
    WALK_PCAP,
    Interface,
    InterfaceTable,
    NgRows,
    WalkStop,
    gather_records,
    ticks_to_seconds,
)
from flowd.model.batch import FrameBatch

RELEASE_STEP: Final = 4 * 1024 * 1024  # bytes of a mapped file dropped from the resident set at a time

# --- the reader -------------------------------------------------------------------------------


class CaptureReader:
    """The frames of one capture file, read in file order as FrameBatch batches."""

    def __init__(self, name: str, fmt: CaptureFormat, feed: Feed, *, default_ifindex: int,
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
        self._released = 0  # bytes of a mapped file before this are dropped from the resident set
        # pcap
        self._order = "<"
        self._units = 1_000_000
        self._linktype = 0
        # pcapng
        self._layout: PcapngLayout | None = None  # None until the first SHB is read
        self._interfaces = InterfaceTable()  # every IDB of every section
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
        except StreamDamage as e:
            self._error = self._damage(e.offset, e.text)
            raise self._error from None
        except CaptureError as e:
            self._error = e
            raise
        self._done = True

    # -- helpers shared by both formats --

    def _damage(self, offset: int, what: str) -> CaptureError:
        return CaptureError(offset, f"{self.name}: {what} at byte {offset}")

    def _release_read(self) -> None:
        """Drop the mapped pages before the next unread byte from the resident set.

        Runs when the next batch is asked for, so the frames handed out before have been used. The
        mapping is read-only and file-backed: a page touched again is read back from the page cache,
        so this only keeps a large file from counting in full against the process's memory.
        """
        buf = self._feed.buf
        if not isinstance(buf, mmap.mmap):
            return
        upto = self._pos - self._pos % mmap.PAGESIZE
        if upto - self._released >= RELEASE_STEP:
            buf.madvise(mmap.MADV_DONTNEED, self._released, upto - self._released)
            self._released = upto

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
            self._release_read()
            walk = WALK_PCAP(feed.buf, self._pos, limit, self._order, self._units)
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
            if walk.stop is WalkStop.FULL:
                continue  # a full batch of good records; walk on
            at = feed.base + self._pos
            if walk.stop is WalkStop.TOO_LONG:
                caplen = caplen_at(feed.buf, self._pos + 8)[0]
                raise self._damage(at, f"record length {caplen} exceeds {MAX_CAPLEN}")
            if feed.more(self._pos):
                self._pos = 0
                continue
            if self._pos == len(feed.buf):
                return
            if walk.stop is WalkStop.HEADER:
                raise self._damage(at, "truncated record header")
            caplen = caplen_at(feed.buf, self._pos + 8)[0]
            present = len(feed.buf) - self._pos - PCAP_RECORD_HEADER_LEN
            raise self._damage(
                at, f"truncated record data ({caplen} bytes announced, {present} present)")

    # -- pcapng --

    def _pcapng_batches(self, limit: int) -> Iterator[FrameBatch]:
        feed = self._feed
        while not self._closed:
            self._release_read()
            rows = NgRows()
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

    def _walk_pcapng(self, rows: NgRows, limit: int) -> tuple[CaptureError | None, bool]:
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

    def _epb_run(self, rows: NgRows, buf: Buffer, pos: int, room: int,
                 layout: PcapngLayout) -> int:
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
        fields = gather_records(buf, at, EPB_DTYPES[layout.order])
        length = fields["length"].astype(np.int64)
        trailer = gather_records(buf, at + length - 4, U32_DTYPES[layout.order])
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
    def _interface(buf: Buffer, pos: int, blen: int, layout: PcapngLayout) -> Interface | str:
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
        return Interface(linktype=linktype, snaplen=snaplen, units=units, tsoffset=tsoffset)

    def _pcapng_batch(self, rows: NgRows) -> FrameBatch:
        offset, caplen, wirelen, ticks, slot, ifid = rows.columns()
        table = self._interfaces
        ts = (ticks_to_seconds(ticks, table.units[slot], table.units_float[slot])
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
    raw = RawStream(fileobj, head)
    first = raw.read_at_least(len(GZIP_MAGIC))
    stream: Stream = GzipStream(raw) if first.startswith(GZIP_MAGIC) else raw
    feed = Feed(b"", stream)
    try:
        feed.fill_to(4)
    except StreamDamage as e:
        raise CaptureError(e.offset, f"{name}: {e.text} at byte {e.offset}") from None
    fmt = _detect(name, bytes(feed.buf[:4]))
    try:
        return CaptureReader(name, fmt, feed, default_ifindex=default_ifindex, closers=closers)
    except StreamDamage as e:
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
        return CaptureReader(path, fmt, Feed(mapped, None), default_ifindex=default_ifindex,
                             closers=(close_mapping, fileobj.close))
    except BaseException:
        close_mapping()
        raise
