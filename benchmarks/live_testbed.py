"""The live benchmarks' test bed: two namespaces joined by a veth, tcpreplay as sender, flowd or softflowd as receiver.

Shared by live_cpu.py (receiver CPU per packet) and live_zero_drop.py (highest zero-drop rate). Namespace
A holds ``va``, where tcpreplay sends a synthetic capture (whole frames: a frame cut to a snaplen goes on
the wire cut, and flowd would drop it unread as truncated); namespace B holds ``vb``, where the receiver
captures, and a UDP sink on B's 127.0.0.1 that nobody reads, where the receiver exports NetFlow v5.

* flowd: ``flowd --interface vb`` (its kernel statistics from `show services accounting errors`
  over the control socket: PACKET_STATISTICS packets and drops, summed over the capture workers);
* softflowd: ``softflowd -i vb -d -c CTL -n 127.0.0.1:PORT -v 5 ...`` (its libpcap counters from
  ``softflowctl statistics``: received, dropped by libpcap, dropped by the interface).

``receivers`` starts each tool in turn, fresh, the order alternating round by round. Needs root,
iproute2, tcpreplay and softflowd (``missing`` says what is not there). Nothing leaves the two namespaces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Protocol

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing
sys.path.insert(0, str(REPO / "tests"))  # tests/netns.py: namespaces and veth pairs

from netns import Namespace, add_veth, namespaces, sender_env, unavailable

from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

TOOLS: Final = ("flowd", "softflowd")

TIMEOUT: Final = 1800  # flow timeouts of both tools, seconds
SETTLE: Final = 0.3  # seconds after a step for the receiver to read its rings
START_GUARD: Final = 60.0  # seconds a receiver may take to start
CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


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


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, and SIGKILL if the process is still there after ``grace`` seconds."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


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
        stop(self.proc, 60)
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
        stop(self.proc, 30)
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


def missing() -> str | None:
    """Why the test bed cannot run here (not root, no iproute2, tcpreplay or softflowd), or None."""
    why = unavailable()
    if why:
        return why
    absent = [tool for tool in ("tcpreplay", "softflowd", "softflowctl") if shutil.which(tool) is None]
    return "missing " + ", ".join(absent) if absent else None


def synth_capture(workdir: Path, packets: int, flows: int) -> Path:
    """A generated capture of whole frames in workdir."""
    capture = workdir / "synth.pcap"
    write_capture(SynthSpec(packets=packets, flows=flows, snaplen=65_535), capture)
    print(f"generated {capture} ({packets} frames, {flows} conversations)")
    return capture


@contextmanager
def testbed() -> Iterator[tuple[Namespace, Namespace, int]]:
    """(A, B, the sink's UDP port): the namespaces joined by va-vb, the sink listening in B."""
    with namespaces(2) as (a, b):
        add_veth(a, "va", b, "vb")
        b.ip("link", "set", "lo", "up")
        with sink(b) as sock:
            yield a, b, sock.getsockname()[1]


def receivers(b: Namespace, port: int, workdir: Path, rounds: int, *, workers: int | None,
              buffer: int, block_timeout: int | None = None) -> Iterator[tuple[int, Flowd | Softflowd]]:
    """(round, receiver) for each tool of each round, started fresh and closed when the caller moves on."""
    for i in range(rounds):
        for tool in TOOLS if i % 2 == 0 else TOOLS[::-1]:
            here = workdir / f"round{i}-{tool}"
            here.mkdir()
            receiver: Flowd | Softflowd = (Flowd(b, here, port, workers, block_timeout) if tool == "flowd"
                                           else Softflowd(b, here, port, buffer))
            try:
                yield i, receiver
            finally:
                receiver.close()
