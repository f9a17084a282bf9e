"""`flow-detail` without `limit` over a large cache, on the real control socket: the reply streams in bounded
chunks with back-pressure, the event loop keeps running between them, other clients are answered
meanwhile, the daemon's memory does not grow with the reply, and clients that never read are dropped."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
from pathlib import Path

import numpy as np
import pytest
from control_server import make_server
from fakes import FakeClock

from flowd.control.admission import Limits
from flowd.control.protocol import MAX_CHUNK
from flowd.control.server import ControlServer
from flowd.model.batch import FrameBatch
from shell.client import Client
from shell.repl import run_batch

FLOWS = 60_000  # some 30 MB of JSON: enough for every bound to tell streaming from a reply built whole
HEADER = bytes.fromhex(  # Ethernet, IPv4 (198.18.0.0 -> 198.19.0.1, UDP), UDP (port 0 -> 53), 8 payload bytes
    "040404040404020202020202" "0800"
    "4500002400004000401100" "00" "c6120000" "c6130001"
    "00000035001000000000000000000000")
DETAIL = b'{"id": 1, "method": "accounting.flow_detail", "params": {}}\n'
VERSION = b'{"id": 2, "method": "system.version"}\n'


def distinct_flows(n: int, ts: float) -> FrameBatch:
    """``n`` one-packet UDP flows, each from its own source address (198.18.0.0 and up)."""
    size = len(HEADER)
    frames = np.tile(np.frombuffer(HEADER, np.uint8), (n, 1))
    i = np.arange(n, dtype=np.uint32)
    frames[:, 27] = 18 + (i >> 16)  # source address 198.18.0.0 + i
    frames[:, 28] = (i >> 8) & 0xFF
    frames[:, 29] = i & 0xFF
    return FrameBatch(buf=frames.tobytes(), offset=np.arange(n, dtype=np.int64) * size,
                      caplen=np.full(n, size, np.uint32), wirelen=np.full(n, size, np.uint32),
                      ts=np.full(n, ts), linktype=np.ones(n, np.uint16), ifindex=np.ones(n, np.uint32))


def filled(tmp_path: Path, clock: FakeClock, limits: Limits = Limits()) -> ControlServer:
    server = make_server(tmp_path, clock, limits)
    server.probe.ingest(distinct_flows(FLOWS, clock.time()), clock.time())
    return server


def rss_kib() -> tuple[int, int]:
    """(current, peak) resident set of this process, in KiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # the peak resident set starts again from now


def test_the_cache_holds_the_flows(tmp_path: Path) -> None:
    server = filled(tmp_path, FakeClock())
    assert sum(len(p.table) for p in server.probe.pipeline.paths.values()) == FLOWS


