"""flowd --read against softflowd -r on the same synthetic capture: wall time, CPU time (per packet too), packets/s.

Both tools run in the same invocation, interleaved round by round (the order alternates), each
exporting NetFlow v5 to its own UDP sink on 127.0.0.1 that counts what arrives; nothing is sent
anywhere else. Timeouts are 1800 s for both, so no flow times out inside the 300 s capture. The
median of --runs rounds is reported, and flowd's export is checked against the ground truth.

    python benchmarks/vs_softflowd.py --packets 2000000 --flows 200000 --runs 3
    python benchmarks/vs_softflowd.py --capture benchmarks/out/synth-2m.pcap   # reuse (or create) a file
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from time import perf_counter
from typing import Final

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from gen_capture import describe, generate  # benchmarks/ is sys.path[0]

from flowd.testing.truth import GroundTruth, SynthSpec, sidecar_path

TIMEOUT: Final = 1800  # active and inactive timeout, seconds, for both tools
SINK_BUFFER: Final = 128 * 1024 * 1024  # receive buffer, so a burst of export datagrams is not dropped
SINK_QUIET: Final = 0.3  # seconds without a datagram after the exporter exited: the sink is done
RUN_LIMIT: Final = 900  # seconds a single run may take
SO_RCVBUFFORCE: Final = 33  # Linux: like SO_RCVBUF but above rmem_max (needs CAP_NET_ADMIN)


class Sink:
    """A UDP socket on 127.0.0.1 and a thread counting the datagrams (and v5 records) it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for opt in (SO_RCVBUFFORCE, socket.SO_RCVBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, SINK_BUFFER)
                break
            except OSError:
                continue
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(SINK_QUIET)
        self.port: int = self.sock.getsockname()[1]
        self.datagrams = 0
        self.records = 0
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buf = bytearray(65536)
        while True:
            try:
                n = self.sock.recv_into(buf)
            except TimeoutError:
                if self._closing.is_set():
                    return
                continue
            self.datagrams += 1
            if n >= 24 and buf[0:2] == b"\x00\x05":
                self.records += int.from_bytes(buf[2:4], "big")

    def close(self) -> tuple[int, int]:
        """Wait until the sink has been quiet for SINK_QUIET s; return (datagrams, v5 records)."""
        self._closing.set()
        self._thread.join()
        self.sock.close()
        return self.datagrams, self.records


@dataclass(frozen=True, slots=True)
class Run:
    tool: str
    wall: float
    cpu: float  # user + system CPU of the child
    datagrams: int  # received by the sink
    records: int  # v5 flow records in them
    exported: int  # flows the tool says it exported
    sent: int  # datagrams the tool says it sent


def mixed(spec: SynthSpec) -> SynthSpec:
    """The mixed full-frame capture of the performance issue: whole frames (no snaplen), about 25% IPv6 of
    which a tenth carry a hop-by-hop header, 5% of the frames IPv4 fragments and 5% IPv6 fragments (first
    and non-first halves of UDP datagrams), 802.1Q, QinQ and MPLS, 1% damaged frames."""
    return replace(spec, snaplen=65535, ipv6_share=0.25, hop_by_hop_share=0.1, fragment_share=0.025,
                   ipv6_fragment_share=0.025, vlan_share=0.1, qinq_share=0.05, mpls_share=0.05,
                   damaged_share=0.01)


def flowd_command(capture: Path, port: int, workers: int | None = None) -> list[str]:
    return [sys.executable, "-m", "flowd", "--read", str(capture), "--flow-server", f"127.0.0.1:{port}",
            "--active-timeout", str(TIMEOUT), "--inactive-timeout", str(TIMEOUT),
            *(("--workers", str(workers)) if workers else ())]


def softflowd_command(capture: Path, port: int, workdir: Path) -> list[str]:
    # -c none: with -r and a control socket softflowd 1.1.0 waits in accept() forever.
    # Every idle timeout and maxlife set to TIMEOUT; tcp.rst / tcp.fin keep their defaults (they
    # shorten the life of a closed flow; softflowd has no "end at once").
    timeouts = [f"{name}={TIMEOUT}" for name in ("maxlife", "tcp", "udp", "icmp", "general")]
    return ["softflowd", "-r", str(capture), "-c", "none", "-p", str(workdir / "softflowd.pid"),
            "-n", f"127.0.0.1:{port}", "-v", "5", "-m", "2000000",
            *[arg for t in timeouts for arg in ("-t", t)]]


def number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    return int(found.group(1).replace(",", "")) if found else -1


def measure(tool: str, capture: Path, workdir: Path, workers: int | None = None) -> Run:
    """One timed run of one tool with a fresh sink (flowd with ``--workers`` when given)."""
    sink = Sink()
    cmd = (flowd_command(capture, sink.port, workers) if tool == "flowd"
           else softflowd_command(capture, sink.port, workdir))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = perf_counter()
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=RUN_LIMIT, env=env, cwd=workdir)
    wall = perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    datagrams, records = sink.close()
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{tool} exited with status {proc.returncode}: {last}")
    out = proc.stdout
    if tool == "flowd":
        exported, sent = number(r"exported: (\d+)", out), number(r"datagrams sent: (\d+)", out)
    else:
        exported, sent = number(r"Flows exported: (\d+)", out), number(r"in (\d+) packets", out)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(tool, wall, cpu, datagrams, records, exported, sent)


