"""One control request over a fresh connection, read as raw JSON (a streamed result put back together)."""

from __future__ import annotations

import json
import socket
from typing import Any

from flowd.control.protocol import Assembly, Chunk, End, Response, decode_reply


def call_raw(path: str, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """The reply object as the daemon sends it; for a streamed result, the object it stands for."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(path)
        s.sendall(json.dumps({"id": 1, "method": method, "params": params or {}}).encode() + b"\n")
        lines = s.makefile("rb")
        first = lines.readline()
        head = decode_reply(first)
        if not (isinstance(head, Response) and head.more is not None):
            reply: dict[str, Any] = json.loads(first)
            return reply
        assembly = Assembly(head)
        for line in lines:
            part = decode_reply(line)
            if isinstance(part, Chunk):
                assembly.add(part)
            elif isinstance(part, End):
                return {"id": head.id, "ok": True, "result": assembly.finish(part).result}
            else:
                ended: dict[str, Any] = json.loads(line)  # an error line ended the stream
                return ended
    raise ConnectionError("the daemon closed the connection in the middle of a streamed reply")
