"""Command-line export overrides with the built-in configuration, collected by a real nfcapd.

`--export-version 9|ipfix` exports IPv6 too (the built-in configuration samples inet only);
`--flow-server [::1]:PORT` works without `--source-address` (the source is picked per server family).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from collectors import HAVE_NFDUMP, Nfcapd, start_nfcapd

from flowd.testing.synth import GroundTruth, SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("synth") / "truth.pcap"
    truth = write_capture(SynthSpec(packets=20_000, flows=2_000, seed=31, duration=100.0), str(path))
    assert sum(1 for t in truth.flows if ":" in t.src) > 100  # IPv6 flows are in the comparison
    return path, truth


def read(capture: Path, collector: Nfcapd, *args: str) -> subprocess.CompletedProcess[str]:
    server = f"[{collector.host}]:{collector.port}" if ":" in collector.host else f"{collector.host}:{collector.port}"
    done = subprocess.run([sys.executable, "-m", "flowd", "--read", str(capture), "--flow-server", server, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    collector.wait_idle()
    return done


def collected(collector: Nfcapd) -> Counter[tuple[object, ...]]:
    return Counter((f["src"], f["dst"], f["sport"], f["dport"], f["proto"], f["packets"], f["bytes"])
                   for f in collector.flows())


def truth_flows(truth: GroundTruth, ipv6: bool = True) -> Counter[tuple[object, ...]]:
    return Counter((t.src, t.dst, t.sport, t.dport, t.proto, t.packets, t.bytes) for t in truth.flows
                   if ipv6 or ":" not in t.src)


@pytest.mark.parametrize("version", ["9", "ipfix"])
def test_v9_and_ipfix_from_the_command_line_export_ipv6_too(capture: tuple[Path, GroundTruth], tmp_path: Path,
                                                           version: str) -> None:
    path, truth = capture
    with start_nfcapd(tmp_path / "c") as collector:
        done = read(path, collector, "--export-version", version)
    assert done.returncode == 0, done.stderr
    assert "not IPv4" not in done.stdout
    assert collected(collector) == truth_flows(truth)


def test_v5_counts_ipv6_without_exporting_it(capture: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    path, truth = capture
    ipv6_packets = sum(t.packets for t in truth.flows if ":" in t.src)
    with start_nfcapd(tmp_path / "c") as collector:
        done = read(path, collector, "--export-version", "5")
    assert done.returncode == 0, done.stderr
    assert f"not IPv4 {ipv6_packets}" in done.stdout
    assert collected(collector) == truth_flows(truth, ipv6=False)


@pytest.mark.parametrize("version", ["5", "ipfix"])
def test_ipv6_flow_server_needs_no_source_address(capture: tuple[Path, GroundTruth], tmp_path: Path,
                                                 version: str) -> None:
    path, truth = capture
    with start_nfcapd(tmp_path / "c", host="::1") as collector:
        done = read(path, collector, "--export-version", version)
    assert done.returncode == 0, done.stderr
    assert collected(collector) == truth_flows(truth, ipv6=version != "5")


def test_one_source_address_per_family(capture: tuple[Path, GroundTruth], tmp_path: Path) -> None:
    path, truth = capture
    with start_nfcapd(tmp_path / "v4") as c4, start_nfcapd(tmp_path / "v6", host="::1") as c6:
        done = subprocess.run(
            [sys.executable, "-m", "flowd", "--read", str(path), "--export-version", "ipfix",
             "--flow-server", f"127.0.0.1:{c4.port}", "--flow-server", f"[::1]:{c6.port}",
             "--source-address", "::1", "--source-address", "127.0.0.1"],
            cwd=REPO, capture_output=True, text=True, timeout=300)
        c4.wait_idle()
        c6.wait_idle()
    assert done.returncode == 0, done.stderr
    assert collected(c4) == collected(c6) == truth_flows(truth)
    twice = subprocess.run([sys.executable, "-m", "flowd", "--read", str(path), "--source-address", "127.0.0.1",
                            "--source-address", "127.0.0.2"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert twice.returncode == 78
    assert twice.stderr.strip() == ("flowd: command line: --source-address: give at most one IPv4 source address, "
                                    "got 127.0.0.1 and 127.0.0.2")
