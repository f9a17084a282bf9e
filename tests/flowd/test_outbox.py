"""flowd.export.outbox and the exporter's use of it: gathering into full datagrams, pacing, the stop bound.

Pure parts take literal times; the exporter tests send real datagrams to a loopback socket and drive
the pacing clock by hand (``Exporter.clock``), so nothing waits on wall time.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import replace

import dpkt  # type: ignore[import-untyped]
import pytest
from test_v5 import numbered, records

from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.export.exporter import Exporter
from flowd.export.messages import records_per_packet
from flowd.export.outbox import BURST, GATHER_DELAY, Outbox, Pacer
from flowd.export.v5 import MAX_RECORDS

BOOT = 1_700_000_000.0


# -- pure ---------------------------------------------------------------------------------------------

def test_pacer_is_a_token_bucket_in_real_time() -> None:
    pacer = Pacer(rate=1000.0, burst=32)
    assert pacer.available(10.0) == 32
    pacer.spend(32, 10.0)
    assert (pacer.available(10.0), pacer.wait(10.0)) == (0, pytest.approx(0.001))
    assert pacer.available(10.005) == 5
    pacer.spend(7, 10.005)  # templates rode along: a debt, repaid before the next datagram
    assert pacer.wait(10.005) == pytest.approx(0.003)
    assert pacer.available(20.0) == 32  # never more than the burst


def test_outbox_sends_full_datagrams_at_once_and_the_rest_after_the_delay() -> None:
    box = Outbox(per_datagram=30)
    box.add(records(numbered(5)), now=100.0)
    assert (box.due(100.0), box.take(100.5, 0.0), box.deadline()) == (0, None, 100.0 + GATHER_DELAY)
    box.add(records(numbered(60)), now=100.5)
    taken = box.take(100.5, 0.0)
    assert taken is not None and len(taken) == 60 and box.count == 5
    assert [int(p) for p in taken.packets[:6]] == [1, 2, 3, 4, 5, 1]  # oldest first
    assert box.deadline() == 100.5 + GATHER_DELAY  # the 5 left are the newest chunk's
    assert box.take(100.5 + GATHER_DELAY, 0.0) is not None and box.count == 0 and box.deadline() is None


def test_pacing_holds_what_is_due_until_tokens_allow() -> None:
    box = Outbox(per_datagram=30, pacer=Pacer(rate=100.0, burst=2))
    box.add(records(numbered(150)), now=0.0)
    first = box.take(0.0, real=5.0)
    assert first is not None and len(first) == 60  # two datagrams' worth: the burst
    box.sent(2, 5.0)
    assert box.take(0.0, real=5.0) is None and box.paced_wait(0.0, 5.0) == pytest.approx(0.01)
    later = box.take(0.0, real=5.01)
    assert later is not None and len(later) == 30


def test_finish_by_bounds_the_time_to_send_everything() -> None:
    box = Outbox(per_datagram=1, pacer=Pacer(rate=1000.0))
    box.add(records(numbered(10_000)), now=0.0)  # 10,000 datagrams: 10 s at 1 kpps
    box.finish_by(2.0)
    assert box.draining and box.pacer is not None
    assert box.pacer.rate >= (box.datagrams_left() - BURST) / 2.0
    real, sent = 0.0, 0
    while box.count:
        taken = box.take(0.0, real)
        if taken is not None:
            n = len(taken)
            box.sent(n, real)
            sent += n
        wait = box.paced_wait(0.0, real)
        real += 0.0 if wait is None else wait  # as the daemon's pacing task sleeps
    assert sent == 10_000 and real <= 2.0


@pytest.mark.parametrize("budget, size, count", [(1380, 48, 28), (1384, 97, 14), (100, 200, 1), (12, 4, 2)])
def test_records_per_packet(budget: int, size: int, count: int) -> None:
    n = records_per_packet(budget, size)
    assert n == count
    assert n == 1 or 4 + n * size + (-(4 + n * size)) % 4 <= budget


# -- the exporter: real datagrams to a loopback socket ----------------------------------------------------

@pytest.fixture
def collector() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.setblocking(False)
        yield s


def received(sock: socket.socket) -> list[int]:
    """Records per v5 datagram waiting on the socket."""
    out = []
    while True:
        try:
            out.append(dpkt.netflow.Netflow5(sock.recv(65535)).count)
        except BlockingIOError:
            return out


class Clock:
    def __init__(self) -> None:
        self.real = 50.0

    def __call__(self) -> float:
        return self.real


def exporter(collector: socket.socket, clock: Clock) -> Exporter:
    cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", collector.getsockname()[1])],
                         source_address="127.0.0.1")
    return Exporter(cfg, boot=BOOT, clock=clock)


def test_flows_ending_close_together_share_full_datagrams(collector: socket.socket) -> None:
    """Issue 10 item 16: one or two records per datagram before; now 30 per datagram, the rest within 1 s."""
    clock = Clock()
    ex = exporter(collector, clock)
    flows = numbered(100)
    for i in range(0, 100, 5):  # 20 expiry rounds, 5 flows each, 40 ms apart
        ex.export("inet", records(flows[i:i + 5]), BOOT + 10 + i * 0.008)
    assert received(collector) == [30, 30, 30]
    ex.tick(BOOT + 11.0)
    assert received(collector) == []  # 10 records wait for company...
    assert ex.next_deadline() == pytest.approx(BOOT + 10 + 90 * 0.008 + GATHER_DELAY)
    ex.tick(BOOT + 12.0)
    assert received(collector) == [10]  # ...for at most GATHER_DELAY
    assert ex.counters.flows_exported == 100 and ex.counters.datagrams == 4
    ex.close()


def test_export_is_paced_at_the_flow_export_rate(collector: socket.socket) -> None:
    clock = Clock()
    ex = exporter(collector, clock)  # the default: 10 kpps
    ex.export("inet", records(numbered(MAX_RECORDS * 200)), BOOT + 10)  # 200 full datagrams at once
    assert received(collector) == [MAX_RECORDS] * BURST
    wait = ex.pump()
    assert wait == pytest.approx(1 / 10_000)
    clock.real += 0.01  # 100 more datagrams' worth of tokens, but never more than a burst at once
    assert ex.pump() is not None
    assert len(received(collector)) == BURST
    ex.flush(sleep=lambda seconds: setattr(clock, "real", clock.real + seconds))
    assert len(received(collector)) == 200 - 2 * BURST
    assert ex.held() == 0 and ex.pump() is None
    ex.close()


def test_batch_mode_is_not_paced_unless_a_rate_is_configured(collector: socket.socket) -> None:
    clock = Clock()
    cfg = exporter(collector, clock).cfg
    ex = Exporter(cfg, boot=BOOT, clock=clock, default_rate=None)  # as batch mode makes it
    ex.export("inet", records(numbered(MAX_RECORDS * 200)), BOOT + 10)
    assert received(collector) == [MAX_RECORDS] * 200 and ex.pump() is None
    ex.close()
    inet = replace(cfg.families["inet"], export_rate=1)
    ex = Exporter(replace(cfg, families={**cfg.families, "inet": inet}), boot=BOOT, clock=clock, default_rate=None)
    ex.export("inet", records(numbered(MAX_RECORDS * 200)), BOOT + 10)
    assert received(collector) == [MAX_RECORDS] * BURST
    assert ex.pump() == pytest.approx(1 / 1000)
    ex.close()


def test_wait_below_sends_paced_until_few_records_wait(collector: socket.socket) -> None:
    """Batch mode's back-pressure: what is held beyond the bound leaves (paced) before reading goes on."""
    clock = Clock()
    ex = exporter(collector, clock)
    ex.export("inet", records(numbered(MAX_RECORDS * 100 + 7)), BOOT + 10)  # 100 full datagrams and 7 more
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.real += seconds

    ex.wait_below(MAX_RECORDS * 10, sleep)
    assert MAX_RECORDS * 9 < ex.held() <= MAX_RECORDS * 10 and slept  # it waited for the pacing
    sent = received(collector)
    assert set(sent) == {MAX_RECORDS} and sum(sent) + ex.held() == MAX_RECORDS * 100 + 7
    ex.wait_below(0, sleep)  # only whole datagrams are due: the 7 wait for company or age
    assert ex.held() == 7 and len(sent) + len(received(collector)) == 100
    ex.close()
