"""How long `show services accounting flow-detail order bytes limit 10` takes with 1M flows cached.

Starts a real `flowd` daemon replaying a capture with N distinct flows as fast as it goes (timeouts
far away, so every flow stays cached), waits until they are all in the cache, then times the shell's
path from Enter to the last rendered line: the control request over the Unix socket, the daemon's
top-N selection, the JSON reply and the shell's rendering (`shell.client` + `shell.render`, in this
process). It also times a whole `flowcli -c` process (interpreter start-up included) for reference.

    python benchmarks/flow_detail_latency.py --flows 1000000
    python benchmarks/flow_detail_latency.py --flows 1000000 --without-limit   # every flow, streamed
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from flowd.testing.synth import write_capture  # noqa: E402
from flowd.testing.truth import SynthSpec
from shell.client import Client  # noqa: E402
from shell.render import render  # noqa: E402

COMMAND = "show services accounting flow-detail order bytes limit 10"
PARAMS = {"order": "bytes", "limit": 10}


async def measure(sock: str, runs: int) -> list[float]:
    times = []
    async with Client(sock) as client:
        for _ in range(runs):
            t0 = time.perf_counter()
            result = await client.call("accounting.flow_detail", PARAMS)
            lines = render("accounting.flow_detail", result, None, None)
            assert len(lines) >= 4
            times.append(time.perf_counter() - t0)
    return times


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident, peak resident) of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


async def measure_without_limit(sock: str, pid: int) -> None:
    """`flow-detail` without `limit` (every cached flow), read as the shell's client reads it, while a second
    client asks `show version` every 10 ms: the daemon's memory and how long the second client waited."""
    rss_before, _ = rss_mib(pid)
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # the daemon's peak starts again from here
    waits: list[float] = []
    done = asyncio.Event()

    async def ping() -> None:
        async with Client(sock) as other:
            while not done.is_set():
                t0 = time.perf_counter()
                await other.call("system.version")
                waits.append(time.perf_counter() - t0)
                await asyncio.sleep(0.01)

    pinger = asyncio.ensure_future(ping())
    rows = chunks = 0
    t0 = time.perf_counter()
    async with Client(sock, timeout=120) as client:
        async for part in client.parts("accounting.flow_detail", {}):
            if isinstance(part, list):
                rows += len(part)
                chunks += 1
    elapsed = time.perf_counter() - t0
    done.set()
    await pinger
    _, peak = rss_mib(pid)
    print(f"flow-detail without limit: {rows} flows in {chunks} chunks, {elapsed:.1f} s; daemon RSS "
          f"{rss_before:.0f} MiB before, peak {peak:.0f} MiB during (+{peak - rss_before:.0f} MiB)")
    print(f"`show version` from another client meanwhile: {len(waits)} answered, longest wait "
          f"{max(waits) * 1000:.0f} ms, median {statistics.median(waits) * 1000:.1f} ms")


async def cached_flows(sock: str) -> int:
    async with Client(sock) as client:
        result = await client.call("accounting.flow", {})
        return int(result["interfaces"][0]["active_flows"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--capture", help="reuse this capture (default: benchmarks/out/flows-N.pcap)")
    ap.add_argument("--without-limit", action="store_true",
                    help="instead: stream every cached flow once; print the daemon's RSS and another client's waits")
    args = ap.parse_args()
    capture = Path(args.capture or REPO / "benchmarks" / "out" / f"flows-{args.flows}.pcap")
    if not capture.exists():
        capture.parent.mkdir(parents=True, exist_ok=True)
        print(f"generating {capture} ...", flush=True)
        write_capture(SynthSpec(packets=int(args.flows * 1.2), flows=args.flows, seed=3, duration=600.0,
                                fin_rst_share=0.0, damaged_share=0.0, ipv6_share=0.0), str(capture))
    with tempfile.TemporaryDirectory() as tmp:
        sock = os.path.join(tmp, "flowd.sock")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "flowd", "--replay", str(capture), "--replay-speed", "max", "--socket", sock,
             "--flow-server", "127.0.0.1:9", "--source-address", "127.0.0.1",
             "--active-timeout", "1800", "--inactive-timeout", "1800"],
            cwd=REPO, stderr=subprocess.DEVNULL)
        try:
            while not os.path.exists(sock):
                time.sleep(0.1)
            last, flows = -1, 0
            while True:  # until the cache stops growing
                time.sleep(1.0)
                flows = asyncio.run(cached_flows(sock))
                if flows == last:
                    break
                last = flows
            if args.without_limit:
                asyncio.run(measure_without_limit(sock, daemon.pid))
                return
            times = asyncio.run(measure(sock, args.runs))
            cli = []
            for _ in range(5):
                t0 = time.perf_counter()
                subprocess.run([sys.executable, "-m", "shell", "--socket", sock, "-c", COMMAND], cwd=REPO,
                               check=True, capture_output=True)
                cli.append(time.perf_counter() - t0)
        finally:
            daemon.terminate()
            daemon.wait()
    ms = sorted(t * 1000 for t in times)
    print(f"flows cached: {flows}")
    print(f"Enter to last line ({COMMAND}): median {statistics.median(ms):.1f} ms, "
          f"p95 {ms[int(len(ms) * 0.95) - 1]:.1f} ms, max {ms[-1]:.1f} ms over {len(ms)} runs")
    print(f"whole `flowcli -c` process (start-up included): median {statistics.median(cli) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
