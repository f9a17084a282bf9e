"""Highest zero-drop live capture rate of flowd and of softflowd on the same veth, and flowd's CPU per packet.

Two private network namespaces joined by a veth pair: tcpreplay sends a synthetic capture into ``va``
in namespace A; the receiver listens on ``vb`` in namespace B and exports NetFlow v5 to a UDP sink on
B's 127.0.0.1. The rate steps up (each step sends ``--seconds`` worth of frames at ``tcpreplay
--pps``) until the receiver loses frames; a step is clean when the receiver's kernel drop counter did
not move and it was offered every frame sent. Both tools run in the same invocation on the same
veth, one after the other (the order alternates round by round), each with a fresh receiver.

* flowd: ``flowd --interface vb`` (its kernel statistics from `show services accounting errors`
  over the control socket: PACKET_STATISTICS packets and drops, summed over the capture workers);
  its receiver CPU time is the user + system time of the daemon and its workers (/proc/PID/stat)
  during the step, divided by the frames it received.
* softflowd: ``softflowd -i vb -d -c CTL -n 127.0.0.1:PORT -v 5 ...`` (its libpcap counters from
  ``softflowctl statistics``: received, dropped by libpcap, dropped by the interface).

Needs root, iproute2, tcpreplay and softflowd. Nothing leaves the two namespaces.

    sudo python benchmarks/live_zero_drop.py --packets 1000000 --flows 100000
    sudo python benchmarks/live_zero_drop.py --rates 100000,200000,300000 --workers 1 --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
sys.path.insert(0, str(REPO / "tests"))  # tests/netns.py: namespaces and veth pairs

from netns import Namespace, add_veth, namespaces, sender_env, unavailable

from flowd.testing.synth import SynthSpec, write_capture

TIMEOUT: Final = 1800  # flow timeouts of both tools, seconds
RATES: Final = (50_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000, 500_000, 700_000, 1_000_000)
SETTLE: Final = 0.3  # seconds after a step for the receiver to read its rings
START_GUARD: Final = 60.0  # seconds a receiver may take to start
SENDER_SHORTFALL: Final = 0.9  # a step whose achieved rate is below this share of the target is sender-bound
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


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


def cpu_of(pids: list[int]) -> float:
    """CPU seconds these processes (all their threads) have run so far.

    From /proc/PID/task/TID/schedstat (nanoseconds on the CPU), which the kernel keeps with the
    scheduler's precision; /proc/PID/stat's utime + stime come in clock ticks (10 ms), too coarse for a
    receiver that spends a few milliseconds a second. A process whose schedstat cannot be read counts
    its stat ticks instead.
    """
    total = 0.0
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
            total += sum(int((t / "schedstat").read_text().split()[0]) for t in tasks) / 1e9
        except (OSError, ValueError, IndexError):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime (fields 14 and 15)
    return total


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def wait_for(what: str, done: Callable[[], bool], guard: float = START_GUARD) -> None:
    deadline = time.monotonic() + guard
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


class Receiver(Protocol):
    """One tool capturing on vb in namespace B."""

    tool: str

    def counters(self) -> tuple[int, int]:
        """(frames received, frames dropped) since the receiver started."""
        ...

    def pids(self) -> list[int]:
        """The receiver's processes (for CPU time)."""
        ...