def warm(path: Path) -> None:
    """Read the file once so every timed run finds it in the page cache."""
    with open(path, "rb") as fh:
        while fh.read(16 * 1024 * 1024):
            pass


def rate(frames: int, seconds: float) -> str:
    pps = frames / seconds
    return f"{pps / 1e6:.2f}M" if pps >= 1e6 else f"{pps / 1e3:.0f}k"


def report(runs: list[Run], frames: int, truth_v4: int | None) -> list[str]:
    lines = ["", "per run:"]
    lines += [f"  {r.tool:<10} wall {r.wall:7.3f} s  cpu {r.cpu:7.3f} s  {rate(frames, r.wall):>6} pps  "
              f"exported {r.exported}  received {r.datagrams} datagrams / {r.records} records"
              for r in runs]
    lines += ["", (f"{'median':<10} {'wall s':>8} {'cpu s':>8} {'cpu µs/pkt':>10} {'pkts/s':>8} "
                   f"{'flows exported':>15} {'records received':>17}")]
    med: dict[str, float] = {}
    med_cpu: dict[str, float] = {}
    for tool in ("flowd", "softflowd"):
        mine = [r for r in runs if r.tool == tool]
        wall = statistics.median(r.wall for r in mine)
        cpu = statistics.median(r.cpu for r in mine)
        med[tool], med_cpu[tool] = wall, cpu
        lines.append(f"{tool:<10} {wall:8.3f} {cpu:8.3f} {cpu / frames * 1e6:10.3f} {rate(frames, wall):>8} "
                     f"{mine[-1].exported:>15} {mine[-1].records:>17}")
    lines.append(f"ratio flowd/softflowd (packets/s, median wall): {med['softflowd'] / med['flowd']:.2f}")
    lines.append(f"ratio softflowd/flowd CPU seconds (user+sys, all processes, median): "
                 f"{med_cpu['softflowd'] / med_cpu['flowd']:.2f}")
    flowd_runs = [r for r in runs if r.tool == "flowd"]
    if truth_v4 is not None:
        ok = all(r.exported == truth_v4 == r.records for r in flowd_runs)
        lines.append(f"check: ground truth has {truth_v4} IPv4 flows at {TIMEOUT} s timeouts; flowd exported "
                     f"and the sink received {'exactly that' if ok else 'a different number: MISMATCH'}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Benchmark flowd --read against softflowd -r.")
    p.add_argument("--packets", type=int, default=2_000_000)
    p.add_argument("--flows", type=int, default=200_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=3, help="rounds; medians are reported (default 3)")
    p.add_argument("--mixed", action="store_true",
                   help="generate the mixed full-frame capture: whole frames, 25%% IPv6 (a tenth with hop-by-hop), "
                   "5%% IPv4 fragments, 802.1Q, QinQ, MPLS, 1%% damaged")
    p.add_argument("--workers", type=int, default=None,
                   help="flowd --read --workers N (default: flowd's own default, one per CPU)")
    p.add_argument("--capture", type=Path, metavar="FILE",
                   help="use this capture (its FILE.truth.npz, if present, for the check); "
                   "generate it there first if it does not exist")
    args = p.parse_args(argv)
    if shutil.which("softflowd") is None:
        print("vs_softflowd: softflowd is not installed (apt-get install softflowd)", file=sys.stderr)
        return 1
    if args.runs < 1:
        print("vs_softflowd: --runs must be at least 1", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="flowd-bench-") as tmp:
        workdir = Path(tmp)
        capture = (args.capture or workdir / "synth.pcap").resolve()
        truth: GroundTruth | None = None
        try:
            if capture.exists():
                print(f"using {capture}")
                if sidecar_path(capture).exists():
                    truth = GroundTruth.load(sidecar_path(capture))
                warm(capture)
            else:
                spec = SynthSpec(packets=args.packets, flows=args.flows, seed=args.seed)
                if args.mixed:
                    spec = mixed(spec)
                truth, elapsed = generate(spec, capture)
                print("\n".join(describe(truth, capture, elapsed)))
            frames = truth.frames if truth else count_frames(capture)
            truth_v4 = None
            if truth is not None:
                truth_v4 = sum("." in f.src for f in truth.flows_for(active=TIMEOUT, inactive=TIMEOUT))
            print(f"{args.runs} interleaved rounds over {frames} frames; "
                  f"sinks on 127.0.0.1, timeouts {TIMEOUT} s")
            runs: list[Run] = []
            for i in range(args.runs):
                order = ("flowd", "softflowd") if i % 2 == 0 else ("softflowd", "flowd")
                for tool in order:
                    runs.append(measure(tool, capture, workdir, args.workers))
                    print(f"  round {i + 1}: {tool} {runs[-1].wall:.3f} s", flush=True)
        except (ValueError, OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"vs_softflowd: {exc}", file=sys.stderr)
            return 1
        print("\n".join(report(runs, frames, truth_v4)))
    return 0


def count_frames(path: Path) -> int:
    """Records in a little-endian classic pcap (for a capture without a sidecar)."""
    n = 0
    with open(path, "rb") as fh:
        head = fh.read(24)
        if head[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
            raise ValueError(f"{path}: not a little-endian pcap file")
        while rec := fh.read(16):
            if len(rec) < 16:
                break
            fh.seek(int.from_bytes(rec[8:12], "little"), os.SEEK_CUR)
            n += 1
    return n


if __name__ == "__main__":
    sys.exit(main())
