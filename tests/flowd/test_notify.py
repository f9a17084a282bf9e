"""sd_notify against real AF_UNIX datagram sockets (path and abstract), and the daemon's notify hooks in-process."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import struct
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dpkt
import pytest
from fakes import FakeClock

from flowd import app as app_module
from flowd.app import App
from flowd.capture.replay import MAX_SPEED, Replay
from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.model.batch import FrameBatch
from flowd.runtime.notify import (
    Notifier,
    NotifyError,
    ping_watchdog,
    socket_address,
    watchdog_interval,
)

UCRED = struct.Struct("3i")  # pid, uid, gid of SCM_CREDENTIALS


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket paths fit sun_path (pytest's tmp_path can exceed 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="flowd-notify-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Receiver:
    """The service manager's end: a SOCK_DGRAM socket that records each datagram and its sender's pid."""

    def __init__(self, name: str) -> None:
        self.name = name  # as $NOTIFY_SOCKET spells it
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(socket_address(name))
        self.sock.setblocking(False)

    def drain(self) -> list[tuple[int, bytes]]:
        """Every datagram queued now, as (sender pid, message)."""
        out: list[tuple[int, bytes]] = []
        while True:
            try:
                msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
            except BlockingIOError:
                return out
            [(level, kind, data)] = anc
            assert (level, kind) == (socket.SOL_SOCKET, socket.SCM_CREDENTIALS)
            out.append((UCRED.unpack(data)[0], msg))

    def messages(self) -> list[bytes]:
        return [m for _, m in self.drain()]

    async def next(self, timeout: float = 10.0) -> bytes:
        """Wait for the next datagram."""
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.sock_recv(self.sock, 4096), timeout)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[Receiver]:
    name = str(short_dir / "notify") if request.param == "path" else f"@flowd-test/{uuid.uuid4().hex}"
    r = Receiver(name)
    try:
        yield r
    finally:
        r.close()


# -- the protocol -------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, address", [
    ("/run/systemd/notify", b"/run/systemd/notify"),
    ("@/org/freedesktop/systemd1/notify/123", b"\0/org/freedesktop/systemd1/notify/123"),
    ("/" + "x" * 106, b"/" + b"x" * 106),
    ("@" + "y" * 107, b"\0" + b"y" * 107),
])
def test_socket_addresses(value: str, address: bytes) -> None:
    assert socket_address(value) == address


@pytest.mark.parametrize("value, message", [
    ("run/notify", "expected an absolute path or @abstract-name"),
    ("@", "expected an absolute path or @abstract-name"),
    ("vsock:2:1234", "expected an absolute path or @abstract-name"),
    ("/" + "x" * 107, "longer than 107 bytes"),
    ("@" + "y" * 108, "longer than 108 bytes"),
])
def test_bad_socket_addresses(value: str, message: str) -> None:
    with pytest.raises(NotifyError, match=message):
        socket_address(value)


@pytest.mark.parametrize("env, interval", [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4243"}, None),  # meant for another process
    ({"WATCHDOG_USEC": "1"}, 5e-7),
])
def test_watchdog_interval_is_half_of_watchdog_usec(env: dict[str, str], interval: float | None) -> None:
    assert watchdog_interval(env, pid=4242) == interval


@pytest.mark.parametrize("env", [{"WATCHDOG_USEC": "0"}, {"WATCHDOG_USEC": "-5"}, {"WATCHDOG_USEC": "30s"},
                                 {"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "self"}])
def test_bad_watchdog_values(env: dict[str, str]) -> None:
    with pytest.raises(NotifyError):
        watchdog_interval(env, pid=4242)


def test_without_notify_socket_nothing_is_sent(receiver: Receiver) -> None:
    notifier = Notifier.from_environ({"WATCHDOG_USEC": "1000000"})
    assert not notifier.enabled and notifier.watchdog_interval is None
    assert notifier.ready("up") is False and notifier.watchdog() is False and notifier.stopping() is False
    assert receiver.drain() == []


def test_a_bad_notify_socket_disables_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "flowd.runtime.notify"):
        notifier = Notifier.from_environ({"NOTIFY_SOCKET": "relative/notify"})
    assert not notifier.enabled
    assert [r.getMessage() for r in caplog.records] == [
        "not notifying systemd: NOTIFY_SOCKET='relative/notify': expected an absolute path or @abstract-name"]


def test_messages_on_the_wire(receiver: Receiver) -> None:
    notifier = Notifier.from_environ({"NOTIFY_SOCKET": receiver.name, "WATCHDOG_USEC": "4000000",
                                      "WATCHDOG_PID": str(os.getpid())})
    assert notifier.enabled and notifier.watchdog_interval == 2.0
    assert notifier.ready("Monitoring: 0 packets/s")
    assert notifier.status("two\nlines")
    assert notifier.watchdog()
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading()
    after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloaded("Monitoring again")
    assert notifier.stopping()
    got = receiver.drain()
    notifier.close()
    assert {pid for pid, _ in got} == {os.getpid()}  # the kernel vouches for the sender (NotifyAccess=main)
    messages = [m for _, m in got]
    reloading = messages.pop(3)
    assert messages == [
        f"READY=1\nMAINPID={os.getpid()}\nSTATUS=Monitoring: 0 packets/s".encode(),
        b"STATUS=two lines",
        b"WATCHDOG=1",
        b"READY=1\nSTATUS=Monitoring again",
        b"STOPPING=1\nSTATUS=Stopping: exporting cached flows",
    ]
    head, usec = reloading.split(b"\nMONOTONIC_USEC=")
    assert head == b"RELOADING=1" and before <= int(usec) <= after


def test_a_vanished_manager_is_reported_once_and_never_raises(short_dir: Path,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier(socket_address(str(short_dir / "gone")), watchdog=1.0)
    with caplog.at_level(logging.DEBUG, "flowd.runtime.notify"):
        assert notifier.watchdog() is False
        assert notifier.watchdog() is False
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "cannot notify systemd (WATCHDOG=1): No such file or directory"),
        ("DEBUG", "cannot notify systemd (WATCHDOG=1): No such file or directory")]


# -- the daemon's hooks -------------------------------------------------------------------------------

def write_pcap(path: Path, count: int) -> None:
    """`count` UDP packets of one flow 198.18.0.1:5000 -> 198.19.0.1:53, a millisecond apart."""
    ip = dpkt.ip.IP(src=socket.inet_aton("198.18.0.1"), dst=socket.inet_aton("198.19.0.1"), p=17,
                    data=dpkt.udp.UDP(sport=5000, dport=53, data=b"x" * 20))
    ip.len = len(bytes(ip))
    frame = bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))
    with open(path, "wb") as fh:
        writer = dpkt.pcap.Writer(fh)
        for i in range(count):
            writer.writepkt(frame, ts=1_700_000_000 + i * 0.001)


class GatedReplay(Replay):
    """A replay whose file opens only when the test says so (an input that is slow to come up)."""

    def __init__(self, path: str, clock: FakeClock) -> None:
        super().__init__(path, clock, speed=MAX_SPEED)
        self.gate = asyncio.Event()

    async def batches(self) -> AsyncIterator[FrameBatch]:
        await self.gate.wait()
        async for batch in super().batches():
            yield batch


async def settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def make_app(short_dir: Path, clock: FakeClock, replays: list[Replay], notifier: Notifier,
             collector: socket.socket) -> App:
    cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", collector.getsockname()[1])],
                                           source_address="127.0.0.1")
    return App(cfg, socket_path=str(short_dir / "flowd.sock"), clock=clock, replays=replays, notifier=notifier,
               load_config=lambda: cfg)


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    yield s
    s.close()


def test_ready_status_reload_and_stopping_in_order(short_dir: Path, receiver: Receiver,
                                                   collector: socket.socket) -> None:
    pcap = short_dir / "in.pcap"
    write_pcap(pcap, 500)

    async def main() -> None:
        clock = FakeClock()
        replay = GatedReplay(str(pcap), clock)
        app = make_app(short_dir, clock, [replay], Notifier(socket_address(receiver.name)), collector)
        at_ready: list[int] = []
        real_ready = app.notifier.ready

        def ready(status: str) -> bool:
            with socket.socket(socket.AF_UNIX) as probe:
                probe.connect(app.socket_path)  # raises unless the control socket already accepts
            at_ready.append(replay.state.frames)
            return real_ready(status)

        app.notifier.ready = ready  # type: ignore[method-assign]
        runner = asyncio.ensure_future(app.run())
        await settle()
        assert os.path.exists(app.socket_path)
        assert receiver.messages() == [], "READY=1 before the input was open"
        replay.gate.set()
        assert (await receiver.next()).startswith(b"READY=1\n")
        assert at_ready and at_ready[0] > 0  # the file had given its first batch
        clock.advance(app_module.STATUS_INTERVAL)
        await settle()
        assert receiver.messages() == [b"STATUS=Idle: 100 packets/s, 1 active flows, 0 flows exported"]
        assert app.reload()
        [reloading, reloaded] = receiver.messages()
        assert reloading.startswith(b"RELOADING=1\nMONOTONIC_USEC=")
        assert reloaded == b"READY=1\nSTATUS=Idle: 100 packets/s, 1 active flows, 0 flows exported"

        flushed_after: list[list[bytes]] = []
        real_flush = app.probe.flush

        def flush(now: float, *args: object) -> int:
            flushed_after.append(receiver.messages())
            return real_flush(now)

        app.probe.flush = flush  # type: ignore[method-assign, assignment]
        app.stop()
        await asyncio.wait_for(runner, 10)
        assert flushed_after == [[b"STOPPING=1\nSTATUS=Stopping: exporting cached flows"]]
        assert collector.recv(65535)  # and the flush did export the cached flow

    asyncio.run(main())


def test_no_ready_when_the_daemon_stops_while_starting(short_dir: Path, receiver: Receiver,
                                                       collector: socket.socket) -> None:
    async def main() -> None:
        clock = FakeClock()
        replay = GatedReplay(str(short_dir / "never-opened.pcap"), clock)
        app = make_app(short_dir, clock, [replay], Notifier(socket_address(receiver.name)), collector)
        runner = asyncio.ensure_future(app.run())
        await settle()
        app.stop()
        await asyncio.wait_for(runner, 10)
        assert receiver.messages() == [b"STOPPING=1\nSTATUS=Stopping: exporting cached flows"]

    asyncio.run(main())


def test_a_blocked_event_loop_stops_the_watchdog(short_dir: Path, receiver: Receiver,
                                                 collector: socket.socket) -> None:
    interval = 0.02

    async def main() -> None:
        app = make_app(short_dir, FakeClock(), [], Notifier(socket_address(receiver.name), watchdog=interval),
                       collector)
        runner = asyncio.ensure_future(app.run())
        pings = 0
        while pings < 3:  # the app's watchdog task is running
            pings += await receiver.next() == b"WATCHDOG=1"
        receiver.drain()
        time.sleep(10 * interval)  # a handler that blocks the loop: the one place a sleep is the point
        assert receiver.drain() == [], "a watchdog ping left while the event loop was blocked"
        while await receiver.next() != b"WATCHDOG=1":  # once the loop runs again, so do the pings
            pass
        app.stop()
        await asyncio.wait_for(runner, 10)

    asyncio.run(main())


def test_ping_watchdog_without_a_watchdog_returns_at_once() -> None:
    asyncio.run(asyncio.wait_for(ping_watchdog(Notifier(b"\0unused", watchdog=None)), 5))
