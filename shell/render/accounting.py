"""`show services accounting errors|flow|memory|packet-size-distribution|status|usage` and the clear commands.

Text layouts: ../shared/spec/show-outputs.md (the seed's); XML tags: junos-reference.md §1.
Each text renderer is a pure ``result -> lines``; each ``*_tree`` gives the element tree for `| display`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final

from flowd.control.words import drop_words
from shell.render.common import (
    BODY_INDENT,
    HEADER_INDENT,
    Element,
    interface_header,
    interface_leaves,
    interfaces,
    leaf,
    node,
    pair_lines,
    pairs,
)

ROOT: Final = "services-accounting-information"
def _drop_label(name: str) -> str:
    return f"Packets dropped ({drop_words(name)})"


def _per_interface(result: Mapping[str, Any], title: str) -> list[tuple[Mapping[str, Any], list[str]]]:
    out: list[tuple[Mapping[str, Any], list[str]]] = []
    for block in interfaces(result):
        lines = interface_header(block)
        if title:
            lines.append(HEADER_INDENT + title)
        out.append((block, lines))
    return out


# --- errors -----------------------------------------------------------------------------------------------


def capture_label(interface: str, linux: str) -> str:
    """`ge-2/3/0 (eth1)`, or `eth1` when the configured name is the Linux one."""
    return interface if interface == linux else f"{interface} ({linux})"


def _error_extras(block: Mapping[str, Any]) -> list[str]:
    """flowd's counters beyond the seed's: other drop reasons, export failures per flow server, kernel capture."""
    drops = [(_drop_label(str(name)), count) for name, count in block.get("other_drops", {}).items()]
    items = block.get("export_failures", [])
    twice = {i["flow_server"] for i in items if sum(j["flow_server"] == i["flow_server"] for j in items) > 1}
    exports = [(f"Export packet failures ({item['flow_server']}"
                + (f", {item['family']})" if item["flow_server"] in twice else ")"), item["failures"])
               for item in items]
    kernel = [f"{BODY_INDENT}Kernel capture {capture_label(k['interface'], k['linux_interface'])}, "
              f"worker {k['worker']}: {k['packets']} packets, {k['drops']} drops"
              for k in block.get("kernel_statistics", [])]
    return pair_lines(drops) + pair_lines(exports) + kernel


def render_errors(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for b, head in _per_interface(result, "Error information"):
        lines += head
        lines += [
            pairs([("Packets dropped (no memory)", b["no_memory"]), ("Packets dropped (not IP)", b["not_ip"])]),
            pairs([("Packets dropped (not IPv4)", b["not_ipv4"]),
                   ("Packets dropped (header too small)", b["header_too_small"])]),
            pairs([("Memory allocation failures", b["allocation_failures"]),
                   ("Memory free failures", b["free_failures"])]),
            pairs([("Memory free list failures", b["free_list_failures"])]),
            pairs([("Memory overload", b["memory_overload"]), ("PPS overload", b["pps_overload"]),
                   ("BPS overload", b["bps_overload"])]),
        ]
        lines += _error_extras(b)
    return lines


def errors_tree(result: Mapping[str, Any]) -> Element:
    elements = []
    for b in interfaces(result):
        children = [
            *interface_leaves(b),
            leaf("error-packets-dropped-no-memory", b["no_memory"]),
            leaf("error-packets-dropped-not-ip", b["not_ip"]),
            leaf("error-packets-dropped-not-ipv4", b["not_ipv4"]),
            leaf("error-packets-too-small", b["header_too_small"]),
            leaf("error-allocation-failures", b["allocation_failures"]),
            leaf("error-free-failures", b["free_failures"]),
            leaf("error-free-list-failures", b["free_list_failures"]),
            leaf("error-memory-overload", b["memory_overload"]),
            leaf("error-packets-per-second-overload", b["pps_overload"]),
            leaf("error-bytes-per-second-overload", b["bps_overload"]),
        ]
        children += [node("error-other-drop", [leaf("drop-reason", name), leaf("drop-count", count)])
                     for name, count in b.get("other_drops", {}).items()]
        children += [node("error-export-failure", [leaf("flow-server", item["flow_server"]),
                                                   *([leaf("family", item["family"])] if "family" in item else []),
                                                   leaf("export-packet-failures", item["failures"])])
                     for item in b.get("export_failures", [])]
        children += [node("error-kernel-capture", [
            leaf("capture-interface", k["interface"]), leaf("capture-linux-interface", k["linux_interface"]),
            leaf("capture-worker", k["worker"]), leaf("kernel-packets", k["packets"]),
            leaf("kernel-drops", k["drops"])]) for k in b.get("kernel_statistics", [])]
        elements.append(node("error-information", children))
    return node(ROOT, elements)


# --- flow -------------------------------------------------------------------------------------------------


def render_flow(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for b, head in _per_interface(result, "Flow information"):
        lines += head
        lines += [
            pairs([("Flow packets", b["flow_packets"]), ("Flow bytes", b["flow_bytes"])]),
            pairs([("Flow packets 10-second rate", b["flow_packets_10s_rate"]),
                   ("Flow bytes 10-second rate", b["flow_bytes_10s_rate"])]),
            pairs([("Active flows", b["active_flows"]), ("Total flows", b["total_flows"])]),
            pairs([("Flows exported", b["flows_exported"]), ("Flows packets exported", b["flow_packets_exported"])]),
            pairs([("Flows inactive timed out", b["flows_inactive_timed_out"]),
                   ("Flows active timed out", b["flows_active_timed_out"])]),
        ]
    return lines


_FLOW_TAGS: Final = (
    ("flow-packets", "flow_packets"), ("flow-bytes", "flow_bytes"),
    ("flow-packets-ten-second-rate", "flow_packets_10s_rate"), ("flow-bytes-ten-second-rate", "flow_bytes_10s_rate"),
    ("active-flows", "active_flows"), ("flows", "total_flows"), ("flows-exported", "flows_exported"),
    ("flow-packets-exported", "flow_packets_exported"), ("flows-expired", "flows_inactive_timed_out"),
    ("flows-aged", "flows_active_timed_out"),
)


def flow_tree(result: Mapping[str, Any]) -> Element:
    return node(ROOT, [node("flow-information", [*interface_leaves(b), *(leaf(t, b[k]) for t, k in _FLOW_TAGS)])
                       for b in interfaces(result)])


# --- memory -----------------------------------------------------------------------------------------------


def render_memory(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for b, head in _per_interface(result, "Memory utilization"):
        lines += head
        lines += [
            pairs([("Allocation count", b["allocation_count"]), ("Free count", b["free_count"]),
                   ("Maximum allocated", b["maximum_allocated"])]),
            pairs([("Allocations per second", b["allocations_per_second"]),
                   ("Frees per second", b["frees_per_second"])]),
            pairs([("Total memory used (in bytes)", b["memory_used"]),
                   ("Total memory free (in bytes)", b["memory_free"])]),
        ]
    return lines


_MEMORY_TAGS: Final = (
    ("allocation-count", "allocation_count"), ("free-count", "free_count"),
    ("maximum-allocated", "maximum_allocated"), ("allocations-per-second", "allocations_per_second"),
    ("frees-per-second", "frees_per_second"), ("memory-used", "memory_used"), ("memory-free", "memory_free"),
)


def memory_tree(result: Mapping[str, Any]) -> Element:
    return node(ROOT, [node("memory-information", [*interface_leaves(b), *(leaf(t, b[k]) for t, k in _MEMORY_TAGS)])
                       for b in interfaces(result)])


# --- packet-size-distribution -----------------------------------------------------------------------------

_SIZE_COLUMNS: Final = (("Range start", "start"), ("Range end", "end"), ("Number of packets", "packets"),
                        ("Percentage packets", "percentage"))


def render_packet_size_distribution(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    """Right-aligned columns, each two spaces plus the wider of its header and its values."""
    lines: list[str] = []
    for b, head in _per_interface(result, ""):
        lines += head
        rows = [[str(r[key]) for _, key in _SIZE_COLUMNS] for r in b["ranges"]]
        widths = [max([len(title)] + [len(row[i]) for row in rows]) for i, (title, _) in enumerate(_SIZE_COLUMNS)]
        lines.append("".join(f"  {title:>{w}}" for (title, _), w in zip(_SIZE_COLUMNS, widths, strict=True)))
        lines += ["".join(f"  {cell:>{w}}" for cell, w in zip(row, widths, strict=True)) for row in rows]
    return lines


def packet_size_distribution_tree(result: Mapping[str, Any]) -> Element:
    """Junos: interface leaves under the root, then one `packet-distribution-information` per range."""
    children: list[Element] = []
    for b in interfaces(result):
        children += interface_leaves(b)
        children += [node("packet-distribution-information", [
            leaf("packet-size-range-start", r["start"]), leaf("packet-size-range-end", r["end"]),
            leaf("range-number-packets", r["packets"]), leaf("range-percentage-packets", r["percentage"]),
        ]) for r in b["ranges"]]
    return node(ROOT, children)


# --- status -----------------------------------------------------------------------------------------------


def render_status(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for b, head in _per_interface(result, ""):
        lines += head
        lines += [
            pairs([("Interface state", b["interface_state"])], HEADER_INDENT),
            pairs([("Group index", b["group_index"])], HEADER_INDENT),
            pairs([("Export interval", f"{b['export_interval']} secs"), ("Export format", b["export_format"])],
                  HEADER_INDENT),
            pairs([("Protocol", b["protocol"]), ("Engine type", b["engine_type"]), ("Engine ID", b["engine_id"])],
                  HEADER_INDENT),
            pairs([("Route record count", b["route_record_count"]), ("IFL to SNMP index count", b["ifl_snmp_count"]),
                   ("AS count", b["as_count"])], HEADER_INDENT),
            pairs([("Time set", b["time_set"]), ("Configuration set", b["configuration_set"])], HEADER_INDENT),
            pairs([("Route record set", b["route_record_set"]), ("IFL SNMP map set", b["ifl_snmp_map_set"])],
                  HEADER_INDENT),
        ]
        lines += _status_extras(b)
    return lines


def event_time(iso: str) -> str:
    """An ISO-8601 event time as `2026-11-25 10:00:01 UTC`."""
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _status_extras(block: Mapping[str, Any]) -> list[str]:
    """flowd's lines after the seed's: where each family exports; live captures (state, kernel statistics per
    worker, latest events)."""
    lines: list[str] = []
    for s in block.get("flow_servers", []):
        lines.append(pairs([("Flow server", s["flow_server"]), ("Family", s["family"]),
                            ("Export format", s["export_format"]), ("Transport", str(s["transport"]).upper()),
                            ("Source address", s["source_address"] or "chosen by the kernel")], HEADER_INDENT))
        lines += _connection_lines(s.get("connection"))
    for c in block.get("captures", []):
        label = capture_label(c["interface"], c["linux_interface"])
        index = c["ifindex"] if c["ifindex"] is not None else "none"
        lines.append(pairs([("Capture interface", label), ("State", c["state"]), ("SNMP index", index)],
                           HEADER_INDENT))
        lines += [f"{BODY_INDENT}Worker {w['worker']}: {w['packets']} kernel packets, {w['drops']} kernel drops"
                  for w in c["workers"]]
        lines += [f"{BODY_INDENT}{event_time(e['time'])} {label}: {e['message']}" for e in c["events"]]
    return lines


def _connection_lines(c: Mapping[str, Any] | None) -> list[str]:
    """A TCP flow server's connection: state, since when, reconnects, backlog, drops, last export."""
    if c is None:
        return []
    since = event_time(c["connected_since"]) if c["connected_since"] else "never"
    last = event_time(c["last_export"]) if c["last_export"] else "never"
    return [pairs([("Connection", c["state"]), ("Connected since", since if c["state"] == "up" else "not connected"),
                   ("Reconnects", c["reconnects"])]),
            pairs([("Backlog records", c["backlog_records"]), ("Backlog bytes", c["backlog_bytes"]),
                   ("Records dropped", c["records_dropped"])]),
            pairs([("Last successful export", last)])]


