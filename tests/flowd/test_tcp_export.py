"""flowd.export.tcp: IPFIX over TCP to a collector on loopback that goes away and comes back.

The collector here is a plain listening socket the test drives by hand (accept, read, close,
listen again on the same port), so every step happens when the test says. Reconnect and backoff
decisions are driven by literal ``now`` values; the only real waiting is for loopback I/O, bounded.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from flowdecode import (
    TSHARK,
    Decoder,
    Message,
    tshark_pdus,
    tshark_problems,
    tshark_records,
    write_tcp_pcap,
)
from test_ie_templates import BOOT, NOW, Flow, expected, numbered, records

from flowd.export.ipfix import IpfixFraming, SetId, encode_ipfix, greeting
from flowd.export.sequence import ExportState
from flowd.export.tcp import BacklogLimit, Backoff, LinkState, TcpSender
from flowd.export.templates import ExportPlan, plan_for
from flowd.export.udp import Destination, ExportSocketError

IO_LIMIT = 10.0  # seconds of real time loopback I/O may take before a test gives up (a safety bound)


class Collector:
    """An IPFIX-over-TCP collector the test drives: each accepted connection's bytes are kept."""

    def __init__(self, host: str = "127.0.0.1", *, receive_buffer: int | None = None) -> None:
        self.host = host
        self.port = 0
        self.receive_buffer = receive_buffer
        self.listener: socket.socket | None = None
        self.conns: list[socket.socket | None] = []
        self.streams: list[bytearray] = []
        self.peers: list[tuple[str, int]] = []
        self.listen()

    def listen(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.receive_buffer:  # inherited by accepted connections
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.receive_buffer)
        sock.bind((self.host, self.port))
        sock.listen(8)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        self.listener = sock

    def pump(self, *, read: bool = True) -> None:
        """Accept waiting connections; read whatever the open ones have."""
        while self.listener is not None:
            try:
                conn, peer = self.listener.accept()
            except BlockingIOError:
                break
            conn.setblocking(False)
            self.peers.append(peer[:2])
            self.conns.append(conn)
            self.streams.append(bytearray())
        for i, open_conn in enumerate(self.conns):
            while read and open_conn is not None:
                try:
                    data = open_conn.recv(65536)
                except BlockingIOError:
                    break
                if not data:
                    open_conn.close()
                    self.conns[i] = open_conn = None
                    break
                self.streams[i] += data

    def stop(self, *, reset: bool = False) -> None:
        """Close every connection (with RST when ``reset``) and the listener: the collector is down."""
        for i, conn in enumerate(self.conns):
            if conn is not None:
                if reset:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()
                self.conns[i] = None
        if self.listener is not None:
            self.listener.close()
            self.listener = None

    def sockets(self) -> list[socket.socket]:
        return [s for s in (self.listener, *self.conns) if s is not None]

    def received(self) -> int:
        return sum(len(s) for s in self.streams)


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.stop()


def wait(what: str, sender: TcpSender, collector: Collector, now: float, done: Callable[[], bool], *,
         read: bool = True) -> None:
    """Poll the sender and pump the collector until ``done()``; bounded by IO_LIMIT seconds."""
    deadline = time.monotonic() + IO_LIMIT
    while True:
        sender.poll(now)
        collector.pump(read=read)
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"still not {what} after {IO_LIMIT} s: {sender.stats_rows()[0]}")
        watched = [s.fileno() for s in collector.sockets()] + ([sender.fileno()] if sender.fileno() >= 0 else [])
        select.select(watched, [], [], 0.005)


def delivered(sender: TcpSender, collector: Collector) -> Callable[[], bool]:
    """Everything acknowledged and read by the collector."""
    return lambda: sender.unacknowledged() == (0, 0) and collector.received() == sender.stats.bytes_sent


def ipfix_plan() -> ExportPlan:
    return plan_for("ipfix", "inet", sampling_rate=10, active_timeout=1800, inactive_timeout=60)


