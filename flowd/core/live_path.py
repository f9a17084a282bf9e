"""The live packet path in one compiled call: a capture ring's ready blocks decoded, sampled and cached in C.

``ingest_ring`` hands every ready block of a TPACKET_V3 ring to flowd.native._flowtable.ingest_ring
(flowd/native/_live.c), which decodes each frame in place, samples it (1-in-N, run-length) and adds each
block's packets of a family to that family's compiled table as one batch, with no frame batch and no
Python between blocks; then this module adds the call's counts to the pipeline's statistics and drains the
flows that ended. It is ``Pipeline.process`` over the frames of ``PacketRing.read``, one block per batch,
with the same statistics (frames, drops by reason, sampled and not-sampled packets, packet sizes, the
flow tables' counters) and, for a family a bridge template exports, the flows' MAC addresses;
tests/flowd/test_live_path.py holds the two paths together.

It applies only where every family sampled on the input has a compiled table, no firewall filter and no
max-packets-per-second cap (a filter's counters and the shared per-second budget stay in numpy);
otherwise, and without the extension or with ``FLOWD_NO_FASTPATH=1``, ``ingest_ring`` returns None and
the caller reads frames as before. Pure: the caller gives ``now`` and the shift from kernel timestamps to
its clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from flowd.core.compiled_table import EXTENSION, CompiledFlowTable
from flowd.core.frame_rules import DROP_CODE
from flowd.core.pipeline import FamilyPath, Pipeline
from flowd.core.stats import SIZE_EDGES
from flowd.model.batch import FlowRecords
from flowd.model.drops import DropReason
from flowd.native import compiled

FAMILIES: Final = ("inet", "inet6")
NOT_BOUND: Final = (DropReason.NOT_IPV6, DropReason.NOT_IPV4)  # what a family's packets count as where it is not sampled
COUNT_FRAMES: Final = 0
COUNT_DROPS: Final = 1  # + drop code - 1
COUNT_UNBOUND: Final = 6  # + family
COUNT_OFFERED: Final = 8  # + family
COUNT_SAMPLED: Final = 10  # + family
COUNT_SIZES: Final = 12
REASON_OF_CODE: Final = {code: reason for reason, code in DROP_CODE.items()}
_EDGES: Final = np.ascontiguousarray(SIZE_EDGES, np.uint32)

# (ring mapping, first block, block size, block count, linktype, ifindex): PacketRing's side of a call
Ring = tuple[Any, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class Ingested:
    """What one call did: the ring's state after it, and the flows that ended, per family."""

    status: int  # flowd.capture.ring_walk._RingRead: OK, or what is wrong with block ``next``
    next: int  # the block the next read looks at first
    blocks: int  # blocks taken (and handed back, unless status says one is damaged)
    ended: dict[str, FlowRecords]


def _compiled_ingest() -> Callable[..., tuple[int, int, int, int, int]] | None:
    """flowd.native._flowtable.ingest_ring, unless it is not built, FLOWD_NO_FASTPATH=1, or its layout differs."""
    found: Callable[..., tuple[int, int, int, int, int]] | None = compiled(
        "ingest_ring", module=EXTENSION, COUNT_FRAMES=COUNT_FRAMES, COUNT_DROPS=COUNT_DROPS,
        COUNT_UNBOUND=COUNT_UNBOUND, COUNT_OFFERED=COUNT_OFFERED, COUNT_SAMPLED=COUNT_SAMPLED,
        COUNT_SIZES=COUNT_SIZES)
    return found


_INGEST = _compiled_ingest()


def _compiled_paths(pipeline: Pipeline, interface: str) -> list[tuple[FamilyPath, CompiledFlowTable] | None] | None:
    """Per family, its path and compiled table (None: not sampled on this input); None when C cannot take them."""
    out: list[tuple[FamilyPath, CompiledFlowTable] | None] = []
    for family in FAMILIES:
        path, flt = pipeline.input_path(family, interface)
        if path is None:
            out.append(None)
            continue
        if flt is not None or path.sampler.max_packets_per_second is not None \
                or not isinstance(path.table, CompiledFlowTable):
            return None
        out.append((path, path.table))
    return out


def ingest_ring(pipeline: Pipeline, ring: Ring, now: float, shift: float, interface: str) -> Ingested | None:
    """Account every ready block of ``ring`` arriving on ``interface``; None when this path does not apply.

    Frame timestamps are the kernel's plus ``shift`` (the caller's clock minus the wall clock).
    """
    ingest = _INGEST
    paths = None if ingest is None else _compiled_paths(pipeline, interface)
    if ingest is None or paths is None:
        return None
    sampling = np.zeros(6, np.int64)
    for f, taken in enumerate(paths):
        if taken is not None:
            sampler = taken[0].sampler
            sampling[3 * f:3 * f + 3] = (sampler.position, sampler.rate, sampler.run_length)
    counts: npt.NDArray[np.int64] = np.zeros(COUNT_SIZES + len(_EDGES) + 1, np.int64)
    tables = tuple(None if taken is None else taken[1].native for taken in paths)
    macs = sum(1 << f for f, taken in enumerate(paths) if taken is not None and taken[1].macs)
    status, at, blocks, *ended_counts = ingest(*ring, shift, tables, macs, sampling, _EDGES, counts)
    st = pipeline.stats
    st.frames += int(counts[COUNT_FRAMES])
    for code, reason in REASON_OF_CODE.items():
        st.drops[reason] += int(counts[COUNT_DROPS + code - 1])
    st.sizes += counts[COUNT_SIZES:]
    ended: dict[str, FlowRecords] = {}
    for f, (family, taken) in enumerate(zip(FAMILIES, paths, strict=True)):
        st.drops[NOT_BOUND[f]] += int(counts[COUNT_UNBOUND + f])
        if taken is None:
            continue
        path, table = taken
        sampled = int(counts[COUNT_SAMPLED + f])
        st.sampled += sampled
        st.not_sampled += int(counts[COUNT_OFFERED + f]) - sampled
        path.sampler.position = int(sampling[3 * f])
        before = table.counters.dropped_no_memory
        records = table.drain(ended_counts[f], now)
        st.drops[DropReason.NO_MEMORY] += table.counters.dropped_no_memory - before
        if len(records):
            ended[family] = records
    return Ingested(status, at, blocks, ended)
