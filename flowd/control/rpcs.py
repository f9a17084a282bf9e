"""Every control-socket method's contract, declared once: its parameters (names, kinds, ranges, help) and result fields.

Part of the control protocol (with `protocol.py`, the framing): the daemon checks every request against
it before a method runs, the shell builds its command options from it (`shell/grammar.py`), and
docs/control-protocol.md's method table is generated from it (``python -m flowd.control.rpcs --docs``).
Imports nothing of flowd.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Final

U16_MAX: Final = 2**16 - 1
U32_MAX: Final = 2**32 - 1
MAX_LIMIT: Final = 10_000_000  # flows one flow-detail request may ask for (every cached flow, in practice)


class Kind(str, Enum):
    """How a parameter's value is written on the wire."""

    INTEGER = "integer"
    PREFIX = "prefix"  # "10.0.0.0/8", "2001:db8::/32" (host bits ignored)
    NAME = "name"  # a non-empty string
    CHOICE = "choice"  # one of `choices`
    TEXT = "text"  # any string, empty included (a commit comment, a file's text)
    BOOLEAN = "boolean"
    WORDS = "words"  # a list of strings (a configuration statement as typed)
    PATH = "path"  # a list of statement keys (strings or integers): the `[edit ...]` level


class BadParam(ValueError):
    """A parameter that does not fit its declaration; the message names it."""


@dataclass(frozen=True, slots=True)
class Param:
    """One request parameter."""

    name: str  # on the wire (snake_case); the shell's keyword is the same with '-'
    kind: Kind
    help: str
    low: int = 0
    high: int = 0
    choices: tuple[str, ...] = ()
    required: bool = False

    @property
    def keyword(self) -> str:
        return self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """Raise BadParam unless ``value`` fits."""
        if self.kind is Kind.INTEGER:
            if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
                raise BadParam(f"{self.name}: expected an integer {self.low}..{self.high}, got {_short(value)}")
        elif self.kind is Kind.PREFIX:
            try:
                if not isinstance(value, str):
                    raise ValueError
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise BadParam(f"{self.name}: expected an address prefix, got {_short(value)}") from None
        elif self.kind is Kind.CHOICE:
            if value not in self.choices:
                raise BadParam(f"{self.name}: expected {' or '.join(self.choices)}, got {_short(value)}")
        elif self.kind is Kind.TEXT:
            if not isinstance(value, str):
                raise BadParam(f"{self.name}: expected a string, got {_short(value)}")
        elif self.kind is Kind.BOOLEAN:
            if not isinstance(value, bool):
                raise BadParam(f"{self.name}: expected true or false, got {_short(value)}")
        elif self.kind in (Kind.WORDS, Kind.PATH):
            allowed = (str,) if self.kind is Kind.WORDS else (str, int)
            if not isinstance(value, list) or not all(isinstance(v, allowed) and not isinstance(v, bool)
                                                      for v in value):
                what = "strings" if self.kind is Kind.WORDS else "statement keys"
                raise BadParam(f"{self.name}: expected a list of {what}, got {_short(value)}")
        elif not isinstance(value, str) or not value:
            raise BadParam(f"{self.name}: expected a non-empty string, got {_short(value)}")

    def describe(self) -> str:
        """The parameter as docs/control-protocol.md lists it."""
        if self.kind is Kind.INTEGER:
            shape = f"{self.low}..{self.high}"
        elif self.kind is Kind.CHOICE:
            shape = " or ".join(f'"{c}"' for c in self.choices)
        else:
            shape = self.kind.value
        return f"`{self.name}` ({shape}{', required' if self.required else ''})"


