"""Memory per cached flow, as the whole process's peak RSS: flowd --read and softflowd -r, same run.

Writes two captures of unique single-packet UDP flows (both families: 6 of 7 IPv4, 1 of 7 IPv6;
benchmarks/unique_flows.py), runs each tool over each under `/usr/bin/time -f %M` with every timeout
1800 s (nothing expires before the end of the file), and prints

    (peak RSS with --flows flows - peak RSS with --base flows) / (flows - base)

per tool: what one more concurrent flow costs the whole process, start-up, buffers, the end-of-file
flush and the export included. flowd runs with its default flow cache (compiled when built; set
FLOWD_NO_FASTPATH=1 for the numpy one). With --bridge flowd exports with a bridge template, so its
cache keeps every flow's MAC addresses (12 bytes a flow more).

    python benchmarks/memory_per_flow.py --flows 1000000 --base 10000
    python benchmarks/memory_per_flow.py --flows 1000000 --base 10000 --tools flowd --bridge
    python benchmarks/memory_per_flow.py --flows 1000000 --base 10000 --tools flowd --workers 1
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from unique_flows import Run, run, write_capture  # benchmarks/ is sys.path[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Whole-process peak RSS per flow: flowd --read vs softflowd -r.")
    p.add_argument("--flows", type=int, default=1_000_000, help="concurrent flows of the large run (default 1M)")
    p.add_argument("--base", type=int, default=10_000, help="flows of the small run subtracted (default 10k)")
    p.add_argument("--tools", default="flowd,softflowd", help="comma-separated (default flowd,softflowd)")
    p.add_argument("--bridge", action="store_true", help="flowd exports with a bridge template (keeps MACs)")
    p.add_argument("--workers", type=int, help="flowd --read --workers N (default: flowd's, one per CPU)")
    args = p.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    if not 1 <= args.base < args.flows:
        print("memory_per_flow: need 1 <= --base < --flows", file=sys.stderr)
        return 1
    if "softflowd" in tools and shutil.which("softflowd") is None:
        print("memory_per_flow: softflowd is not installed (apt-get install softflowd)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="flowd-mem-") as tmp:
        work = Path(tmp)
        runs: dict[tuple[str, int], Run] = {}
        try:
            for n in (args.base, args.flows):
                capture = work / f"unique-{n}.pcap"
                write_capture(capture, n, n)
                for tool in tools:
                    runs[tool, n] = r = run(tool, capture, work, max(n, 1000) * 2, args.bridge, args.workers)
                    print(f"  {tool:<10} {n:>9} flows: peak RSS {r.peak_kib / 1024:8.1f} MiB, "
                          f"wall {r.wall:6.2f} s, {r.datagrams} export datagrams received", flush=True)
                capture.unlink()
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"memory_per_flow: {exc}", file=sys.stderr)
            return 1
    print(f"\nwhole-process peak RSS per flow, ({args.flows} - {args.base} flows), IPv4 and IPv6 (6:1):")
    for tool in tools:
        per = (runs[tool, args.flows].peak_kib - runs[tool, args.base].peak_kib) * 1024 / (args.flows - args.base)
        print(f"  {tool:<10} {per:6.0f} B/flow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
