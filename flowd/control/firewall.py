"""`show firewall` and `clear firewall`: the packets and bytes each filter's `count` terms took.

Counters live in every shard's ingest statistics as ``FILTER/COUNTER`` (flowd.pipeline), summed here
over the daemon's shard and every capture worker's. Bytes are IP bytes (IPv4 total length, IPv6 payload
length + 40, the same count the flows carry). `clear firewall` keeps a baseline per counter in the
probe instead of asking the workers, so it is instant and exact; `clear services accounting statistics`
zeroes the counters themselves and drops the baselines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flowd.control.rpcs import BadParam
from flowd.runtime.probe import Probe
from flowd.runtime.shard import merge_ingest


class UnknownFilter(BadParam):
    """`filter NAME` or `counter NAME` names nothing configured; ``str()`` is the message (a bad-params reply)."""


def _declared(probe: Probe) -> dict[str, list[str]]:
    """Configured filters and their counters, in configuration order."""
    out: dict[str, list[str]] = {}
    for name, flt in probe.cfg.filters.items():
        counters = out.setdefault(name, [])
        for term in flt.terms:
            if term.count and term.count not in counters:
                counters.append(term.count)
    return out


def _select(probe: Probe, params: Mapping[str, Any]) -> dict[str, list[str]]:
    declared = _declared(probe)
    name, counter = params.get("filter"), params.get("counter")
    if name is not None:
        if name not in declared:
            raise UnknownFilter(f"filter {name} is not configured")
        declared = {name: declared[name]}
    if counter is not None:
        declared = {f: [c for c in cs if c == counter] for f, cs in declared.items()}
        if not any(declared.values()):
            where = f" in filter {name}" if name is not None else ""
            raise UnknownFilter(f"counter {counter} is not configured{where}")
    return declared


def counter_values(probe: Probe, now: float) -> dict[str, tuple[int, int]]:
    """``FILTER/COUNTER`` -> (packets, bytes) since the last clear."""
    total = merge_ingest([r.ingest for r in probe.reports(now)])
    out: dict[str, tuple[int, int]] = {}
    for key in set(total.filter_counters) | set(total.filter_bytes):
        base_packets, base_bytes = probe.firewall_cleared.get(key, (0, 0))
        packets, octets = total.filter_counters.get(key, 0), total.filter_bytes.get(key, 0)
        if packets < base_packets:  # the counters were zeroed under the baseline (clear statistics)
            base_packets, base_bytes = 0, 0
        out[key] = (packets - base_packets, octets - base_bytes)
    return out


def show_firewall(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    values = counter_values(probe, now)
    return {"filters": [{"name": name, "counters": [
        {"name": c, "packets": values.get(f"{name}/{c}", (0, 0))[0], "bytes": values.get(f"{name}/{c}", (0, 0))[1]}
        for c in counters]} for name, counters in _select(probe, params).items()]}


def clear_firewall(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    chosen = _select(probe, params)
    total = merge_ingest([r.ingest for r in probe.reports(now)])
    for name, counters in chosen.items():
        for c in counters:
            key = f"{name}/{c}"
            probe.firewall_cleared[key] = (total.filter_counters.get(key, 0), total.filter_bytes.get(key, 0))
    return {}
