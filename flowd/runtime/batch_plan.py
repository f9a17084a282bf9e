"""Batch mode's plan: how many processes read a file, and the Step each accounted batch hands the export.

One process reads a small file, standard input, or a file whose sampling depends on the order of all
packets (1-in-N with N > 1, run-length, a packets-per-second cap); otherwise ``--workers`` (default: one per
CPU) processes share the flow cache (flowd.runtime.batch_shards, imported only when they start).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Final

from flowd.config.schema import Config
from flowd.core.pipeline import Pipeline
from flowd.model.batch import FlowRecords
from flowd.model.record import Frozen

# Below this size a file is read by one process: forking and feeding shards costs more than it saves
# (a 16 MiB capture is some 25,000 full-size frames, a few tens of milliseconds in one process).
SPLIT_MIN_BYTES: Final = 16 << 20


def workers_for(path: str, cfg: Config, asked: int | None) -> int:
    """How many processes ``--read PATH [--workers ASKED]`` runs (1 where sharding cannot repeat one cache).

    Without ``--workers`` (``None``): one per CPU this process may run on, but one for a file under
    SPLIT_MIN_BYTES, where starting and feeding shards would cost more than it saves.
    """
    if asked is None:
        try:
            small = os.stat(path).st_size < SPLIT_MIN_BYTES
        except OSError:
            small = False  # opening it reports the error
        asked = 1 if small else len(os.sched_getaffinity(0))
    if asked <= 1 or path == "-":
        return 1
    for family in cfg.families.values():
        sampling = family.input
        if sampling.rate != 1 or sampling.run_length or sampling.max_packets_per_second is not None:
            return 1
    return asked


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Step(Frozen):
    """One batch accounted: its earliest frame time, ``now`` after it, and the flows it ended, family by family.

    A damaged file ends with a Step that carries only the ``error``.
    """

    ts_min: float
    now: float
    flows: list[tuple[str, FlowRecords]]
    error: str | None = None


def flows_created_by(pipeline: Pipeline) -> int:
    """Flows a pipeline's tables have created, every family."""
    return sum(p.table.counters.flows_created for p in pipeline.paths.values())
