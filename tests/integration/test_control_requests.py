"""Hostile request lines on the real control socket: each gets a `bad-json`/`bad-request` reply, the connection
keeps working, and the daemon logs one line at most per request, rate-limited, never a traceback."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from control_server import make_server
from fakes import FakeClock

from flowd.runtime.log import Throttle

HOSTILE = [
    (b"[" * 30_000 + b"]" * 30_000, "bad-json", None, "nested deeper than 32 levels"),
    (b'{"id": 1, "method": "system.version", "params": {"a": ' + b"[" * 30_000 + b"]" * 30_000 + b"}}",
     "bad-json", None, "nested deeper than 32 levels"),
    (b'{"id": ' + b"9" * 5_000 + b', "method": "system.version"}', "bad-request", None,
     "an integer of 5000 digits; at most 20 are accepted"),
    (b'{"id": 4, "method": "accounting.flow_detail", "params": {"limit": ' + b"1" * 4_301 + b"}}", "bad-request",
     None, "an integer of 4301 digits; at most 20 are accepted"),
    (b'{"id": "\\ud800", "method": "system.version"}', "bad-request", None,
     "'id' is not valid Unicode (a lone surrogate)"),
    (b'{"id": 5, "method": "system.\\udc00version"}', "bad-request", 5,
     "'method' holds a lone surrogate (not valid Unicode)"),
    (b'{"id": 6, "method": "accounting.flow", "params": {"name": "\\ud800"}}', "bad-request", 6,
     "'params' holds a lone surrogate (not valid Unicode)"),
    (b'{"id": 7, "method": "accounting.flow", "params": {"\\udfff": 1}}', "bad-request", 7,
     "'params' holds a lone surrogate (not valid Unicode)"),
    (b'{"id": 8, "method": "accounting.flow", "params": {"a": ' + b'{"b": ' * 40 + b"1" + b"}" * 41 + b"}",
     "bad-request", 8, "'params' is nested deeper than 32 levels"),
]
VERSION = b'{"id": 99, "method": "system.version"}\n'


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: bytes) -> dict[str, object]:
    writer.write(line + b"\n")
    await writer.drain()
    reply: dict[str, object] = json.loads(await asyncio.wait_for(reader.readline(), 30))
    return reply


def test_hostile_requests_get_an_error_reply_and_one_log_line_each(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with make_server(tmp_path, clock) as server:
            reader, writer = await asyncio.open_unix_connection(server.path)
            for line, code, request_id, message in HOSTILE:
                reply = await exchange(reader, writer, line)
                assert reply == {"id": request_id, "ok": False, "error": {"code": code, "message": message}}
                assert (await exchange(reader, writer, VERSION[:-1]))["ok"] is True  # still serving
            writer.close()

    with caplog.at_level(logging.DEBUG, logger="flowd"):
        asyncio.run(scenario())
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in caplog.records)
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert lines == [f"refused a control request from root: {code}: {message}" for _, code, _, message in HOSTILE]


def test_a_flood_of_bad_requests_is_logged_a_few_lines_a_minute(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    per_minute = Throttle().lines

    async def scenario() -> None:
        clock = FakeClock()
        async with make_server(tmp_path, clock) as server:
            reader, writer = await asyncio.open_unix_connection(server.path)
            for _ in range(100):
                assert (await exchange(reader, writer, b'"\\ud800"'))["error"] == {
                    "code": "bad-request", "message": "expected a JSON object, got str"}
            clock.advance(61.0)
            await exchange(reader, writer, b"{")
            writer.close()

    with caplog.at_level(logging.WARNING, logger="flowd.control.server"):
        asyncio.run(scenario())
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == per_minute + 1
    assert messages[-1].endswith(f"bad-json: Expecting property name enclosed in double quotes at column 1 "
                                 f"({100 - per_minute} similar lines suppressed)")
