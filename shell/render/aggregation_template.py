"""`show services accounting aggregation template template-name NAME`: one block per flow in its template's layout.

Layouts: junos-reference.md §1.8 (real routers, lines indented two spaces, `Label: value` pairs joined by
", ", blocks separated by a blank line). The reference's MPLS-IPv4 sample lost its indentation in the test
fixture it was copied from; flowd indents it like the others. The peer-as-billing layout is flowd's own. Each
layout is one table of rows, and the text (filtered by output level) and the XML/JSON `detail-entry` both come
from it, so they cannot drift apart. The bridge layout is flowd's too (Junos exports that template for family
bridge, which flowd does not sample; flowd's bridge flows are IP flows with their MAC addresses).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from shell.render.accounting import ROOT
from shell.render.common import (
    HEADER_INDENT,
    Element,
    interface_header,
    interface_leaves,
    interfaces,
    leaf,
    node,
    pairs,
)

Flow = Mapping[str, Any]
CONTAINER: Final = "flow-aggregate-template-detail"


class Detail(IntEnum):
    """The lowest output level that prints a row."""

    TERSE = 0
    DETAIL = 1
    EXTENSIVE = 2


LEVELS: Final = {"terse": Detail.TERSE, "detail": Detail.DETAIL, "extensive": Detail.EXTENSIVE}


def full_address(text: str) -> str:
    """An IPv6 address written out without `::` and leading zeros (``100:0:0:0:0:0:0:2``), as Junos prints it."""
    address = ipaddress.ip_address(text)
    if address.version == 4:
        return str(address)
    return ":".join(f"{int.from_bytes(address.packed[i:i + 2], 'big'):x}" for i in range(0, 16, 2))


@dataclass(frozen=True, slots=True)
class Field:
    """One `Label: value` pair and the XML leaf that carries the same value."""

    label: str
    tag: str
    value: Callable[[Flow], Any]


@dataclass(frozen=True, slots=True)
class Row:
    """One text line of a block: its fields, and the lowest output level that prints it."""

    level: Detail
    fields: tuple[Field, ...]


def _key(name: str) -> Callable[[Flow], Any]:
    return lambda f: f[name]


def _label(position: int) -> Field:
    return Field(f"MPLS label {position + 1}", f"mpls-label-{position + 1}", lambda f: f["mpls_labels"][position])


SOURCE_ADDRESS: Final = Field("Source address", "source-address", _key("source_address"))
DESTINATION_ADDRESS: Final = Field("Destination address", "destination-address", _key("destination_address"))
LABELS: Final = Row(Detail.TERSE, (_label(0), _label(1), _label(2)))
PORTS: Final = Row(Detail.TERSE, (Field("Source port", "source-port", _key("source_port")),
                                  Field("Destination port", "destination-port", _key("destination_port"))))
PROTOCOL: Final = Row(Detail.TERSE, (Field("Protocol", "protocol", _key("protocol")), Field("TOS", "tos", _key("tos")),
                                     Field("TCP flags", "tcp-flags", _key("tcp_flags"))))
MASKS: Final = Row(Detail.DETAIL, (Field("Source mask", "source-mask", _key("source_mask")),
                                   Field("Destination mask", "destination-mask", _key("destination_mask"))))
INPUT_SNMP: Final = Field("Input SNMP interface index", "input-snmp-interface-index", _key("input_snmp_interface_index"))
SNMP: Final = Row(Detail.DETAIL, (INPUT_SNMP, Field("Output SNMP interface index", "output-snmp-interface-index",
                                                    _key("output_snmp_interface_index"))))
TIMES: Final = Row(Detail.EXTENSIVE, (Field("Start time", "start-time", _key("start_time")),
                                      Field("End time", "end-time", _key("end_time"))))
COUNTS: Final = Row(Detail.TERSE, (Field("Packet count", "packet-count", _key("packets")),
                                   Field("Byte count", "byte-count", _key("bytes"))))

# template type -> (the XML element holding its entries, the rows of one flow's block)
LAYOUTS: Final[Mapping[str, tuple[str, tuple[Row, ...]]]] = {
    "ipv4": (f"{CONTAINER}-ipv4", (
        Row(Detail.TERSE, (SOURCE_ADDRESS, DESTINATION_ADDRESS)), PORTS, PROTOCOL, MASKS, SNMP, TIMES, COUNTS)),
    "ipv6": (f"{CONTAINER}-ipv6", (
        Row(Detail.TERSE, (Field("Source address", "source-address", lambda f: full_address(f["source_address"])),)),
        Row(Detail.TERSE, (Field("Destination address", "destination-address",
                                 lambda f: full_address(f["destination_address"])),)),
        PORTS, PROTOCOL, MASKS, SNMP, TIMES, COUNTS)),
    "mpls": (f"{CONTAINER}-mpls", (LABELS, SNMP, COUNTS)),
    "mpls-ipv4": (f"{CONTAINER}-mpls-ipv4", (
        LABELS,
        Row(Detail.TERSE, (SOURCE_ADDRESS, DESTINATION_ADDRESS,
                           Field("Top Label Address", "top-label-address", _key("top_label_address")))),
        PORTS, PROTOCOL, MASKS, SNMP, TIMES, COUNTS)),
    "bridge": (f"{CONTAINER}-bridge", (  # flowd's layout: the bridge template's fields
        Row(Detail.TERSE, (Field("Source MAC address", "source-mac-address", _key("source_mac")),
                           Field("Destination MAC address", "destination-mac-address", _key("destination_mac")))),
        Row(Detail.TERSE, (Field("Ethernet type", "ethernet-type", _key("ethernet_type")),
                           Field("VLAN ID", "vlan-id", _key("vlan_id")))),
        SNMP, TIMES, COUNTS)),
    "peer-as-billing": (f"{CONTAINER}-peer-as-billing", (
        Row(Detail.DETAIL, (Field("TOS", "tos", _key("tos")), INPUT_SNMP)),
        Row(Detail.TERSE, (Field("Destination peer AS", "destination-peer-as", _key("destination_as")),
                           Field("BGP next hop", "bgp-nexthop", _key("bgp_next_hop")))),
        TIMES, COUNTS)),
}


def _layout(block: Mapping[str, Any]) -> tuple[str, tuple[Row, ...]]:
    """The block's template layout."""
    return LAYOUTS[block["template"]["type"]]


def flow_block(flow: Flow, rows: tuple[Row, ...], level: Detail = Detail.EXTENSIVE) -> list[str]:
    """One flow's lines at an output level."""
    return [pairs([(f.label, f.value(flow)) for f in row.fields], HEADER_INDENT) for row in rows if row.level <= level]


def render_aggregation_template(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    detail = LEVELS.get(level or "terse", Detail.TERSE)
    lines: list[str] = []
    for block in interfaces(result):
        lines += interface_header(block)
        rows = _layout(block)[1]
        for i, flow in enumerate(block["flows"]):
            if i:
                lines.append("")
            lines += flow_block(flow, rows, detail)
    return lines


def _entry(flow: Flow, rows: tuple[Row, ...]) -> Element:
    return node("detail-entry", [leaf(f.tag, f.value(flow)) for row in rows for f in row.fields])


def aggregation_template_tree(result: Mapping[str, Any]) -> Element:
    out = []
    for block in interfaces(result):
        children = interface_leaves(block)
        tag, rows = _layout(block)
        children.append(node(tag, [_entry(f, rows) for f in block["flows"]]))
        out.append(node(CONTAINER, children))
    return node(ROOT, out)
