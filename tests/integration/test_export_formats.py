"""`flowd --read` exporting NetFlow v9 and IPFIX, IPv4 and IPv6, collected by real nfcapd, equals the truth."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from collectors import HAVE_NFDUMP, start_nfcapd

from flowd.testing.synth import GroundTruth, SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")]

CONFIG = """
forwarding-options:
  sampling:
    input: {{rate: 1}}
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {{port: {port4}, {version}: true, source-address: 127.0.0.1}}
          flow-active-timeout: 60
          flow-inactive-timeout: 15
      inet6:
        output:
          flow-server:
            127.0.0.1: {{port: {port6}, {version}: true, source-address: 127.0.0.1}}
          flow-active-timeout: 60
          flow-inactive-timeout: 15
"""


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("synth") / "truth.pcap"
    truth = write_capture(SynthSpec(packets=40_000, flows=4_000, seed=21, duration=200.0), str(path))
    return path, truth


def flows_key(src: object, dst: object, sport: object, dport: object, proto: object, tos: object,
              packets: object, octets: object, flags: object) -> tuple[object, ...]:
    return (src, dst, sport, dport, proto, tos, packets, octets, flags)


@pytest.mark.parametrize("version", ["version9", "version-ipfix"])
def test_v9_and_ipfix_collected_by_nfcapd_equal_the_truth(version: str, capture: tuple[Path, GroundTruth],
                                                         tmp_path: Path) -> None:
    path, truth = capture
    with start_nfcapd(tmp_path / "v4") as c4, start_nfcapd(tmp_path / "v6") as c6:
        cfg = tmp_path / "flowd.yaml"
        cfg.write_text(CONFIG.format(port4=c4.port, port6=c6.port, version=version))
        done = subprocess.run([sys.executable, "-m", "flowd", "--read", str(path), "--config", str(cfg)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        c4.wait_idle()
        c6.wait_idle()
    got = Counter(flows_key(f["src"], f["dst"], f["sport"], f["dport"], f["proto"], f["tos"], f["packets"],
                            f["bytes"], f["tcp_flags"]) for f in c4.flows() + c6.flows())
    want = Counter(flows_key(t.src, t.dst, t.sport, t.dport, t.proto, t.tos, t.packets, t.bytes, t.tcp_flags)
                   for t in truth.flows)
    assert sum(1 for t in truth.flows if ":" in t.src) > 300  # IPv6 flows are in the comparison
    assert got == want
    # absolute millisecond times survive (v9: through sysUptime and unix_secs), to the millisecond
    first = Counter((t.src, t.dst, t.sport, t.dport, t.first * 1000) for t in truth.flows)
    seen = Counter((f["src"], f["dst"], f["sport"], f["dport"], f["first_ms"]) for f in c4.flows() + c6.flows())
    assert len(seen) == len(first)
    by_key = {k[:4]: [] for k in first}
    for k in first:
        by_key[k[:4]].append(k[4])
    for k in seen:
        assert any(abs(k[4] - ms) <= 1 for ms in by_key[k[:4]]), k
