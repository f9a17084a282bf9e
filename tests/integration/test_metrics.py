"""The OpenMetrics endpoint of a real daemon: promtool accepts the scrape and the rules, values equal the shows."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from replayed_daemon import call, free_tcp_port, replayed_daemon

from flowd.testing.synth import write_capture
from flowd.testing.truth import GroundTruth, SynthSpec

REPO = Path(__file__).resolve().parents[2]
HAVE_PROMTOOL = shutil.which("promtool") is not None

pytestmark = pytest.mark.integration


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
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))  # the exposition sorts labels
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
    (tmp / "routes.txt").write_text("198.18.0.0/16 64501 192.0.2.1\n2001:db8::/32 64502\n198.19.0.0/16 64503\n")
    config = (text + f"  metrics:\n    listen: 127.0.0.1\n    port: {port}\n"
                                    f"  routing:\n    prefix-file:\n      {tmp / 'routes.txt'}: {{format: flowd}}\n")
    with replayed_daemon(tmp, config, tmp / "t.pcap") as sock:
        yield sock, port, truth


def show(sock: str, method: str) -> dict[str, Any]:
    block: dict[str, Any] = call(sock, method)["interfaces"][0]
    return block


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


def test_route_sources(daemon: tuple[str, int, GroundTruth]) -> None:
    sock, port, _ = daemon
    text, _ = scrape(port)
    (source,) = show(sock, "accounting.routing")["routing"]["sources"]  # type: ignore[index]
    ids = {"source": source["source_name"], "type": "prefix-file"}
    assert value(text, "flowd_route_source_prefixes", **ids, family="ipv4") == source["ipv4_prefixes"] == 2
    assert value(text, "flowd_route_source_prefixes", **ids, family="ipv6") == source["ipv6_prefixes"] == 1
    assert value(text, "flowd_route_source_updates_total", **ids, kind="announced") == source["announced"] == 3
    assert value(text, "flowd_route_source_info", **ids, state=source["state"]) == 1


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