def encode(plan: ExportPlan, state: ExportState, flows: Sequence[Flow], *, max_size: int = 1400) -> list[bytes]:
    return encode_ipfix(records(flows), now=NOW, boot=BOOT, state=state, plan=plan, max_size=max_size)


def decode_stream(stream: bytes | bytearray, name: str) -> list[Message]:
    """One connection: a fresh template cache (templates live per transport session)."""
    messages = Decoder(unpadded_templates=True).stream(bytes(stream), name)
    assert [s[0] for s in messages[0].sets] == [SetId.TEMPLATE, SetId.OPTIONS_TEMPLATE, 512]  # the greeting
    assert not any(m.unknown_sets for m in messages), "a data set arrived before its template"
    sequence = 0  # every connection is a new transport session (RFC 7011 §3.1, §10.4)
    for m in messages:  # RFC 7011 §3.1 within the connection, the greeting included
        assert m.header["sequence"] == sequence
        sequence = (sequence + m.data_records) % 2**32
    return messages


def as_sent(plan: ExportPlan, messages: Sequence[bytes], start: int = 1) -> bytes:
    """The messages as a connection carries them after its greeting: renumbered from ``start``."""
    framing, out, sequence = IpfixFraming(plan, BOOT), [], start
    for message in messages:
        out.append(framing.renumber(message, sequence))
        sequence += framing.data_records(message)
    return b"".join(out)


def check_flows(messages: Sequence[Message], flows: Sequence[Flow]) -> None:
    got = [r for m in messages for r in m.records]
    assert len(got) == len(flows)
    for record, flow in zip(got, flows, strict=True):
        assert record == expected(flow, list(record))


# -- a healthy collector ------------------------------------------------------------------------------------

@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_greeting_then_every_message_in_order(host: str) -> None:
    collector = Collector(host)
    plan, state = ipfix_plan(), ExportState(stream=True)
    flows = numbered(500)
    messages = encode(plan, state, flows)
    try:
        with TcpSender(Destination(host, collector.port), IpfixFraming(plan, BOOT)) as sender:
            sender.send(messages, 100.0)
            wait("delivered", sender, collector, 100.0, delivered(sender, collector))
            assert sender.state is LinkState.UP and sender.next_deadline() is None
            row = sender.stats_rows()[0]
        (stream,) = collector.streams
        decoded = decode_stream(stream, "tcp0")
        assert as_sent(plan, messages) == bytes(stream)[len(stream) - sum(map(len, messages)):]
        check_flows(decoded, flows)
        assert {k: row[k] for k in ("transport", "state", "messages_sent", "greetings_sent", "messages_acked",
                                    "failures", "backlog_messages", "connects", "disconnects")} == {
            "transport": "tcp", "state": "up", "messages_sent": len(messages), "greetings_sent": 1,
            "messages_acked": len(messages), "failures": 0, "backlog_messages": 0, "connects": 1,
            "disconnects": 0}
    finally:
        collector.stop()


def test_source_address_and_dscp(collector: Collector) -> None:
    plan, state = ipfix_plan(), ExportState(stream=True)
    messages = encode(plan, state, numbered(20))
    dest = Destination("127.0.0.1", collector.port, source_address="127.0.0.2", dscp=46)
    with TcpSender(dest, IpfixFraming(plan, BOOT)) as sender:
        sender.send(messages, 100.0)
        wait("delivered", sender, collector, 100.0, delivered(sender, collector))
        assert sender.stats_rows()[0]["source_address"] == "127.0.0.2"
    assert collector.peers[0][0] == "127.0.0.2"
    check_flows(decode_stream(collector.streams[0], "tcp0"), numbered(20))