def test_flow_detail_without_limit_streams_in_bounded_chunks_while_others_are_answered(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with filled(tmp_path, clock) as server:
            loop_turns = 0
            stop = asyncio.Event()

            async def probe_task() -> None:  # counts how often the event loop gets to run other tasks
                nonlocal loop_turns
                while not stop.is_set():
                    loop_turns += 1
                    await asyncio.sleep(0)

            prober = asyncio.ensure_future(probe_task())
            reader, writer = await asyncio.open_unix_connection(server.path, limit=2 * MAX_CHUNK)
            other_reader, other_writer = await asyncio.open_unix_connection(server.path)
            writer.write(DETAIL)
            head = json.loads(await reader.readline())
            assert head["ok"] is True and head["more"] == ["interfaces", 0, "flows"]
            assert head["result"]["interfaces"][0]["flows"] == []
            chunks, rows, longest, previous = 0, 0, 0, None
            turns_at: list[int] = []
            answered_during_stream = False
            while True:
                line = await reader.readline()
                longest = max(longest, len(line))
                reply = json.loads(line)
                assert reply["id"] == 1
                if "end" in reply:
                    assert reply["end"] == rows
                    break
                chunks += 1
                turns_at.append(loop_turns)
                for flow in reply["rows"]:
                    assert previous is None or flow["bytes"] <= previous  # largest first, across chunks
                    previous = flow["bytes"]
                rows += len(reply["rows"])
                if chunks == 10:  # another client asks meanwhile, and is answered before the stream ends
                    other_writer.write(VERSION)
                    answer = json.loads(await asyncio.wait_for(other_reader.readline(), 30))
                    answered_during_stream = answer["ok"] is True and answer["id"] == 2
            stop.set()
            await prober
            assert rows == FLOWS and answered_during_stream
            assert chunks >= FLOWS * 500 // MAX_CHUNK  # each flow object is some 500 bytes of JSON
            assert longest <= MAX_CHUNK
            # the loop ran other tasks between most chunks, not only at the end
            assert sum(b > a for a, b in zip(turns_at, turns_at[1:], strict=False)) > chunks // 4
            for w in (writer, other_writer):
                w.close()

    asyncio.run(scenario())


def test_the_daemon_holds_no_whole_reply_in_memory(tmp_path: Path) -> None:
    """RSS growth while one client reads the whole reply, and while three clients read nothing, stays far below
    the reply's size (a reply built whole would cost it several times over)."""
    async def scenario() -> None:
        clock = FakeClock()
        async with filled(tmp_path, clock) as server:
            base, _ = rss_kib()
            reset_peak()
            total = 0
            reader, writer = await asyncio.open_unix_connection(server.path, limit=2 * MAX_CHUNK)
            writer.write(DETAIL)
            while line := await reader.readline():
                total += len(line)
                if b'"end"' in line:
                    break
            _, peak = rss_kib()
            assert total > FLOWS * 400  # every flow object went through
            assert (peak - base) * 1024 < total // 4, (peak - base, total)
            writer.close()

            silent = []
            for _ in range(3):  # ask, and never read
                s = socket.socket(socket.AF_UNIX)
                s.setblocking(False)
                await asyncio.get_running_loop().sock_connect(s, server.path)
                await asyncio.get_running_loop().sock_sendall(s, DETAIL)
                silent.append(s)
            reset_peak()
            base, _ = rss_kib()
            for _ in range(200):  # let the daemon fill what buffers it may
                await asyncio.sleep(0)
            _, peak = rss_kib()
            assert (peak - base) * 1024 < total // 4
            for s in silent:
                s.close()

    asyncio.run(scenario())


def test_the_shell_reads_a_streamed_reply_whole(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with filled(tmp_path, clock) as server:
            async with Client(server.path) as client:
                result = await client.call("accounting.flow_detail", {})
                flows = result["interfaces"][0]["flows"]
                assert len(flows) == FLOWS
                top = (await client.call("accounting.flow_detail", {"limit": 3}))["interfaces"][0]["flows"]
                assert [f["bytes"] for f in top] == [f["bytes"] for f in flows[:3]]

    asyncio.run(scenario())


def test_a_client_that_never_reads_a_stream_is_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with filled(tmp_path, clock, Limits(stalled=30.0)) as server:
            reader, writer = await asyncio.open_unix_connection(server.path)
            writer.write(DETAIL)
            await asyncio.wait_for(reader.readline(), 30)  # the head: the stream has begun, and we stop reading
            for _ in range(2_000):
                if server.admission.total == 0:
                    break
                clock.advance(31.0)
                await asyncio.sleep(0.005)
            assert server.admission.total == 0
            received = await asyncio.wait_for(reader.read(), 30)
            assert 0 < received.count(b"\n") and b'"end"' not in received
            writer.close()

    with caplog.at_level(logging.WARNING, logger="flowd.control.server"):
        asyncio.run(scenario())
    assert [r.getMessage() for r in caplog.records] == [
        "dropped a control connection of root: it read no reply for 30 s"]


class Written(io.StringIO):
    """Standard output that counts how often the shell flushed what it had (once per batch it printed)."""

    def __init__(self) -> None:
        super().__init__()
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def test_flowcli_prints_a_streamed_reply_as_it_arrives(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with filled(tmp_path, clock) as server:
            async with Client(server.path) as client:
                out, err = Written(), io.StringIO()
                assert await run_batch(["show services accounting flow-detail | no-more"], client, out, err) == 0
                lines = out.getvalue().splitlines()
                assert err.getvalue() == "" and len(lines) == FLOWS + 4  # the interface header and table head
                assert out.flushes > FLOWS // 1000  # printed batch by batch, not once at the end
                out, err = Written(), io.StringIO()
                assert await run_batch(["show services accounting flow-detail | count"], client, out, err) == 0
                assert out.getvalue() == f"Count: {FLOWS + 4} lines\n"

    asyncio.run(scenario())
