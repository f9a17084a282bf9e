"""shell.client against real Unix-socket servers: results, error replies, ids, timeouts, reconnects."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest
from shell_daemon import DaemonDouble
from shell_seed import SEED_RESULTS

from flowd.control.protocol import RpcError
from shell.client import (
    Client,
    ConnectionLost,
    DaemonUnavailable,
    RemoteError,
    RequestTimeout,
)

pytestmark = pytest.mark.asyncio


async def test_call_returns_the_result(daemon: DaemonDouble) -> None:
    async with Client(daemon.path) as client:
        assert await client.call("accounting.flow") == SEED_RESULTS["accounting.flow"]
        assert await client.call("accounting.flow_detail", {"limit": 10}) == SEED_RESULTS["accounting.flow_detail"]
    assert [(r.id, r.method, r.params) for r in daemon.requests] == [
        (1, "accounting.flow", {}), (2, "accounting.flow_detail", {"limit": 10})]


async def test_error_reply_is_a_remote_error(daemon: DaemonDouble) -> None:
    daemon.results["accounting.flow_detail"] = RpcError("bad-params", "limit: expected 1..1000000")
    async with Client(daemon.path) as client:
        with pytest.raises(RemoteError) as info:
            await client.call("accounting.flow_detail", {"limit": 0})
        assert (info.value.code, str(info.value)) == ("bad-params", "limit: expected 1..1000000")
        with pytest.raises(RemoteError) as unknown:
            await client.call("no.such_method")
        assert unknown.value.code == "unknown-method"
        assert await client.call("system.version") == SEED_RESULTS["system.version"]  # connection still usable


async def test_not_running(sock_path: Path) -> None:
    client = Client(sock_path)
    with pytest.raises(DaemonUnavailable) as info:
        await client.call("system.version")
    assert str(info.value) == f"flowd is not running (cannot connect to {sock_path}: No such file or directory)"


async def test_stale_socket_file_is_not_running(sock_path: Path) -> None:
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(sock_path))  # bound, never listening: connect() is refused
    try:
        with pytest.raises(DaemonUnavailable, match="Connection refused"):
            await Client(sock_path).call("system.version")
    finally:
        stale.close()


async def test_timeout(daemon: DaemonDouble) -> None:
    daemon.silent.add("accounting.flow")
    async with Client(daemon.path, timeout=0.05) as client:
        with pytest.raises(RequestTimeout, match=r"no reply from flowd within 0.05 s \(accounting.flow\)"):
            await client.call("accounting.flow")
        assert await client.call("accounting.memory") == SEED_RESULTS["accounting.memory"]


async def test_reconnects_when_the_daemon_returns(sock_path: Path) -> None:
    first = DaemonDouble(sock_path, SEED_RESULTS).start()
    client = Client(sock_path)
    try:
        assert await client.call("system.version") == SEED_RESULTS["system.version"]
        first.stop()
        with pytest.raises((ConnectionLost, DaemonUnavailable)):
            await client.call("system.version")
        second = DaemonDouble(sock_path, {"system.version": {"hostname": "again"}}).start()
        try:
            assert await client.call("system.version") == {"hostname": "again"}
        finally:
            second.stop()
    finally:
        await client.close()


async def test_replies_out_of_order_reach_their_callers(sock_path: Path) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first = json.loads(await reader.readline())
        second = json.loads(await reader.readline())
        for request in (second, first):
            writer.write(json.dumps({"id": request["id"], "ok": True, "result": request["method"]}).encode() + b"\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_unix_server(handle, path=str(sock_path))
    async with server, Client(sock_path) as client:
        assert list(await asyncio.gather(client.call("a.one"), client.call("b.two"))) == ["a.one", "b.two"]


async def test_daemon_closing_mid_call_is_connection_lost(sock_path: Path) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    server = await asyncio.start_unix_server(handle, path=str(sock_path))
    async with server, Client(sock_path) as client:
        with pytest.raises(ConnectionLost, match="connection to flowd closed"):
            await client.call("system.version")


async def test_garbage_reply_is_connection_lost(sock_path: Path) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"this is not json\n")
        await writer.drain()

    server = await asyncio.start_unix_server(handle, path=str(sock_path))
    async with server, Client(sock_path) as client:
        with pytest.raises(ConnectionLost, match="bad reply from flowd"):
            await client.call("system.version")
