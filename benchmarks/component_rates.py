"""Speed of single stages, the figures that used to be timing thresholds inside tests.

Timings never gate tests; this prints them instead, best of --runs (CPU time of this process):
- encoding 200k IPv4 flows: v5, NetFlow v9 and IPFIX datagrams, and the IPFIX template's data rows
  (the old "200k flows encoded in < 1.0 s" tests; issue target: v9 and IPFIX <= 40 ms);
- decode: frames/s of flowd.core.decode over 1M frames (the old ">= 2M frames/s" test);
- capture: frames/s reading a 2M-frame plain pcap (the old ">= 3M frames/s" test);
- synth: seconds to write the 2M-packet synthetic capture (the old "< 30 s" test), with --synth.

    python benchmarks/component_rates.py [--runs 3] [--synth]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from unique_flows import write_capture as write_unique  # benchmarks/ is sys.path[0]

from flowd.capture.files import open_capture
from flowd.config.schema import TemplateConfig
from flowd.core.decode import decode
from flowd.export.ipfix import encode_ipfix
from flowd.export.sequence import ExportState
from flowd.export.templates import ExportFormat, plan_for, template_for
from flowd.export.v5 import V5Header, encode_v5
from flowd.export.v9 import encode_v9
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import FlowKey
from flowd.testing.synth import SynthSpec, write_capture

BOOT: Final = 1_700_000_000.0
NOW: Final = BOOT + 12.5
FLOWS: Final = 200_000


def best(runs: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        started = time.process_time()
        work()
        times.append(time.process_time() - started)
    return min(times)


def flows(n: int) -> FlowRecords:
    import ipaddress

    rng = np.random.default_rng(3)
    row = np.frombuffer(FlowKey(ipaddress.ip_address("198.18.0.1"), ipaddress.ip_address("198.19.0.1"),
                                1024, 80, 6, 0, 1).pack(), np.uint8)
    return FlowRecords(
        key=np.repeat(row[None, :], n, axis=0), packets=rng.integers(1, 2**40, n).astype(np.uint64),
        bytes=rng.integers(1, 2**40, n).astype(np.uint64), first=BOOT + rng.random(n) * 10,
        last=BOOT + 10 + rng.random(n), tcp_flags=rng.integers(0, 256, n).astype(np.uint8),
        ttl_min=np.zeros(n, np.uint8), ttl_max=np.zeros(n, np.uint8), vlan=np.zeros(n, np.uint16),
        inner_vlan=np.zeros(n, np.uint16), mpls=np.zeros((n, 3), np.uint32), end_reason=np.ones(n, np.uint8))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Speed of the encoders, the decoder, the capture reader.")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--synth", action="store_true", help="also time writing the 2M-packet synthetic capture")
    args = p.parse_args(argv)
    recs = flows(FLOWS)

    def plan(fmt: str) -> object:
        return plan_for(fmt, "inet", TemplateConfig("t", fmt, "ipv4", domain_id=7), active_timeout=1800,
                        inactive_timeout=60, exporter_address="192.0.2.254")

    v9, ipfix = plan("9"), plan("ipfix")
    template = template_for("ipv4", ExportFormat.IPFIX).compile()
    print(f"encoding {FLOWS // 1000}k IPv4 flows (CPU, best of {args.runs}):")
    for name, work in (
            ("v5", lambda: encode_v5(recs, now=NOW, boot=BOOT, sequence=0, header=V5Header())),
            ("v9", lambda: encode_v9(recs, now=NOW, boot=BOOT, state=ExportState(), plan=v9)),  # type: ignore[arg-type]
            ("IPFIX", lambda: encode_ipfix(recs, now=NOW, boot=BOOT, state=ExportState(), plan=ipfix)),  # type: ignore[arg-type]
            ("IPFIX template rows", lambda: template.encode(recs, BOOT))):
        print(f"  {name:<20} {best(args.runs, work) * 1e3:8.1f} ms")
    with tempfile.TemporaryDirectory(prefix="flowd-rates-") as tmp:
        path = Path(tmp) / "frames.pcap"
        write_unique(path, 100_000, 2_000_000)
        with open_capture(str(path)) as reader:
            batches = list(reader.batches(1 << 20))
        frames = sum(len(b) for b in batches)
        seconds = best(args.runs, lambda: [decode(b) for b in batches])
        print(f"decode: {frames / seconds / 1e6:.2f}M frames/s (CPU, {frames} frames of 62 bytes)")

        def read() -> None:
            with open_capture(str(path)) as reader:
                for _ in reader.batches():
                    pass

        print(f"capture: {frames / best(args.runs, read) / 1e6:.2f}M frames/s (CPU, plain pcap)")
        if args.synth:
            started = time.perf_counter()
            write_capture(SynthSpec(packets=2_000_000, flows=200_000), Path(tmp) / "synth.pcap")
            print(f"synth: 2M-packet capture written in {time.perf_counter() - started:.1f} s (wall)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
