"""Memory per cached flow in flowd's FlowTable, and the time to pick the top 10 flows by bytes.

Fills a FlowTable with N concurrent flows (distinct keys, 6 of 7 IPv4 and 1 of 7 IPv6; one packet
each, fed as PacketBatch objects of 64k packets, timeouts far away so nothing expires), then reports
the process's resident-set growth divided by N: steady (VmRSS after - before) and peak (VmHWM after,
with the high-water mark reset before the build, - VmRSS before).

    python benchmarks/memory_per_flow.py --flows 1000000
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path
from time import perf_counter
from typing import Final

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from flowd.core.flowtable import FlowTable
from flowd.model.batch import PacketBatch
from flowd.model.flowkey import KEY_BYTES, V4_MAPPED_PREFIX

BATCH: Final = 65536
FAR: Final = 1e9  # timeouts, seconds: nothing expires during the build
START: Final = 1_700_000_000.0
TCP: Final = 6
ACK: Final = 0x10
V4_SRC: Final = 0xC6120000  # 198.18.0.0/15: 2^17 sources
V6_SRC: Final = bytes.fromhex("20010db8000000000000000000000000")  # 2001:db8::/32 + flow number
V6_DST: Final = bytes.fromhex("20010db8000100000000000000000001")  # 2001:db8:1::1
V4_DST: Final = bytes((198, 19, 0, 1))


def status_kib(field: str) -> int:
    """A VmXXX line of /proc/self/status, in KiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field} line")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux 4.0+); False when the kernel refuses."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def flow_batch(lo: int, hi: int) -> PacketBatch:
    """One packet for each of flows lo..hi-1; flow i is IPv6 when i % 7 == 6, IPv4 otherwise."""
    i = np.arange(lo, hi, dtype=np.int64)
    n = i.shape[0]
    key = np.zeros((n, KEY_BYTES), np.uint8)
    v6 = i % 7 == 6
    v4 = ~v6
    # IPv4: source from the /15 (i mod 2^17), the rest of i in the source port: all keys distinct.
    key[v4, :12] = np.frombuffer(V4_MAPPED_PREFIX, np.uint8)
    key[v4, 12:16] = (V4_SRC + (i[v4] & 0x1FFFF)).astype(">u4").view(np.uint8).reshape(-1, 4)
    key[v4, 16:28] = np.frombuffer(V4_MAPPED_PREFIX, np.uint8)
    key[v4, 28:32] = np.frombuffer(V4_DST, np.uint8)
    key[v4, 32:34] = (1024 + (i[v4] >> 17)).astype(">u2").view(np.uint8).reshape(-1, 2)
    # IPv6: the flow number in the low 32 bits of the source.
    key[v6, 0:16] = np.frombuffer(V6_SRC, np.uint8)
    key[v6, 12:16] = i[v6].astype(">u4").view(np.uint8).reshape(-1, 4)
    key[v6, 16:32] = np.frombuffer(V6_DST, np.uint8)
    key[v6, 32:34] = np.frombuffer(b"\xc0\x00", np.uint8)
    key[:, 34:36] = np.frombuffer(b"\x01\xbb", np.uint8)  # 443
    key[:, 36] = TCP
    key[:, 39] = 1  # ifindex
    return PacketBatch(
        key=key, length=(40 + (i * 7919) % 1461).astype(np.uint32), ts=(START + i * 1e-6).astype(np.float64),
        tcp_flags=np.full(n, ACK, np.uint8), ttl=np.full(n, 64, np.uint8), vlan=np.zeros(n, np.uint16),
        inner_vlan=np.zeros(n, np.uint16), mpls=np.zeros((n, 3), np.uint32))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Memory per flow and top-10 time of flowd's FlowTable.")
    p.add_argument("--flows", type=int, default=1_000_000, help="concurrent flows (default 1000000)")
    args = p.parse_args(argv)
    n = args.flows
    if not 1 <= n <= 1 << 32:
        print("memory_per_flow: --flows must be within 1..2^32 (keys stay distinct)", file=sys.stderr)
        return 1
    table = FlowTable(n, FAR, FAR)
    flow_batch(0, min(n, BATCH))  # first-touch numpy's code paths before measuring
    rss_before = status_kib("VmRSS")
    peak_reset = reset_peak()
    started = perf_counter()
    for lo in range(0, n, BATCH):
        hi = min(lo + BATCH, n)
        ended = table.add(flow_batch(lo, hi), now=START + hi * 1e-6)
        if len(ended):
            print(f"memory_per_flow: {len(ended)} flows ended during the build", file=sys.stderr)
            return 1
    build = perf_counter() - started
    rss_after, hwm_after = status_kib("VmRSS"), status_kib("VmHWM")
    if len(table) != n:
        print(f"memory_per_flow: the table holds {len(table)} flows, expected {n}", file=sys.stderr)
        return 1
    times = []
    for _ in range(5):
        t0 = perf_counter()
        top = table.top(10, order="bytes")
        times.append(perf_counter() - t0)
    best = top.bytes.tolist()
    expected = sorted((40 + (i * 7919) % 1461 for i in range(n)), reverse=True)[:10] if n <= 200_000 else None
    if expected is not None and best != expected:
        print(f"memory_per_flow: top 10 by bytes is {best}, expected {expected}", file=sys.stderr)
        return 1
    print(f"flows: {n} ({n - n // 7} IPv4, {n // 7} IPv6), built in {build:.2f} s "
          f"({n / build / 1e3:.0f}k flows/s, batches of {BATCH})")
    print(f"RSS growth per flow: {(rss_after - rss_before) * 1024 / n:.0f} B steady, "
          + (f"{(hwm_after - rss_before) * 1024 / n:.0f} B peak"
             if peak_reset else "peak unknown (cannot reset VmHWM)")
          + f"  (VmRSS {rss_before / 1024:.0f} -> {rss_after / 1024:.0f} MiB, VmHWM {hwm_after / 1024:.0f} MiB)")
    print(f"table's own accounting: {table.memory_used / n:.0f} B/flow allocated, "
          f"{table.bytes_per_flow} B per occupied row")
    print(f"top 10 by bytes: median {statistics.median(times) * 1e3:.2f} ms of 5 "
          f"(largest {best[0]} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
