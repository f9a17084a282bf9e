"""The RPC method table: control-socket method name → function returning plain data (docs/control-protocol.md).

Where Junos reports router hardware, flowd reports the Linux analogue (docs/commands.md says which).
The accounting methods sum the reports of every flow-cache shard (flowd.runtime.shard: the daemon's own, and
one per capture worker), so counters, rates and memory add up, flow-detail is merged and ranked
again, and kernel capture statistics are listed per worker. ``call`` first has every capture worker
act on the method's query (``Method.query``) and report, then runs the handler.
"""

from __future__ import annotations

import datetime as dt
import platform
import socket
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from flowd import __version__
from flowd.config.statements import statement_tree
from flowd.control import aggregation, firewall
from flowd.control.rpcs import RPCS, BadParam
from flowd.control.streamed import Streamed
from flowd.control.words import EXPORT_FORMATS
from flowd.core.pipeline import FAMILY_VERSION
from flowd.core.query import shard_flows
from flowd.model.batch import FlowRecords
from flowd.model.drops import DropReason
from flowd.model.expiry import ExpiryReason
from flowd.model.flowkey import (
    FlowKey,
    is_ipv4,
)
from flowd.model.routes import FlowRoutes
from flowd.runtime import host
from flowd.runtime.probe import Probe
from flowd.runtime.shard import (
    CaptureReport,
    FamilyReport,
    Query,
    QueryKind,
    ShardReport,
    merge_ingest,
)
from flowd.syntax.edit import normalize, shown, wrap
from flowd.syntax.schema import Key, StatementError, outline, show_path

DEFAULT_SERVICE: Final = "(default sampling)"
SEED_DROPS: Final = (DropReason.NO_MEMORY, DropReason.NOT_IP, DropReason.NOT_IPV4,
                     DropReason.HEADER_TOO_SMALL)
EVENTS_SHOWN: Final = 10  # newest interface events `show services accounting status` lists per interface
SAME_EVENT: Final = 2.0  # seconds within which workers' identical events on one interface are one event
ROWS_PER_BATCH: Final = 256  # flow objects built at a time while a flow list is streamed
Result = dict[str, Any] | Streamed


class BadParams(Exception):
    """A request's params do not fit the method (the reply's code is ``bad-params``)."""


@dataclass(frozen=True, slots=True)
class Method:
    handler: Callable[[Probe, Mapping[str, Any], float], Result]
    query: QueryKind | None = None  # what every capture worker does (and reports) before the handler runs
    check: Callable[[Mapping[str, Any]], None] | None = None  # params checked before the workers are asked
    worker_params: bool = True  # a FLOWS query passes the params (flow filters) on to the workers


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


def family_reports(reports: list[ShardReport]) -> list[FamilyReport]:
    return [f for r in reports for f in r.families.values()]


def capture_reports(reports: list[ShardReport]) -> list[CaptureReport]:
    """Every capture of every shard, by interface (in configured order), then worker."""
    found = [c for r in reports for c in r.captures]
    order = {c.input.name: i for i, c in reversed(list(enumerate(found)))}
    return sorted(found, key=lambda c: (order[c.input.name], c.worker))


def kernel_statistics(reports: list[ShardReport]) -> list[dict[str, Any]]:
    return [{"worker": c.worker, "interface": c.input.name, "linux_interface": c.input.linux,
             "packets": c.packets, "drops": c.drops} for c in capture_reports(reports)]


def captures(reports: list[ShardReport]) -> list[dict[str, Any]]:
    """Per captured interface: state, SNMP index, kernel statistics per worker, its latest events."""
    out: dict[str, dict[str, Any]] = {}
    events: dict[str, list[tuple[float, str]]] = {}
    for c in capture_reports(reports):
        entry = out.setdefault(c.input.name, {"interface": c.input.name, "linux_interface": c.input.linux,
                                               "states": [], "ifindex": None, "workers": [], "events": []})
        entry["states"].append((c.worker, c.state))
        if entry["ifindex"] is None:
            entry["ifindex"] = c.ifindex
        entry["workers"].append({"worker": c.worker, "packets": c.packets, "drops": c.drops})
        events.setdefault(c.input.name, []).extend(c.events)
    for name, entry in out.items():
        states = entry.pop("states")
        distinct = {state for _, state in states}
        entry["state"] = states[0][1] if len(distinct) == 1 else ", ".join(f"{s} (worker {w})" for w, s in states)
        kept: list[tuple[float, str]] = []
        for when, message in sorted(events[name]):
            if not any(m == message and when - t <= SAME_EVENT for t, m in kept):
                kept.append((when, message))
        entry["events"] = [{"time": _iso(t), "message": m} for t, m in kept[-EVENTS_SHOWN:]]
    return list(out.values())