@pytest.mark.integration
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tshark_reads_the_stream(collector: Collector, tmp_path: Path) -> None:
    plan, state = ipfix_plan(), ExportState(stream=True)
    messages = encode(plan, state, numbered(300)) + encode(plan, state, numbered(40, start=300), max_size=9000)
    with TcpSender(Destination("127.0.0.1", collector.port), IpfixFraming(plan, BOOT)) as sender:
        sender.send(messages, 100.0)
        wait("delivered", sender, collector, 100.0, delivered(sender, collector))
    (stream,) = collector.streams
    decoded = decode_stream(stream, "tcp0")
    pcap = tmp_path / "ipfix-tcp.pcap"
    write_tcp_pcap(pcap, bytes(stream), dport=4739)  # 1448-octet segments cut across messages
    assert tshark_problems(pcap, [4739], "tcp") == ""
    pdus = [pdu for frame in tshark_pdus(pcap, [4739], "tcp") for pdu in frame]
    assert len(pdus) == len(decoded)
    shown = [tshark_records(pdu) for pdu in pdus]
    assert [missing for _, missing in shown] == [0] * len(decoded)
    assert [len(r) for r, _ in shown] == [m.data_records for m in decoded]
    assert [pdu["cflow.sequence"] for pdu in pdus] == [str(m.header["sequence"]) for m in decoded]


# -- the collector restarts -----------------------------------------------------------------------------------

def test_restart_loses_nothing_and_backs_off_by_literal_times(collector: Collector) -> None:
    plan, state = ipfix_plan(), ExportState(stream=True)
    batches = [numbered(200), numbered(150, start=200), numbered(100, start=350)]
    encoded = [encode(plan, state, b) for b in batches]
    sender = TcpSender(Destination("127.0.0.1", collector.port), IpfixFraming(plan, BOOT),
                       backoff=Backoff(initial=1.0, maximum=8.0))
    sender.send(encoded[0], 100.0)
    wait("delivered", sender, collector, 100.0, delivered(sender, collector))

    collector.stop()  # read everything, then went away: FIN, and nobody listens any more
    sender.send(encoded[1], 101.0)  # notices the closed connection before writing
    assert (sender.state, sender.stats.disconnects, sender.next_deadline()) == (LinkState.DOWN, 1, 102.0)
    sender.send(encoded[2], 101.5)  # before the backoff: no attempt
    sender.poll(101.999)
    assert sender.stats.connect_failures == 0
    sender.poll(102.0)  # refused
    assert (sender.stats.connect_failures, sender.next_deadline()) == (1, 104.0)
    sender.poll(104.0)  # refused again: the delay doubles
    assert (sender.stats.connect_failures, sender.next_deadline()) == (2, 108.0)

    collector.listen()  # back on the same port
    sender.poll(107.9)
    assert sender.state is LinkState.DOWN and sender.stats.connects == 1
    sender.poll(108.0)
    wait("delivered again", sender, collector, 108.0, delivered(sender, collector))
    sender.close()

    first, second = (decode_stream(s, f"tcp{i}") for i, s in enumerate(collector.streams))
    check_flows(first, batches[0])
    check_flows(second, batches[1] + batches[2])  # nothing lost, nothing twice
    st = sender.stats
    assert (st.connects, st.disconnects, st.connect_failures, st.messages_dropped) == (2, 1, 2, 0)
    assert st.greetings_sent == 2  # templates again on the new connection


