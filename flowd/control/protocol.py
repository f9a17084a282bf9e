"""Wire framing of the control socket: newline-delimited JSON requests and responses (docs/control-protocol.md).

Pure: no I/O, shared by the daemon (`flowd/control/server.py`) and the shell (`shell/client.py`).

    → {"id": 7, "method": "accounting.flow", "params": {}}
    ← {"id": 7, "ok": true, "result": {...}}
    ← {"id": 7, "ok": false, "error": {"code": "bad-params", "message": "..."}}

Requests are bounded beyond their length: nesting (`MAX_DEPTH`), integer length (`MAX_INT_DIGITS`) and
strings that are not valid Unicode (lone surrogates, which JSON can spell but UTF-8 cannot carry) are
refused with `bad-json` or `bad-request` before any method sees them.

`MAX_LINE` caps what the daemon reads (a request line, newline included). A result with a long list
(`flow-detail` without `limit` lists every cached flow) is streamed: a head line (the result with that
list empty, and ``more``: the list's path in it), chunk lines of rows, each at most `MAX_CHUNK` bytes,
and an end line with the row count; `Assembly` puts them back together:

    ← {"id": 7, "ok": true, "result": {"interfaces": [{..., "flows": []}]}, "more": ["interfaces", 0, "flows"]}
    ← {"id": 7, "rows": [{...}, {...}]}
    ← {"id": 7, "end": 2}

An error line with the same id may end a stream early. Other replies are one line, which readers
accept up to `MAX_RESPONSE_LINE`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

MAX_LINE: Final = 65536  # bytes in one request line, newline included
MAX_RESPONSE_LINE: Final = 64 * 1024 * 1024  # bytes in one reply line the shell accepts
MAX_CHUNK: Final = 64 * 1024  # bytes in one chunk line of a streamed result (a longer single row gets its own)
MAX_DEPTH: Final = 32  # nesting of arrays and objects a request may use (params are flat today)
MAX_INT_DIGITS: Final = 20  # digits of one integer in a request (a 64-bit value has at most 20)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
SOCKET_NAME: Final = "flowd.sock"
SYSTEMD_RUNTIME_DIR: Final = Path("/run/flowd")  # systemd's RuntimeDirectory=flowd

RequestId = int | str


class ErrorCode(str, Enum):
    """The `error.code` values a reply may carry."""

    BAD_JSON = "bad-json"  # the line is not UTF-8 JSON
    BAD_REQUEST = "bad-request"  # not an object, or a missing/invalid `id` or `method`
    TOO_LARGE = "too-large"  # the line is longer than MAX_LINE
    UNKNOWN_METHOD = "unknown-method"
    BAD_PARAMS = "bad-params"
    PERMISSION_DENIED = "permission-denied"
    BUSY = "busy"  # the connection was refused: too many open (per user or in total); the daemon closes it
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A line that cannot be accepted; `request_id` is set when the line's id could still be read."""

    def __init__(self, code: ErrorCode, message: str, request_id: RequestId | None = None) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id

    def to_response(self) -> Response:
        """The error reply the daemon sends for this line."""
        return Response.failure(self.request_id, self.code, self.message)


@dataclass(frozen=True, slots=True)
class Request:
    """One call: `method` with keyword `params`; `id` is echoed in the reply."""

    id: RequestId
    method: str
    params: dict[str, Any] = field(default_factory=dict)
    user: str | None = None  # act for this user (honoured only from root or the daemon's user: NETCONF)


@dataclass(frozen=True, slots=True)
class RpcError:
    """The `error` member of a failed reply."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Response:
    """One reply: `result` when `ok`, else `error`; `id` is None only for lines whose id was unreadable.

    ``more`` is set on the head of a streamed result: the path (keys and list indexes) of the list in
    ``result`` that the chunks which follow fill.
    """

    id: RequestId | None
    ok: bool
    result: Any = None
    error: RpcError | None = None
    more: tuple[str | int, ...] | None = None

    @classmethod
    def success(cls, request_id: RequestId, result: Any) -> Response:
        return cls(request_id, True, result, None)

    @classmethod
    def failure(cls, request_id: RequestId | None, code: ErrorCode | str, message: str) -> Response:
        value = code.value if isinstance(code, ErrorCode) else code
        return cls(request_id, False, None, RpcError(value, message))


def _dump(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode() + b"\n"


def _valid_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def _bounded_int(text: str) -> int:
    """json's ``parse_int``: refuse integers too long to be a count, an index or an id (and Python's
    4,300-digit conversion limit never comes into play)."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"an integer of {len(text.lstrip('-'))} digits; "
                                                   f"at most {MAX_INT_DIGITS} are accepted")
    return int(text)


