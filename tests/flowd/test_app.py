"""The daemon's tasks in-process: a fake clock drives expiry; shutdown flushes; uvloop runs it all."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import dpkt
import numpy as np
import pytest
import uvloop
from fakes import FakeClock

from flowd.app import App
from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.export.outbox import GATHER_DELAY
from flowd.model.batch import FrameBatch


def frames(ts: float, count: int) -> FrameBatch:
    """`count` UDP packets of one flow, 198.18.0.1:5000 -> 198.19.0.1:53, Ethernet framed."""
    ip = dpkt.ip.IP(src=socket.inet_aton("198.18.0.1"), dst=socket.inet_aton("198.19.0.1"), p=17,
                    data=dpkt.udp.UDP(sport=5000, dport=53, data=b"x" * 20))
    ip.len = len(bytes(ip))
    frame = bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))
    n = len(frame)
    return FrameBatch(buf=frame * count, offset=np.arange(count, dtype=np.int64) * n,
                      caplen=np.full(count, n, np.uint32), wirelen=np.full(count, n, np.uint32),
                      ts=np.full(count, ts), linktype=np.ones(count, np.uint16), ifindex=np.ones(count, np.uint32))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def collector() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
    return s


def received(sock: socket.socket) -> list[dpkt.netflow.Netflow5]:
    out = []
    while True:
        try:
            out.append(dpkt.netflow.Netflow5(sock.recv(65535)))
        except BlockingIOError:
            return out


def make_app(tmp_path: Path, clock: FakeClock, port: int) -> App:
    cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", port)], source_address="127.0.0.1")
    return App(cfg, socket_path=str(tmp_path / "flowd.sock"), clock=clock, replays=[])


async def scenario(tmp_path: Path, collector: socket.socket) -> None:
    clock = FakeClock()
    app = make_app(tmp_path, clock, collector.getsockname()[1])
    runner = asyncio.ensure_future(app.run())
    await settle()
    app.probe.ingest(frames(clock.time(), 3), clock.time())
    clock.advance(15.0)  # inactive timeout 15 s: not yet (needs more than 15)
    await settle()
    assert received(collector) == []
    clock.advance(1.0)  # expired now, and waiting up to GATHER_DELAY for others to fill its datagram
    await settle()
    assert received(collector) == []
    clock.advance(GATHER_DELAY)
    await settle()
    [datagram] = received(collector)
    assert [(r.pkts_sent, r.bytes_sent) for r in datagram.data] == [(3, 3 * 48)]
    app.probe.ingest(frames(clock.time(), 2), clock.time())
    app.stop()  # shutdown flushes what is cached
    await runner
    [last] = received(collector)
    assert [r.pkts_sent for r in last.data] == [2]
    assert not (tmp_path / "flowd.sock").exists()


def test_fake_clock_drives_expiry_and_stop_flushes(tmp_path: Path, collector: socket.socket) -> None:
    asyncio.run(scenario(tmp_path, collector))


def test_runs_under_uvloop(tmp_path: Path, collector: socket.socket) -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(scenario(tmp_path, collector))


def test_a_task_that_dies_stops_the_daemon_with_its_error(tmp_path: Path, collector: socket.socket) -> None:
    async def main() -> None:
        clock = FakeClock()
        app = make_app(tmp_path, clock, collector.getsockname()[1])

        def broken(now: float) -> None:
            raise RuntimeError("expiry broke")

        app.probe.expire = broken  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="expiry broke"):
            await asyncio.wait_for(app.run(), 10)

    asyncio.run(main())
