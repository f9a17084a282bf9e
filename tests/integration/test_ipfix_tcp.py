"""IPFIX over TCP from `flowd --read` and from the daemon: what a collector sees on each connection.

The collector is a listening socket on 127.0.0.1 read by a thread until the exporter closes; the
stream is decoded by tests/flowdecode.py (strict: unpadded template sets, exact set ends) and by
tshark. Checked: the first message of a connection has sequence number 0 and the sequence counts
data records from there (RFC 7011 §3.1, §10.4); in batch mode every message, the connection's
greeting included, carries the capture's time and systemInitTimeMilliseconds is the first packet's.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import pytest
from flowdecode import (
    TSHARK,
    Decoder,
    Message,
    tshark_pdus,
    tshark_problems,
    write_tcp_pcap,
)
from test_daemon import Daemon, wait_for

from flowd.testing.synth import SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]
START = 1_600_000_000.123456  # the capture's start: years before the wall clock, not a whole second

pytestmark = pytest.mark.integration


class StreamCollector:
    """Accepts connections on 127.0.0.1 and keeps each one's bytes until the exporter closes it."""

    def __init__(self, port: int = 0) -> None:
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.streams: list[bytearray] = []
        self.closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @classmethod
    def on(cls, port: int) -> StreamCollector:
        return cls(port)

    def _run(self) -> None:
        conn, _ = self.listener.accept()
        stream = bytearray()
        self.streams.append(stream)
        with conn:
            while chunk := conn.recv(65536):
                stream += chunk
        self.closed.set()

    def stop(self) -> None:
        self.listener.close()


def decode(stream: bytes) -> list[Message]:
    messages = Decoder(unpadded_templates=True).stream(stream, "tcp")
    assert not any(m.unknown_sets for m in messages), "a data set before its template"
    sequence = 0  # a new transport session
    for m in messages:
        assert m.header["sequence"] == sequence
        sequence += m.data_records
    return messages


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "old.pcap"
    write_capture(SynthSpec(packets=4_000, flows=400, seed=5, duration=30.0, start=START), str(path))
    return path


def first_packet_ms(path: Path) -> int:
    with path.open("rb") as f:
        ts, _ = next(iter(dpkt.pcap.Reader(f)))
    return int(round(ts * 1e6)) // 1000


def test_batch_mode_session_starts_at_0_in_capture_time(capture: Path, tmp_path: Path) -> None:
    collector = StreamCollector()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "flowd", "--read", str(capture), "--flow-server", f"127.0.0.1:{collector.port}",
             "--source-address", "127.0.0.1", "--export-version", "ipfix", "--transport", "tcp"],
            cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert collector.closed.wait(30)
    finally:
        collector.stop()
    (stream,) = collector.streams
    messages = decode(bytes(stream))
    greeting = messages[0]
    assert greeting.header["sequence"] == 0 and greeting.templates and len(greeting.options) == 1
    boot = first_packet_ms(capture)
    assert greeting.options[0]["systemInitTimeMilliseconds"] == boot
    times = [m.header["export_time"] for m in messages]
    assert all(int(START) <= t <= int(START) + 31 for t in times), times  # never the wall clock
    assert times == sorted(times)
    assert sum(len(m.records) for m in messages) > 300

    if TSHARK is not None:  # a second decoder: reassembled from MSS-sized segments, no expert warnings
        pcap = tmp_path / "stream.pcap"
        write_tcp_pcap(pcap, bytes(stream), dport=4739)
        assert tshark_problems(pcap, [4739], "tcp") == ""
        pdus = [pdu for frame in tshark_pdus(pcap, [4739], "tcp") for pdu in frame]
        assert [pdu["cflow.sequence"] for pdu in pdus] == [str(m.header["sequence"]) for m in messages]
        assert pdus[0]["cflow.sequence"] == "0"


def test_daemon_session_starts_at_0(capture: Path, tmp_path: Path) -> None:
    collector = StreamCollector()
    d = Daemon(tmp_path, "--replay", str(capture), "--replay-speed", "max", "--source-address", "127.0.0.1",
               "--flow-server", f"127.0.0.1:{collector.port}", "--export-version", "ipfix", "--transport", "tcp")
    try:
        wait_for(lambda: "finished after" in d.log.read_text())
    finally:
        status, log = d.stop()
        collector.stop()
    assert status == 0, log
    assert collector.closed.wait(30)
    (stream,) = collector.streams
    messages = decode(bytes(stream))
    assert messages[0].header["sequence"] == 0 and messages[0].templates
    assert sum(len(m.records) for m in messages) > 300


def test_daemon_shows_the_tcp_connection_and_counts_failures_while_down(capture: Path, tmp_path: Path) -> None:
    """Issue 10 item 27: a collector that is down shows in `errors` and in the status's connection lines."""
    with socket.socket() as probe:  # a port nobody listens on (yet)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    d = Daemon(tmp_path, "--replay", str(capture), "--replay-speed", "max", "--source-address", "127.0.0.1",
               "--flow-server", f"127.0.0.1:{port}", "--export-version", "ipfix", "--transport", "tcp")
    collector: StreamCollector | None = None

    def server() -> dict[str, object]:
        return d.call("accounting.status")["interfaces"][0]["flow_servers"][0]  # type: ignore[index,no-any-return]

    def failures() -> int:
        return int(d.call("accounting.errors")["interfaces"][0]["export_failures"][0]["failures"])  # type: ignore[index]

    try:
        wait_for(lambda: server()["connection"]["backlog_records"] > 0 and failures() >= 2)  # type: ignore[index]
        down = server()["connection"]
        assert down["state"] in ("down", "connecting") and down["connected_since"] is None  # type: ignore[index]
        assert "Connected since: not connected" in d.cli("show services accounting status").stdout
        before = failures()
        assert d.cli("clear services accounting statistics").returncode == 0
        assert failures() < before  # the TCP counters are cleared too

        collector = StreamCollector.on(port)
        wait_for(lambda: server()["connection"]["state"] == "up", timeout=60)  # type: ignore[index]
        wait_for(lambda: server()["connection"]["backlog_records"] == 0)  # type: ignore[index]
        up = server()["connection"]
        assert up["connected_since"] and up["last_export"] and up["records_dropped"] == 0  # type: ignore[index]
        text = d.cli("show services accounting status").stdout
        assert "Connection: up" in text and "Backlog records: 0" in text
    finally:
        status, log = d.stop()
        if collector is not None:
            collector.stop()
    assert status == 0, log
