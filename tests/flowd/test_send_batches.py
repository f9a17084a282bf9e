"""The compiled datagram sender (flowd/native/_send.c) and batch mode's sender thread (flowd.export.udp_background).

send_datagrams must do what UdpSender's Python loop does, datagram for datagram: the same bytes in the
same order, the same count and octets, and a stop at the first datagram the kernel refuses with its
errno. BackgroundUdpSender must deliver and count exactly what UdpSender does, only from its own thread.
Real sockets throughout: UDP on 127.0.0.1, and an AF_UNIX datagram pair where a full buffer is needed.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from test_udp_export import DATAGRAMS, STATS_KEYS, _swap_in, dead_port, receive, receiver

from flowd.export import udp
from flowd.export.udp import Destination, FailureKind, UdpSender
from flowd.export.udp_background import QUEUED, BackgroundUdpSender, udp_sender


@pytest.fixture
def send_datagrams() -> Callable[..., tuple[int, int, int]]:
    """The compiled sender (whatever FLOWD_NO_FASTPATH says: it is checked here in both runs)."""
    try:
        module: Any = importlib.import_module("flowd.native._send")
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail("flowd.native._send is not built (CI builds it: tests/run.sh installs gcc and python3-dev)")
        pytest.skip("flowd.native._send is not built")
    function: Callable[..., tuple[int, int, int]] = module.send_datagrams
    return function


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected UDP socket and the one it sends to, on 127.0.0.1."""
    rx = receiver()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    yield tx, rx
    tx.close()
    rx.close()