def _depth_and_text(obj: Any, depth: int = 1) -> str | None:
    """Why ``obj`` (already parsed) cannot be accepted: nested deeper than MAX_DEPTH, or a string that is not
    valid Unicode (a lone surrogate such as ``"\\ud800"``, which JSON allows and UTF-8 cannot carry)."""
    if depth > MAX_DEPTH:
        return f"is nested deeper than {MAX_DEPTH} levels"
    if isinstance(obj, str):
        return "holds a lone surrogate (not valid Unicode)" if _SURROGATE.search(obj) else None
    items: list[Any] = []
    if isinstance(obj, dict):
        items = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list):
        items = obj
    for item in items:
        if (why := _depth_and_text(item, depth + (not isinstance(item, str)))) is not None:
            return why
    return None


def _load_object(line: bytes, limit: int) -> dict[str, Any]:
    if len(line) > limit:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"line is {len(line)} bytes, the limit is {limit}")
    try:
        obj = json.loads(line.decode("utf-8"), parse_int=_bounded_int)
    except UnicodeDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"{exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise ProtocolError(ErrorCode.BAD_JSON, f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def encode_request(request: Request) -> bytes:
    """One request line (newline-terminated); `ProtocolError(TOO_LARGE)` if it exceeds MAX_LINE."""
    obj: dict[str, Any] = {"id": request.id, "method": request.method, "params": request.params}
    if request.user is not None:
        obj["user"] = request.user
    data = _dump(obj)
    if len(data) > MAX_LINE:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"request is {len(data)} bytes, the limit is {MAX_LINE}",
                            request.id)
    return data


def decode_request(line: bytes) -> Request:
    """Parse one request line (trailing newline optional); raise `ProtocolError` with the reply's code."""
    obj = _load_object(line, MAX_LINE)
    request_id = obj.get("id")
    if not (isinstance(request_id, int | str) and _valid_id(request_id)):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'id' must be an integer or a string")
    if isinstance(request_id, str) and _SURROGATE.search(request_id):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'id' is not valid Unicode (a lone surrogate)")
    for member in ("method", "params"):
        if (why := _depth_and_text(obj.get(member))) is not None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"'{member}' {why}", request_id)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'method' must be a non-empty string", request_id)
    params = obj.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError(ErrorCode.BAD_PARAMS, "'params' must be an object", request_id)
    user = obj.get("user")
    if user is not None and (not isinstance(user, str) or not user):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'user' must be a non-empty string", request_id)
    return Request(request_id, method, params, user)


def encode_response(response: Response) -> bytes:
    """One reply line (newline-terminated)."""
    if response.ok:
        return _dump({"id": response.id, "ok": True, "result": response.result})
    error = response.error or RpcError(ErrorCode.INTERNAL.value, "no error given")
    return _dump({"id": response.id, "ok": False, "error": {"code": error.code, "message": error.message}})


@dataclass(frozen=True, slots=True)
class Chunk:
    """Rows of a streamed result, in order."""

    id: RequestId
    rows: list[Any]


@dataclass(frozen=True, slots=True)
class End:
    """The end of a streamed result: how many rows its chunks carried."""

    id: RequestId
    count: int


def encode_head(request_id: RequestId, head: Any, into: Sequence[str | int]) -> bytes:
    """The first line of a streamed result: ``head`` with the list at path ``into`` still empty."""
    return _dump({"id": request_id, "ok": True, "result": head, "more": list(into)})