def test_unacknowledged_messages_are_resent_after_a_reset() -> None:
    """The collector's TCP acknowledged only what fit its small buffer; the rest is sent again, whole."""
    collector = Collector(receive_buffer=4096)
    plan, state = ipfix_plan(), ExportState(stream=True)
    flows = numbered(2000)
    messages = encode(plan, state, flows)
    sender = TcpSender(Destination("127.0.0.1", collector.port), IpfixFraming(plan, BOOT))
    try:
        sender.send(messages, 100.0)
        for _ in range(20):  # the collector accepts but never reads: the window fills
            sender.poll(100.0)
            collector.pump(read=False)
        assert sender.state is LinkState.UP
        assert 0 < sender.unacknowledged()[0] < len(messages)
        collector.stop(reset=True)  # a crash: RST, and its unread buffer is gone
        sender.poll(100.5)
        assert (sender.state, sender.stats.disconnects) == (LinkState.DOWN, 1)
        acked = sender.stats.messages_acked
        assert sender.stats.messages_resent == sender.stats.messages_sent - acked
        assert sender.unacknowledged() == (len(messages) - acked, sum(map(len, messages[acked:])))

        collector.receive_buffer = None
        collector.listen()
        sender.poll(101.5)
        hello = greeting(plan, now=NOW, boot=BOOT)  # stamped like the first message it precedes
        expect = len(hello) + sum(map(len, messages[acked:]))
        wait("delivered", sender, collector, 101.5,
             lambda: sender.unacknowledged() == (0, 0) and len(collector.streams[-1]) == expect)
        stream = bytes(collector.streams[1])
        assert stream[:len(hello)] == hello
        assert stream[len(hello):] == as_sent(plan, messages[acked:])  # exactly the unacknowledged ones, whole
        decoded = decode_stream(stream, "tcp1")
        check_flows(decoded, flows[sum(flow_counts(messages[:acked])):])
    finally:
        sender.close()
        collector.stop()


# -- the backlog bound ----------------------------------------------------------------------------------------

def flow_counts(messages: Sequence[bytes]) -> list[int]:
    """Flow records per message, by our decoder (templates from a greeting-like first pass)."""
    decoder = Decoder()
    plan = ipfix_plan()
    decoder.datagram(greeting(plan, now=NOW, boot=BOOT), "count")
    return [len(decoder.datagram(m, "count").records) for m in messages]


@pytest.mark.parametrize("limit, kept", [
    (BacklogLimit(max_bytes=None, max_messages=5), 5),
    (BacklogLimit(max_bytes=None, max_messages=1), 1),
    (BacklogLimit(max_bytes=4000, max_messages=None), None),  # as many of the newest as fit 4000 octets
    (BacklogLimit(max_bytes=10_000, max_messages=2), 2),
])
def test_overflow_drops_the_oldest_and_counts_exactly(limit: BacklogLimit, kept: int | None,
                                                      collector: Collector) -> None:
    plan, state = ipfix_plan(), ExportState(stream=True)
    flows = numbered(150)
    messages = encode(plan, state, flows)
    assert len(messages) > 6
    if kept is None:  # the newest messages whose total fits the byte limit
        kept = max(k for k in range(len(messages) + 1) if sum(map(len, messages[len(messages) - k:])) <= 4000)
    port = collector.port
    collector.stop()  # nobody listens: every connect is refused
    sender = TcpSender(Destination("127.0.0.1", port), IpfixFraming(plan, BOOT), limit=limit)
    for i, message in enumerate(messages):
        sender.send([message], 100.0 + i * 0.01)
    dropped = messages[:len(messages) - kept]
    counts = flow_counts(messages)
    row = sender.stats_rows()[0]
    # failures: the refused connect counts too, so a collector that is down shows before the backlog overflows
    assert (row["messages_dropped"], row["failures"]) == (len(dropped), len(dropped) + 1)
    assert row["records_dropped"] == sum(counts[:len(dropped)])
    assert row["backlog_records"] == sum(counts[len(dropped):])
    assert (row["connected_since"], row["last_export"], row["reconnects"]) == (None, None, 0)
    assert row["bytes_dropped"] == sum(map(len, dropped))
    assert (row["backlog_messages"], row["backlog_bytes"]) == (kept, sum(map(len, messages[len(dropped):])))
    assert row["state"] == "down" and row["connect_failures"] == 1

    collector.listen()
    deadline = sender.next_deadline()
    assert deadline is not None
    sender.poll(deadline)
    wait("delivered", sender, collector, deadline, delivered(sender, collector))
    sender.close()
    (stream,) = collector.streams
    decoded = decode_stream(stream, "tcp0")
    check_flows(decoded, flows[sum(counts[:len(dropped)]):])  # the newest flows, every one of them