# -- accounting.* ----------------------------------------------------------------------------------

def show_errors(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    reports = probe.reports(now)
    drops = merge_ingest([r.ingest for r in reports]).drops
    fams = family_reports(reports)
    return block(
        probe, params,
        no_memory=drops[DropReason.NO_MEMORY], not_ip=drops[DropReason.NOT_IP],
        not_ipv4=drops[DropReason.NOT_IPV4], header_too_small=drops[DropReason.HEADER_TOO_SMALL],
        allocation_failures=sum(f.counters.refused_flows for f in fams),
        free_failures=0, free_list_failures=0,  # the columnar cache frees by index: these cannot fail
        memory_overload=any(f.memory_overload for f in fams),
        # the sampler refused packets (max-packets-per-second) or a kernel ring dropped some, in the last 10 s
        pps_overload=any(r.pps_overload for r in reports),
        bps_overload=False,  # no byte-rate limit exists, and flowd's receive cost is per packet, not per byte
        other_drops={r.value: n for r, n in drops.items() if r not in SEED_DROPS and n},
        export_failures=[{"flow_server": row["flow_server"], "family": row["family"], "failures": row["failures"]}
                         for row in probe.exporter.server_stats()],
        kernel_statistics=kernel_statistics(reports))


def show_flow(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    reports = probe.reports(now)
    fams = family_reports(reports)
    ex = probe.exporter.counters
    return block(
        probe, params,
        flow_packets=sum(f.counters.packets for f in fams), flow_bytes=sum(f.counters.bytes for f in fams),
        flow_packets_10s_rate=sum(r.rates.flow_packets for r in reports),
        flow_bytes_10s_rate=sum(r.rates.flow_bytes for r in reports),
        active_flows=sum(f.active for f in fams), total_flows=sum(f.counters.flows_created for f in fams),
        flows_exported=ex.flows_exported, flow_packets_exported=ex.flow_packets_exported,
        flows_inactive_timed_out=sum(f.counters.idle_expired for f in fams),
        flows_active_timed_out=sum(f.counters.active_expired for f in fams))


def show_memory(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    reports = probe.reports(now)
    fams = family_reports(reports)
    used = sum(f.memory_used for f in fams)
    ceiling = sum(f.memory_ceiling for f in fams)
    return block(
        probe, params,
        allocation_count=sum(f.counters.flows_created for f in fams),
        free_count=sum(f.counters.flows_freed for f in fams),
        maximum_allocated=sum(f.counters.max_allocated for f in fams),
        allocations_per_second=sum(r.rates.allocations for r in reports),
        frees_per_second=sum(r.rates.frees for r in reports),
        memory_used=used, memory_free=max(ceiling - used, 0))


def show_packet_sizes(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return block(probe, params, ranges=merge_ingest([r.ingest for r in probe.reports(now)]).size_distribution())


def show_status(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    cfg = probe.cfg
    versions = sorted({s.version for out in cfg.families.values() for s in out.flow_servers})
    iface = next((o.interface for o in cfg.families.values() if o.interface is not None), None)
    reports = probe.reports(now)
    if probe.routes.cfg.configured:  # the route sources' tables
        routes, as_numbers = aggregation.route_counts(probe)
    else:  # no route source: the kernel's table, and every flow is AS 0
        routes = host.count_routes()
        as_numbers = 1 if any(f.active for f in family_reports(reports)) else 0
    ifl = len(probe.cfg.routing.snmp_index) or len(socket.if_nameindex())
    active = [o.active_timeout for o in cfg.families.values()]
    return block(
        probe, params,
        interface_state=probe.input_state, group_index=0,
        export_interval=int(min(active)) if active else 0,
        export_format=", ".join(EXPORT_FORMATS[v] for v in versions) or "none",
        protocol=", ".join({"inet": "IPv4", "inet6": "IPv6"}[f] for f in cfg.families) or "none",
        engine_type=iface.engine_type if iface else 0, engine_id=iface.engine_id if iface else 0,
        route_record_count=routes, ifl_snmp_count=ifl, as_count=as_numbers,
        time_set=True, configuration_set=True, route_record_set=routes > 0, ifl_snmp_map_set=ifl > 0,
        flow_servers=[{"flow_server": row["flow_server"], "family": row["family"],
                       "export_format": EXPORT_FORMATS[str(row["format"])], "transport": row["transport"],
                       "source_address": row["source_address"], **connection(row)}
                      for row in probe.exporter.server_stats()],
        captures=captures(reports))


def connection(row: Mapping[str, Any]) -> dict[str, Any]:
    """A TCP flow server's connection facts (issue 10 item 27); nothing for UDP ones."""
    if row["transport"] != "tcp":
        return {}
    return {"connection": {
        "state": row["state"], "connected_since": iso_time(row["connected_since"]),
        "reconnects": row["reconnects"], "backlog_records": row["backlog_records"],
        "backlog_bytes": row["backlog_bytes"], "records_dropped": row["records_dropped"],
        "last_export": iso_time(row["last_export"])}}


def iso_time(when: float | None) -> str | None:
    return None if when is None else dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


def show_usage(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    reports = probe.reports(now)
    cores = max(1, sum(r.worker is not None for r in reports))  # CPUs the capture workers may keep busy
    cpu_5s, cpu_1m = (sum(getattr(r.rates, name) for r in reports) / cores for name in ("cpu_5s", "cpu_1m"))
    return block(
        probe, params,
        uptime_ms=int((now - probe.started) * 1000), interrupt_time_us=sum(r.cpu_us for r in reports),
        load_5s=min(100, round(cpu_5s / 1e4)), load_1m=min(100, round(cpu_1m / 1e4)))


def show_flow_detail(probe: Probe, params: Mapping[str, Any], now: float) -> Streamed:
    limit: int | None = params.get("limit")
    order: str = params.get("order", "bytes")
    parts = [shard_flows(probe.pipeline, params), *(r.flows for r in probe.answers if r.flows is not None)]
    records = FlowRecords.concat(parts)
    column = records.bytes if order == "bytes" else records.packets
    ranked = np.argsort(column, kind="stable")[::-1]
    if limit is not None:
        ranked = ranked[:limit]
    return Streamed(block(probe, params, flows=[]), RPCS["accounting.flow_detail"].streamed,
                    (flow_objects(probe, records, rows, now) for rows in batches_of(ranked)))


def batches_of(ranked: np.ndarray) -> Iterator[list[int]]:
    """The ranked row numbers, ROWS_PER_BATCH at a time."""
    for start in range(0, len(ranked), ROWS_PER_BATCH):
        yield ranked[start:start + ROWS_PER_BATCH].tolist()


def flow_objects(probe: Probe, records: FlowRecords, rows: list[int], now: float) -> list[dict[str, Any]]:
    """The flow objects (docs/control-protocol.md) of the given rows of ``records``, in that order."""
    names = {v: k for k, v in probe.cfg.interface_map.items()}
    boot = probe.exporter.boot
    routed = probe.routes.lookup(records.take(np.array(rows, np.intp)))
    routes = routed.routes
    flows = []
    kept = probe.pipeline.macs  # the families a bridge template exports keep their flows' MAC addresses
    macs = records.mac_columns() if kept else None
    ifnames: dict[int, str] = {}  # one kernel lookup per interface, not per flow
    for n, i in enumerate(rows):
        key = FlowKey.unpack(records.key[i])
        first, last = float(records.first[i]), float(records.last[i])
        ifname = ifnames.get(key.ifindex)
        if ifname is None:
            ifname = ifnames[key.ifindex] = host.interface_name_of(key.ifindex)
        flows.append({
            "protocol": key.proto, "tos": key.tos, "tcp_flags": int(records.tcp_flags[i]),
            "source_address": str(key.src), "source_prefix_length": key.src.max_prefixlen,
            "source_port": key.sport, "destination_address": str(key.dst),
            "destination_prefix_length": key.dst.max_prefixlen, "destination_port": key.dport,
            "input_snmp_interface_index": key.ifindex, "output_snmp_interface_index": 0,
            "input_interface": names.get(ifname, ifname), "output_interface": "",
            "source_as": 0, "destination_as": 0,
            **(_routed(routes, n, key) if routes is not None else {}),
            "start_time": max(int((first - boot) * 1000), 0), "end_time": max(int((last - boot) * 1000), 0),
            "packets": int(records.packets[i]), "bytes": int(records.bytes[i]),
            "time_since_last_active_timeout": max(int(now - first), 0),
            "last_active_timeout_packets": 0, "last_active_timeout_bytes": 0,
            **({} if macs is None or FAMILY_OF_VERSION[key.src.version] not in kept else {
                "destination_mac": macs[i, :6].tobytes().hex(":"), "source_mac": macs[i, 6:].tobytes().hex(":")}),
        })
    return flows


def _routed(routes: FlowRoutes, n: int, key: FlowKey) -> dict[str, Any]:
    """A flow object's route fields from its lookup (`flowd routing`)."""
    out_if = int(routes.output_if[n])
    name = host.interface_name_of(out_if) if out_if else ""
    return {"source_prefix_length": int(routes.src_mask[n]) or key.src.max_prefixlen,
            "destination_prefix_length": int(routes.dst_mask[n]) or key.dst.max_prefixlen,
            "input_snmp_interface_index": int(routes.input_if[n]), "output_snmp_interface_index": out_if,
            "output_interface": name, "source_as": int(routes.src_origin_as[n]),
            "destination_as": int(routes.dst_origin_as[n])}


LABEL_SHIFT: Final = 4  # a label stack entry is label (20 bits) << 4 | exp (3 bits) << 1 | bottom-of-stack (1 bit)
ETHERNET_TYPE: Final = {True: "0x0800", False: "0x86dd"}  # by family, as the bridge template exports it
NO_ADDRESS: Final = "0.0.0.0"  # top label address and BGP next hop: flowd has no label-to-FEC map and no BGP feed
NO_MAC: Final = "00:00:00:00:00:00"  # a family that keeps no MAC addresses exports zeros
FAMILY_OF_VERSION: Final = {version: family for family, version in FAMILY_VERSION.items()}


def show_aggregation_template(probe: Probe, params: Mapping[str, Any], now: float) -> Streamed:
    """The cached flows of the families whose flow servers export with the template, largest by bytes first."""
    name = params.get("template_name")
    template = probe.cfg.templates.get(name) if isinstance(name, str) else None
    if template is None:
        raise BadParams(f"template {name} is not configured")
    limit: int | None = params.get("limit")
    families = {fam for fam, out in probe.cfg.families.items() if any(s.template == name for s in out.flow_servers)}
    own = [p.table.top(limit, "bytes") for fam, p in probe.pipeline.paths.items() if fam in families]
    records = FlowRecords.concat([*own, *(r.flows for r in probe.answers if r.flows is not None)])
    v4 = is_ipv4(records.key)  # the pipeline's family split: inet takes the IPv4 keys, inet6 the rest
    records = records.take((v4 & ("inet" in families)) | (~v4 & ("inet6" in families)))
    ranked = np.argsort(records.bytes, kind="stable")[::-1]
    if limit is not None:
        ranked = ranked[:limit]

    def template_flows(rows: list[int]) -> list[dict[str, Any]]:
        flows = flow_objects(probe, records, rows, now)
        for flow, i in zip(flows, rows, strict=True):
            flow.update(mpls_labels=[int(entry) >> LABEL_SHIFT for entry in records.mpls[i]],
                        top_label_address=NO_ADDRESS, bgp_next_hop=NO_ADDRESS,
                        source_mask=flow["source_prefix_length"],
                        destination_mask=flow["destination_prefix_length"],
                        destination_mac=flow.get("destination_mac", NO_MAC), source_mac=flow.get("source_mac", NO_MAC),
                        ethernet_type=ETHERNET_TYPE[flow["source_address"].count(":") == 0],
                        vlan_id=int(records.vlan[i]))
        return flows

    head = block(probe, params, template={"name": template.name, "type": template.template_type,
                                          "format": template.format}, flows=[])
    return Streamed(head, RPCS["accounting.aggregation_template"].streamed, (template_flows(rows) for rows in batches_of(ranked)))


def _aggregation_method(kind: str) -> Method:
    def check(params: Mapping[str, Any]) -> None:
        check_name(params)
        aggregation.check_params(kind, params)

    def handler(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        return block(probe, params, **aggregation.aggregation(kind, probe, params))

    return Method(handler, query=FLOWS, check=check, worker_params=False)


def show_routing(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return block(probe, params, routing=aggregation.routing(probe))


def clear_statistics(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    probe.clear_statistics()
    return {}


def clear_flows(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    remote = sum(r.flows_cleared for r in probe.answers)
    return {"flows_cleared": probe.flush(now, ExpiryReason.FORCED_END) + remote}


# -- system.* --------------------------------------------------------------------------------------

def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).isoformat(timespec="seconds")


def system_version(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    import dpkt
    import numpy

    packages = [("flowd", f"flowd daemon [{__version__}]"), ("numpy", f"numpy [{numpy.__version__}]"),
                ("dpkt", f"dpkt [{dpkt.__version__}]")]
    return {"hostname": host.hostname(), "model": f"linux {host.machine()}",
            "version": __version__, "python": platform.python_version(),
            "packages": [{"name": n, "comment": c} for n, c in packages]}


def system_uptime(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    booted = host.boot_time(now)
    users = host.logged_in_users()
    return {"current_time": _iso(now), "time_source": host.time_source(), "system_booted": _iso(booted),
            "daemon_started": _iso(probe.started), "last_configured": _iso(probe.configured_at),
            "last_configured_by": probe.configured_by, "load_average": host.load_average(), "users": users}


def system_configuration(probe: Probe, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    """`show configuration [STATEMENT]`: the running configuration there, where it sits, and the statement
    tree's node for it (what `| display xml` needs to tell lists from hierarchies)."""
    schema = statement_tree()
    try:
        resolved = show_path(schema, (), params.get("words", []))
    except StatementError as exc:
        words = params.get("words", [])
        raise BadParams(f"syntax error: {' '.join(words[exc.word:exc.word + 1])}") from None
    active: dict[Key, Any] = {k: v for k, v in probe.cfg.tree.items()}
    path, tree = shown(normalize(schema, active), resolved)
    return {"path": list(path), "config": _jsonable(tree), "schema": outline(schema, wrap(path, tree))}


def _jsonable(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _jsonable(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_jsonable(v) for v in node]
    return node


REPORT, FLOWS = QueryKind.REPORT, QueryKind.FLOWS
# Each method's parameters, result fields and admin flag are its contract in flowd.control.rpcs.RPCS.
METHODS: Final[Mapping[str, Method]] = {
    "accounting.errors": Method(show_errors, query=REPORT, check=check_name),
    "accounting.flow": Method(show_flow, query=REPORT, check=check_name),
    "accounting.memory": Method(show_memory, query=REPORT, check=check_name),
    "accounting.packet_size_distribution": Method(show_packet_sizes, query=REPORT, check=check_name),
    "accounting.status": Method(show_status, query=REPORT, check=check_name),
    "accounting.usage": Method(show_usage, query=REPORT, check=check_name),
    "accounting.flow_detail": Method(show_flow_detail, query=FLOWS, check=check_name),
    "accounting.aggregation_template": Method(show_aggregation_template, query=FLOWS, check=check_name),
    **{f"accounting.aggregation_{kind.replace('-', '_')}": _aggregation_method(kind) for kind in aggregation.TYPES},
    "accounting.routing": Method(show_routing, check=check_name),
    "accounting.clear_statistics": Method(clear_statistics, query=QueryKind.CLEAR_STATISTICS),
    "accounting.clear_flows": Method(clear_flows, query=QueryKind.CLEAR_FLOWS),
    "firewall.show": Method(firewall.show_firewall, query=REPORT),
    "firewall.clear": Method(firewall.clear_firewall, query=REPORT),
    "system.version": Method(system_version),
    "system.uptime": Method(system_uptime),
    "system.configuration": Method(system_configuration),
}


async def call(probe: Probe, method: str, params: Mapping[str, Any], now: Callable[[], float]) -> Result:
    """Run one method; raises KeyError for an unknown method and BadParams for bad params.

    A method whose result holds a list of any length returns a `Streamed`: its rows are built as they are
    taken from ``batches``.

    The capture workers, if any, act on the method's query and report first; ``now`` is read after.
    """
    spec = METHODS[method]
    try:
        RPCS[method].check(params)
        if spec.check is not None:
            spec.check(params)
        if spec.query is not None:
            forward = spec.query is QueryKind.FLOWS and spec.worker_params
            await probe.gather(Query(spec.query, dict(params) if forward else {}))
        return spec.handler(probe, params, now())
    except BadParam as exc:
        raise BadParams(str(exc)) from None