def test_sends_every_datagram_in_order_with_its_octets(send_datagrams: Callable[..., tuple[int, int, int]],
                                                        pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = pair
    assert send_datagrams(tx.fileno(), DATAGRAMS, 0) == (10, sum(map(len, DATAGRAMS)), 0)
    assert send_datagrams(tx.fileno(), DATAGRAMS, 7) == (3, sum(map(len, DATAGRAMS[7:])), 0)
    assert send_datagrams(tx.fileno(), DATAGRAMS, 10) == (0, 0, 0)
    assert [data for data, _ in receive(rx, 13)] == DATAGRAMS + DATAGRAMS[7:]


def test_sends_at_most_one_batch_per_call(send_datagrams: Callable[..., tuple[int, int, int]],
                                          pair: tuple[socket.socket, socket.socket]) -> None:
    tx, rx = pair
    datagrams = [i.to_bytes(2, "big") for i in range(1500)]
    sent, octets, code = send_datagrams(tx.fileno(), datagrams, 0)
    assert 0 < sent < 1500 and octets == 2 * sent and code == 0
    rest, octets, code = send_datagrams(tx.fileno(), datagrams, sent)
    assert sent + rest == 1500 and octets == 2 * rest and code == 0
    assert [data for data, _ in receive(rx, 100)] == datagrams[:100]  # (a full receive buffer may drop the rest)


def test_stops_at_a_full_buffer_and_says_why(send_datagrams: Callable[..., tuple[int, int, int]]) -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with a, b:
        a.setblocking(False)
        sent, octets, code = send_datagrams(a.fileno(), [b"x" * 1400] * 1000, 0)
        assert 0 < sent < 1000 and octets == 1400 * sent and code == errno.EAGAIN
        received = 0
        b.setblocking(False)
        try:
            while b.recv(2048):
                received += 1
        except BlockingIOError:
            pass
        assert received == sent


def test_a_refused_collector_fails_the_next_send(send_datagrams: Callable[..., tuple[int, int, int]]) -> None:
    """Without IP_RECVERR the ICMP port unreachable of one datagram fails the next send with ECONNREFUSED."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        tx.connect(("127.0.0.1", dead_port()))
        assert send_datagrams(tx.fileno(), DATAGRAMS[:1], 0)[2] == 0
        sent, _, code = send_datagrams(tx.fileno(), DATAGRAMS[1:], 0)
        assert (sent, code) == (0, errno.ECONNREFUSED)


def test_bad_arguments_are_errors(send_datagrams: Callable[..., tuple[int, int, int]],
                                  pair: tuple[socket.socket, socket.socket]) -> None:
    tx, _ = pair
    with pytest.raises(TypeError, match="datagram 1 is bytearray, not bytes"):
        send_datagrams(tx.fileno(), [b"a", bytearray(b"b")], 0)
    with pytest.raises(ValueError, match="outside"):
        send_datagrams(tx.fileno(), [b"a"], 2)
    with pytest.raises(TypeError):
        send_datagrams(tx.fileno(), 5, 0)
    assert send_datagrams(-1, [b"a"], 0) == (0, 0, errno.EBADF)


def test_the_sender_uses_the_path_the_run_asked_for() -> None:
    pure = os.environ.get("FLOWD_NO_FASTPATH") == "1"
    assert udp.SENDS_IN_BATCHES == (not pure and importlib.util.find_spec("flowd.native._send") is not None)
    assert type(udp_sender([])) is (BackgroundUdpSender if udp.SENDS_IN_BATCHES else UdpSender)


# -- the sender thread ------------------------------------------------------------------------------

def test_background_sender_delivers_and_counts_what_the_plain_one_does() -> None:
    rx = [receiver(), receiver()]
    dests = [Destination("127.0.0.1", r.getsockname()[1]) for r in rx]
    sends = [DATAGRAMS[i % 10:] for i in range(4 * QUEUED)]  # more sends than the queue holds
    with BackgroundUdpSender(dests) as sender:
        for datagrams in sends:
            sender.send(datagrams)
        sender.send([])
        rows = sender.stats_rows()
    expected = [d for datagrams in sends for d in datagrams]
    for r in rx:
        assert [data for data, _ in receive(r, len(expected))] == expected
        r.close()
    assert [list(row) for row in rows] == [STATS_KEYS, STATS_KEYS]
    for row in rows:
        assert (row["datagrams_sent"], row["bytes_sent"], row["failures"]) == (len(expected), sum(map(len, expected)), 0)


def test_background_sender_counts_a_refused_collector() -> None:
    with BackgroundUdpSender([Destination("127.0.0.1", dead_port())]) as sender:
        sender.send(DATAGRAMS[:5])
        sender.poll_errors()  # waits for the thread first
        st = sender.stats[0]
        assert 1 <= st.failures <= 5 and st.by_kind[FailureKind.REFUSED] == st.failures
        assert st.datagrams_sent == 5


def test_background_sender_waits_for_room_then_sends_everything() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    sender = BackgroundUdpSender([], wait_limit=30.0)  # a bound, not a sleep: select() returns when writable
    _swap_in(sender, a)
    for _ in range(4):
        sender.send([b"x" * 1400] * 500)  # queued: the reader below makes room
    b.settimeout(5.0)
    received = [len(b.recv(2048)) for _ in range(2000)]
    sender.close()  # sends what is queued first
    b.close()
    assert received == [1400] * 2000
    assert (sender.stats[0].datagrams_sent, sender.stats[0].failures) == (2000, 0)


def test_an_error_on_the_thread_is_raised_by_the_next_call(pair: tuple[socket.socket, socket.socket]) -> None:
    _, rx = pair
    sender = BackgroundUdpSender([Destination("127.0.0.1", rx.getsockname()[1])])
    sender.send([b"ok", 42])  # type: ignore[list-item]  # not bytes: a bug, not a network error
    with pytest.raises(TypeError):
        sender.settle()
    sender.send([b"again"])  # the sender goes on
    sender.close()
    # The compiled sender checks every datagram first; the Python loop sends the ones before the bad one.
    expected = [b"again"] if udp.SENDS_IN_BATCHES else [b"ok", b"again"]
    assert [data for data, _ in receive(rx, len(expected))] == expected
    assert sender.stats[0].datagrams_sent >= 1  # (the Python loop's count of a run a bug cut short is lost)
    with pytest.raises(RuntimeError):
        sender.send([b"late"])
    sender.close()  # idempotent


def test_background_sender_that_cannot_be_set_up_is_a_one_line_error() -> None:
    with pytest.raises(udp.ExportSocketError, match="port must be 1..65535"):
        BackgroundUdpSender([Destination("127.0.0.1", 0)])
