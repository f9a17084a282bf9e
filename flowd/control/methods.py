"""The RPC method table: control-socket method name → function returning plain data (docs/control-protocol.md).

Where Junos reports router hardware, flowd reports the Linux analogue (docs/commands.md says which).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import platform
import socket
import struct
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from flowd import __version__
from flowd.batch import FlowRecords
from flowd.drops import DropReason
from flowd.expiry import ExpiryReason
from flowd.flowkey import DPORT, DST, PROTO, SPORT, SRC, TOS, FlowKey, u16_column
from flowd.flowtable import FlowTable
from flowd.probe import Probe, cpu_seconds
from flowd.sampling import match_prefixes

DEFAULT_SERVICE: Final = "(default sampling)"
SEED_DROPS: Final = (DropReason.NO_MEMORY, DropReason.NOT_IP, DropReason.NOT_IPV4,
                     DropReason.HEADER_TOO_SMALL)
FLOW_FILTERS: Final = ("source_port", "destination_port", "proto", "tos", "input_snmp_interface_index",
                       "output_snmp_interface_index", "source_as", "destination_as")
MAX_LIMIT: Final = 10_000_000


class BadParams(Exception):
    """A request's params do not fit the method (the reply's code is ``bad-params``)."""


@dataclass(frozen=True, slots=True)
class Method:
    handler: Callable[[Probe, Mapping[str, Any], float], dict[str, Any]]
    params: frozenset[str]
    admin: bool = False  # changes state: only root or the admin group may call it


# -- shared pieces ---------------------------------------------------------------------------------

def interface_name(probe: Probe) -> str:
    """The sampling `output interface` name (the seed's sp-2/0/0), or `flowd` when none is configured."""
    for out in probe.cfg.families.values():
        if out.interface is not None:
            return out.interface.name
    return "flowd"


def local_index(name: str, interface_map: Mapping[str, str]) -> int:
    """The Linux ifindex the name maps to, else a stable index derived from the name (1000..1999)."""
    linux = interface_map.get(name, name)
    try:
        return socket.if_nametoindex(linux)
    except OSError:
        return 1000 + zlib.crc32(name.encode()) % 1000


def check_name(params: Mapping[str, Any]) -> None:
    name = params.get("name")
    if name not in (None, "*", "all", DEFAULT_SERVICE, "default"):
        raise BadParams(f"name: no sampling service named '{name}'; this probe runs '{DEFAULT_SERVICE}'")


def block(probe: Probe, params: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    check_name(params)
    name = interface_name(probe)
    return {"interfaces": [{"interface": name, "local_index": local_index(name, probe.cfg.interface_map),
                            "service_name": DEFAULT_SERVICE, **fields}]}


def tables(probe: Probe) -> list[FlowTable]:
    return [p.table for p in probe.pipeline.paths.values()]


def count_routes() -> int:
    """Routes in the kernel's IPv4 and IPv6 main tables (the Junos route record count)."""
    total = 0
    for path in ("/proc/net/route", "/proc/net/ipv6_route"):
        try:
            with open(path) as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        total += len(lines) - 1 if path.endswith("/route") else len(lines)
    return max(total, 0)


# -- accounting.* ----------------------------------------------------------------------------------

def show_errors(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    drops = probe.pipeline.stats.drops
    samplers = [p.sampler for p in probe.pipeline.paths.values()]
    return block(
        probe, params,
        no_memory=drops[DropReason.NO_MEMORY], not_ip=drops[DropReason.NOT_IP],
        not_ipv4=drops[DropReason.NOT_IPV4], header_too_small=drops[DropReason.HEADER_TOO_SMALL],
        allocation_failures=sum(t.counters.refused_flows for t in tables(probe)),
        free_failures=0, free_list_failures=0,  # the columnar cache frees by index: these cannot fail
        memory_overload=any(t.memory_overload(now) for t in tables(probe)),
        pps_overload=any(s.pps_limited for s in samplers),
        bps_overload=False,  # no byte-rate limit exists in the sampling configuration
        other_drops={r.value: n for r, n in drops.items() if r not in SEED_DROPS and n},
        export_failures=[{"flow_server": row["flow_server"], "failures": row["failures"]}
                         for row in probe.exporter.server_stats()])


def show_flow(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    ts = tables(probe)
    m, ex = probe.meters, probe.exporter.counters
    return block(
        probe, params,
        flow_packets=sum(t.counters.packets for t in ts), flow_bytes=sum(t.counters.bytes for t in ts),
        flow_packets_10s_rate=m.flow_packets.rate(now), flow_bytes_10s_rate=m.flow_bytes.rate(now),
        active_flows=sum(len(t) for t in ts), total_flows=sum(t.counters.flows_created for t in ts),
        flows_exported=ex.flows_exported, flow_packets_exported=ex.flow_packets_exported,
        flows_inactive_timed_out=sum(t.counters.idle_expired for t in ts),
        flows_active_timed_out=sum(t.counters.active_expired for t in ts))


def show_memory(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    ts = tables(probe)
    used = sum(t.memory_used for t in ts)
    ceiling = sum(t.max_flows * t.bytes_per_flow for t in ts)
    return block(
        probe, params,
        allocation_count=sum(t.counters.flows_created for t in ts),
        free_count=sum(t.counters.flows_freed for t in ts),
        maximum_allocated=sum(t.counters.max_allocated for t in ts),
        allocations_per_second=probe.meters.allocations.rate(now),
        frees_per_second=probe.meters.frees.rate(now),
        memory_used=used, memory_free=max(ceiling - used, 0))


def show_packet_sizes(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return block(probe, params, ranges=probe.pipeline.stats.size_distribution())


def show_status(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    cfg = probe.cfg
    versions = sorted({s.version for out in cfg.families.values() for s in out.flow_servers})
    formats = {"5": "cflowd v5", "9": "Version 9", "ipfix": "IP-FIX"}
    iface = next((o.interface for o in cfg.families.values() if o.interface is not None), None)
    routes = count_routes()
    ifl = len(socket.if_nameindex())
    as_numbers = 1 if probe.pipeline.active_flows else 0  # no BGP feed: every flow is AS 0
    active = [o.active_timeout for o in cfg.families.values()]
    return block(
        probe, params,
        interface_state=probe.input_state, group_index=0,
        export_interval=int(min(active)) if active else 0,
        export_format=", ".join(formats[v] for v in versions) or "none",
        protocol=", ".join({"inet": "IPv4", "inet6": "IPv6"}[f] for f in cfg.families) or "none",
        engine_type=iface.engine_type if iface else 0, engine_id=iface.engine_id if iface else 0,
        route_record_count=routes, ifl_snmp_count=ifl, as_count=as_numbers,
        time_set=True, configuration_set=True, route_record_set=routes > 0, ifl_snmp_map_set=ifl > 0)


def show_usage(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    m = probe.meters
    return block(
        probe, params,
        uptime_ms=int((now - probe.started) * 1000), interrupt_time_us=int(cpu_seconds() * 1e6),
        load_5s=min(100, round(m.cpu_5s.rate(now) / 1e4)), load_1m=min(100, round(m.cpu_1m.rate(now) / 1e4)))


def _int_param(params: Mapping[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise BadParams(f"{name}: expected an integer {lo}..{hi}, got {value!r}")
    return value


def _prefix_param(params: Mapping[str, Any], name: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    value = params.get(name)
    if value is None:
        return None
    try:
        return ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise BadParams(f"{name}: expected an address prefix, got {value!r}") from None


def flow_mask(table: FlowTable, params: Mapping[str, Any]) -> np.ndarray | None:
    """Boolean mask over the table's slots for the flow-detail filters (None = no filter)."""
    keys = table.keys
    mask: np.ndarray | None = None

    def both(m: np.ndarray) -> None:
        nonlocal mask
        mask = m if mask is None else mask & m

    for name, part in (("source_prefix", SRC), ("destination_prefix", DST)):
        prefix = _prefix_param(params, name)
        if prefix is not None:
            both(match_prefixes(keys, part, [prefix]))
    limits = {"source_port": 65535, "destination_port": 65535, "proto": 255, "tos": 255,
              "input_snmp_interface_index": 65535, "output_snmp_interface_index": 2**32 - 1,
              "source_as": 2**32 - 1, "destination_as": 2**32 - 1}
    for name in FLOW_FILTERS:
        value = _int_param(params, name, 0, limits[name])
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


def show_flow_detail(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    limit = _int_param(params, "limit", 1, MAX_LIMIT)
    order = params.get("order", "bytes")
    if order not in ("bytes", "packets"):
        raise BadParams(f"order: expected bytes or packets, got {order!r}")
    parts = [t.top(limit, order, flow_mask(t, params)) for t in tables(probe)]
    records = FlowRecords.concat(parts)
    column = records.bytes if order == "bytes" else records.packets
    ranked = np.argsort(column, kind="stable")[::-1]
    if limit is not None:
        ranked = ranked[:limit]
    names = {v: k for k, v in probe.cfg.interface_map.items()}
    boot = probe.exporter.boot
    flows = []
    for i in ranked.tolist():
        key = FlowKey.unpack(records.key[i])
        first, last = float(records.first[i]), float(records.last[i])
        ifname = _ifname(key.ifindex)
        flows.append({
            "protocol": key.proto, "tos": key.tos, "tcp_flags": int(records.tcp_flags[i]),
            "source_address": str(key.src), "source_prefix_length": key.src.max_prefixlen,
            "source_port": key.sport, "destination_address": str(key.dst),
            "destination_prefix_length": key.dst.max_prefixlen, "destination_port": key.dport,
            "input_snmp_interface_index": key.ifindex, "output_snmp_interface_index": 0,
            "input_interface": names.get(ifname, ifname), "output_interface": "",
            "source_as": 0, "destination_as": 0,
            "start_time": max(int((first - boot) * 1000), 0), "end_time": max(int((last - boot) * 1000), 0),
            "packets": int(records.packets[i]), "bytes": int(records.bytes[i]),
            "time_since_last_active_timeout": max(int(now - first), 0),
            "last_active_timeout_packets": 0, "last_active_timeout_bytes": 0,
        })
    return block(probe, params, flows=flows)


def _ifname(index: int) -> str:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return f"index {index}" if index else ""


def clear_statistics(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    probe.clear_statistics()
    return {}


def clear_flows(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"flows_cleared": probe.flush(now, ExpiryReason.FORCED_END)}


# -- system.* --------------------------------------------------------------------------------------

def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


def system_version(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    import dpkt
    import numpy

    packages = [("flowd", f"flowd daemon [{__version__}]"), ("numpy", f"numpy [{numpy.__version__}]"),
                ("dpkt", f"dpkt [{dpkt.__version__}]")]
    return {"hostname": socket.gethostname().split(".")[0], "model": f"linux {platform.machine()}",
            "version": __version__, "python": platform.python_version(),
            "packages": [{"name": n, "comment": c} for n, c in packages]}


def system_uptime(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    with open("/proc/uptime") as fh:
        booted = now - float(fh.read().split()[0])
    users = logged_in_users()
    return {"current_time": _iso(now), "system_booted": _iso(booted), "daemon_started": _iso(probe.started),
            "last_configured": _iso(probe.configured_at), "load_average": list(os.getloadavg()),
            "users": users}


UTMP_RECORD: Final = struct.Struct("<hxxi32s4s32s256s")  # type, pid, line, id, user, host (glibc utmp head)
UTMP_SIZE: Final = 384
USER_PROCESS: Final = 7


def logged_in_users(path: str = "/var/run/utmp") -> int:
    """Distinct users with a login session, from utmp (what `uptime` counts)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return 0
    users = set()
    for off in range(0, len(data) - UTMP_SIZE + 1, UTMP_SIZE):
        kind, _pid, _line, _id, user, _host = UTMP_RECORD.unpack_from(data, off)
        if kind == USER_PROCESS:
            users.add(user.rstrip(b"\0"))
    return len(users)


def system_configuration(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"config": _jsonable(probe.cfg.tree)}


def _jsonable(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _jsonable(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_jsonable(v) for v in node]
    return node


NAME = frozenset({"name"})
METHODS: Final[Mapping[str, Method]] = {
    "accounting.errors": Method(show_errors, NAME),
    "accounting.flow": Method(show_flow, NAME),
    "accounting.memory": Method(show_memory, NAME),
    "accounting.packet_size_distribution": Method(show_packet_sizes, NAME),
    "accounting.status": Method(show_status, NAME),
    "accounting.usage": Method(show_usage, NAME),
    "accounting.flow_detail": Method(show_flow_detail, NAME | {"limit", "order", "source_prefix",
                                                               "destination_prefix", *FLOW_FILTERS}),
    "accounting.clear_statistics": Method(clear_statistics, frozenset(), admin=True),
    "accounting.clear_flows": Method(clear_flows, frozenset(), admin=True),
    "system.version": Method(system_version, frozenset()),
    "system.uptime": Method(system_uptime, frozenset()),
    "system.configuration": Method(system_configuration, frozenset()),
}


def call(probe: Probe, method: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    """Run one method; raises KeyError for an unknown method and BadParams for bad params."""
    spec = METHODS[method]
    unknown = set(params) - spec.params
    if unknown:
        raise BadParams(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    return spec.handler(probe, params, now)
