"""Wire framing of the control socket: newline-delimited JSON requests and responses (docs/control-protocol.md).

Pure: no I/O, shared by the daemon (`flowd/control/server.py`) and the shell (`shell/client.py`).

    → {"id": 7, "method": "accounting.flow", "params": {}}
    ← {"id": 7, "ok": true, "result": {...}}
    ← {"id": 7, "ok": false, "error": {"code": "bad-params", "message": "..."}}

`MAX_LINE` caps what the daemon reads (a request line, newline included). Replies can be far longer
(`flow-detail` without `limit` returns every cached flow), so readers of replies use
`MAX_RESPONSE_LINE` instead.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Final

MAX_LINE: Final = 65536  # bytes in one request line, newline included
MAX_RESPONSE_LINE: Final = 64 * 1024 * 1024  # bytes in one reply line the shell accepts
SOCKET_NAME: Final = "flowd.sock"
SYSTEMD_RUNTIME_DIR: Final = Path("/run/flowd")  # systemd's RuntimeDirectory=flowd
# Export formats as `show services accounting status` names them (Junos's words), by flowd's version code.
EXPORT_FORMATS: Final = {"5": "cflowd v5", "9": "Version 9", "ipfix": "IP-FIX"}
# Words of drop-counter names printed in capitals (`bad-ip-header` -> `bad IP header`).
_ACRONYMS: Final = {"ip": "IP", "ipv4": "IPv4", "ipv6": "IPv6", "tcp": "TCP", "udp": "UDP", "icmp": "ICMP"}

RequestId = int | str


class ErrorCode(str, Enum):
    """The `error.code` values a reply may carry."""

    BAD_JSON = "bad-json"  # the line is not UTF-8 JSON
    BAD_REQUEST = "bad-request"  # not an object, or a missing/invalid `id` or `method`
    TOO_LARGE = "too-large"  # the line is longer than MAX_LINE
    UNKNOWN_METHOD = "unknown-method"
    BAD_PARAMS = "bad-params"
    PERMISSION_DENIED = "permission-denied"
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


@dataclass(frozen=True, slots=True)
class RpcError:
    """The `error` member of a failed reply."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Response:
    """One reply: `result` when `ok`, else `error`; `id` is None only for lines whose id was unreadable."""

    id: RequestId | None
    ok: bool
    result: Any = None
    error: RpcError | None = None

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


def _load_object(line: bytes, limit: int) -> dict[str, Any]:
    if len(line) > limit:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"line is {len(line)} bytes, the limit is {limit}")
    try:
        obj = json.loads(line.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_JSON, f"{exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict):
        raise ProtocolError(ErrorCode.BAD_REQUEST, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def encode_request(request: Request) -> bytes:
    """One request line (newline-terminated); `ProtocolError(TOO_LARGE)` if it exceeds MAX_LINE."""
    data = _dump({"id": request.id, "method": request.method, "params": request.params})
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
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        raise ProtocolError(ErrorCode.BAD_REQUEST, "'method' must be a non-empty string", request_id)
    params = obj.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError(ErrorCode.BAD_PARAMS, "'params' must be an object", request_id)
    return Request(request_id, method, params)


def encode_response(response: Response) -> bytes:
    """One reply line (newline-terminated)."""
    if response.ok:
        return _dump({"id": response.id, "ok": True, "result": response.result})
    error = response.error or RpcError(ErrorCode.INTERNAL.value, "no error given")
    return _dump({"id": response.id, "ok": False, "error": {"code": error.code, "message": error.message}})


def decode_response(line: bytes) -> Response:
    """Parse one reply line; raise `ProtocolError` when it is not a well-formed reply."""
    obj = _load_object(line, MAX_RESPONSE_LINE)
    response_id = obj.get("id")
    if response_id is not None and not _valid_id(response_id):
        raise ProtocolError(ErrorCode.BAD_REQUEST, "reply 'id' must be an integer, a string or null")
    ok = obj.get("ok")
    if ok is True:
        if "result" not in obj:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "reply with ok=true has no 'result'", response_id)
        return Response(response_id, True, obj["result"], None)
    if ok is False:
        error = obj.get("error")
        if not (isinstance(error, dict) and isinstance(error.get("code"), str)
                and isinstance(error.get("message"), str)):
            raise ProtocolError(ErrorCode.BAD_REQUEST, "reply with ok=false needs error.code and error.message",
                                response_id)
        return Response(response_id, False, None, RpcError(error["code"], error["message"]))
    raise ProtocolError(ErrorCode.BAD_REQUEST, "reply 'ok' must be true or false", response_id)


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


def drop_words(name: str) -> str:
    """A drop counter's name (`not-ipv4`, `bad-ip-header`) in the words the shell and the batch summary print."""
    return " ".join(_ACRONYMS.get(w.lower(), w) for w in re.split(r"[-_ ]+", name))
