"""flowd.export.udp over real UDP on 127.0.0.1 / ::1, and v5 export into a real nfcapd."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from collectors import HAVE_NFDUMP, start_nfcapd

from flowd.export.udp import (
    Destination,
    DestinationStats,
    ExportSocketError,
    FailureKind,
    UdpSender,
)
from flowd.export.v5 import V5Header, encode_v5
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import KEY_BYTES, FlowKey

RECEIVE_TIMEOUT = 5.0  # safety bound only: loopback datagrams are queued before send() returns
STATS_KEYS = ["flow_server", "host", "port", "source_address", "datagrams_sent", "bytes_sent",
              "failures", "refused", "unreachable", "buffer_full", "other", "last_error"]


def receiver(host: str = "127.0.0.1") -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((host, 0))
    sock.settimeout(RECEIVE_TIMEOUT)
    return sock


def dead_port(host: str = "127.0.0.1") -> int:
    """A port that had a listener a moment ago and has none now."""
    sock = receiver(host)
    port: int = sock.getsockname()[1]
    sock.close()
    return port


def receive(sock: socket.socket, n: int) -> list[tuple[bytes, tuple[str, int]]]:
    return [(data, addr[:2]) for data, addr in (sock.recvfrom(65535) for _ in range(n))]


@pytest.fixture
def receivers() -> Iterator[list[socket.socket]]:
    socks = [receiver(), receiver()]
    yield socks
    for sock in socks:
        sock.close()


DATAGRAMS = [bytes([i]) * (100 + i) for i in range(10)]


def test_every_destination_receives_every_datagram(receivers: list[socket.socket]) -> None:
    dests = [Destination("127.0.0.1", r.getsockname()[1]) for r in receivers]
    with UdpSender(dests) as sender:
        sender.send(DATAGRAMS)
        sender.send(DATAGRAMS[:3])
        for r in receivers:
            got = [data for data, _ in receive(r, 13)]
            assert got == DATAGRAMS + DATAGRAMS[:3]
        rows = sender.stats_rows()
    total = sum(map(len, DATAGRAMS + DATAGRAMS[:3]))
    assert [list(row) for row in rows] == [STATS_KEYS, STATS_KEYS]
    for row, dest in zip(rows, dests, strict=True):
        assert row["flow_server"] == f"127.0.0.1:{dest.port}"
        assert (row["datagrams_sent"], row["bytes_sent"], row["failures"]) == (13, total, 0)


def test_port_without_listener_counts_failures_and_never_raises(receivers: list[socket.socket]) -> None:
    live = receivers[0].getsockname()[1]
    dests = [Destination("127.0.0.1", dead_port()), Destination("127.0.0.1", live)]
    with UdpSender(dests) as sender:
        sender.send(DATAGRAMS[:5])
        sender.poll_errors()
        dead, alive = sender.stats
        # Every ICMP port unreachable is counted; the kernel may rate-limit ICMP, hence >= 1.
        assert 1 <= dead.failures <= 5
        assert dead.by_kind[FailureKind.REFUSED] == dead.failures
        assert "ECONNREFUSED" in dead.last_error
        first = dead.failures
        sender.send(DATAGRAMS[:5])  # a refused collector stays a counted failure, not an exception
        sender.poll_errors()
        assert dead.failures > first
        assert alive.failures == 0 and alive.datagrams_sent == 10
    assert [data for data, _ in receive(receivers[0], 10)] == DATAGRAMS[:5] * 2


def test_refusals_are_counted_without_the_error_queue_too() -> None:
    """Where IP_RECVERR is unavailable the pending ECONNREFUSED of a later send() is the signal."""
    with UdpSender([Destination("127.0.0.1", dead_port())]) as sender:
        sender._errqueue = [False]  # as on a kernel without IP_RECVERR
        sender.send(DATAGRAMS[:5])
        st = sender.stats[0]
        assert 1 <= st.failures <= 5
        assert st.by_kind[FailureKind.REFUSED] == st.failures
        assert st.datagrams_sent == 5  # a send failed by an earlier refusal is retried


@pytest.mark.parametrize("source", ["127.0.0.1", "127.0.0.2"])
def test_source_address_is_what_the_collector_sees(source: str, receivers: list[socket.socket]) -> None:
    port = receivers[0].getsockname()[1]
    with UdpSender([Destination("127.0.0.1", port, source_address=source)]) as sender:
        sender.send(DATAGRAMS[:3])
    sources = {addr for _, addr in receive(receivers[0], 3)}
    assert len(sources) == 1  # one connected socket: one source address and port
    assert sources.pop()[0] == source


@pytest.mark.parametrize("dest, message", [
    (Destination("127.0.0.1", 2055, source_address="192.0.2.1"),
     "flow server 127.0.0.1:2055: cannot bind source address 192.0.2.1: Cannot assign requested address"),
    (Destination("::1", 2055, source_address="127.0.0.1"),
     "flow server [::1]:2055: source address 127.0.0.1 is IPv4, the flow server is IPv6"),
    (Destination("127.0.0.1", 2055, source_address="not-an-address"),
     "flow server 127.0.0.1:2055: source address 'not-an-address' is not an IP address"),
    (Destination("127.0.0.1", 0), "flow server 127.0.0.1:0: port must be 1..65535"),
    (Destination("127.0.0.1", 2055, dscp=64), "flow server 127.0.0.1:2055: dscp must be 0..63, got 64"),
])
def test_bad_destination_is_a_one_line_error(dest: Destination, message: str) -> None:
    with pytest.raises(ExportSocketError) as err:
        UdpSender([Destination("127.0.0.1", 9), dest])
    assert str(err.value) == message
    assert "\n" not in str(err.value)


def test_ipv6_destination() -> None:
    try:
        sock = receiver("::1")
    except OSError:
        pytest.skip("no IPv6 loopback")
    with sock, UdpSender([Destination("::1", sock.getsockname()[1], source_address="::1")]) as sender:
        sender.send(DATAGRAMS[:2])
        got = [(data, addr[0]) for data, addr in receive(sock, 2)]
        assert got == [(d, "::1") for d in DATAGRAMS[:2]]
        assert sender.stats[0].datagrams_sent == 2


def test_dscp_is_written_into_the_tos_byte(receivers: list[socket.socket]) -> None:
    r = receivers[0]
    r.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTOS", 13), 1)
    with UdpSender([Destination("127.0.0.1", r.getsockname()[1], dscp=46)]) as sender:
        sender.send(DATAGRAMS[:1])
    _, ancdata, _, _ = r.recvmsg(65535, 64)
    assert [data[0] for level, _, data in ancdata if level == socket.IPPROTO_IP] == [46 << 2]


def test_send_after_close_is_a_programming_error(receivers: list[socket.socket]) -> None:
    sender = UdpSender([Destination("127.0.0.1", receivers[0].getsockname()[1])])
    sender.close()
    sender.close()  # idempotent
    with pytest.raises(RuntimeError):
        sender.send(DATAGRAMS[:1])


# A full send buffer cannot be produced on loopback UDP (delivery frees the buffer at once), so these
# two tests put a connected AF_UNIX datagram socket in the sender's place: its peer's queue fills
# up and sends fail with EAGAIN exactly as a full UDP send buffer does.

def _swap_in(sender: UdpSender, sock: socket.socket) -> None:
    sock.setblocking(False)  # as UdpSender sets its own sockets
    sender.destinations = (Destination("unix-peer", 1),)
    sender.stats = (DestinationStats(),)
    sender._socks = [sock]
    sender._addrs = [("", 0)]
    sender._connected = [True]
    sender._errqueue = [False]


def test_full_send_buffer_without_waiting_counts_each_lost_datagram() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    with b:
        sender = UdpSender([], wait_limit=0.0)
        _swap_in(sender, a)
        sender.send([b"x" * 1400] * 2000)
        st = sender.stats[0]
        assert st.by_kind[FailureKind.BUFFER_FULL] > 0
        assert st.datagrams_sent + st.failures == 2000
        sender.close()


def test_full_send_buffer_waits_for_room_then_sends_everything() -> None:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    received: list[int] = []

    def drain() -> None:
        b.settimeout(RECEIVE_TIMEOUT)
        while len(received) < 2000:
            received.append(len(b.recv(65535)))

    reader = threading.Thread(target=drain)
    sender = UdpSender([], wait_limit=30.0)  # a bound, not a sleep: select() returns when writable
    _swap_in(sender, a)
    reader.start()
    sender.send([b"x" * 1400] * 2000)
    reader.join()
    b.close()
    assert (sender.stats[0].datagrams_sent, sender.stats[0].failures) == (2000, 0)
    assert received == [1400] * 2000
    sender.close()


# -- end to end: v5 datagrams into a real nfcapd -------------------------------------------------

BOOT = 1_700_000_000.0
NOW = BOOT + 12.345678
FLOWS = [  # (src, dst, sport, dport, proto, tos, ifindex, packets, bytes, first_ms, last_ms, flags)
    ("10.0.0.1", "192.0.2.80", 51514, 443, 6, 0x00, 3, 12, 6_240, 1_250, 3_500, 0x1B),
    ("10.0.0.2", "198.51.100.53", 40000, 53, 17, 0xB8, 3, 1, 74, 2_000, 2_000, 0),
    ("10.0.0.3", "203.0.113.9", 0, 0x0800, 1, 0x00, 4, 4, 336, 5_001, 8_004, 0),
    *((f"10.9.0.{i}", "192.0.2.1", 2000 + i, 80, 6, 0, 7, i, 60 * i, 100 + i, 900 + i, 0x12)
      for i in range(1, 33)),
]


def flow_records() -> FlowRecords:
    n = len(FLOWS)
    keys = b"".join(FlowKey(ipaddress.ip_address(f[0]), ipaddress.ip_address(f[1]), *f[2:7]).pack()
                    for f in FLOWS)
    return FlowRecords(
        key=np.frombuffer(keys, np.uint8).reshape(n, KEY_BYTES).copy(),
        packets=np.array([f[7] for f in FLOWS], np.uint64), bytes=np.array([f[8] for f in FLOWS], np.uint64),
        first=np.array([BOOT + f[9] / 1000 for f in FLOWS]),
        last=np.array([BOOT + f[10] / 1000 for f in FLOWS]),
        tcp_flags=np.array([f[11] for f in FLOWS], np.uint8), ttl_min=np.zeros(n, np.uint8),
        ttl_max=np.zeros(n, np.uint8), vlan=np.zeros(n, np.uint16), inner_vlan=np.zeros(n, np.uint16),
        mpls=np.zeros((n, 3), np.uint32), end_reason=np.zeros(n, np.uint8))


@pytest.mark.integration
@pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")
@pytest.mark.parametrize("rate", [1, 100])
def test_nfcapd_stores_what_was_exported(tmp_path: Path, rate: int) -> None:
    datagrams = encode_v5(flow_records(), now=NOW, boot=BOOT, sequence=0,
                          header=V5Header(engine_type=0, engine_id=0, sampling_interval=rate))
    assert len(datagrams) == 2  # 35 flows: 30 + 5, so nfcapd also checks the sequence numbers
    with start_nfcapd(tmp_path) as collector, \
            UdpSender([Destination("127.0.0.1", collector.port)]) as sender:
        sender.send(datagrams)
        collector.wait_idle()
        assert sender.stats[0].failures == 0
    summary = collector.summary()
    assert summary is not None and summary["sequence_errors"] == 0 and summary["bad_packets"] == 0
    got = sorted(((f["src"], f["dst"], f["sport"], f["dport"], f["proto"], f["tos"], f["input"],
                   f["packets"], f["bytes"], f["first_ms"], f["last_ms"], f["tcp_flags"], f["sampled"])
                  for f in collector.flows()), key=str)
    # nfcapd reads the header's sampling field (mode 01, interval N) and scales the counts by N.
    want = sorted(((src, dst, sport, dport, proto, tos, ifindex, packets * rate, octets * rate,
                    round(BOOT * 1000) + first, round(BOOT * 1000) + last, flags, rate > 1)
                   for src, dst, sport, dport, proto, tos, ifindex, packets, octets, first, last, flags
                   in FLOWS), key=str)
    assert got == want
