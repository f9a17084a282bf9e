"""`show services accounting aggregation (as | protocol-port | ...)` and `show services accounting routing`: data.

Aggregation (junos-reference.md §1.9): when a version 8 flow server aggregates by the method, the show
lists that server's aggregates of the current `aggregate-export-interval` (what the next export sends);
otherwise it aggregates the IPv4 flows in the cache now, with their route lookups. Entries are ordered by
bytes (default) or packets, then filtered (each type takes the filters of its Junos RPC,
flowd.control.rpcs.AGGREGATION_FILTERS) and cut to ``limit``.

Routing (a flowd extension): per route source, its state, prefixes per family, counters, last update
and last error.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from flowd.control.rpcs import AGGREGATION_FILTERS, BadParam
from flowd.core.query import shard_flows
from flowd.export.timebase import sysuptime_ms
from flowd.export.v8 import Aggregates, Aggregation, aggregate
from flowd.model.batch import FlowRecords
from flowd.runtime.probe import Probe

TYPES: Final = {"as": Aggregation.AS, "protocol-port": Aggregation.PROTOCOL_PORT,
                "source-prefix": Aggregation.SOURCE_PREFIX, "destination-prefix": Aggregation.DESTINATION_PREFIX,
                "source-destination-prefix": Aggregation.PREFIX}
PREFIX_FILTERS: Final = ("source_prefix", "destination_prefix")
FIELD_OF: Final = {"proto": "protocol"}  # filter parameter -> aggregate entry field, where they differ
# aggregate key field -> entry field
ENTRY_NAMES: Final = {"src_as": "source_as", "dst_as": "destination_as", "input": "input_snmp_interface_index",
                      "output": "output_snmp_interface_index", "prot": "protocol", "srcport": "source_port",
                      "dstport": "destination_port", "src_mask": "source_prefix_length",
                      "dst_mask": "destination_prefix_length", "src_prefix": "source_prefix",
                      "dst_prefix": "destination_prefix"}


def check_params(kind: str, params: Mapping[str, Any]) -> None:
    """BadParam for a prefix filter that is not IPv4 (the contract, flowd.control.rpcs, checked the rest)."""
    for name in PREFIX_FILTERS:
        _prefix(params, name)


def _prefix(params: Mapping[str, Any], name: str) -> ipaddress.IPv4Network | None:
    value = params.get(name)
    if value is None:
        return None
    net = ipaddress.ip_network(str(value), strict=False)
    if net.version != 4:
        raise BadParam(f"{name}: version 8 aggregates are IPv4; got {value}")
    return net


def _aggregates(probe: Probe, method: Aggregation) -> tuple[str, Aggregates]:
    fam = probe.exporter.families.get("inet")
    if fam is not None and fam.v8 is not None and method in fam.v8.methods:
        return "export-interval", fam.v8.current(method)
    parts = [shard_flows(probe.pipeline, {}), *(r.flows for r in probe.answers if r.flows is not None)]
    records = probe.routes.lookup(FlowRecords.concat(parts))
    return "flow-cache", aggregate(records, method)


def aggregation(kind: str, probe: Probe, params: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of one aggregation type (see the module docstring)."""
    method = TYPES[kind]
    check_params(kind, params)
    source, aggs = _aggregates(probe, method)
    boot = probe.exporter.boot
    order = aggs.bytes if params.get("order", "bytes") == "bytes" else aggs.packets
    entries = []
    starts, ends = sysuptime_ms(aggs.first, boot), sysuptime_ms(aggs.last, boot)
    for i in np.argsort(order, kind="stable")[::-1].tolist():
        entry: dict[str, Any] = {}
        for name in aggs.keys.dtype.names or ():
            if name in ENTRY_NAMES:
                value = aggs.keys[name][i]
                entry[ENTRY_NAMES[name]] = (str(ipaddress.IPv4Address(bytes(value))) if name.endswith("_prefix")
                                            else int(value))
        entry.update(start_time=int(starts[i]), end_time=int(ends[i]), flow_count=int(aggs.flows[i]),
                     packet_count=int(aggs.packets[i]), byte_count=int(aggs.bytes[i]))
        if _wanted(entry, params, kind):
            entries.append(entry)
    limit: int | None = params.get("limit")
    return {"aggregation_type": kind, "aggregation_source": source,
            "entries": entries if limit is None else entries[:limit]}


def _wanted(entry: Mapping[str, Any], params: Mapping[str, Any], kind: str) -> bool:
    for name in AGGREGATION_FILTERS[kind]:
        field = FIELD_OF.get(name, name)
        if name not in params:
            continue
        if name in PREFIX_FILTERS:
            net = _prefix(params, name)
            length = entry[f"{field}_length"]
            inside = ipaddress.IPv4Network(f"{entry[field]}/{length}")
            if net is None or not (inside.prefixlen >= net.prefixlen and inside.subnet_of(net)):
                return False
        elif entry[field] != int(params[name]):
            return False
    return True


def routing(probe: Probe) -> dict[str, Any]:
    """`show services accounting routing`: one entry per route source, in precedence order."""
    out = []
    for kind, rib in probe.routes.sources():
        when = (dt.datetime.fromtimestamp(rib.last_update, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
                if rib.last_update is not None else "never")
        out.append({"source_name": rib.name, "source_type": kind, "state": rib.state,
                    "ipv4_prefixes": rib.prefixes(4), "ipv6_prefixes": rib.prefixes(6),
                    "announced": rib.announced, "withdrawn": rib.withdrawn, "flushed": rib.flushed,
                    "errors": rib.errors, "last_error": rib.last_error, "last_update": when})
    return {"precedence": list(probe.cfg.routing.precedence), "sources": out}


def route_counts(probe: Probe) -> tuple[int, int]:
    """(route records, distinct origin AS numbers) over every source's live routes."""
    records = 0
    numbers: set[int] = set()
    for _, rib in probe.routes.sources():
        for fam in rib.families.values():
            records += len(fam.table)
            ids = fam.table.live_ids()
            numbers.update(np.unique(fam.columns.origin_as[ids]).tolist())
    numbers.discard(0)
    return records, len(numbers)
