"""The daemon and the shell as real processes over a real Unix socket, against a synthetic capture's truth."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from collectors import HAVE_NFDUMP, free_udp_port, start_nfcapd
from control_call import call_raw

from flowd.testing.synth import GroundTruth, SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "shell"

pytestmark = pytest.mark.integration


class Daemon:
    """A `flowd` process; `stop()` sends SIGTERM and returns the exit status and the log."""

    def __init__(self, tmp: Path, *args: str) -> None:
        self.socket = str(tmp / "flowd.sock")
        self.log = tmp / "flowd.runtime.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "flowd", "--socket", self.socket, *args],
                                     cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        deadline = time.monotonic() + 30
        while not os.path.exists(self.socket):
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "flowd did not open its socket"
            time.sleep(0.02)

    def cli(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "shell", "--socket", self.socket, "-c", command],
                              cwd=REPO, capture_output=True, text=True, timeout=60)

    def call(self, method: str, params: dict[str, object] | None = None) -> dict[str, object]:
        reply = call_raw(self.socket, method, params)
        assert reply["ok"], reply
        return reply["result"]  # type: ignore[no-any-return]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        status = self.proc.wait(timeout=60)
        return status, self.log.read_text()


def wait_for(predicate: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("synth") / "truth.pcap"
    truth = write_capture(SynthSpec(packets=30_000, flows=3_000, seed=11, duration=120.0), str(path))
    return path, truth


@pytest.fixture
def finished(capture: tuple[Path, GroundTruth], tmp_path: Path) -> Iterator[tuple[Daemon, GroundTruth]]:
    """A daemon that has replayed the whole capture at full speed and keeps serving."""
    path, truth = capture
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    d = Daemon(tmp_path, "--replay", str(path), "--replay-speed", "max",
               "--flow-server", f"127.0.0.1:{sink.getsockname()[1]}", "--source-address", "127.0.0.1")
    wait_for(lambda: "finished after" in d.log.read_text())
    yield d, truth
    d.stop()
    sink.close()


def layout(text: str) -> list[str]:
    """Lines with every number (and the interface index) blanked, for comparing against the goldens."""
    return [re.sub(r"\d+", "N", line.rstrip()) for line in text.splitlines()]


@pytest.mark.parametrize("command, golden", [
    ("show services accounting errors", "errors.txt"),
    ("show services accounting flow", "flow.txt"),
    ("show services accounting memory", "memory.txt"),
    ("show services accounting status", "status.txt"),
    ("show services accounting usage", "usage.txt"),
    ("show passive-monitoring error", "errors.txt"),
    ("show passive-monitoring flow", "flow.txt"),
    ("show passive-monitoring memory", "memory.txt"),
    ("show passive-monitoring status", "status.txt"),
    ("show passive-monitoring usage", "usage.txt"),
])
def test_every_show_has_the_seed_layout(finished: tuple[Daemon, GroundTruth], command: str, golden: str) -> None:
    d, _ = finished
    done = d.cli(command)
    assert done.returncode == 0, done.stderr
    want = layout((GOLDEN / golden).read_text())
    got = layout(done.stdout)
    # errors prints flowd's extra counters after the seed's lines; status words differ in value only
    got = got[: len(want)]
    if golden == "status.txt":
        got = [re.sub(r"state: \w+", "state: S", line) for line in got]
        want = [re.sub(r"state: \w+", "state: S", line) for line in want]
    if golden == "errors.txt":
        got = [re.sub(r"(Yes|No)", "B", line) for line in got]
        want = [re.sub(r"(Yes|No)", "B", line) for line in want]
    assert got == want


def truth_ipv4(truth: GroundTruth) -> tuple[int, int, int]:
    v4 = [f for f in truth.flows if ":" not in f.src]
    return sum(f.packets for f in v4), sum(f.bytes for f in v4), len(truth.packets) - sum(f.packets for f in v4)


def test_values_equal_the_ground_truth(finished: tuple[Daemon, GroundTruth]) -> None:
    d, truth = finished
    packets, octets, ipv6 = truth_ipv4(truth)
    flow = d.call("accounting.flow")["interfaces"][0]  # type: ignore[index]
    assert (flow["flow_packets"], flow["flow_bytes"]) == (packets, octets)
    errors = d.call("accounting.errors")["interfaces"][0]  # type: ignore[index]
    assert errors["header_too_small"] == truth.header_too_small
    assert errors["not_ip"] == truth.non_ip
    assert errors["not_ipv4"] == ipv6
    assert errors["other_drops"] == {"bad-ip-header": truth.bad_ip_header, "truncated": truth.truncated}
    sizes = d.call("accounting.packet_size_distribution")["interfaces"][0]  # type: ignore[index]
    assert sum(r["packets"] for r in sizes["ranges"]) == packets
    memory = d.call("accounting.memory")["interfaces"][0]  # type: ignore[index]
    assert memory["allocation_count"] - memory["free_count"] == flow["active_flows"]
    text = d.cli("show services accounting flow").stdout
    assert f"Flow packets: {packets}, Flow bytes: {octets}" in text


def test_truncated_frames_shown_in_errors(finished: tuple[Daemon, GroundTruth]) -> None:
    """The drop reason of frames shorter than their IP length, in the shell's text, XML and JSON."""
    d, truth = finished
    assert truth.truncated > 0
    text = d.cli("show services accounting errors").stdout
    assert f"Packets dropped (truncated): {truth.truncated}" in text
    xml = d.cli("show services accounting errors | display xml").stdout
    assert re.search(r"<error-other-drop>\s*<drop-reason>truncated</drop-reason>\s*"
                     rf"<drop-count>{truth.truncated}</drop-count>", xml), xml
    tree = json.loads(d.cli("show services accounting errors | display json").stdout)
    info = tree["services-accounting-information"][0]["error-information"][0]
    drops = {e["drop-reason"][0]["data"]: e["drop-count"][0]["data"] for e in info["error-other-drop"]}
    assert int(drops["truncated"]) == truth.truncated


