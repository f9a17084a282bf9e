"""Frame decode alone (flowd.core.decode), compiled and numpy paths, on a realistic full-frame capture.

The capture is synthetic (flowd.testing.synth) with the shares of issue 11's mixed capture: full
frames (no snaplen), 25% IPv6 conversations of which a tenth carry a hop-by-hop header, 5% IPv4
fragments, 802.1Q, QinQ and MPLS, 1% damaged frames (cut, bad IHL, truncated). It is read into memory
once with flowd's reader; then each path decodes every batch, --runs times, and the median is printed
as frames/s, with the frames that went through the per-frame ``decode_frame`` (Python, one by one).
Nothing here is sent anywhere.

    python benchmarks/decode_speed.py --packets 1000000 --flows 100000 --runs 5
    python benchmarks/decode_speed.py --capture benchmarks/out/full-1m.pcap   # reuse (or create) a file
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import flowd.core.decode as decoding
from flowd.capture.files import open_capture
from flowd.model.batch import FrameBatch
from flowd.testing.synth import SynthSpec, write_capture

FULL_FRAMES: Final = 262_144  # snaplen: every frame whole


def mixed_spec(packets: int, flows: int) -> SynthSpec:
    return SynthSpec(packets=packets, flows=flows, snaplen=FULL_FRAMES, ipv6_share=0.25, hop_by_hop_share=0.1,
                     fragment_share=0.05, vlan_share=0.10, qinq_share=0.03, mpls_share=0.03, damaged_share=0.01)


def load(path: Path) -> list[FrameBatch]:
    with open_capture(str(path)) as reader:
        return list(reader.batches())


def per_frame_calls(batches: list[FrameBatch], run: object) -> int:
    """How many frames the path hands to decode_frame."""
    calls = 0
    real = decoding.decode_frame

    def counted(*args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        return real(*args, **kwargs)  # type: ignore[arg-type]

    decoding.decode_frame = counted  # type: ignore[assignment]
    try:
        for b in batches:
            run(b)  # type: ignore[operator]
    finally:
        decoding.decode_frame = real
    return calls


def seconds(batches: list[FrameBatch], run: object) -> float:
    started = time.process_time()
    for b in batches:
        run(b)  # type: ignore[operator]
    return time.process_time() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Decode speed of flowd's compiled and numpy paths.")
    p.add_argument("--packets", type=int, default=1_000_000)
    p.add_argument("--flows", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--capture", type=Path, help="capture to reuse, or to create when it does not exist")
    args = p.parse_args(argv)
    path = args.capture or REPO / "benchmarks" / "out" / f"full-{args.packets}.pcap"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        truth = write_capture(mixed_spec(args.packets, args.flows), path)
        print(f"wrote {path}: {truth.frames} frames, {truth.damaged} damaged ({truth.truncated} truncated)")
    batches = load(path)
    frames = sum(len(b) for b in batches)
    size = sum(int(b.caplen.sum()) for b in batches)
    print(f"{path}: {frames} frames, {size / 1e6:.0f} MB captured, {len(batches)} batches; decoder {decoding.__file__}")
    extract = decoding._compiled_extract()
    paths: dict[str, object] = {"numpy": decoding.decode_numpy}
    if extract is not None:
        paths["compiled"] = lambda b: decoding._decode_compiled(b, extract)
    for name, run in paths.items():
        one_by_one = per_frame_calls(batches, run)
        times = [seconds(batches, run) for _ in range(args.runs)]
        best, median = min(times), statistics.median(times)
        print(f"{name:9s} median {median:.3f} s CPU ({frames / median / 1e6:.2f}M frames/s), best {best:.3f} s "
              f"({frames / best / 1e6:.2f}M frames/s); {one_by_one} frames ({100 * one_by_one / frames:.2f}%) "
              f"through decode_frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
