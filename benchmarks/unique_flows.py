"""Captures of N concurrent UDP flows, and whole-process runs of flowd --read and softflowd -r over them.

Shared by memory_per_flow.py and flow_scaling.py. Flow i is IPv6 when i % 7 == 6 (both families
present), IPv4 otherwise; every frame is 62 bytes (Ethernet + IPv4 + UDP, padded, or Ethernet + IPv6 +
UDP). The packets go round after round through one random order of the flows, one microsecond apart,
so with 1800 s timeouts every flow stays cached to the end of the file. Addresses are the benchmark
ranges 198.18.0.0/15 -> 198.19.0.1 and 2001:db8::/32 -> 2001:db8:1::1; the captures are only read,
and both tools export to UDP sinks on 127.0.0.1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Final

import numpy as np
from vs_softflowd import Sink  # benchmarks/ is sys.path[0]

REPO: Final = Path(__file__).resolve().parents[1]
TIMEOUT: Final = 1800  # seconds, every timeout of both tools
START: Final = 1_700_000_000
FRAME: Final = 62
RECORD: Final = 16 + FRAME
CHUNK: Final = 1 << 20  # packets written at a time
RUN_LIMIT: Final = 1800  # seconds one run may take

CONFIG: Final = """{services}
forwarding-options:
  sampling:
    input: {{rate: 1}}
    family:
      inet:
        output:
          flow-server:
            127.0.0.1: {{port: {port4}, version-ipfix: {ipfix}, source-address: 127.0.0.1}}
          flow-active-timeout: {timeout}
          flow-inactive-timeout: {timeout}
      inet6:
        output:
          flow-server:
            127.0.0.1: {{port: {port6}, version-ipfix: {ipfix}, source-address: 127.0.0.1}}
          flow-active-timeout: {timeout}
          flow-inactive-timeout: {timeout}
flowd:
  flow-table:
    max-flows: {max_flows}
"""


def frames(ids: np.ndarray, first: int) -> bytes:
    """pcap records (header + frame) for packets of the given flow ids; packet j is at START + j µs."""
    n = ids.shape[0]
    rec = np.zeros((n, RECORD), np.uint8)
    ts = np.arange(first, first + n, dtype=np.int64)
    rec[:, 0:4] = (START + ts // 1_000_000).astype("<u4").view(np.uint8).reshape(n, 4)
    rec[:, 4:8] = (ts % 1_000_000).astype("<u4").view(np.uint8).reshape(n, 4)
    rec[:, 8:12] = np.frombuffer(np.uint32(FRAME).astype("<u4").tobytes(), np.uint8)
    rec[:, 12:16] = rec[:, 8:12]
    f = rec[:, 16:]
    f[:, 0:6] = (0, 0, 0x5E, 0, 0x53, 1)
    f[:, 6:12] = (0, 0, 0x5E, 0, 0x53, 2)
    v6 = ids % 7 == 6
    v4 = ~v6
    four, six = f[v4], f[v6]
    i4, i6 = ids[v4], ids[v6]
    four[:, 12:14] = (0x08, 0x00)
    four[:, 14:24] = (0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17)
    four[:, 26:30] = ((0xC6120000 + (i4 & 0x1FFFF)).astype(">u4").view(np.uint8).reshape(-1, 4))
    four[:, 30:34] = (198, 19, 0, 1)
    four[:, 34:36] = (1024 + (i4 >> 17)).astype(">u2").view(np.uint8).reshape(-1, 2)
    four[:, 36:42] = (0x01, 0xBB, 0, 8, 0, 0)
    six[:, 12:14] = (0x86, 0xDD)
    six[:, 14:22] = (0x60, 0, 0, 0, 0, 8, 17, 64)
    six[:, 22:26] = (0x20, 0x01, 0x0D, 0xB8)
    six[:, 34:38] = i6.astype(">u4").view(np.uint8).reshape(-1, 4)
    six[:, 38:54] = (0x20, 0x01, 0x0D, 0xB8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1)
    six[:, 54:62] = (0xC0, 0x00, 0x01, 0xBB, 0, 8, 0, 0)
    f[v4], f[v6] = four, six
    return rec.tobytes()


def write_capture(path: Path, flows: int, packets: int, seed: int = 1) -> None:
    """``packets`` packets over ``flows`` flows: round after round of one random order of the flows."""
    if packets < flows:
        raise ValueError(f"need at least one packet per flow: {packets} packets, {flows} flows")
    order = np.random.default_rng(seed).permutation(flows).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(bytes.fromhex("d4c3b2a1020004000000000000000000ffff000001000000"))
        for lo in range(0, packets, CHUNK):
            hi = min(lo + CHUNK, packets)
            fh.write(frames(order[np.arange(lo, hi) % flows], lo))


@dataclass(frozen=True, slots=True)
class Run:
    tool: str
    wall: float  # seconds, the whole process
    cpu: float  # user + system seconds of the process (/usr/bin/time %U + %S)
    peak_kib: int  # maximum resident set size (/usr/bin/time %M)
    datagrams: int  # received by the sinks


def flowd_command(capture: Path, config: Path, workers: int | None = None) -> list[str]:
    return [sys.executable, "-m", "flowd", "--read", str(capture), "--config", str(config),
            *(["--workers", str(workers)] if workers else [])]


def softflowd_command(capture: Path, port: int, workdir: Path, max_flows: int) -> list[str]:
    # -c none: with -r and a control socket softflowd 1.1.0 waits in accept() forever.
    timeouts = [f"{name}={TIMEOUT}" for name in ("maxlife", "tcp", "udp", "icmp", "general")]
    return ["softflowd", "-r", str(capture), "-c", "none", "-p", str(workdir / "softflowd.pid"),
            "-n", f"127.0.0.1:{port}", "-v", "10", "-m", str(max_flows),
            *[arg for t in timeouts for arg in ("-t", t)]]


# `bridge`: both families export with a bridge template, so the flow cache keeps every flow's MACs
BRIDGE_SERVICES: Final = "services: {flow-monitoring: {version-ipfix: {template: {l2: {bridge-template: true}}}}}"


def run(tool: str, capture: Path, workdir: Path, max_flows: int, bridge: bool = False,
        workers: int | None = None) -> Run:
    """One run of one tool under /usr/bin/time, exporting to fresh sinks on 127.0.0.1."""
    sinks = [Sink(), Sink()]
    if tool == "flowd":
        config = workdir / "flowd.yaml"
        config.write_text(CONFIG.format(port4=sinks[0].port, port6=sinks[1].port, timeout=TIMEOUT,
                                        max_flows=max_flows, services=BRIDGE_SERVICES if bridge else "",
                                        ipfix="{template: l2}" if bridge else "true"))
        cmd = flowd_command(capture, config, workers)
    else:
        cmd = softflowd_command(capture, sinks[0].port, workdir, max_flows)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, (str(REPO), os.environ.get("PYTHONPATH")))))
    started = perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss %M cpu %U %S", *cmd], check=False, capture_output=True,
                          text=True, timeout=RUN_LIMIT, env=env, cwd=workdir)
    wall = perf_counter() - started
    received = sum(s.close()[0] for s in sinks)
    found = re.findall(r"maxrss (\d+) cpu ([\d.]+) ([\d.]+)", proc.stderr)
    if proc.returncode != 0 or not found:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{tool} exited with status {proc.returncode}: {last}")
    rss, user, system = found[-1]
    return Run(tool, wall, float(user) + float(system), int(rss), received)
