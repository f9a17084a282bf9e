"""The flow query behind `show services accounting flow-detail`: the slot mask of its filters, each shard's top flows.

Pure: takes a flow table (or a shard's pipeline) and the request's params, already checked against the
method's contract (flowd.control.rpcs), and returns numpy masks and records.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Final

import numpy as np

from flowd.core.compiled_table import FlowCache
from flowd.core.pipeline import Pipeline
from flowd.core.sampling import match_prefixes
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import DPORT, DST, PROTO, SPORT, SRC, TOS, u16_column

FLOW_FILTERS: Final = ("source_port", "destination_port", "proto", "tos", "input_snmp_interface_index",
                       "output_snmp_interface_index", "source_as", "destination_as")


def _prefix(params: Mapping[str, Any], name: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    value = params.get(name)
    return None if value is None else ipaddress.ip_network(str(value), strict=False)


def shard_flows(pipeline: Pipeline, params: Mapping[str, Any]) -> FlowRecords:
    """The flows of one shard that match flow-detail params: at most ``limit`` of each family, largest first."""
    limit: int | None = params.get("limit")
    order: str = params.get("order", "bytes")
    return FlowRecords.concat([p.table.top(limit, order, flow_mask(p.table, params))
                               for p in pipeline.paths.values()])


def flow_mask(table: FlowCache, params: Mapping[str, Any]) -> np.ndarray | None:
    """Boolean mask over the table's slots for the flow-detail filters (None = no filter)."""
    keys = table.keys
    mask: np.ndarray | None = None

    def both(m: np.ndarray) -> None:
        nonlocal mask
        mask = m if mask is None else mask & m

    for name, part in (("source_prefix", SRC), ("destination_prefix", DST)):
        prefix = _prefix(params, name)
        if prefix is not None:
            both(match_prefixes(keys, part, [prefix]))
    for name in FLOW_FILTERS:
        value = params.get(name)
        if value is None:
            continue
        if name == "source_port":
            both(u16_column(keys, SPORT) == value)
        elif name == "destination_port":
            both(u16_column(keys, DPORT) == value)
        elif name == "proto":
            both(keys[:, PROTO] == value)
        elif name == "tos":
            both(keys[:, TOS] == value)
        elif name == "input_snmp_interface_index":
            both(((keys[:, 38].astype(np.uint32) << 8) | keys[:, 39]) == value)
        else:  # no egress interface or BGP AS is known to a probe: every flow has 0
            both(np.full(keys.shape[0], value == 0))
    return mask


