"""`show services accounting aggregation TYPE` (v8 aggregates) and `show services accounting routing` (flowd's).

Aggregates print as blocks of `Label: value` lines, like the aggregation template show (§1.8's style; §1.9
gives the fields, no verbatim layout), blocks separated by a blank line. One table of rows per type gives
both the text (filtered by output level) and the XML/JSON `detail-entry`, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shell.render.accounting import ROOT
from shell.render.aggregation_template import LEVELS, Detail, Field, Row, flow_block
from shell.render.common import (
    BODY_INDENT,
    Element,
    interface_header,
    interface_leaves,
    interfaces,
    leaf,
    node,
    pairs,
)


def _f(label: str, name: str) -> Field:
    return Field(label, name.replace("_", "-"), lambda e: e[name])


def _prefix(label: str, side: str) -> Field:
    return Field(label, f"{side}-prefix", lambda e: f"{e[f'{side}_prefix']}/{e[f'{side}_prefix_length']}")


SOURCE_AS: Final = _f("Source AS", "source_as")
DESTINATION_AS: Final = _f("Destination AS", "destination_as")
INPUT: Final = _f("Input SNMP interface index", "input_snmp_interface_index")
OUTPUT: Final = _f("Output SNMP interface index", "output_snmp_interface_index")
TIMES: Final = Row(Detail.EXTENSIVE, (_f("Start time", "start_time"), _f("End time", "end_time")))
COUNTS: Final = Row(Detail.TERSE, (_f("Flow count", "flow_count"), _f("Packet count", "packet_count"),
                                   _f("Byte count", "byte_count")))

LAYOUTS: Final[Mapping[str, tuple[Row, ...]]] = {
    "as": (Row(Detail.TERSE, (SOURCE_AS, DESTINATION_AS)), Row(Detail.TERSE, (INPUT, OUTPUT)), TIMES, COUNTS),
    "protocol-port": (Row(Detail.TERSE, (_f("Protocol", "protocol"), _f("Source port", "source_port"),
                                         _f("Destination port", "destination_port"))), TIMES, COUNTS),
    "source-prefix": (Row(Detail.TERSE, (_prefix("Source prefix", "source"),)),
                      Row(Detail.DETAIL, (SOURCE_AS, INPUT)), TIMES, COUNTS),
    "destination-prefix": (Row(Detail.TERSE, (_prefix("Destination prefix", "destination"),)),
                           Row(Detail.DETAIL, (DESTINATION_AS, OUTPUT)), TIMES, COUNTS),
    "source-destination-prefix": (Row(Detail.TERSE, (_prefix("Source prefix", "source"),
                                                     _prefix("Destination prefix", "destination"))),
                                  Row(Detail.DETAIL, (SOURCE_AS, DESTINATION_AS)),
                                  Row(Detail.DETAIL, (INPUT, OUTPUT)), TIMES, COUNTS),
}


def render_aggregation(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    detail = LEVELS.get(level or "terse", Detail.TERSE)
    lines: list[str] = []
    for block in interfaces(result):
        lines += interface_header(block)
        rows = LAYOUTS[block["aggregation_type"]]
        for i, entry in enumerate(block["entries"]):
            if i:
                lines.append("")
            lines += flow_block(entry, rows, detail)
    return lines


def aggregation_tree(result: Mapping[str, Any]) -> Element:
    out = []
    for block in interfaces(result):
        kind = block["aggregation_type"]
        rows = LAYOUTS[kind]
        entries = [node("detail-entry", [leaf(f.tag, f.value(e)) for row in rows for f in row.fields])
                   for e in block["entries"]]
        children = [*interface_leaves(block), leaf("aggregation-source", block["aggregation_source"]), *entries]
        out.append(node(f"flow-aggregate-{kind}-detail", children))
    return node(ROOT, out)


def render_routing(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for block in interfaces(result):
        lines += interface_header(block)
        routing = block["routing"]
        lines.append(pairs([("Route source precedence", " ".join(routing["precedence"]))]))
        for src in routing["sources"]:
            lines.append(pairs([("Source", src["source_name"]), ("Type", src["source_type"]),
                                ("State", src["state"])]))
            lines.append(pairs([("IPv4 prefixes", src["ipv4_prefixes"]), ("IPv6 prefixes", src["ipv6_prefixes"])],
                               BODY_INDENT + "  "))
            lines.append(pairs([("Announced", src["announced"]), ("Withdrawn", src["withdrawn"]),
                                ("Flushed", src["flushed"])], BODY_INDENT + "  "))
            lines.append(pairs([("Errors", src["errors"]), ("Last update", src["last_update"])], BODY_INDENT + "  "))
            if src["last_error"]:
                lines.append(pairs([("Last error", src["last_error"])], BODY_INDENT + "  "))
    return lines


ROUTE_LEAVES: Final = (("source_name", "source-name"), ("source_type", "source-type"), ("state", "source-state"),
                       ("ipv4_prefixes", "ipv4-prefixes"), ("ipv6_prefixes", "ipv6-prefixes"),
                       ("announced", "announced"), ("withdrawn", "withdrawn"), ("flushed", "flushed"),
                       ("errors", "errors"), ("last_update", "last-update"), ("last_error", "last-error"))


def routing_tree(result: Mapping[str, Any]) -> Element:
    out = []
    for block in interfaces(result):
        routing = block["routing"]
        sources = [node("route-source-information", [leaf(tag, src[name]) for name, tag in ROUTE_LEAVES])
                   for src in routing["sources"]]
        out.append(node("route-information", [*interface_leaves(block),
                                              leaf("route-source-precedence", " ".join(routing["precedence"])),
                                              *sources]))
    return node(ROOT, out)
