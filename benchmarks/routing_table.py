"""Full-table scale of flowd's route lookups: load time, memory, lookups/s, updates beside export.

Builds a synthetic Internet-like table (default 1,000,000 IPv4 and 250,000 IPv6 prefixes: the
length mix of today's global table, /24 and /48 dominating, random origin ASes, 40 peers, 4 BGP
next hops; prefixes nest as in the real table), then prints the four figures issue 12 asks for, for
the compiled LPM table (flowd/native/_lpm.c) and for the numpy reference (``FLOWD_NO_FASTPATH=1``),
each measured in a process of its own:

1. load: seconds to load both families into one source (``FamilyRib.load``: the LPM table with its
   prefix index, and the attribute columns), from arrays already in memory (each family's
   attribute arrays are made just before its load and dropped after it);
2. memory: the resident-set growth over the load, the bytes the tables hold, and the process's peak
   resident set at the end (what ``/usr/bin/time -f %M`` reports: Python, numpy, the benchmark's
   own arrays and the tables);
3. lookups/s: addresses answered per second by ``FamilyRib.lookup`` (route id, length and every
   attribute column) in batches of 65,536 (half inside announced prefixes, half random), per
   family, and lookups/s of ``RouteSet.flow_routes`` (a source and a destination lookup per flow,
   15% IPv6, every FlowRoutes column), each by the wall clock and by the process's CPU time (the
   second is the figure to read on a shared, loaded machine);
4. updates: ``--updates`` announcements/withdrawals per second for ``--seconds`` seconds, applied in
   batches of one tenth of a second, each followed by the lookups of one export batch of 8,192
   flows; prints the CPU time the updates took per second and the export batch latency (median and
   worst) next to the same latency without updates.

    python benchmarks/routing_table.py [--path both|compiled|reference] [--v4 1000000] [--v6 250000]
                                       [--updates 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import os
import resource
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from time import perf_counter, process_time
from typing import Final

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from flowd.routing.compiled_lpm import CompiledLpm, lpm_type
from flowd.routing.lpm import LpmTable
from flowd.routing.resolve import RouteSet
from flowd.routing.rib import FamilyRib, Route, SourceRib

V4_LENGTHS: Final = {8: .0002, 9: .0002, 10: .0005, 11: .001, 12: .002, 13: .004, 14: .006, 15: .008,
                     16: .013, 17: .008, 18: .014, 19: .024, 20: .040, 21: .045, 22: .105, 23: .095,
                     24: .6346}
V6_LENGTHS: Final = {29: .04, 32: .12, 33: .01, 34: .01, 35: .01, 36: .04, 40: .08, 42: .02, 44: .09,
                     45: .01, 46: .03, 47: .03, 48: .49}
BATCH: Final = 65536
ROUNDS: Final = 16  # lookup batches per figure, each generated just before its timed call
EXPORT_BATCH: Final = 8192
PATHS: Final = {"compiled": "compiled (flowd/native/_lpm.c)", "reference": "reference (numpy, FLOWD_NO_FASTPATH=1)"}


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def prefixes(rng: np.random.Generator, count: int, width: int,
             mix: dict[int, float]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
    """``count`` distinct prefixes with the given length mix, in unicast space."""
    lengths_all = np.array(list(mix), np.int64)
    weights = np.array(list(mix.values()))
    nets: list[npt.NDArray[np.uint8]] = []
    lens: list[npt.NDArray[np.int64]] = []
    seen = 0
    while seen < count:
        n = int((count - seen) * 1.1) + 16
        length = rng.choice(lengths_all, n, p=weights / weights.sum())
        if width == 32:
            value = rng.integers(0x01000000, 0xE0000000, n, dtype=np.uint64)
            value &= ~((np.uint64(1) << (32 - length).astype(np.uint64)) - np.uint64(1))
            raw = value.astype(">u4").view(np.uint8).reshape(n, 4)
        else:
            hi = rng.integers(0x2000 << 48, 0x4000 << 48, n, dtype=np.uint64)
            hi &= ~((np.uint64(1) << (64 - length).astype(np.uint64)) - np.uint64(1))
            raw = np.stack([hi, np.zeros(n, np.uint64)], axis=1).astype(">u8").view(np.uint8).reshape(n, 16)
        nets.append(raw)
        lens.append(length)
        allr = np.concatenate(nets)
        alll = np.concatenate(lens)
        keys = np.concatenate([allr, alll.astype(np.uint8)[:, None]], axis=1)
        _, first = np.unique(keys.view(f"V{keys.shape[1]}").ravel(), return_index=True)
        first = np.sort(first)[:count]
        nets, lens = [allr[first]], [alll[first]]
        seen = len(first)
    return nets[0], lens[0].astype(np.uint8)


def addresses(rng: np.random.Generator, nets: npt.NDArray[np.uint8], n: int) -> npt.NDArray[np.uint8]:
    """Half inside announced prefixes (a prefix's first address with random low bits), half random."""
    width = nets.shape[1]
    inside = nets[rng.integers(0, len(nets), n // 2)].copy()
    inside[:, width // 2:] = rng.integers(0, 256, (n // 2, width - width // 2), dtype=np.uint8)
    if width == 16:
        inside[:, 6:8] = rng.integers(0, 256, (n // 2, 2), dtype=np.uint8)
    rand = rng.integers(0, 256, (n - n // 2, width), dtype=np.uint8)
    out = np.concatenate([inside, rand])
    return out[rng.permutation(n)]


def attributes(rng: np.random.Generator, n: int, nbytes: int) -> dict[str, npt.NDArray[np.generic]]:
    hops = rng.integers(1, 255, (4, nbytes), dtype=np.uint8)
    return {"origin_as": rng.integers(1, 400000, n, dtype=np.uint32),
            "peer_as": rng.choice(rng.integers(1, 65000, 40, dtype=np.uint32), n),
            "bgp_next_hop": hops[rng.integers(0, 4, n)]}


def release_freed() -> None:
    """Give the heap the generators freed back to the system (glibc keeps it otherwise), so that the
    process's peak resident set is the tables' and the inputs', not the generators' leftovers."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def rates(call: Callable[[npt.NDArray[np.uint8]], object],
          make: Callable[[], npt.NDArray[np.uint8]], per_row: int = 1) -> tuple[float, float]:
    """Lookups per second of ``call`` over ROUNDS fresh batches: by the wall clock and by CPU time."""
    wall = cpu = 0.0
    done = 0
    for _ in range(ROUNDS):
        batch = make()
        w, c = perf_counter(), process_time()
        call(batch)
        wall += perf_counter() - w
        cpu += process_time() - c
        done += len(batch) * per_row
    return done / wall, done / cpu


def shape(fam: FamilyRib) -> str:
    """How the table is laid out, for the figures."""
    table = fam.table
    if isinstance(table, CompiledLpm):
        bits, buckets, ranges = table.shape()
        return f"/{bits} direct table, {buckets:,} buckets of {ranges:,} ranges"
    assert isinstance(table, LpmTable)
    return f"{table.ranges:,} ranges"


def flow_keys(rng: np.random.Generator, v4: npt.NDArray[np.uint8], v6: npt.NDArray[np.uint8],
              n: int) -> npt.NDArray[np.uint8]:
    keys = np.zeros((n, 40), np.uint8)
    six = rng.random(n) < 0.15
    k4, k6 = int((~six).sum()), int(six.sum())
    keys[~six, 10:12] = 0xFF
    keys[~six, 26:28] = 0xFF
    keys[~six, 12:16] = addresses(rng, v4, k4)
    keys[~six, 28:32] = addresses(rng, v4, k4)
    keys[six, 0:16] = addresses(rng, v6, k6)
    keys[six, 16:32] = addresses(rng, v6, k6)
    return keys


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--path", choices=["both", *PATHS], default="both",
                    help="the table to measure (both: each in a process of its own)")
    ap.add_argument("--v4", type=int, default=1_000_000)
    ap.add_argument("--v6", type=int, default=250_000)
    ap.add_argument("--updates", type=int, default=1000, help="updates per second")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.path == "both":
        for path in PATHS:
            argv = [a for a in sys.argv[1:] if not a.startswith("--path")]
            env = {k: v for k, v in os.environ.items() if k != "FLOWD_NO_FASTPATH"}
            if path == "reference":
                env["FLOWD_NO_FASTPATH"] = "1"
            subprocess.run([sys.executable, __file__, "--path", path, *argv], env=env, check=True)
        return
    if (lpm_type() is None) != (args.path == "reference"):
        sys.exit(f"{args.path}: " + ("the extension is not built" if args.path == "compiled"
                                     else "run with FLOWD_NO_FASTPATH=1"))
    measure(args)


def measure(args: argparse.Namespace) -> None:
    print(f"== {PATHS[args.path]}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    rng = np.random.default_rng(args.seed)
    v4_nets, v4_lens = prefixes(rng, args.v4, 32, V4_LENGTHS)
    v6_nets, v6_lens = prefixes(rng, args.v6, 128, V6_LENGTHS)
    release_freed()

    source = SourceRib("bgp")
    load = rss = 0.0
    for version, nets, lens in ((4, v4_nets, v4_lens), (6, v6_nets, v6_lens)):
        attrs = attributes(rng, len(lens), len(nets[0]))  # copied into the columns, then dropped
        rss0 = status_kib("VmRSS")
        t0 = perf_counter()
        source.families[version].load(nets, lens, **attrs)  # type: ignore[arg-type]
        load += perf_counter() - t0
        rss += (status_kib("VmRSS") - rss0) / 1024
        del attrs
    held = sum(f.nbytes_used() for f in source.families.values()) / 2**20
    print(f"table: {source.prefixes(4):,} IPv4 prefixes ({shape(source.families[4])}) + "
          f"{source.prefixes(6):,} IPv6 ({shape(source.families[6])})")
    print(f"1. load: {load:.2f} s (target <= 20 s)")
    print(f"2. memory: {rss:.0f} MB resident growth, {held:.0f} MB held by the tables and columns (target <= 200 MB)")

    r4 = rates(source.families[4].lookup, lambda: addresses(rng, v4_nets, BATCH))
    r6 = rates(source.families[6].lookup, lambda: addresses(rng, v6_nets, BATCH))
    routes = RouteSet([source])
    zeros = np.zeros(BATCH, np.uint16)
    rf = rates(lambda k: routes.flow_routes(k, zeros), lambda: flow_keys(rng, v4_nets, v6_nets, BATCH), 2)
    print("3. lookups (target >= 5 M/s), wall clock / CPU time: " + ", ".join(
        f"{name} {wall / 1e6:.2f} / {cpu / 1e6:.2f} M/s" for name, (wall, cpu) in
        (("IPv4", r4), ("IPv6", r6), ("per-flow (2 a flow: src + dst, 15% IPv6, every route column)", rf))))

    export = [flow_keys(rng, v4_nets, v6_nets, EXPORT_BATCH) for _ in range(10)]
    ifx = np.zeros(EXPORT_BATCH, np.uint16)

    def export_latency() -> float:
        t = perf_counter()
        routes.flow_routes(export[rng.integers(0, len(export))], ifx)
        return perf_counter() - t

    quiet = [export_latency() for _ in range(50)]
    per_tick = max(1, args.updates // 10)
    spent = 0.0
    busy: list[float] = []
    seq = 0
    for _tick in range(args.seconds * 10):
        batch: list[Route] = []
        gone: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for _ in range(per_tick):
            seq += 1
            version = 6 if seq % 5 == 0 else 4
            nets, lens = (v6_nets, v6_lens) if version == 6 else (v4_nets, v4_lens)
            i = int(rng.integers(0, len(lens)))
            net = ipaddress.ip_network((bytes(nets[i]), int(lens[i])))
            if seq % 3 == 0:
                gone.append(net)
            else:
                batch.append(Route(net, origin_as=int(rng.integers(1, 400000)), peer_as=64512))
        t = process_time()
        source.change(batch, gone, now=float(seq))
        spent += process_time() - t
        busy.append(export_latency())
    print(f"4. updates: {args.updates}/s for {args.seconds} s cost {spent / args.seconds * 1000:.0f} ms "
          f"of CPU per second ({spent / args.seconds * 100:.1f}%); export batch of {EXPORT_BATCH} flows: "
          f"median {statistics.median(busy) * 1000:.1f} ms / worst {max(busy) * 1000:.1f} ms with updates, "
          f"median {statistics.median(quiet) * 1000:.1f} ms / worst {max(quiet) * 1000:.1f} ms without")
    print(f"   after updates: {source.prefixes(4):,} IPv4 + {source.prefixes(6):,} IPv6 prefixes; peak resident "
          f"set of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB "
          f"(/usr/bin/time -f %M)")


if __name__ == "__main__":
    main()
