"""NETCONF message framing over SSH (RFC 6242 §4): end-of-message (base:1.0) and chunked (base:1.1).

Pure: `Deframer.feed(bytes)` returns the whole messages received so far and keeps the rest; every
message is bounded by ``max_message`` bytes, and a framing error names what was wrong.
"""

from __future__ import annotations

import re
from typing import Final

EOM: Final = b"]]>]]>"
END_OF_CHUNKS: Final = b"\n##\n"
CHUNK_HEADER: Final = re.compile(rb"\n#([1-9][0-9]{0,9})\n")
MAX_CHUNK: Final = 4294967295  # RFC 6242 §4.2


class FramingError(Exception):
    """The peer broke the framing or sent a message over the limit; the session must end."""


def encode(message: bytes, chunked: bool) -> bytes:
    """One message framed for the wire."""
    if not chunked:
        return message + EOM
    return b"\n#%d\n" % len(message) + message + END_OF_CHUNKS if message else END_OF_CHUNKS


class Deframer:
    """Splits the byte stream into messages; ``chunked`` switches after the hello exchange."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self.chunked = False
        self._buf = bytearray()
        self._message = bytearray()  # chunks of the message being received

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            message = self._next_chunked() if self.chunked else self._next_eom()
            if message is None:
                break
            out.append(message)
        if len(self._buf) + len(self._message) > self.max_message + 32:
            raise FramingError(f"message longer than {self.max_message} bytes")
        return out

    def _next_eom(self) -> bytes | None:
        end = self._buf.find(EOM)
        if end < 0:
            return None
        message = bytes(self._buf[:end])
        del self._buf[:end + len(EOM)]
        if len(message) > self.max_message:
            raise FramingError(f"message longer than {self.max_message} bytes")
        return message

    def _next_chunked(self) -> bytes | None:
        while True:
            if len(self._buf) < 4:
                return None
            if self._buf.startswith(END_OF_CHUNKS):
                del self._buf[:len(END_OF_CHUNKS)]
                if not self._message:
                    raise FramingError("end of chunks without a chunk")
                message = bytes(self._message)
                self._message.clear()
                return message
            header = CHUNK_HEADER.match(self._buf)
            if header is None:
                if len(self._buf) >= 13 or not re.fullmatch(rb"\n(#[0-9]*)?", bytes(self._buf[:13])):
                    raise FramingError("bad chunk header")
                return None
            size = int(header.group(1))
            if size > MAX_CHUNK or len(self._message) + size > self.max_message:
                raise FramingError(f"message longer than {self.max_message} bytes")
            start = header.end()
            if len(self._buf) < start + size:
                return None
            self._message += self._buf[start:start + size]
            del self._buf[:start + size]
