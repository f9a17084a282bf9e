"""Full-table scale of flowd's route lookups: load time, memory, lookups/s, updates/s beside export.

Builds a synthetic Internet-like table (default 1,000,000 IPv4 and 250,000 IPv6 prefixes: the
length mix of today's global table, /24 and /48 dominating, random origin ASes, 40 peers, 4 BGP
next hops; prefixes nest as in the real table), then prints the four figures issue 12 asks for:

1. load: seconds to load both families into one source (``FamilyRib.load``: the LPM range table,
   the prefix index and the attribute columns), from arrays already in memory;
2. memory: the process's resident-set growth over the load (VmRSS), and the bytes the tables'
   arrays hold;
3. lookups/s: addresses answered per second by ``FamilyRib.lookup`` in batches of 65,536 (half
   inside announced prefixes, half random), per family, and flows/s for ``RouteSet.flow_routes``
   (a source and a destination lookup per flow, 15% IPv6);
4. updates: ``--updates`` announcements/withdrawals per second for ``--seconds`` seconds, applied in
   batches of one tenth of a second, each followed by the lookups of one export batch of 8,192
   flows; prints the CPU time the updates took per second and the export batch latency (median and
   worst) next to the same latency without updates.

    python benchmarks/routing_table.py [--v4 1000000] [--v6 250000] [--updates 1000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import ipaddress
import statistics
import sys
from pathlib import Path
from time import perf_counter
from typing import Final

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from flowd.routing.resolve import RouteSet
from flowd.routing.rib import FamilyRib, Route, SourceRib

V4_LENGTHS: Final = {8: .0002, 9: .0002, 10: .0005, 11: .001, 12: .002, 13: .004, 14: .006, 15: .008,
                     16: .013, 17: .008, 18: .014, 19: .024, 20: .040, 21: .045, 22: .105, 23: .095,
                     24: .6346}
V6_LENGTHS: Final = {29: .04, 32: .12, 33: .01, 34: .01, 35: .01, 36: .04, 40: .08, 42: .02, 44: .09,
                     45: .01, 46: .03, 47: .03, 48: .49}
BATCH: Final = 65536
EXPORT_BATCH: Final = 8192


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def prefixes(rng: np.random.Generator, count: int, width: int,
             mix: dict[int, float]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
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
    return nets[0], lens[0]


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


def rate(fn: object, batches: list[npt.NDArray[np.uint8]]) -> float:
    call = fn  # a FamilyRib.lookup
    t0 = perf_counter()
    for b in batches:
        call(b)  # type: ignore[operator]
    return sum(len(b) for b in batches) / (perf_counter() - t0)


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
    ap.add_argument("--v4", type=int, default=1_000_000)
    ap.add_argument("--v6", type=int, default=250_000)
    ap.add_argument("--updates", type=int, default=1000, help="updates per second")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    v4_nets, v4_lens = prefixes(rng, args.v4, 32, V4_LENGTHS)
    v6_nets, v6_lens = prefixes(rng, args.v6, 128, V6_LENGTHS)
    a4, a6 = attributes(rng, len(v4_lens), 4), attributes(rng, len(v6_lens), 16)

    rss0 = status_kib("VmRSS")
    source = SourceRib("bgp")
    t0 = perf_counter()
    source.families[4].load(v4_nets, v4_lens, **a4)  # type: ignore[arg-type]
    source.families[6].load(v6_nets, v6_lens, **a6)  # type: ignore[arg-type]
    load = perf_counter() - t0
    rss = (status_kib("VmRSS") - rss0) / 1024
    arrays = sum(f.nbytes_used() for f in source.families.values()) / 2**20
    print(f"table: {source.prefixes(4):,} IPv4 + {source.prefixes(6):,} IPv6 prefixes "
          f"({source.families[4].table.ranges:,} + {source.families[6].table.ranges:,} ranges)")
    print(f"1. load: {load:.2f} s (target <= 20 s)")
    print(f"2. memory: {rss:.0f} MB resident growth, {arrays:.0f} MB in the tables' arrays (target <= 200 MB)")

    b4 = [addresses(rng, v4_nets, BATCH) for _ in range(16)]
    b6 = [addresses(rng, v6_nets, BATCH) for _ in range(16)]
    r4 = rate(source.families[4].lookup, b4)
    r6 = rate(source.families[6].lookup, b6)
    routes = RouteSet([source])
    keys = [flow_keys(rng, v4_nets, v6_nets, BATCH) for _ in range(8)]
    t0 = perf_counter()
    for k in keys:
        routes.flow_routes(k, np.zeros(len(k), np.uint16))
    flows = sum(len(k) for k in keys) / (perf_counter() - t0)
    print(f"3. lookups: IPv4 {r4 / 1e6:.2f} M/s, IPv6 {r6 / 1e6:.2f} M/s (target >= 5 M/s); "
          f"per flow (src + dst, 15% IPv6, all columns) {flows / 1e6:.2f} M flows/s "
          f"= {2 * flows / 1e6:.2f} M lookups/s")

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
        t = perf_counter()
        source.change(batch, gone, now=float(seq))
        spent += perf_counter() - t
        busy.append(export_latency())
    print(f"4. updates: {args.updates}/s for {args.seconds} s cost {spent / args.seconds * 1000:.0f} ms "
          f"of CPU per second ({spent / args.seconds * 100:.1f}%); export batch of {EXPORT_BATCH} flows: "
          f"median {statistics.median(busy) * 1000:.1f} ms / worst {max(busy) * 1000:.1f} ms with updates, "
          f"median {statistics.median(quiet) * 1000:.1f} ms / worst {max(quiet) * 1000:.1f} ms without")
    print(f"   after updates: {source.prefixes(4):,} IPv4 + {source.prefixes(6):,} IPv6 prefixes, "
          f"{source.families[4].table.ranges:,} + {source.families[6].table.ranges:,} ranges")


if __name__ == "__main__":
    main()
