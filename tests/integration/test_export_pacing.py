"""The daemon's final export at SIGTERM reaches a collector with the default 208 KiB receive buffer.

Before pacing, a stop sent the whole cache back to back (about 110,000 datagrams/s) and a collector
reading with Linux's default receive buffer lost most of it. Here nfacctd (pmacct) listens with
that default buffer, the daemon caches tens of thousands of flows (timeouts far away), and every
one of them must arrive after SIGTERM, paced at the configured `flow-export-rate`.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from nfacctd import NFACCTD, start_nfacctd
from test_daemon import Daemon, wait_for

from flowd.testing.synth import SynthSpec, write_capture

pytestmark = [pytest.mark.integration, pytest.mark.skipif(NFACCTD is None, reason="nfacctd (pmacct) is not installed")]

RATE_KPPS = 1  # 1,000 datagrams/s: even on a loaded CI machine nfacctd has ~90 ms of slack in its buffer


def test_sigterm_export_is_paced_and_nothing_is_lost(tmp_path: Path) -> None:
    capture = tmp_path / "many.pcap"
    truth = write_capture(SynthSpec(packets=80_000, flows=40_000, seed=31, duration=60.0, ipv6_share=0.0,
                                    fin_rst_share=0.0, idle_gap_share=0.0), str(capture))
    want = truth.flows_for(active=1800, inactive=1800)
    packets = sum(t.packets for t in want if ":" not in t.src)
    with start_nfacctd(tmp_path / "nfacctd", receive_buffer=None) as collector:
        cfg = tmp_path / "flowd.yaml"
        cfg.write_text(
            "forwarding-options:\n  sampling:\n    input: {rate: 1}\n    family:\n      inet:\n        output:\n"
            "          flow-active-timeout: 1800\n          flow-inactive-timeout: 1800\n"
            f"          inline-jflow: {{flow-export-rate: {RATE_KPPS}}}\n"
            f"          flow-server:\n            127.0.0.1: {{port: {collector.port}, source-address: 127.0.0.1}}\n")
        d = Daemon(tmp_path, "--config", str(cfg), "--replay", str(capture), "--replay-speed", "max")
        wait_for(lambda: "finished after" in d.log.read_text(), timeout=120)
        started = time.monotonic()
        status, log = d.stop()
        stopped = time.monotonic() - started
        assert status == 0, log
        deadline = time.monotonic() + 60
        while sum(f["packets"] for f in collector.flows()) < packets and time.monotonic() < deadline:
            time.sleep(0.2)
        flows = collector.flows()
    assert sum(f["packets"] for f in flows) == packets
    assert len(want) > 30_000
    datagrams = -(-len(want) // 30)
    # paced: the stop cannot have been faster than the rate allows (a lower bound, never flaky)
    assert stopped >= (datagrams - 32) / (RATE_KPPS * 1000)
    assert "held export records, paced, in the final export" in log
