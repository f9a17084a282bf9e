"""`show services accounting flow-detail`: the seed's table (terse), the table with TOS and interfaces (detail),
and one block of `Label: value` lines per flow (extensive, junos-reference.md §1.4's suggested layout).

Table columns are left-aligned; each is at least as wide as in the seed and widens to its longest value
plus two spaces (IPv6 addresses); the last column has no padding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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

# IANA protocol numbers shown by name in the Protocol column; others show as the bare number.
PROTOCOL_NAMES: Final = {0: "ip", 1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 46: "rsvp",
                         47: "gre", 50: "esp", 51: "ah", 58: "icmp6", 89: "ospf", 103: "pim", 112: "vrrp",
                         132: "sctp"}

Flow = Mapping[str, Any]


def protocol_text(number: int) -> str:
    """``tcp(6)``, ``ip(0)``; the bare number for protocols without a common name."""
    name = PROTOCOL_NAMES.get(number)
    return f"{name}({number})" if name else str(number)


def _interface(name: str) -> str:
    return name or "-"


def hms(seconds: int) -> str:
    """Seconds as HH:MM:SS (hours grow past 99 when they must)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: its two header lines, its width in the seed, and how a flow fills it."""

    title: str
    subtitle: str
    width: int
    cell: Callable[[Flow], str]


PROTOCOL: Final = Column("Protocol", "", 10, lambda f: protocol_text(f["protocol"]))
SOURCE_ADDRESS: Final = Column("Source", "Address", 14, lambda f: str(f["source_address"]))
SOURCE_PORT: Final = Column("Source", "Port", 8, lambda f: str(f["source_port"]))
DESTINATION_ADDRESS: Final = Column("Destination", "Address", 16, lambda f: str(f["destination_address"]))
DESTINATION_PORT: Final = Column("Destination", "Port", 13, lambda f: str(f["destination_port"]))
PACKETS: Final = Column("Packet", "count", 8, lambda f: str(f["packets"]))
BYTES: Final = Column("Byte", "count", 0, lambda f: str(f["bytes"]))
TOS: Final = Column("TOS", "", 5, lambda f: str(f["tos"]))
INPUT: Final = Column("Input", "interface", 11, lambda f: _interface(f["input_interface"]))
OUTPUT: Final = Column("Output", "interface", 11, lambda f: _interface(f["output_interface"]))

TERSE_COLUMNS: Final = (PROTOCOL, SOURCE_ADDRESS, SOURCE_PORT, DESTINATION_ADDRESS, DESTINATION_PORT, PACKETS, BYTES)
DETAIL_COLUMNS: Final = (PROTOCOL, TOS, INPUT, SOURCE_ADDRESS, SOURCE_PORT, OUTPUT, DESTINATION_ADDRESS,
                         DESTINATION_PORT, PACKETS, BYTES)


def table(flows: Sequence[Flow], columns: Sequence[Column]) -> list[str]:
    """Header (two lines) and one row per flow, each line indented two spaces, no trailing spaces."""
    rows = [[c.cell(f) for c in columns] for f in flows]
    widths = [max([c.width, len(c.title) + 2, len(c.subtitle) + 2] + [len(r[i]) + 2 for r in rows])
              for i, c in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        padded = [cell.ljust(w) for cell, w in zip(cells[:-1], widths, strict=False)]
        return (HEADER_INDENT + "".join(padded) + cells[-1]).rstrip()

    return [line([c.title for c in columns]), line([c.subtitle for c in columns]), *(line(r) for r in rows)]


def extensive_block(f: Flow) -> list[str]:
    """One flow as `Label: value` lines."""
    return [
        pairs([("Protocol", f["protocol"]), ("TOS", f["tos"]), ("TCP flags", f["tcp_flags"])]),
        pairs([("Source address", f["source_address"]), ("Source prefix length", f["source_prefix_length"]),
               ("Source port", f["source_port"])]),
        pairs([("Destination address", f["destination_address"]),
               ("Destination prefix length", f["destination_prefix_length"]),
               ("Destination port", f["destination_port"])]),
        pairs([("Input interface", _interface(f["input_interface"])),
               ("Input SNMP interface index", f["input_snmp_interface_index"])]),
        pairs([("Output interface", _interface(f["output_interface"])),
               ("Output SNMP interface index", f["output_snmp_interface_index"])]),
        pairs([("Source AS", f["source_as"]), ("Destination AS", f["destination_as"])]),
        pairs([("Start time", f["start_time"]), ("End time", f["end_time"])]),
        pairs([("Packet count", f["packets"]), ("Byte count", f["bytes"])]),
        pairs([("Time since last active timeout", hms(f["time_since_last_active_timeout"])),
               ("Packet count for last active timeout", f["last_active_timeout_packets"]),
               ("Byte count for last active timeout", f["last_active_timeout_bytes"])]),
        *([pairs([("Source MAC address", f["source_mac"]), ("Destination MAC address", f["destination_mac"])])]
          if "source_mac" in f else []),  # flowd's: a family a bridge template exports keeps them
    ]


def render_flow_detail(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for block in interfaces(result):
        lines += interface_header(block)
        flows = block["flows"]
        if level == "extensive":
            for i, flow in enumerate(flows):
                if i:
                    lines.append("")
                lines += extensive_block(flow)
        else:
            lines += table(flows, DETAIL_COLUMNS if level == "detail" else TERSE_COLUMNS)
    return lines


_ENTRY_TAGS: Final = (
    ("tos", "tos"), ("protocol", "protocol"), ("tcp-flags", "tcp_flags"), ("source-address", "source_address"),
    ("source-prefix-length", "source_prefix_length"), ("source-port", "source_port"),
    ("destination-address", "destination_address"), ("destination-prefix-length", "destination_prefix_length"),
    ("destination-port", "destination_port"), ("input-snmp-interface-index", "input_snmp_interface_index"),
    ("output-snmp-interface-index", "output_snmp_interface_index"), ("input-interface-name", "input_interface"),
    ("output-interface-name", "output_interface"), ("source-as", "source_as"), ("destination-as", "destination_as"),
    ("start-time", "start_time"), ("end-time", "end_time"), ("packet-count", "packets"), ("byte-count", "bytes"),
)


_MAC_TAGS: Final = (("source-mac-address", "source_mac"), ("destination-mac-address", "destination_mac"))


def _entry(f: Flow) -> Element:
    return node("detail-entry", [
        *(leaf(tag, f[key]) for tag, key in _ENTRY_TAGS),
        *(leaf(tag, f[key]) for tag, key in _MAC_TAGS if key in f),
        node("last-active-timeout", [leaf("time-delta", f["time_since_last_active_timeout"]),
                                     leaf("last-packet-count", f["last_active_timeout_packets"]),
                                     leaf("last-byte-count", f["last_active_timeout_bytes"])]),
    ])


def flow_detail_tree(result: Mapping[str, Any]) -> Element:
    return node(ROOT, [node("flow-detail", [*interface_leaves(b), *(_entry(f) for f in b["flows"])])
                       for b in interfaces(result)])

