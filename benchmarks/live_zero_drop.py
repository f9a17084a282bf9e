"""Highest zero-drop live capture rate of flowd and of softflowd on the same veth, and flowd's CPU per packet.

The test bed of live_testbed.py (tcpreplay into ``va`` in namespace A, the receiver on ``vb`` in namespace
B exporting v5 to a sink on B's loopback). The rate steps up (each step sends ``--seconds`` worth of
frames at ``tcpreplay --pps``) until the receiver loses frames; a step is clean when the receiver's
kernel drop counter did not move and it was offered every frame sent. Both tools run in the same
invocation on the same veth, one after the other (the order alternates round by round), each with a
fresh receiver. flowd's receiver CPU time is that of the daemon and its workers during the step,
divided by the frames it received.

Needs root, iproute2, tcpreplay and softflowd. Nothing leaves the two namespaces.

    sudo python benchmarks/live_zero_drop.py --packets 1000000 --flows 100000
    sudo python benchmarks/live_zero_drop.py --rates 100000,200000,300000 --workers 1 --rounds 2
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

from live_testbed import SETTLE, Receiver, cpu_of, missing, receivers, send, synth_capture, testbed
from netns import Namespace

RATES: Final = (50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000, 700_000, 1_000_000)
SENDER_SHORTFALL: Final = 0.9  # a step whose achieved rate is below this share of the target is sender-bound


@dataclass(frozen=True, slots=True)
class Step:
    tool: str
    target: int  # pps asked of tcpreplay
    achieved: float  # pps tcpreplay reports
    sent: int
    received: int  # frames the receiver's kernel/libpcap counted
    dropped: int
    cpu: float  # receiver CPU seconds (user + system, every process of it) during the step

    @property
    def clean(self) -> bool:
        return self.dropped == 0 and self.received >= self.sent

    @property
    def sender_bound(self) -> bool:
        return self.achieved < SENDER_SHORTFALL * self.target


def ladder(receiver: Receiver, a: Namespace, capture: Path, rates: list[int], seconds: float) -> list[Step]:
    """Step the rate up until a step loses frames (or the sender falls short); every step run."""
    steps: list[Step] = []
    for rate in rates:
        count = max(10_000, int(rate * seconds))
        before, cpu_before = receiver.counters(), cpu_of(receiver.pids())
        achieved = send(a, capture, rate, count)
        time.sleep(SETTLE)
        after, cpu_after = receiver.counters(), cpu_of(receiver.pids())
        step = Step(receiver.tool, rate, achieved, count, after[0] - before[0], after[1] - before[1],
                    cpu_after - cpu_before)
        steps.append(step)
        state = "clean" if step.clean else f"LOST {step.sent - step.received + step.dropped}"
        print(f"  {step.tool:<10} target {rate:>8} pps  achieved {achieved:>10.0f} pps  sent {count}  "
              f"received {step.received}  dropped {step.dropped}  {state}", flush=True)
        if not step.clean or step.sender_bound:
            break
    return steps


def best(steps: list[Step]) -> Step | None:
    clean = [s for s in steps if s.clean]
    return max(clean, key=lambda s: s.achieved) if clean else None


def report(rounds: list[list[Step]], workers: int) -> list[str]:
    lines = [""]
    tops: dict[str, list[float]] = {"flowd": [], "softflowd": []}
    bound: dict[str, bool] = {"flowd": False, "softflowd": False}
    for steps in rounds:
        for tool in tops:
            mine = [s for s in steps if s.tool == tool]
            top = best(mine)
            tops[tool].append(top.achieved if top else 0.0)
            bound[tool] |= bool(mine) and mine[-1].clean and mine[-1].sender_bound
    for tool, values in tops.items():
        note = " (sender-bound: the receiver never dropped)" if bound[tool] else ""
        lines.append(f"{tool:<10} highest zero-drop rate: {statistics.median(values):>10.0f} pps "
                     f"(median of {len(values)}){note}")
    if min(tops["softflowd"]) > 0:
        lines.append(f"ratio flowd/softflowd: {statistics.median(tops['flowd']) / statistics.median(tops['softflowd']):.2f}")
    for tool in tops:
        clean = [s for steps in rounds for s in steps if s.tool == tool and s.clean and s.received]
        if not clean:
            continue
        per_packet = [s.cpu / s.received * 1e6 for s in clean]
        top = max(clean, key=lambda s: s.achieved)
        who = f"{tool} ({workers} capture workers)" if tool == "flowd" else tool
        cost = top.cpu / top.received * 1e6
        lines.append(f"{who} receiver CPU: {cost:.2f} µs/packet at {top.achieved:.0f} pps (median over its "
                     f"clean steps {statistics.median(per_packet):.2f}): {1 / cost:.2f}M packets per CPU-second")
    lines.append("per round, highest zero-drop pps: " + "; ".join(
        f"{tool} {', '.join(f'{v:.0f}' for v in values)}" for tool, values in tops.items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Highest zero-drop live rate: flowd vs softflowd on one veth pair.")
    p.add_argument("--capture", type=Path, metavar="FILE", help="pcap to send (default: generate one)")
    p.add_argument("--packets", type=int, default=1_000_000, help="frames in the generated capture")
    p.add_argument("--flows", type=int, default=100_000, help="conversations in the generated capture")
    p.add_argument("--rates", default=",".join(map(str, RATES)), help="pps steps, comma-separated, ascending")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of traffic per step (default 3)")
    p.add_argument("--workers", type=int, default=None, help="flowd capture workers (default: one per CPU)")
    p.add_argument("--rounds", type=int, default=1, help="rounds; the tool that goes first alternates")
    p.add_argument("--buffer", type=int, default=64 << 20,
                   help="softflowd -B (bytes); default 64 MiB, flowd's default ring (16 x 4 MiB)")
    args = p.parse_args(argv)
    if why := missing():
        print(f"live_zero_drop: {why}", file=sys.stderr)
        return 1
    rates = sorted(int(r) for r in args.rates.split(","))
    with tempfile.TemporaryDirectory(prefix="flowd-live-bench-") as tmp:
        workdir = Path(tmp)
        capture = args.capture or synth_capture(workdir, args.packets, args.flows)
        rounds: list[list[Step]] = [[] for _ in range(args.rounds)]
        workers = 0
        try:
            with testbed() as (a, b, port):
                for i, receiver in receivers(b, port, workdir, args.rounds, workers=args.workers, buffer=args.buffer):
                    workers = getattr(receiver, "workers", workers)
                    print(f"round {i + 1}: {receiver.tool}", flush=True)
                    rounds[i] += ladder(receiver, a, capture, rates, args.seconds)
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            print(f"live_zero_drop: {exc}", file=sys.stderr)
            return 1
        print("\n".join(report(rounds, workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
