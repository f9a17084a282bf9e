"""Capture-file input streams: a plain file (memory-mapped), gzip or stdin read in bounded chunks, with damage salvage."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import IO, Final, Protocol

from flowd.capture.layouts import GZIP_MAGIC, Buffer

STREAM_CHUNK: Final = 4 * 1024 * 1024  # bytes read (or inflated) per step from a stream

# --- input streams ----------------------------------------------------------------------------


class StreamDamage(Exception):
    """A stream failed below the capture format (bad gzip data, read error)."""

    def __init__(self, offset: int, text: str) -> None:
        super().__init__(text)
        self.offset = offset
        self.text = text


class Stream(Protocol):
    def read(self) -> bytes:
        """Return the next chunk, b"" at the end; raise StreamDamage on damage."""
        ...


class RawStream:
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
            raise StreamDamage(self._total, f"read error ({e.strerror or e})") from None
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


class GzipStream:
    """Inflated chunks of a (possibly multi-member) gzip stream.

    On corrupt data every byte inflated before the damage is still returned, then the next read
    raises; zlib drops a failing call's output, so the longest good input prefix is re-inflated.
    """

    def __init__(self, raw: RawStream) -> None:
        self._raw = raw
        self._inflater: zlib._Decompress | None = None  # None between members
        self._input = b""
        self._raw_done = False
        self._pending = False  # the last inflate filled its output limit: zlib may hold more
        self._total = 0
        self._damage: StreamDamage | None = None

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
                    raise StreamDamage(self._total, "trailing garbage after gzip data")
                inflater = self._inflater = zlib.decompressobj(wbits=31)
            if not self._input and not self._pending and not self._fill():
                raise StreamDamage(self._total, "gzip data ends early (truncated file)")
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
            self._damage = StreamDamage(self._total + len(good), f"corrupt gzip data ({e})")
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


class Feed:
    """The input not yet parsed: a whole mapped file, or a window over a stream that refills."""

    def __init__(self, buf: Buffer, stream: Stream | None) -> None:
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