def test_flow_detail_lists_the_largest_cached_flows(finished: tuple[Daemon, GroundTruth]) -> None:
    d, _ = finished
    cached = d.call("accounting.flow_detail")["interfaces"][0]["flows"]  # type: ignore[index]
    top = d.cli("show services accounting flow-detail order packets limit 10")
    assert top.returncode == 0
    rows = top.stdout.splitlines()[4:]
    assert len(rows) == 10
    want = sorted((f["packets"] for f in cached), reverse=True)[:10]
    assert [int(r.split()[5]) for r in rows] == want
    tcp = d.cli("show services accounting flow-detail proto 6 limit 5").stdout.splitlines()[4:]
    assert tcp and all(r.startswith("  tcp(6) ") for r in tcp)


def test_clear_flow_exports_everything_and_clear_statistics_zeroes(finished: tuple[Daemon, GroundTruth]) -> None:
    d, truth = finished
    packets, _, _ = truth_ipv4(truth)
    assert d.cli("clear services accounting flow").returncode == 0
    flow = d.call("accounting.flow")["interfaces"][0]  # type: ignore[index]
    assert flow["active_flows"] == 0
    assert flow["flow_packets_exported"] == packets
    assert d.cli("clear services accounting statistics").returncode == 0
    flow = d.call("accounting.flow")["interfaces"][0]  # type: ignore[index]
    assert flow["flow_packets"] == flow["flows_exported"] == 0


def test_shell_errors_and_pipes_against_the_daemon(finished: tuple[Daemon, GroundTruth]) -> None:
    d, _ = finished
    bad = d.cli("show services accounting flw")
    assert bad.returncode == 1 and bad.stderr.strip() == "error: syntax error, expecting <command>: flw"
    count = d.cli("show services accounting flow | count")
    assert count.stdout.strip() == "Count: 8 lines"
    match = d.cli("show services accounting flow | match exported")
    assert match.stdout.splitlines() == [l for l in d.cli("show services accounting flow").stdout.splitlines()
                                         if "exported" in l]


