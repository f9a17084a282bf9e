"""v9 and IPFIX from `flowd --read` as pmacct's nfacctd reads them, against the capture's ground truth.

nfacctd is a collector flowd's other tests do not use, with its own reading of the records: it takes
TCP flags at whatever size the template gives (a 2-octet tcpControlBits came out as 0), ICMP type
and code from the destination port only, and it checks sequence numbers per exporter address and
Source ID / Observation Domain ID (two families in one domain looked like losses).
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from nfacctd import NFACCTD, Nfacctd, start_nfacctd

from flowd.testing.synth import GroundTruth, SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, pytest.mark.skipif(NFACCTD is None, reason="nfacctd (pmacct) is not installed")]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("synth") / "mix.pcap"
    truth = write_capture(SynthSpec(packets=20_000, flows=2_000, seed=23, duration=120.0), str(path))
    return path, truth


def flowd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


Merged = dict[tuple[object, ...], tuple[int, int, int]]


def merged(rows: Iterable[tuple[str, str, int, int, int, int, int, int, int]]) -> Merged:
    """Per (src, dst, sport, dport, proto, tos): packets, bytes and TCP flags summed / OR-ed.

    nfacctd adds up records whose aggregation primitives agree, and it keeps v9 flow times in
    whole seconds, so two flows of one 5-tuple (a FIN and the ACK after it) can become one; the
    comparison is made on the same merge of both sides.
    """
    out: dict[tuple[object, ...], tuple[int, int, int]] = {}
    for src, dst, sport, dport, proto, tos, flags, packets, octets in rows:
        key = (src, dst, sport, dport, proto, tos)
        p, b, f = out.get(key, (0, 0, 0))
        out[key] = (p + packets, b + octets, f | flags)
    return out


def collected(flows: list[dict[str, Any]]) -> Merged:
    return merged(tuple(f[k] for k in ("src", "dst", "sport", "dport", "proto", "tos", "tcp_flags", "packets",
                                        "bytes")) for f in flows)  # type: ignore[misc]


def truth_merged(truth: GroundTruth, *, ipv6: bool) -> Merged:
    return merged((t.src, t.dst, t.sport, t.dport, t.proto, t.tos, t.tcp_flags, t.packets, t.bytes)
                  for t in truth.flows if ipv6 or ":" not in t.src)


def wait_all(collector: Nfacctd, want: Merged) -> Merged:
    """nfacctd's flows once their packets add up to the truth's (it purges once a second)."""
    total = sum(p for p, _, _ in want.values())
    deadline = time.monotonic() + 60
    while True:
        got = collected(collector.flows())
        if sum(p for p, _, _ in got.values()) >= total:
            return got
        assert time.monotonic() < deadline, f"nfacctd has {len(got)} of {len(want)} flows"
        time.sleep(0.1)


@pytest.mark.parametrize("version", ["9", "ipfix"])
def test_tcp_flags_and_icmp_type_code_reach_nfacctd(capture: tuple[Path, GroundTruth], tmp_path: Path,
                                                     version: str) -> None:
    """Every flow of the truth, TCP flags (1-octet tcpControlBits) and ICMP type*256+code included (IPv6 too:
    `--export-version` 9 or ipfix on the built-in configuration exports inet6 as well)."""
    path, truth = capture
    want = truth_merged(truth, ipv6=True)
    with start_nfacctd(tmp_path / "nfacctd") as collector:
        done = flowd("--read", str(path), "--flow-server", f"127.0.0.1:{collector.port}", "--source-address",
                     "127.0.0.1", "--export-version", version, "--active-timeout", "60", "--inactive-timeout", "15")
        assert done.returncode == 0, done.stderr
        got = wait_all(collector, want)
    assert sum(1 for k, v in want.items() if k[4] == 6 and v[2]) > 500  # TCP flows with flags
    assert sum(1 for k in want if k[4] == 1 and k[3]) > 20  # ICMP with a type or code
    assert got == want
    assert collector.sequence_warnings() == []


@pytest.mark.parametrize("version", ["version9", "version-ipfix"])
def test_two_families_to_one_collector_keep_separate_sequences(capture: tuple[Path, GroundTruth],
                                                                tmp_path: Path, version: str) -> None:
    """inet and inet6 from separate sockets, each with its own sequence: distinct default domains."""
    path, truth = capture
    with start_nfacctd(tmp_path / "nfacctd") as collector:
        server = f"{{port: {collector.port}, {version}: {{}}, source-address: 127.0.0.1}}"
        cfg = tmp_path / "both.yaml"
        cfg.write_text("forwarding-options:\n  sampling:\n    input: {rate: 1}\n    family:\n" + "".join(
            f"      {family}:\n        output:\n          flow-active-timeout: 60\n"
            f"          flow-inactive-timeout: 15\n          flow-server:\n            127.0.0.1: {server}\n"
            for family in ("inet", "inet6")))
        done = flowd("--read", str(path), "--config", str(cfg))
        assert done.returncode == 0, done.stderr
        want = truth_merged(truth, ipv6=True)
        got = wait_all(collector, want)
    assert sum(1 for k in want if ":" in str(k[0])) > 100
    assert got == want
    assert collector.sequence_warnings() == []
