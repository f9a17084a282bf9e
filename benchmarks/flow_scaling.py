"""Cost as the work grows: packets/s and peak RSS at 10k, 100k, 1M and 5M concurrent flows.

For each flow count the same generator (benchmarks/unique_flows.py) writes one capture of --packets
UDP packets going round after round through one random order of the flows (so every packet of a
round hits a different flow, and all of them stay cached: 1800 s timeouts), then flowd --read and
softflowd -r run over it in turn (--runs rounds, the order alternating; medians). Packets/s is
frames / wall time of the whole process; peak RSS is /usr/bin/time's %M. The last line compares
flowd at the largest count with flowd at the smallest (issue target at 5M vs 10k: >= 0.6).

    python benchmarks/flow_scaling.py --packets 10000000 --runs 1
    python benchmarks/flow_scaling.py --flows 10000,1000000 --tools flowd
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from unique_flows import Run, run, write_capture  # benchmarks/ is sys.path[0]

from flowd.capture.files import open_capture
from flowd.core.compiled_table import new_flow_table
from flowd.core.decode import decode


def table_alone(capture: Path, flows: int) -> tuple[float, str]:
    """Packets/s of the flow cache alone (add and expire after every batch, CPU time of this thread;
    reading and decoding not counted) over the capture, and which cache it was."""
    table = new_flow_table(2 * flows + 1000, 1800.0, 1800.0)
    spent, packets = 0.0, 0
    with open_capture(str(capture)) as reader:
        for frames in reader.batches(32768):
            batch = decode(frames).packets
            started = time.thread_time()
            table.add(batch, float(batch.ts[-1]))
            table.expire(float(batch.ts[-1]))
            spent += time.thread_time() - started
            packets += len(batch)
    return packets / spent, type(table).__name__


def rate(frames: int, seconds: float) -> str:
    pps = frames / seconds
    return f"{pps / 1e6:.2f}M" if pps >= 1e6 else f"{pps / 1e3:.0f}k"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="packets/s and peak RSS of flowd and softflowd as concurrent flows grow.")
    p.add_argument("--flows", default="10000,100000,1000000,5000000", help="comma-separated flow counts")
    p.add_argument("--packets", type=int, default=10_000_000, help="packets in every capture (default 10M)")
    p.add_argument("--runs", type=int, default=1, help="rounds per flow count; medians are printed")
    p.add_argument("--tools", default="flowd,softflowd", help="comma-separated (default flowd,softflowd)")
    p.add_argument("--table", action="store_true", help="also time flowd's flow cache alone, in this process")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.flows.split(",") if x]
    tools = [t for t in args.tools.split(",") if t]
    if "softflowd" in tools and shutil.which("softflowd") is None:
        print("flow_scaling: softflowd is not installed (apt-get install softflowd)", file=sys.stderr)
        return 1
    if not counts or max(counts) > args.packets or args.runs < 1:
        print("flow_scaling: need flow counts <= --packets and --runs >= 1", file=sys.stderr)
        return 1
    results: dict[tuple[str, int], list[Run]] = {}
    alone: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="flowd-scale-") as tmp:
        work = Path(tmp)
        try:
            for n in counts:
                capture = work / f"flows-{n}.pcap"
                write_capture(capture, n, args.packets)
                for i in range(args.runs):
                    for tool in tools if i % 2 == 0 else tools[::-1]:
                        r = run(tool, capture, work, 2 * n + 1000)
                        results.setdefault((tool, n), []).append(r)
                        print(f"  {n:>8} flows, {tool:<10} {r.wall:7.2f} s {rate(args.packets, r.wall):>7} pps, "
                              f"CPU {r.cpu:7.2f} s {rate(args.packets, r.cpu):>7} pps, "
                              f"peak RSS {r.peak_kib / 1024:7.1f} MiB", flush=True)
                if args.table:
                    alone[n], kind = table_alone(capture, n)
                    print(f"  {n:>8} flows, {kind} alone: {rate(1, 1 / alone[n])} packets/s (CPU)", flush=True)
                capture.unlink()
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"flow_scaling: {exc}", file=sys.stderr)
            return 1
    print(f"\n{args.packets} packets per capture, medians of {args.runs}; packets/s (peak RSS MiB):")
    print(f"{'flows':>10} " + " ".join(f"{t:>22}" for t in tools)
          + ("  flowd/softflowd" if {"flowd", "softflowd"} <= set(tools) else ""))
    wall = {k: statistics.median(r.wall for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r.cpu for r in v) for k, v in results.items()}
    for n in counts:
        cells = [f"{rate(args.packets, wall[t, n]):>12} ({statistics.median(r.peak_kib for r in results[t, n]) / 1024:7.1f})"
                 for t in tools]
        ratio = f"  {wall['softflowd', n] / wall['flowd', n]:15.2f}" if {"flowd", "softflowd"} <= set(tools) else ""
        print(f"{n:>10} " + " ".join(f"{c:>22}" for c in cells) + ratio)
    lo, hi = min(counts), max(counts)
    if "flowd" in tools and len(counts) > 1:
        print(f"flowd at {hi} flows / flowd at {lo} flows (packets/s): {wall['flowd', lo] / wall['flowd', hi]:.2f} "
              f"by wall time, {cpu['flowd', lo] / cpu['flowd', hi]:.2f} by CPU time")
    if alone and len(counts) > 1:
        print(f"flow cache alone at {hi} flows / at {lo} flows (packets/s): {alone[hi] / alone[lo]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