_CONNECTION_TAGS: Final = (
    ("connection-state", "state"), ("connected-since", "connected_since"), ("reconnects", "reconnects"),
    ("backlog-records", "backlog_records"), ("backlog-bytes", "backlog_bytes"),
    ("records-dropped", "records_dropped"), ("last-export", "last_export"))


_STATUS_TAGS: Final = (
    ("status-interface-state", "interface_state"), ("status-group-index", "group_index"),
    ("status-export-interval", "export_interval"), ("status-export-format", "export_format"),
    ("status-proto", "protocol"), ("status-engine-type", "engine_type"), ("status-engine-id", "engine_id"),
    ("status-route-record-count", "route_record_count"), ("status-ifl-snmp-map-count", "ifl_snmp_count"),
    ("status-as-count", "as_count"), ("status-monitor-time-set", "time_set"),
    ("status-monitor-config-set", "configuration_set"), ("status-monitor-route-record-set", "route_record_set"),
    ("status-monitor-ifl-snmp-set", "ifl_snmp_map_set"),
)


def _capture_tree(c: Mapping[str, Any]) -> Element:
    return node("capture-information", [
        leaf("capture-interface", c["interface"]), leaf("capture-linux-interface", c["linux_interface"]),
        leaf("capture-state", c["state"]), leaf("capture-snmp-index", c["ifindex"] if c["ifindex"] is not None else ""),
        *(node("capture-worker-statistics", [leaf("capture-worker", w["worker"]), leaf("kernel-packets", w["packets"]),
                                             leaf("kernel-drops", w["drops"])]) for w in c["workers"]),
        *(node("capture-event", [leaf("event-time", e["time"]), leaf("event-message", e["message"])])
          for e in c["events"]),
    ])


