"""The OpenMetrics endpoint of a real daemon: promtool accepts the scrape and the rules, values equal the shows."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from collectors import free_udp_port

from flowd.testing.synth import GroundTruth, SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]
HAVE_PROMTOOL = shutil.which("promtool") is not None

pytestmark = pytest.mark.integration


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def http(port: int, request: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def scrape(port: int, accept: str = "") -> tuple[str, str]:
    extra = f"Accept: {accept}\r\n" if accept else ""
    raw = http(port, f"GET /metrics HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    content_type = re.search(rb"Content-Type: ([^\r]+)", head)
    assert content_type is not None
    return body.decode(), content_type.group(1).decode()


def value(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    found = re.search(r"^" + pattern + r"$", text, re.M)
    assert found is not None, f"{name} {labels} not in the scrape"
    return float(found.group(1))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int, GroundTruth]]:
    tmp = tmp_path_factory.mktemp("metrics")
    truth = write_capture(SynthSpec(packets=3000, flows=300, seed=11), tmp / "t.pcap")
    port = free_tcp_port()
    text = (REPO / "flowd" / "data" / "default.yaml").read_text()
    (tmp / "flowd.yaml").write_text(text + f"  metrics:\n    listen: 127.0.0.1\n    port: {port}\n")
    sock = str(tmp / "flowd.sock")
    log = open(tmp / "flowd.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "flowd", "--config", str(tmp / "flowd.yaml"), "--socket", sock,
                             "--replay", str(tmp / "t.pcap"), "--replay-speed", "max",
                             "--flow-server", f"127.0.0.1:{free_udp_port()}", "--active-timeout", "1800",
                             "--inactive-timeout", "1800"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp / "flowd.log").read_text()
            assert time.monotonic() < deadline, "the replay did not finish"
            try:
                if show(sock, "accounting.status")["interface_state"] == "Idle":
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        yield sock, port, truth
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def show(sock: str, method: str) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(json.dumps({"id": 1, "method": method, "params": {}}).encode() + b"\n")
        reply = json.loads(s.makefile("rb").readline())
    assert reply["ok"], reply
    return reply["result"]["interfaces"][0]  # type: ignore[no-any-return]


def test_values_equal_the_shows(daemon: tuple[str, int, GroundTruth]) -> None:
    sock, port, truth = daemon
    text, content_type = scrape(port)
    assert content_type.startswith("text/plain; version=")
    flow, errors, memory = (show(sock, m) for m in ("accounting.flow", "accounting.errors", "accounting.memory"))
    assert value(text, "flowd_flow_packets_total") == flow["flow_packets"] > 0
    assert value(text, "flowd_flow_bytes_total") == flow["flow_bytes"]
    assert value(text, "flowd_flows_active") == flow["active_flows"]
    assert value(text, "flowd_flows_created_total") == flow["total_flows"]
    assert value(text, "flowd_flows_exported_total") == flow["flows_exported"]
    assert value(text, "flowd_flows_expired_total", reason="inactive") == flow["flows_inactive_timed_out"]
    assert value(text, "flowd_drops_total", reason="not-ipv4") == errors["not_ipv4"]
    assert value(text, "flowd_flow_table_memory_used_bytes") == memory["memory_used"]
    assert value(text, "flowd_overload", kind="memory") == 0
    # and both equal the capture's ground truth: every IPv4 packet is accounted (sampling 1 in 1)
    v4 = [f for f in truth.flows if ":" not in f.src]
    assert value(text, "flowd_flow_packets_total") == sum(f.packets for f in v4)
    assert value(text, "flowd_flow_bytes_total") == sum(f.bytes for f in v4)
    assert value(text, "flowd_drops_total", reason="not-ip") == truth.non_ip


def test_openmetrics_when_asked(daemon: tuple[str, int, GroundTruth]) -> None:
    _, port, _ = daemon
    text, content_type = scrape(port, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert text.rstrip().endswith("# EOF")
    assert "# TYPE flowd_flow_packets counter" in text


@pytest.mark.skipif(not HAVE_PROMTOOL, reason="promtool (Debian prometheus) is not installed")
def test_promtool_accepts_the_scrape_and_the_rules(daemon: tuple[str, int, GroundTruth]) -> None:
    _, port, _ = daemon
    text, _ = scrape(port)
    done = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rules = subprocess.run(["promtool", "check", "rules", str(REPO / "etc" / "prometheus" / "flowd-alerts.yml")],
                           capture_output=True, text=True)
    assert rules.returncode == 0 and "SUCCESS" in rules.stdout, rules.stdout + rules.stderr


BAD_REQUESTS = [
    b"", b"\r\n\r\n", b"GET\r\n\r\n", b"GET /metrics\r\n\r\n", b"GET /metrics HTTP/9.9\r\n\r\n",
    b"POST /metrics HTTP/1.1\r\n\r\n", b"GET /nothing HTTP/1.1\r\n\r\n", b"\xff\xfe\x00garbage\r\n\r\n",
    b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"a" * 20000 + b"\r\n\r\n", b"GET /metrics HTTP/1.1\r\nno-colon\r\n\r\n",
]


def test_survives_a_thousand_bad_requests(daemon: tuple[str, int, GroundTruth]) -> None:
    _, port, _ = daemon
    statuses = set()
    for i in range(1000):
        request = BAD_REQUESTS[i % len(BAD_REQUESTS)]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(request)
                s.shutdown(socket.SHUT_WR)
                reply = s.recv(64)
        except ConnectionResetError:
            continue
        if reply:
            statuses.add(reply.split(b" ")[1])
    assert statuses <= {b"400", b"404", b"405", b"505"}, statuses
    assert {b"400", b"404", b"405"} <= statuses
    text, _ = scrape(port)  # and it still answers
    assert "flowd_flow_packets_total" in text
