"""The control server's limits with real sockets: connections per user and in total with a reserve for
administrators (real users, root only), idle connections and clients that stop reading (a fake clock)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from accounts import accounts, fork_as, needs_root
from control_server import make_server
from fakes import FakeClock

from flowd.control.admission import Limits
from flowd.control.server import ControlServer
from shell.client import Client
from shell.repl import run_batch

REPO = Path(__file__).resolve().parents[2]
VERSION = b'{"id": 1, "method": "system.version"}\n'


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="flowd-limits-"))
    path.chmod(0o755)  # other users may reach the socket; only the socket's mode and group gate them
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- connections per user and in total (real users) -----------------------------------------------------

@dataclass(frozen=True, slots=True)
class Team:
    read_group: str
    admin_group: str
    alice: str  # reader
    bob: str  # reader
    carol: str  # administrator (both groups)


@pytest.fixture(scope="module")
def team() -> Iterator[Team]:
    tag = uuid.uuid4().hex[:6]
    t = Team(f"lr{tag}", f"la{tag}", f"lal{tag}", f"lbo{tag}", f"lca{tag}")
    with accounts([t.read_group, t.admin_group], {t.alice: [t.read_group], t.bob: [t.read_group],
                                                  t.carol: [t.read_group, t.admin_group]}):
        yield t


class ServerThread:
    """The control server on its own event loop in a thread, so the test can fork users that block."""

    def __init__(self, server: ControlServer) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.__aenter__(), self.loop).result(30)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.__aexit__(None, None, None), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()

    def open_count(self) -> int:
        async def count() -> int:
            return self.server.admission.total
        return asyncio.run_coroutine_threadsafe(count(), self.loop).result(30)


class Holder:
    """A forked child, as a real user, that opens connections, asks one question on each, reports the
    replies, and keeps the connections open until released."""

    def __init__(self, user: str, path: str, count: int) -> None:
        report_r, report_w = os.pipe()
        self.release_r, self.release_w = os.pipe()

        def work() -> None:
            os.close(report_r)
            held, replies = [], []
            for _ in range(count):
                conn = socket.socket(socket.AF_UNIX)
                conn.connect(path)
                conn.sendall(VERSION)
                reply = json.loads(conn.makefile("rb").readline())
                replies.append(reply.get("error") or "ok")
                held.append(conn)
            os.write(report_w, json.dumps(replies).encode())
            os.close(report_w)
            os.read(self.release_r, 1)

        self.pid = fork_as(user, work)
        os.close(report_w)
        with os.fdopen(report_r, "rb") as fh:
            self.replies = json.loads(fh.read())

    def release(self) -> None:
        os.write(self.release_w, b"x")
        _, status = os.waitpid(self.pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        os.close(self.release_w)
        os.close(self.release_r)


def flowcli_as(user: str, path: str, command: str) -> tuple[int, str]:
    """flowcli's batch runner as ``user``: (status, what it printed on standard error)."""
    r, w = os.pipe()

    def work() -> None:
        os.close(r)
        out, err = io.StringIO(), io.StringIO()
        status = asyncio.run(run_batch([command], Client(path), out, err))
        os.write(w, json.dumps([status, err.getvalue()]).encode())

    pid = fork_as(user, work)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        status, err = json.loads(fh.read())
    os.waitpid(pid, 0)
    return status, err


def busy(message: str) -> dict[str, str]:
    return {"code": "busy", "message": message}


@pytest.mark.integration
@needs_root
def test_connections_are_capped_per_user_and_in_total_with_a_reserve_for_admins(folder: Path, team: Team) -> None:
    limits = Limits(connections=6, per_user=3, reserved=2)
    server = make_server(folder, FakeClock(), limits, read_group=team.read_group, admin_group=team.admin_group)
    path = server.path
    holders: list[Holder] = []
    with ServerThread(server) as running:
        try:
            holders.append(alice := Holder(team.alice, path, 4))
            assert alice.replies == ["ok"] * 3 + [
                busy(f"too many connections from user {team.alice} (3 open, the most one user may have)")]
            holders.append(bob := Holder(team.bob, path, 2))
            full = "too many connections to flowd (4 open; the last 2 are kept for administrators)"
            assert bob.replies == ["ok", busy(full)]
            for _ in range(20):  # whichever comes first, the refusal or the request, flowcli prints why
                assert flowcli_as(team.bob, path, "show version") == (1, f"error: {full}\n")
            holders.append(carol := Holder(team.carol, path, 3))  # an administrator gets the reserve, no more
            assert carol.replies == ["ok", "ok", busy("too many connections to flowd (6 open)")]
            assert running.open_count() == 6
            holders.remove(alice)
            alice.release()
            for _ in range(3_000):  # until the daemon has seen alice's three connections close
                if running.open_count() == 3:
                    break
                time.sleep(0.01)
            assert flowcli_as(team.bob, path, "show version")[0] == 0
        finally:
            for holder in holders:
                holder.release()


# -- idle connections and clients that stop reading (a fake clock) ---------------------------------------

async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> dict[str, object]:
    writer.write(VERSION)
    await writer.drain()
    reply: dict[str, object] = json.loads(await asyncio.wait_for(reader.readline(), 30))
    return reply


def test_idle_connections_are_closed_on_the_daemon_clock(tmp_path: Path) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        async with make_server(tmp_path, clock, Limits(idle=300.0)) as server:
            quiet = await asyncio.open_unix_connection(server.path)
            busy_conn = await asyncio.open_unix_connection(server.path)
            assert (await ask(*quiet))["ok"] and (await ask(*busy_conn))["ok"]
            clock.advance(200.0)
            await settle()
            assert (await ask(*busy_conn))["ok"]  # its 300 s start again
            clock.advance(101.0)
            await settle()
            assert await asyncio.wait_for(quiet[0].read(), 30) == b""  # closed by the daemon
            assert (await ask(*busy_conn))["ok"]
            assert server.admission.total == 1
            clock.advance(301.0)
            await settle()
            assert await asyncio.wait_for(busy_conn[0].read(), 30) == b""
            await settle()
            assert server.admission.total == 0
            for _, writer in (quiet, busy_conn):
                writer.close()

    asyncio.run(scenario())


def test_a_client_that_stops_reading_is_dropped_and_its_replies_discarded(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    requests = 5_000  # about 5 MB of replies: far more than the socket buffers hold

    async def scenario() -> None:
        clock = FakeClock()
        async with make_server(tmp_path, clock, Limits(stalled=30.0, buffer=64 * 1024)) as server:
            reader, writer = await asyncio.open_unix_connection(server.path)
            writer.write(VERSION * requests)  # pipelined, and never read
            await writer.drain()
            for _ in range(2_000):  # until the daemon gave up on us (it waits 30 s of its clock each time)
                if "dropped a control connection" in caplog.text:
                    break
                clock.advance(31.0)
                await asyncio.sleep(0.005)
            got = (await asyncio.wait_for(reader.read(), 30)).count(b"\n")
            assert 0 < got < requests
            await settle()
            assert server.admission.total == 0
            writer.close()

    with caplog.at_level(logging.WARNING, logger="flowd.control.server"):
        asyncio.run(scenario())
    dropped = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert dropped == ["dropped a control connection of root: it read no reply for 30 s"]


def test_the_unit_gives_the_daemon_descriptors_for_every_connection_it_allows() -> None:
    lines = (REPO / "systemd" / "flowd.service").read_text().splitlines()
    [limit] = [int(line.split("=", 1)[1]) for line in lines if line.startswith("LimitNOFILE=")]
    assert limit >= 8 * Limits().connections  # the connections, and far more for rings, workers and exports
