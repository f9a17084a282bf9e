"""Write a synthetic benchmark capture and its ground-truth sidecar (flowd.testing.synth), and say what was written.

    python benchmarks/gen_capture.py --packets 2000000 --flows 200000 -o benchmarks/out/synth-2m.pcap
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from flowd.testing.synth import GroundTruth, SynthSpec, sidecar_path, write_capture


def generate(spec: SynthSpec, out: Path) -> tuple[GroundTruth, float]:
    """Write the capture and its sidecar; return the truth and the seconds it took."""
    out.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    truth = write_capture(spec, out)
    truth.save(sidecar_path(out))
    return truth, time.perf_counter() - started


def describe(truth: GroundTruth, out: Path, elapsed: float) -> list[str]:
    spec = truth.spec
    v4 = sum("." in f.src for f in truth.flows)
    size = out.stat().st_size
    return [
        f"wrote {out} ({size / 1e6:.1f} MB, snaplen {spec.snaplen}) and {sidecar_path(out)} in {elapsed:.1f} s",
        (f"frames: {truth.frames}: {len(truth.packets)} accountable IP packets, {truth.non_ip} ARP, "
         f"{truth.damaged} damaged ({truth.header_too_small} header-too-small, "
         f"{truth.bad_ip_header} bad-ip-header, {truth.truncated} truncated)"),
        (f"conversations: {spec.flows}, distinct keys: {len(truth.packets.keys)}, seed {spec.seed}, "
         f"{spec.duration:g} s from {spec.start:.0f}"),
        (f"flows at active {truth.active_timeout:g} s / inactive {truth.inactive_timeout:g} s: "
         f"{len(truth.flows)} ({v4} IPv4, {len(truth.flows) - v4} IPv6)"),
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write a synthetic pcap with ground truth (flowd.testing.synth).")
    p.add_argument("--packets", type=int, default=2_000_000, help="frames in the capture (default 2000000)")
    p.add_argument("--flows", type=int, default=200_000, help="conversations (default 200000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("-o", "--output", required=True, type=Path, metavar="FILE",
                   help="pcap to write; the ground truth goes to FILE.truth.npz")
    args = p.parse_args(argv)
    try:
        spec = SynthSpec(packets=args.packets, flows=args.flows, seed=args.seed)
        truth, elapsed = generate(spec, args.output)
    except (ValueError, OSError) as exc:
        print(f"gen_capture: {exc}", file=sys.stderr)
        return 1
    for line in describe(truth, args.output, elapsed):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