@dataclass(frozen=True, slots=True)
class Rpc:
    """One method: what it answers, its parameters and result fields, and whether it changes state."""

    method: str
    summary: str
    params: tuple[Param, ...] = ()
    result: tuple[str, ...] = ()  # the fields of the result (of each interface block for accounting.*)
    admin: bool = False  # changes state: only root, the daemon's user or the admin group may call it
    streamed: tuple[str | int, ...] = ()  # the path of the result's list of any length, sent in chunks

    def param(self, name: str) -> Param:
        return next(p for p in self.params if p.name == name)

    def check(self, params: Mapping[str, Any]) -> None:
        """Raise BadParam for an unknown, missing or ill-formed parameter."""
        known = {p.name for p in self.params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise BadParam(f"unknown parameter(s): {', '.join(unknown)}")
        for p in self.params:
            if p.name in params:
                p.check(params[p.name])
            elif p.required:
                raise BadParam(f"{p.name}: required")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


NAME: Final = Param("name", Kind.NAME, "Name of accounting service")
LIMIT: Final = Param("limit", Kind.INTEGER, "Maximum number of flows to display", 1, MAX_LIMIT)
FLOW_QUERY: Final = (
    NAME, LIMIT,
    Param("order", Kind.CHOICE, "Order of the flows", choices=("bytes", "packets")),
    Param("source_prefix", Kind.PREFIX, "Source prefix to match"),
    Param("destination_prefix", Kind.PREFIX, "Destination prefix to match"),
    Param("source_port", Kind.INTEGER, "Source port to match", 0, U16_MAX),
    Param("destination_port", Kind.INTEGER, "Destination port to match", 0, U16_MAX),
    Param("proto", Kind.INTEGER, "IP protocol number to match", 0, 255),
    Param("tos", Kind.INTEGER, "Type-of-service value to match", 0, 255),
    Param("input_snmp_interface_index", Kind.INTEGER, "Input SNMP interface index to match", 0, U32_MAX),
    Param("output_snmp_interface_index", Kind.INTEGER, "Output SNMP interface index to match", 0, U32_MAX),
    Param("source_as", Kind.INTEGER, "Source AS number to match", 0, U32_MAX),
    Param("destination_as", Kind.INTEGER, "Destination AS number to match", 0, U32_MAX),
)
FIREWALL: Final = (Param("filter", Kind.NAME, "Name of filter"), Param("counter", Kind.NAME, "Name of counter"))
MODE: Final = Param("mode", Kind.CHOICE, "Configuration database", choices=("shared", "private", "exclusive"))
LEVEL: Final = Param("path", Kind.PATH, "The [edit ...] level")
WORDS: Final = Param("words", Kind.WORDS, "The statement's words")
WORDS_SHOWN: Final = Param("words", Kind.WORDS, "Configuration statement to show (none: everything)")
ROLLBACK: Final = Param("rollback", Kind.INTEGER, "Stored configuration to compare with", 0, 49)
# The flow-detail filters that match one integer column of the flow key (or of routing data).
FLOW_FILTERS: Final = tuple(p.name for p in FLOW_QUERY if p.kind is Kind.INTEGER and p.name != "limit")
BLOCK: Final = ("interface", "local_index", "service_name")  # every accounting.* interface block starts so
FLOWS_LIST: Final = ("interfaces", 0, "flows")  # where a flow list is in an accounting.* result

ERRORS_FIELDS: Final = (
    "no_memory", "not_ip", "not_ipv4", "header_too_small", "allocation_failures", "free_failures",
    "free_list_failures", "memory_overload", "pps_overload", "bps_overload", "other_drops", "export_failures",
    "kernel_statistics")
FLOW_FIELDS: Final = (
    "flow_packets", "flow_bytes", "flow_packets_10s_rate", "flow_bytes_10s_rate", "active_flows", "total_flows",
    "flows_exported", "flow_packets_exported", "flows_inactive_timed_out", "flows_active_timed_out")
MEMORY_FIELDS: Final = (
    "allocation_count", "free_count", "maximum_allocated", "allocations_per_second", "frees_per_second",
    "memory_used", "memory_free")
STATUS_FIELDS: Final = (
    "interface_state", "group_index", "export_interval", "export_format", "protocol", "engine_type", "engine_id",
    "route_record_count", "ifl_snmp_count", "as_count", "time_set", "configuration_set", "route_record_set",
    "ifl_snmp_map_set", "flow_servers", "captures")
USAGE_FIELDS: Final = ("uptime_ms", "interrupt_time_us", "load_5s", "load_1m")

# `show services accounting aggregation TYPE`: each type's filters (junos-reference.md §1.9), in FLOW_QUERY's
# declarations; the method is accounting.aggregation_TYPE (with '_' for '-').
AGGREGATION_FILTERS: Final[Mapping[str, tuple[str, ...]]] = {
    "as": ("source_as", "destination_as", "input_snmp_interface_index", "output_snmp_interface_index"),
    "protocol-port": ("proto", "source_port", "destination_port"),
    "source-prefix": ("source_prefix", "source_as", "input_snmp_interface_index"),
    "destination-prefix": ("destination_prefix", "destination_as", "output_snmp_interface_index"),
    "source-destination-prefix": ("source_prefix", "destination_prefix", "source_as", "destination_as",
                                  "input_snmp_interface_index", "output_snmp_interface_index"),
}
AGGREGATION_FIELDS: Final = ("aggregation_type", "aggregation_source", "entries")


def aggregation_method(kind: str) -> str:
    return f"accounting.aggregation_{kind.replace('-', '_')}"


def _aggregation_rpc(kind: str, filters: tuple[str, ...]) -> Rpc:
    by_name = {p.name: p for p in FLOW_QUERY}
    return Rpc(aggregation_method(kind), f"{kind} aggregates (cflowd v8), largest first", (
        NAME, Param("limit", Kind.INTEGER, "Maximum number of aggregates to display", 1, MAX_LIMIT),
        Param("order", Kind.CHOICE, "Order of the aggregates", choices=("bytes", "packets")),
        *(by_name[f] for f in filters)), AGGREGATION_FIELDS)


RPCS: Final[Mapping[str, Rpc]] = {rpc.method: rpc for rpc in (
    Rpc("accounting.errors", "accounting error counters", (NAME,), ERRORS_FIELDS),
    Rpc("accounting.flow", "flow statistics", (NAME,), FLOW_FIELDS),
    Rpc("accounting.memory", "flow-cache memory", (NAME,), MEMORY_FIELDS),
    Rpc("accounting.packet_size_distribution", "packet size distribution", (NAME,), ("ranges",)),
    Rpc("accounting.status", "accounting status", (NAME,), STATUS_FIELDS),
    Rpc("accounting.usage", "CPU utilisation", (NAME,), USAGE_FIELDS),
    Rpc("accounting.flow_detail", "individual cached flows, largest first", FLOW_QUERY, ("flows",),
        streamed=FLOWS_LIST),
    Rpc("accounting.aggregation_template", "the cached flows of a version 9 or IPFIX template",
        (Param("template_name", Kind.NAME, "Name of the version 9 or IPFIX template", required=True), NAME, LIMIT),
        ("template", "flows"), streamed=FLOWS_LIST),
    *(_aggregation_rpc(kind, filters) for kind, filters in AGGREGATION_FILTERS.items()),
    Rpc("accounting.routing", "the route sources and their tables (flowd extension)", (NAME,), ("routing",)),
    Rpc("accounting.clear_statistics", "reset every counter", admin=True),
    Rpc("accounting.clear_flows", "end and export every cached flow", result=("flows_cleared",), admin=True),
    Rpc("system.version", "software version", result=("hostname", "model", "version", "python", "packages")),
    Rpc("system.uptime", "time since the host and the daemon started",
        result=("current_time", "time_source", "system_booted", "daemon_started", "last_configured",
                "last_configured_by", "load_average", "users")),
    Rpc("system.configuration", "the running configuration (of one statement)", (WORDS_SHOWN,),
        ("path", "config", "schema")),
    Rpc("firewall.show", "packets and bytes of each filter's counters", FIREWALL, ("filters",)),
    Rpc("firewall.clear", "zero a filter's counters", (Param("filter", Kind.NAME, "Name of filter", required=True),
                                                         FIREWALL[1]), admin=True),
    Rpc("config.history", "the rollback store, newest first", result=("commits",)),
    Rpc("config.schema", "the configuration statement tree", result=("schema",)),
    Rpc("config.enter", "enter configuration mode", (MODE,), ("lines",), admin=True),
    Rpc("config.exit", "leave configuration mode", result=("changed",), admin=True),
    Rpc("config.status", "this session's candidate", result=("changed", "mode", "rollback_in"), admin=True),
    Rpc("config.set", "set a statement in the candidate", (LEVEL, WORDS), ("found", "error"), admin=True),
    Rpc("config.delete", "delete a statement from the candidate", (LEVEL, WORDS), ("found", "error"), admin=True),
    Rpc("config.edit", "the level a statement leads to", (LEVEL, WORDS), ("path", "error"), admin=True),
    Rpc("config.show", "the candidate below a level (of one statement)", (LEVEL, WORDS_SHOWN),
        ("path", "config", "schema", "error"), admin=True),
    Rpc("config.compare", "the candidate against the active or a stored configuration", (LEVEL, ROLLBACK),
        ("lines",), admin=True),
    Rpc("config.compare_rollback", "the active configuration (of one statement) against a stored one",
        (WORDS_SHOWN, replace(ROLLBACK, required=True)), ("lines", "error")),
    Rpc("config.commit", "validate, write and apply the candidate",
        (Param("check", Kind.BOOLEAN, "Only validate"), Param("comment", Kind.TEXT, "Commit comment"),
         Param("confirmed", Kind.INTEGER, "Minutes until an automatic rollback", 1, 65535)), ("lines",), admin=True),
    Rpc("config.rollback", "load a stored configuration into the candidate",
        (Param("index", Kind.INTEGER, "Stored configuration", 0, 49),), ("lines",), admin=True),
    Rpc("config.load", "load configuration text into the candidate",
        (Param("mode", Kind.CHOICE, "How the text combines with the candidate", choices=("merge", "override",
                                                                                         "replace"), required=True),
         Param("text", Kind.TEXT, "Curly-brace text or set lines", required=True), LEVEL), ("lines",), admin=True),
)}


def render_docs() -> str:
    """The method table of docs/control-protocol.md."""
    out = ["| method | what it returns | params | result fields | who may call it |", "|---|---|---|---|---|"]
    for rpc in RPCS.values():
        params = ", ".join(p.describe() for p in rpc.params) or "none"
        streamed = rpc.streamed[-1] if rpc.streamed else None
        fields = ", ".join(f"`{f}`" + (" (streamed)" if f == streamed else "") for f in rpc.result) or "`{}`"
        who = "admin" if rpc.admin else "read"
        out.append(f"| `{rpc.method}` | {rpc.summary} | {params} | {fields} | {who} |")
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m flowd.control.rpcs --docs``: print the method table of docs/control-protocol.md."""
    parser = argparse.ArgumentParser(prog="python -m flowd.control.rpcs", description=__doc__.splitlines()[0])
    parser.add_argument("--docs", action="store_true", help="print the generated method table")
    if not parser.parse_args(argv).docs:
        parser.print_help()
        return 64
    sys.stdout.write(render_docs())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