def test_a_message_bigger_than_the_limit_is_dropped_at_once(collector: Collector) -> None:
    plan, state = ipfix_plan(), ExportState(stream=True)
    (big,) = encode(plan, state, numbered(300), max_size=65535)
    port = collector.port
    collector.stop()
    sender = TcpSender(Destination("127.0.0.1", port), IpfixFraming(plan, BOOT), limit=BacklogLimit(max_bytes=1000))
    sender.send([big], 100.0)
    assert (sender.stats.messages_dropped, sender.stats.records_dropped, sender.unacknowledged()) == (1, 300, (0, 0))


# -- backoff, closing, bad destinations --------------------------------------------------------------------

def test_backoff_doubles_up_to_its_maximum_and_resets_on_success(collector: Collector) -> None:
    plan = ipfix_plan()
    port = collector.port
    collector.stop()
    sender = TcpSender(Destination("127.0.0.1", port), IpfixFraming(plan, BOOT),
                       backoff=Backoff(initial=1.0, maximum=5.0))
    deadlines = []
    now = 0.0
    for _ in range(6):
        sender.poll(now)
        sender.poll(now + 0.5)  # between attempts nothing happens
        deadline = sender.next_deadline()
        assert deadline is not None
        deadlines.append(deadline)
        now = deadline
    assert deadlines == [1.0, 3.0, 7.0, 12.0, 17.0, 22.0]
    assert sender.stats.connect_failures == 6
    assert "ECONNREFUSED" in sender.stats.last_error
    collector.listen()
    sender.poll(now)
    wait("connected", sender, collector, now, lambda: sender.state is LinkState.UP)
    collector.pump()
    collector.stop()
    sender.poll(now + 1)  # lost: the next attempt is one initial delay away again
    assert sender.next_deadline() == now + 2.0
    sender.close()


def test_close_flushes_or_counts_what_is_left(collector: Collector) -> None:
    plan, state = ipfix_plan(), ExportState(stream=True)
    messages = encode(plan, state, numbered(100))
    sender = TcpSender(Destination("127.0.0.1", collector.port), IpfixFraming(plan, BOOT))
    sender.send(messages, 100.0)
    collector.pump()
    sender.close(100.0, timeout=IO_LIMIT)
    collector.pump()
    assert (sender.stats.messages_dropped, sender.stats.messages_acked) == (0, len(messages))
    with pytest.raises(RuntimeError, match="after close"):
        sender.send(messages, 101.0)
    port = collector.port
    collector.stop()
    down = TcpSender(Destination("127.0.0.1", port), IpfixFraming(plan, BOOT))
    down.send(messages, 100.0)
    down.close(100.0)
    assert (down.stats.messages_dropped, down.stats.records_dropped) == (len(messages), 100)


@pytest.mark.parametrize("dest, message", [
    (Destination("127.0.0.1", 0), "port must be 1..65535"),
    (Destination("127.0.0.1", 4739, dscp=64), "dscp must be 0..63, got 64"),
    (Destination("127.0.0.1", 4739, source_address="::1"), "source address ::1 is IPv6, the flow server is IPv4"),
    (Destination("127.0.0.1", 4739, source_address="lo"), "source address 'lo' is not an IP address"),
    (Destination("no such host.invalid", 4739), "cannot resolve"),
])
def test_bad_destinations_are_refused_up_front(dest: Destination, message: str) -> None:
    with pytest.raises(ExportSocketError, match=message):
        TcpSender(dest, IpfixFraming(ipfix_plan(), BOOT))


def test_limits_and_backoff_are_checked() -> None:
    with pytest.raises(ValueError, match="backlog max messages: expected >= 1 or None, got 0"):
        BacklogLimit(max_messages=0)
    with pytest.raises(ValueError, match="backoff: need 0 < initial <= maximum"):
        Backoff(initial=5.0, maximum=1.0)