def test_sigterm_mid_replay_exports_everything_ingested(capture: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    if not HAVE_NFDUMP:
        pytest.skip("nfcapd/nfdump not installed")
    path, truth = capture
    with start_nfcapd(tmp_path / "nfcapd") as collector:
        d = Daemon(tmp_path, "--replay", str(path), "--replay-speed", "20", "--flow-server",
                   f"127.0.0.1:{collector.port}", "--source-address", "127.0.0.1")
        wait_for(lambda: d.call("accounting.flow")["interfaces"][0]["flow_packets"] > 2000)  # type: ignore[index]
        status, log = d.stop()
        collector.wait_idle()
    assert status == 0, log
    frames = int(re.search(r"stopping: (\d+) frames ingested", log).group(1))  # type: ignore[union-attr]
    assert 0 < frames < truth.frames, "stop came after the end of the replay"
    tp = truth.packets
    keys = truth.packets.keys.texts()
    ingested = tp.frame < frames
    want: Counter[tuple[object, ...]] = Counter()
    for k, n, b in zip(tp.key[ingested].tolist(), np.ones(int(ingested.sum()), int).tolist(),
                       tp.length[ingested].tolist()):
        src, dst, sport, dport, proto, _tos = keys[k]
        if ":" in src:
            continue
        want[(src, dst, sport, dport, proto, "packets")] += n
        want[(src, dst, sport, dport, proto, "bytes")] += b
    got: Counter[tuple[object, ...]] = Counter()
    for f in collector.flows():
        got[(f["src"], f["dst"], f["sport"], f["dport"], f["proto"], "packets")] += f["packets"]
        got[(f["src"], f["dst"], f["sport"], f["dport"], f["proto"], "bytes")] += f["bytes"]
    assert got == want


def test_sighup_with_a_broken_config_keeps_the_old_one(tmp_path: Path) -> None:
    cfg = tmp_path / "flowd.yaml"
    good = (REPO / "etc" / "flowd.yaml").read_text().replace("flow-inactive-timeout: 15", "flow-inactive-timeout: 20")
    cfg.write_text(good)
    d = Daemon(tmp_path, "--config", str(cfg), "--flow-server", f"127.0.0.1:{free_udp_port()}",
               "--source-address", "127.0.0.1")
    try:
        cfg.write_text(good.replace("flow-inactive-timeout: 20", "flow-inactive-timeout: 5"))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "reload failed" in d.log.read_text())
        assert "flow-inactive-timeout: expected 15..1800, got 5" in d.log.read_text()
        assert d.proc.poll() is None
        shown = d.cli("show configuration | match inactive").stdout
        assert "flow-inactive-timeout 20;" in shown
        cfg.write_text(good.replace("flow-inactive-timeout: 20", "flow-inactive-timeout: 30"))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in d.log.read_text())
        assert "flow-inactive-timeout 30;" in d.cli("show configuration | match inactive").stdout
    finally:
        status, log = d.stop()
    assert status == 0, log


def test_a_thousand_malformed_requests_leave_the_daemon_serving(tmp_path: Path) -> None:
    d = Daemon(tmp_path, "--flow-server", f"127.0.0.1:{free_udp_port()}", "--source-address", "127.0.0.1")
    rng = np.random.default_rng(5)
    kinds = [
        lambda: b"{not json\n",
        lambda: b"\xff\xfe\x00garbage\n",
        lambda: b"[1, 2, 3]\n",
        lambda: json.dumps({"id": 1, "method": "no.such.method", "params": {}}).encode() + b"\n",
        lambda: json.dumps({"id": 2, "method": "accounting.flow_detail", "params": {"limit": "x"}}).encode() + b"\n",
        lambda: json.dumps({"id": 3, "method": "accounting.flow", "params": {"bogus": 1}}).encode() + b"\n",
        lambda: json.dumps({"method": "accounting.flow"}).encode() + b"\n",
        lambda: b"x" * 70_000 + b"\n",
        lambda: json.dumps({"id": 4, "method": "accounting.flow"}).encode()[:20],  # vanishes mid-request
    ]
    try:
        for i in range(1000):
            payload = kinds[int(rng.integers(len(kinds)))]()
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(d.socket)
                try:
                    s.sendall(payload)
                except BrokenPipeError:
                    continue
                if payload.endswith(b"\n"):
                    s.settimeout(10)
                    reply = json.loads(s.makefile("rb").readline())
                    assert reply["ok"] is False and reply["error"]["code"] in (
                        "bad-json", "bad-request", "too-large", "unknown-method", "bad-params"), reply
        assert d.proc.poll() is None
        flow = d.call("accounting.flow")["interfaces"][0]  # type: ignore[index]
        assert flow["flow_packets"] == 0
    finally:
        status, log = d.stop()
    assert status == 0 and "Traceback" not in log, log