def _flow_server_tree(s: Mapping[str, Any]) -> Element:
    return node("flow-server-information", [
        leaf("flow-server", s["flow_server"]), leaf("family", s["family"]), leaf("export-format", s["export_format"]),
        leaf("transport", s["transport"]), leaf("source-address", s["source_address"] or ""),
        *(leaf(tag, s["connection"][key] or "") for tag, key in (_CONNECTION_TAGS if s.get("connection") else ()))])


def status_tree(result: Mapping[str, Any]) -> Element:
    return node(ROOT, [node("status-information", [*interface_leaves(b), *(leaf(t, b[k]) for t, k in _STATUS_TAGS),
                                                   *(_flow_server_tree(s) for s in b.get("flow_servers", [])),
                                                   *(_capture_tree(c) for c in b.get("captures", []))])
                       for b in interfaces(result)])


# --- usage ------------------------------------------------------------------------------------------------


def render_usage(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for b, head in _per_interface(result, "CPU utilization"):
        lines += head
        lines += [
            pairs([("Uptime", f"{b['uptime_ms']} milliseconds"),
                   ("Interrupt time", f"{b['interrupt_time_us']} microseconds")]),
            pairs([("Load (5 second)", f"{b['load_5s']}%"), ("Load (1 minute)", f"{b['load_1m']}%")]),
        ]
    return lines


_USAGE_TAGS: Final = (("uptime", "uptime_ms"), ("inttime", "interrupt_time_us"), ("five-second-load", "load_5s"),
                      ("one-minute-load", "load_1m"))


def usage_tree(result: Mapping[str, Any]) -> Element:
    return node(ROOT, [node("usage-information", [*interface_leaves(b), *(leaf(t, b[k]) for t, k in _USAGE_TAGS)])
                       for b in interfaces(result)])


# --- clear ------------------------------------------------------------------------------------------------


def render_nothing(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    """Clear commands print nothing on success."""
    return []
