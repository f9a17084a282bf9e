"""The running totals of a flow cache, kept alike by the numpy table and the compiled one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from flowd.model.record import Record

OVERLOAD_HOLD: Final = 10.0  # seconds "Memory overload: Yes" stays on after the last refused flow


@dataclass(slots=True, eq=False, repr=False)
class TableCounters(Record):
    """Running totals the `show services accounting` commands read."""

    packets: int = 0  # packets accounted into flows
    bytes: int = 0
    flows_created: int = 0  # Allocation count / Total flows
    flows_freed: int = 0  # Free count
    max_allocated: int = 0  # peak number of cached flows
    dropped_no_memory: int = 0  # packets of refused new flows
    refused_flows: int = 0  # new flows that found no room (Memory allocation failures)
    idle_expired: int = 0
    active_expired: int = 0
    end_of_flow: int = 0
    forced: int = 0
    overload_until: float = float("-inf")
