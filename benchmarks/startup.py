"""Start-up cost: `flowd --read` of a one-packet capture, whole process, and where its imports go.

Writes a capture of one UDP packet, exports to a UDP sink on 127.0.0.1, and runs the command
``--runs`` times: prints the median and best wall time and CPU time (user + system, every thread and
child), then the heaviest imports as ``python -X importtime`` reports them (the best of the runs for
each module, so a busy machine inflates them less). The command is the `flowd` script installed beside
this Python (what a user runs), and ``python -m flowd`` beside it, which also loads runpy; softflowd -r
on the same file is timed too when installed. The issue's target: a one-packet file in <= 120 ms.

    python benchmarks/startup.py --runs 10

Python compiles modules to bytecode on first import and caches it in __pycache__; an environment
with PYTHONDONTWRITEBYTECODE=1 (or a read-only install without .pyc files) compiles every module on
every start. The benchmark warms the cache with one run first and says whether it could.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dpkt

FLOWD_MODULE = [sys.executable, "-m", "flowd"]


def flowd_command() -> list[str]:
    """The `flowd` script of this Python's environment, else ``python -m flowd``."""
    script = Path(sys.executable).with_name("flowd")
    return [str(script)] if script.exists() else FLOWD_MODULE


def write_one_packet(path: Path) -> None:
    udp = dpkt.udp.UDP(sport=40000, dport=53, data=b"x" * 32)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=bytes([127, 0, 0, 1]), dst=bytes([127, 0, 0, 2]), p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = len(ip)
    frame = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)
    with path.open("wb") as f:
        dpkt.pcap.Writer(f).writepkt(bytes(frame), ts=1_700_000_000.0)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child and its children) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def heaviest_imports(command: list[str], env: dict[str, str], runs: int, top: int) -> list[tuple[int, int, str]]:
    """(best self µs, best cumulative µs, module) of the modules with the largest cumulative time."""
    best: dict[str, tuple[int, int]] = {}
    for _ in range(runs):
        err = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env={**env, "PYTHONPROFILEIMPORTTIME": "1"}).stderr
        for line in err.splitlines():
            if not line.startswith("import time:") or "[us]" in line:
                continue
            own, cumulative, name = line.removeprefix("import time:").split("|")
            old = best.get(name.rstrip(), (1 << 62, 1 << 62))
            best[name.rstrip()] = (min(old[0], int(own)), min(old[1], int(cumulative)))
    rows = [(own, cum, name) for name, (own, cum) in best.items()]
    return sorted(rows, key=lambda row: -row[1])[:top]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="flowd --read start-up time on a one-packet capture.")
    p.add_argument("--runs", type=int, default=10, help="timed runs per tool (default 10)")
    p.add_argument("--top", type=int, default=25, help="import entries printed (default 25)")
    args = p.parse_args(argv)
    if args.runs < 1:
        print("startup: --runs must be at least 1", file=sys.stderr)
        return 1
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory(prefix="flowd-startup-") as tmp, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        capture = Path(tmp) / "one.pcap"
        write_one_packet(capture)
        read = ["--read", str(capture), "--flow-server", f"127.0.0.1:{sink.getsockname()[1]}"]
        tools = {"flowd": flowd_command() + read, "python -m flowd": FLOWD_MODULE + read}
        if shutil.which("softflowd"):
            tools["softflowd"] = ["softflowd", "-r", str(capture), "-c", "none", "-p", str(Path(tmp) / "pid"),
                                  "-n", f"127.0.0.1:{sink.getsockname()[1]}"]
        for command in tools.values():
            timed(command, env)  # warm the page cache and the bytecode cache
        print(f"load average {os.getloadavg()[0]:.2f}; {args.runs} runs; bytecode cache "
              f"{'written' if 'PYTHONDONTWRITEBYTECODE' not in env else 'off'}")
        results: dict[str, list[tuple[float, float]]] = {tool: [] for tool in tools}
        for _ in range(args.runs):  # the tools take turns, so a change in the machine's load hits each alike
            for tool, command in tools.items():
                results[tool].append(timed(command, env))
        for tool, runs in results.items():
            walls, cpus = [r[0] for r in runs], [r[1] for r in runs]
            print(f"{tool:15s} wall median {statistics.median(walls) * 1e3:6.1f} ms (best {min(walls) * 1e3:6.1f})"
                  f"   CPU median {statistics.median(cpus) * 1e3:6.1f} ms (best {min(cpus) * 1e3:6.1f})")
        print(f"\n{tools['flowd'][0]}: heaviest imports (best of {args.runs}; self / cumulative, µs):")
        for own, cumulative, name in heaviest_imports(tools["flowd"], env, args.runs, args.top):
            print(f"  {own:8d} {cumulative:9d}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
