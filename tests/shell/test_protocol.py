"""flowd.control.protocol: NDJSON framing both sides share (docs/control-protocol.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowd.control.protocol import (
    MAX_LINE,
    ErrorCode,
    ProtocolError,
    Request,
    Response,
    RpcError,
    decode_request,
    decode_response,
    default_socket_path,
    encode_request,
    encode_response,
)


def test_request_round_trip() -> None:
    request = Request(7, "accounting.flow_detail", {"limit": 10, "order": "bytes"})
    line = encode_request(request)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"id": 7, "method": "accounting.flow_detail", "params": {"limit": 10, "order": "bytes"}}
    assert decode_request(line) == request


def test_response_round_trips() -> None:
    ok = Response.success(7, {"interfaces": []})
    assert decode_response(encode_response(ok)) == ok
    assert json.loads(encode_response(ok)) == {"id": 7, "ok": True, "result": {"interfaces": []}}
    bad = Response.failure(8, ErrorCode.BAD_PARAMS, "limit: expected 1..1000000")
    assert json.loads(encode_response(bad)) == {
        "id": 8, "ok": False, "error": {"code": "bad-params", "message": "limit: expected 1..1000000"}}
    assert decode_response(encode_response(bad)) == Response(8, False, None, RpcError("bad-params",
                                                                                      "limit: expected 1..1000000"))


def test_params_default_to_empty() -> None:
    assert decode_request(b'{"id": "a", "method": "system.version"}\r\n') == Request("a", "system.version", {})


@pytest.mark.parametrize(("line", "code", "request_id"), [
    (b"not json\n", ErrorCode.BAD_JSON, None),
    (b"\xff\xfe\n", ErrorCode.BAD_JSON, None),
    (b"[1, 2]\n", ErrorCode.BAD_REQUEST, None),
    (b'{"method": "x"}\n', ErrorCode.BAD_REQUEST, None),
    (b'{"id": true, "method": "x"}\n', ErrorCode.BAD_REQUEST, None),
    (b'{"id": 1.5, "method": "x"}\n', ErrorCode.BAD_REQUEST, None),
    (b'{"id": 3}\n', ErrorCode.BAD_REQUEST, 3),
    (b'{"id": 3, "method": ""}\n', ErrorCode.BAD_REQUEST, 3),
    (b'{"id": 4, "method": "x", "params": [1]}\n', ErrorCode.BAD_PARAMS, 4),
    (b'{"id": 5, "method": "x", "params": {"p": "' + b"a" * MAX_LINE + b'"}}\n', ErrorCode.TOO_LARGE, None),
])
def test_bad_requests(line: bytes, code: ErrorCode, request_id: int | None) -> None:
    with pytest.raises(ProtocolError) as info:
        decode_request(line)
    assert info.value.code is code
    assert info.value.request_id == request_id
    reply = json.loads(encode_response(info.value.to_response()))
    assert reply["ok"] is False and reply["error"]["code"] == code.value and reply["id"] == request_id


def test_request_at_the_limit_is_accepted() -> None:
    head = b'{"id":1,"method":"x","params":{"p":"'
    tail = b'"}}\n'
    line = head + b"a" * (MAX_LINE - len(head) - len(tail)) + tail
    assert len(line) == MAX_LINE
    assert decode_request(line).params["p"] == "a" * (MAX_LINE - len(head) - len(tail))


def test_encoding_a_too_large_request_fails() -> None:
    with pytest.raises(ProtocolError) as info:
        encode_request(Request(1, "x", {"p": "a" * MAX_LINE}))
    assert info.value.code is ErrorCode.TOO_LARGE


@pytest.mark.parametrize("line", [b'{"id": 1}\n', b'{"id": 1, "ok": true}\n', b'{"id": 1, "ok": false}\n',
                                  b'{"id": 1, "ok": false, "error": {"code": 1}}\n', b'{"id": [], "ok": true}\n'])
def test_bad_responses(line: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_response(line)


def test_error_codes_are_the_documented_ones() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "control-protocol.md").read_text()
    for code in ErrorCode:
        assert f"`{code.value}`" in doc


def test_default_socket_path(tmp_path: Path) -> None:
    missing = tmp_path / "no-run-dir"
    assert default_socket_path({"FLOWD_SOCKET": "/x/y.sock", "XDG_RUNTIME_DIR": "/run/user/1"}, missing) \
        == Path("/x/y.sock")
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/1"}, missing) == Path("/run/user/1/flowd.sock")
    assert default_socket_path({}, missing) == missing / "flowd.sock"
    assert default_socket_path({"XDG_RUNTIME_DIR": "/run/user/1"}, tmp_path) == tmp_path / "flowd.sock"
    assert default_socket_path({"FLOWD_SOCKET": "", "XDG_RUNTIME_DIR": "/r"}, missing) == Path("/r/flowd.sock")