class Flowd:
    tool = "flowd"

    def __init__(self, ns: Namespace, workdir: Path, port: int, workers: int | None,
                 block_timeout: int | None = None) -> None:
        self.socket = str(workdir / "flowd.sock")
        config = workdir / "flowd.yaml"
        capture = [f"workers: {workers}"] if workers else []
        capture += [f"block-timeout: {block_timeout}"] if block_timeout else []
        config.write_text("flowd:\n  capture: {" + ", ".join(capture) + "}\n")
        self.log = open(workdir / "flowd.runtime.log", "w")
        self.proc = subprocess.Popen(
            ns.exec_args(sys.executable, "-m", "flowd", "--socket", self.socket, "--config", str(config),
                         "--interface", "vb", "--flow-server", f"127.0.0.1:{port}", "--log-level", "warning",
                         "--active-timeout", str(TIMEOUT), "--inactive-timeout", str(TIMEOUT)),
            cwd=REPO, env=sender_env(), stdout=subprocess.DEVNULL, stderr=self.log)
        self.workers = workers or len(os.sched_getaffinity(0))
        wait_for("flowd to capture", self._ready)

    def _ready(self) -> bool:
        """Every worker's ring is open (the status lists each worker once it has reported)."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"flowd exited with status {self.proc.returncode}; see {self.log.name}")
        try:
            captures = self._call("accounting.status")["captures"]
        except (OSError, ValueError):
            return False
        return bool(captures) and captures[0]["state"] == "up" and len(captures[0]["workers"]) == self.workers

    def _call(self, method: str) -> dict[str, Any]:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.socket)
            s.sendall(json.dumps({"id": 1, "method": method, "params": {}}).encode() + b"\n")
            reply = json.loads(s.makefile("rb").readline())
        if not reply["ok"]:
            raise ValueError(reply["error"]["message"])
        return reply["result"]["interfaces"][0]  # type: ignore[no-any-return]

    def counters(self) -> tuple[int, int]:
        kernel = self._call("accounting.errors")["kernel_statistics"]
        return sum(k["packets"] for k in kernel), sum(k["drops"] for k in kernel)

    def pids(self) -> list[int]:
        return [self.proc.pid, *children(self.proc.pid)]

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Softflowd:
    tool = "softflowd"

    def __init__(self, ns: Namespace, workdir: Path, port: int, buffer: int) -> None:
        self.ns = ns
        self.ctl = str(workdir / "softflowd.ctl")
        timeouts = [f"{name}={TIMEOUT}" for name in ("maxlife", "tcp", "udp", "icmp", "general")]
        self.log = open(workdir / "softflowd.log", "w")
        self.proc = subprocess.Popen(
            ns.exec_args("softflowd", "-i", "vb", "-d", "-N", "-c", self.ctl, "-p", str(workdir / "softflowd.pid"),
                         "-n", f"127.0.0.1:{port}", "-v", "5", "-m", "2000000", "-B", str(buffer),
                         *[arg for t in timeouts for arg in ("-t", t)]),
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for("softflowd to capture", self._ready)

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"softflowd exited with status {self.proc.returncode}; see {self.log.name}")
        try:
            self.counters()
        except (RuntimeError, ValueError):
            return False
        return True

    def counters(self) -> tuple[int, int]:
        done = subprocess.run(self.ns.exec_args("softflowctl", "-c", self.ctl, "statistics"),
                              capture_output=True, text=True, timeout=30, check=False)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip() or "softflowctl failed")

        def number(label: str) -> int:
            found = re.search(rf"{label}: (\d+)", done.stdout)
            if found is None:
                raise ValueError(f"softflowctl statistics has no '{label}'")
            return int(found.group(1))

        received = number("Packets received by libpcap")
        return received, number("Packets dropped by libpcap") + number("Packets dropped by interface")

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def send(a: Namespace, capture: Path, rate: int | None, count: int) -> float:
    """tcpreplay ``count`` frames at ``rate`` pps (None: as fast as it goes) into va (the file preloaded and
    looped); the achieved pps."""
    pace = ["--topspeed"] if rate is None else ["--pps", str(rate)]
    done = subprocess.run(a.exec_args("tcpreplay", "-q", "-i", "va", "-K", "--loop", "0", "--limit", str(count),
                                      *pace, str(capture)),
                          capture_output=True, text=True, timeout=max(60, 10 * count // max(rate or 100_000, 1)),
                          check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tcpreplay: {(done.stderr.strip().splitlines() or ['failed'])[-1]}")
    found = re.search(r"Rated: [\d.]+ Bps, [\d.]+ Mbps, ([\d.]+) pps", done.stdout)
    sent = re.search(r"Actual: (\d+) packets", done.stdout)
    if found is None or sent is None or int(sent.group(1)) != count:
        raise RuntimeError(f"tcpreplay did not report sending {count} packets: {done.stdout.strip()}")
    return float(found.group(1))


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


@contextmanager
def sink(ns: Namespace) -> Iterator[socket.socket]:
    """A UDP socket on B's 127.0.0.1 that nobody reads (the exports' destination; its drops do not matter)."""
    with ns.inside():
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock
    finally:
        sock.close()


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
                   help="softflowd -B (bytes); default 64 MiB, flowd's default ring (64 x 1 MiB)")
    args = p.parse_args(argv)
    why = unavailable()
    missing = [tool for tool in ("tcpreplay", "softflowd", "softflowctl") if shutil.which(tool) is None]
    if why or missing:
        print(f"live_zero_drop: {why or 'missing ' + ', '.join(missing)}", file=sys.stderr)
        return 1
    rates = sorted(int(r) for r in args.rates.split(","))
    with tempfile.TemporaryDirectory(prefix="flowd-live-bench-") as tmp:
        workdir = Path(tmp)
        capture = args.capture
        if capture is None:
            capture = workdir / "synth.pcap"
            # Whole frames: a replayed snaplen cut is a truncated frame on the wire, which flowd drops unread.
            write_capture(SynthSpec(packets=args.packets, flows=args.flows, snaplen=65_535), capture)
            print(f"generated {capture} ({args.packets} frames, {args.flows} conversations)")
        rounds: list[list[Step]] = []
        workers = 0
        try:
            with namespaces(2) as (a, b):
                add_veth(a, "va", b, "vb")
                b.ip("link", "set", "lo", "up")
                with sink(b) as sock:
                    port = sock.getsockname()[1]
                    for i in range(args.rounds):
                        order = ("flowd", "softflowd") if i % 2 == 0 else ("softflowd", "flowd")
                        steps: list[Step] = []
                        for tool in order:
                            here = workdir / f"round{i}-{tool}"
                            here.mkdir()
                            receiver: Flowd | Softflowd = (Flowd(b, here, port, args.workers) if tool == "flowd"
                                                           else Softflowd(b, here, port, args.buffer))
                            try:
                                if isinstance(receiver, Flowd):
                                    workers = receiver.workers
                                print(f"round {i + 1}: {tool}", flush=True)
                                steps += ladder(receiver, a, capture, rates, args.seconds)
                            finally:
                                receiver.close()
                        rounds.append(steps)
        except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as exc:
            print(f"live_zero_drop: {exc}", file=sys.stderr)
            return 1
        print("\n".join(report(rounds, workers)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