def encode_chunks(request_id: RequestId, rows: Iterable[Any]) -> Iterator[bytes]:
    """Chunk lines carrying ``rows`` in order, each at most MAX_CHUNK bytes (unless one row alone is longer)."""
    prefix = _dump({"id": request_id, "rows": []})[:-3]  # '{"id":7,"rows":['
    parts: list[bytes] = []
    size = len(prefix) + 3  # '[' ... ']}' and the newline
    for row in rows:
        data = json.dumps(row, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
        if parts and size + len(data) + 1 > MAX_CHUNK:
            yield prefix + b",".join(parts) + b"]}\n"
            parts, size = [], len(prefix) + 3
        parts.append(data)
        size += len(data) + 1
    if parts:
        yield prefix + b",".join(parts) + b"]}\n"


def encode_end(request_id: RequestId, count: int) -> bytes:
    """The last line of a streamed result."""
    return _dump({"id": request_id, "end": count})


def decode_reply(line: bytes) -> Response | Chunk | End:
    """Parse one reply line: a reply (maybe the head of a stream), a chunk or the end of a stream."""
    obj = _load_object(line, MAX_RESPONSE_LINE)
    if "rows" in obj or "end" in obj:
        stream_id = obj.get("id")
        if not (isinstance(stream_id, int | str) and _valid_id(stream_id)):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "chunk 'id' must be an integer or a string")
        if isinstance(obj.get("rows"), list):
            return Chunk(stream_id, obj["rows"])
        count = obj.get("end")
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return End(stream_id, count)
        raise ProtocolError(ErrorCode.BAD_REQUEST, "a chunk needs a 'rows' list, an end a count", stream_id)
    return decode_response(line, obj)


def decode_response(line: bytes, obj: dict[str, Any] | None = None) -> Response:
    """Parse one reply line; raise `ProtocolError` when it is not a well-formed reply."""
    if obj is None:
        obj = _load_object(line, MAX_RESPONSE_LINE)
    response_id = obj.get("id")
    if response_id is not None and not _valid_id(response_id):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "reply 'id' must be an integer, a string or null")
    ok = obj.get("ok")
    if ok is True:
        if "result" not in obj:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "reply with ok=true has no 'result'", response_id)
        more = obj.get("more")
        if more is not None and not (isinstance(more, list) and all(isinstance(p, str | int) for p in more)):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "reply 'more' must be a list of keys and indexes",
                                response_id)
        return Response(response_id, True, obj["result"], None, None if more is None else tuple(more))
    if ok is False:
        error = obj.get("error")
        if not (isinstance(error, dict) and isinstance(error.get("code"), str)
                and isinstance(error.get("message"), str)):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "reply with ok=false needs error.code and error.message",
                                response_id)
        return Response(response_id, False, None, RpcError(error["code"], error["message"]))
    raise ProtocolError(ErrorCode.BAD_REQUEST, "reply 'ok' must be true or false", response_id)


class Assembly:
    """A streamed result put back together: the head, then each chunk's rows appended where ``more`` says."""

    def __init__(self, head: Response) -> None:
        if head.more is None:
            raise ValueError("not the head of a streamed result")
        self.head = head
        self.count = 0
        target: Any = head.result
        try:
            for step in head.more:
                target = target[step]
        except (KeyError, IndexError, TypeError):
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"'more' names no list in the result: {list(head.more)}",
                                head.id) from None
        if not isinstance(target, list):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "'more' names no list in the result", head.id)
        self.rows: list[Any] = target

    def add(self, chunk: Chunk) -> None:
        self.rows.extend(chunk.rows)
        self.count += len(chunk.rows)

    def finish(self, end: End) -> Response:
        """The whole result; `ProtocolError` when rows went missing."""
        if end.count != self.count:
            raise ProtocolError(ErrorCode.BAD_REQUEST, f"stream ended after {self.count} rows, "
                                                       f"{end.count} were sent", end.id)
        return Response(self.head.id, True, self.head.result)


def default_socket_path(env: Mapping[str, str] | None = None, run_dir: Path = SYSTEMD_RUNTIME_DIR) -> Path:
    """Where the daemon listens and the shell connects, first match wins.

    1. ``$FLOWD_SOCKET``;
    2. ``/run/flowd/flowd.sock`` when ``/run/flowd`` exists (systemd made it for the system daemon, so a
       login shell with its own ``$XDG_RUNTIME_DIR`` still finds that daemon);
    3. ``$XDG_RUNTIME_DIR/flowd.sock`` (a daemon run by hand as a normal user);
    4. ``/run/flowd/flowd.sock``.
    """
    environ = os.environ if env is None else env
    if explicit := environ.get("FLOWD_SOCKET"):
        return Path(explicit)
    if run_dir.is_dir():
        return run_dir / SOCKET_NAME
    if runtime := environ.get("XDG_RUNTIME_DIR"):
        return Path(runtime) / SOCKET_NAME
    return run_dir / SOCKET_NAME
