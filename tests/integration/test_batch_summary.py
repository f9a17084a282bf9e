"""`flowd --read`'s summary: each flow server with its format and transport, failures that are total, drop words."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from collectors import free_udp_port

from flowd.testing.synth import GroundTruth, SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("synth") / "truth.pcap"
    return path, write_capture(SynthSpec(packets=8_000, flows=800, seed=41, duration=60.0), str(path))


def flowd(capture: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowd", "--read", str(capture), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def server_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("Flow server ")]


def test_udp_servers_count_datagrams_that_arrived(capture: tuple[Path, GroundTruth]) -> None:
    path, truth = capture
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        port = sink.getsockname()[1]
        done = flowd(path, "--flow-server", f"127.0.0.1:{port}")
        sink.setblocking(False)
        received = 0
        while True:
            try:
                sink.recv(65535)
            except BlockingIOError:
                break
            received += 1
    assert done.returncode == 0, done.stderr
    assert server_lines(done.stdout) == [
        f"Flow server 127.0.0.1:{port} (cflowd v5 over UDP, family inet): {received} datagrams sent, 0 failed"]
    ipv6 = sum(t.packets for t in truth.flows if ":" in t.src)
    assert f"Packets dropped: not IP {truth.non_ip}, not IPv4 {ipv6}, header too small {truth.header_too_small}, " \
           f"bad IP header {truth.bad_ip_header}" in done.stdout


def test_tcp_server_counts_messages_per_family(capture: tuple[Path, GroundTruth]) -> None:
    path, _ = capture
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        port = listener.getsockname()[1]
        octets = [0]

        def collect() -> None:  # one connection per family; read until both close
            conns = [listener.accept()[0] for _ in range(2)]
            for conn in conns:
                with conn:
                    while data := conn.recv(65536):
                        octets[0] += len(data)

        reader = threading.Thread(target=collect, daemon=True)
        reader.start()
        done = flowd(path, "--flow-server", f"127.0.0.1:{port}", "--export-version", "ipfix", "--transport", "tcp")
        reader.join(timeout=60)
    assert done.returncode == 0, done.stderr
    lines = server_lines(done.stdout)
    assert [re.sub(r": \d+ messages sent", ": N messages sent", line) for line in lines] == [
        f"Flow server 127.0.0.1:{port} (IP-FIX over TCP, family {family}): N messages sent, 0 failed"
        for family in ("inet", "inet6")], lines
    assert octets[0] > 0


@pytest.mark.parametrize("transport, unit", [("udp", "datagrams"), ("tcp", "messages")])
def test_every_export_failed_is_said_and_exits_69(capture: tuple[Path, GroundTruth], transport: str,
                                                  unit: str) -> None:
    path, _ = capture
    port = free_udp_port()  # nothing listens there, on UDP or TCP
    done = flowd(path, "--flow-server", f"127.0.0.1:{port}", "--export-version", "ipfix", "--transport", transport)
    assert done.returncode == 69, (done.stdout, done.stderr)
    for line in server_lines(done.stdout):
        assert "): every export failed: " in line and f" {unit} sent, " in line, line
    assert done.stderr.splitlines()[0] == (f"flowd: every export to flow server 127.0.0.1:{port} (family inet) "
                                           f"failed: ECONNREFUSED: Connection refused"
                                           + (" (reported by ICMP)" if transport == "udp" else ""))
