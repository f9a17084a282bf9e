"""Live receiver cost at several rates: CPU seconds per packet of flowd and of softflowd, same replay, same veth.

The test bed of live_testbed.py (two private namespaces joined by a veth pair, tcpreplay into ``va``,
the receiver on ``vb`` exporting v5 to a UDP sink on B's loopback), as live_zero_drop.py uses it, but
what is measured is what the
receiver spends, not how fast the sender goes: for each rate (tcpreplay ``--pps``, or ``--topspeed``
for ``full``) the CPU time of every receiver process (flowd's daemon and its capture workers;
softflowd), all threads, from /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat's 10 ms ticks
are too coarse at 10k packets/s), minus the idle baseline (the same receiver's CPU per second
over ``--idle`` seconds with no traffic, times the step's duration), divided by the frames the
receiver was offered. The tools run one after the other on the same veth, each fresh, the order
alternating round by round; the median over rounds is printed, with the ratio flowd/softflowd
(below 1 means flowd spends less per packet).

Needs root, iproute2, tcpreplay and softflowd. Nothing leaves the two namespaces.

    sudo python benchmarks/live_cpu.py --packets 200000 --flows 20000 --rounds 3
    sudo python benchmarks/live_cpu.py --rates 10000,100000,full --seconds 4 --workers 1
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from live_testbed import SETTLE, TOOLS, Receiver, cpu_of, missing, receivers, send, synth_capture, testbed
from netns import Namespace

FULL: Final = "full"


@dataclass(frozen=True, slots=True)
class Cost:
    tool: str
    rate: str  # as asked: a number of packets/s, or "full"
    achieved: float  # packets/s tcpreplay reports
    received: int  # frames the receiver was offered
    dropped: int
    cpu: float  # CPU seconds over the step, idle baseline subtracted

    @property
    def per_packet_us(self) -> float:
        return self.cpu / self.received * 1e6 if self.received else float("nan")


def idle_rate(receiver: Receiver, seconds: float) -> float:
    """The receiver's CPU seconds per second with no traffic."""
    before, start = cpu_of(receiver.pids()), time.monotonic()
    time.sleep(seconds)
    return (cpu_of(receiver.pids()) - before) / (time.monotonic() - start)


def step(receiver: Receiver, a: Namespace, capture: Path, rate: str, seconds: float, idle: float) -> Cost:
    pps = None if rate == FULL else int(rate)
    count = int((pps or 300_000) * seconds)
    before, cpu_before, start = receiver.counters(), cpu_of(receiver.pids()), time.monotonic()
    achieved = send(a, capture, pps, count)
    time.sleep(SETTLE)
    after, cpu_after = receiver.counters(), cpu_of(receiver.pids())
    spent = cpu_after - cpu_before - idle * (time.monotonic() - start)
    cost = Cost(receiver.tool, rate, achieved, after[0] - before[0], after[1] - before[1], spent)
    print(f"  {cost.tool:<10} {rate:>7}: achieved {achieved:>9.0f} pps, received {cost.received}, "
          f"dropped {cost.dropped}, CPU {spent:.3f} s above idle: {cost.per_packet_us:.3f} µs/packet", flush=True)
    return cost


def report(costs: list[Cost], rates: list[str], workers: int) -> list[str]:
    lines = ["", f"receiver CPU per packet, idle subtracted, median over rounds (flowd: {workers} capture workers)"]
    lines.append(f"{'rate':>8}  {'flowd µs':>9}  {'softflowd µs':>12}  {'ratio':>6}  {'pps achieved':>12}")
    for rate in rates:
        medians = {}
        for tool in TOOLS:
            values = [c.per_packet_us for c in costs if c.tool == tool and c.rate == rate]
            medians[tool] = statistics.median(values) if values else float("nan")
        achieved = statistics.median([c.achieved for c in costs if c.rate == rate])
        ratio = medians["flowd"] / medians["softflowd"] if medians["softflowd"] > 0 else float("nan")
        lines.append(f"{rate:>8}  {medians['flowd']:>9.3f}  {medians['softflowd']:>12.3f}  "
                     f"{ratio:>6.2f}  {achieved:>12.0f}")
    drops = [c for c in costs if c.dropped]
    if drops:
        lines.append("steps with drops: " + "; ".join(f"{c.tool} {c.rate} ({c.dropped})" for c in drops))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Receiver CPU per packet at several rates: flowd vs softflowd.")
    p.add_argument("--capture", type=Path, metavar="FILE", help="pcap to send (default: generate one)")
    p.add_argument("--packets", type=int, default=200_000, help="frames in the generated capture")
    p.add_argument("--flows", type=int, default=20_000, help="conversations in the generated capture")
    p.add_argument("--rates", default=f"10000,100000,{FULL}", help="pps steps, comma-separated; 'full' = topspeed")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of traffic per step (default 3)")
    p.add_argument("--idle", type=float, default=3.0, help="seconds of idle baseline per receiver (default 3)")
    p.add_argument("--workers", type=int, default=None, help="flowd capture workers (default: one per CPU)")
    p.add_argument("--block-timeout", type=int, default=None, metavar="MS",
                   help="flowd capture block-timeout (default: flowd's own)")
    p.add_argument("--rounds", type=int, default=1, help="rounds; the tool that goes first alternates")
    p.add_argument("--buffer", type=int, default=64 << 20, help="softflowd -B (bytes); default 64 MiB")
    args = p.parse_args(argv)
    if why := missing():
        print(f"live_cpu: {why}", file=sys.stderr)
        return 1
    rates = [r.strip() for r in args.rates.split(",")]
    costs: list[Cost] = []
    workers = 0
    with tempfile.TemporaryDirectory(prefix="flowd-live-cpu-") as tmp:
        workdir = Path(tmp)
        capture = args.capture or synth_capture(workdir, args.packets, args.flows)
        try:
            with testbed() as (a, b, port):
                for i, receiver in receivers(b, port, workdir, args.rounds, workers=args.workers, buffer=args.buffer,
                                             block_timeout=args.block_timeout):
                    workers = getattr(receiver, "workers", workers)
                    idle = idle_rate(receiver, args.idle)
                    print(f"round {i + 1}: {receiver.tool}, idle {idle * 1e3:.2f} ms CPU per second", flush=True)
                    costs += [step(receiver, a, capture, rate, args.seconds, idle) for rate in rates]
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            print(f"live_cpu: {exc}", file=sys.stderr)
            return 1
    print("\n".join(report(costs, rates, workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
