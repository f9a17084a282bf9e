"""The configuration statement tree (flowd.syntax.schema data): which statements exist where, declared once.

The tree is the one declaration of the statements' structure. The validator (flowd.config.build and
its helpers) takes the statements each block allows from it (`Checker.block`), so an unknown-statement
error lists exactly this tree's children, in this order; configuration mode walks the same tree for
`set`, Tab and `?` (the daemon serves it as `config.schema`). Leaves take their value type, range and
help from the dataclass field metadata in flowd.config.schema, the same metadata the validator reads
its ranges from and docs/config.md is generated from; names, protocols, ports, families, template
types and the fixed word sets (versions, aggregations, ...) come from the validator's own tables.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import fields
from functools import cache
from typing import Any, Final

from flowd.config import checker, schema
from flowd.config.ip_names import PORTS, PROTOCOLS

Node = dict[str, Any]

_KIND_TYPE: Final = {"integer": "integer", "duration": "duration", "address": "address", "socket": "text",
                     "group": "name", "path": "text", "text": "text"}


def value(kind: str, placeholder: str, help: str, *, range: Sequence[int] | None = None,
          choices: Sequence[tuple[str, str]] | None = None, pattern: str | None = None) -> dict[str, Any]:
    """One value spec (see flowd.syntax.schema)."""
    return {"type": kind, "placeholder": placeholder, "help": help, "range": list(range) if range else None,
            "choices": [list(c) for c in choices] if choices else None, "pattern": pattern}


def container(help: str, children: Mapping[str, Node]) -> Node:
    return {"kind": "container", "help": help, "children": dict(children)}


def keyed(help: str, key: dict[str, Any], body: Node | None) -> Node:
    return {"kind": "list", "help": help, "key": key, "body": body}


def leaf(help: str, val: dict[str, Any]) -> Node:
    return {"kind": "leaf", "help": help, "value": val}


def leaf_list(help: str, val: dict[str, Any]) -> Node:
    return {"kind": "leaf-list", "help": help, "value": val}


def flag(help: str) -> Node:
    return {"kind": "flag", "help": help}


def _first(text: str) -> str:
    """The first sentence of a help text (a full stop after a letter, digit or bracket, before a capital)."""
    return re.split(r"(?<=[A-Za-z0-9)])\. (?=[A-Z])", text)[0].rstrip(".")


def field_leaves(cls: type) -> dict[str, Node]:
    """The simple leaf statements of a dataclass (fields whose metadata names a statement key)."""
    out: dict[str, Node] = {}
    for f in fields(cls):
        meta = f.metadata
        key = meta.get("key")
        if key is None or meta["kind"] not in _KIND_TYPE:
            continue
        kind = _KIND_TYPE[meta["kind"]]
        pattern = checker.GROUP_RE.pattern if meta["kind"] == "group" else None
        out[key] = leaf(_first(meta["help"]), value(kind, f"<{key}>", _first(meta["help"]), range=meta["range"],
                                                    pattern=pattern))
    return out


def _field(cls: type, name: str) -> Mapping[str, Any]:
    return next(f.metadata for f in fields(cls) if f.name == name)


def _help(cls: type, name: str) -> str:
    return _first(_field(cls, name)["help"])


def _choice(placeholder: str, help: str, words: Mapping[Any, str]) -> dict[str, Any]:
    return value("choice", placeholder, help, choices=[(str(w), h) for w, h in words.items()])


def _pick(nodes: Mapping[str, Node], *keys: str) -> dict[str, Node]:
    """``nodes`` in the order ``keys`` gives (the order an unknown-statement error lists them in)."""
    return {k: nodes[k] for k in keys}


_NAME_PATTERN: Final = checker.NAME_RE.pattern
FAMILY: Final = _choice("<family>", "Protocol family", {"inet": "IPv4 parameters", "inet6": "IPv6 parameters"})


def _name(placeholder: str, help: str) -> dict[str, Any]:
    return value("name", placeholder, help, pattern=_NAME_PATTERN)


def _sampling_input() -> Node:
    return container("Settings for sampling of input packets", field_leaves(schema.SamplingInput))


def _aggregation() -> Node:
    methods = {k: flag(h) for k, h in schema.AGGREGATIONS.items()}
    methods["source-destination-prefix"] = container(schema.AGGREGATIONS["source-destination-prefix"], {
        "caida-compliant": flag(_help(schema.FlowServer, "caida_compliant"))})
    return container("Aggregations of version 8 exports", methods)


def _flow_server() -> Node:
    template = {"template": leaf("Template configuration", _name("<template>", "Template name"))}
    return container("Configure sending traffic aggregates in cflowd format", _pick({
        **field_leaves(schema.FlowServer),
        "version": leaf("Format of exported cflowd aggregates",
                        _choice("<version>", "Format of exported cflowd aggregates", schema.VERSIONS)),
        "version9": container("Export data in version 9 format", template),
        "version-ipfix": container("Export data in IPFIX format", template),
        "transport": leaf("Export transport (flowd extension)",
                          _choice("<transport>", "Export transport", schema.TRANSPORTS)),
        "aggregation": _aggregation(),
        "autonomous-system-type": leaf("Type of autonomous system number to export",
                                       _choice("<type>", _help(schema.FlowServer, "autonomous_system_type"),
                                               schema.AS_TYPES)),
        "local-dump": flag("Dump cflowd records to log file before exporting"),
        "no-local-dump": flag("Don't dump cflowd records to log file before exporting"),
    }, "port", "version", "version9", "version-ipfix", "source-address", "dscp", "transport", "aggregation",
        "autonomous-system-type", "local-dump", "no-local-dump"))


def _family_body() -> Node:
    service = container("Interfaces used to send monitored information", field_leaves(schema.ServiceInterface))
    leaves = field_leaves(schema.FamilyOutput)
    output = container("Configure output options for packet sampling", _pick({
        **leaves,
        "inline-jflow": container("Inline processing of sampled packets", _pick(leaves, "flow-export-rate")),
        "flow-server": keyed("Configure sending traffic aggregates in cflowd format",
                             value("address", "<hostname>", "Name of host collecting cflowd packets"), _flow_server()),
        "interface": keyed("Interfaces used to send monitored information",
                           value("name", "<interface-name>", "Name of interface",
                                 pattern=checker.SERVICE_IF_RE.pattern), service),
    }, "flow-server", "flow-active-timeout", "flow-inactive-timeout", "interface", "aggregate-export-interval",
        "inline-jflow"))
    return container("Sampling parameters for this family", {"input": _sampling_input(), "output": output})


def _forwarding_options() -> Node:
    family = keyed("Protocol family", FAMILY, _family_body())
    return container("Configure options to control packet forwarding", {
        "sampling": container("Statistical traffic sampling options", {"input": _sampling_input(), "family": family}),
        "family": family,
    })


def _firewall() -> Node:
    prefixes = {key: keyed(_help(schema.TermMatch, key.replace("-", "_")),
                           value("prefix", "<prefix>", "Prefix to match"), None)
                for key in ("source-address", "destination-address", "address")}
    protocol = value("protocol", "<protocol>", "Protocol name, number or range", range=(0, 255),
                     choices=sorted((name, f"IP protocol {number}") for name, number in PROTOCOLS.items()))
    port = value("port", "<port>", "Port name, number or range", range=(0, 65535),
                 choices=sorted((name, f"Port {number}") for name, number in PORTS.items()))
    match = container("Define match criteria", {
        **prefixes,
        "protocol": leaf_list("Match IP protocol type", protocol),
        "next-header": leaf_list("Match next header protocol type (family inet6)", protocol),
        "source-port": leaf_list("Match TCP/UDP source port", port),
        "destination-port": leaf_list("Match TCP/UDP destination port", port),
        "port": leaf_list("Match TCP/UDP source or destination port", port),
    })
    then = container("Action to take if the 'from' condition is matched", {
        "sample": flag("Sample the packet"),
        "count": leaf("Count the packet in the named counter", _name("<counter-name>", "Counter name")),
        "accept": flag("Accept the packet"),
        "discard": flag("Discard the packet"),
    })
    term = container("Define a firewall term", {"from": match, "then": then})
    flt = container("Define an IPv4 or IPv6 firewall filter",
                    {"term": keyed("Define a firewall term", _name("<term-name>", "Term name"), term)})
    fam = container("Protocol family", {"filter": keyed("Define a firewall filter",
                                                        _name("<filter-name>", "Filter name"), flt)})
    return container("Define a firewall configuration", {"family": keyed("Protocol family", FAMILY, fam)})


def _template(fmt: str) -> Node:
    refresh = container("Refresh rate", field_leaves(schema.RefreshRate))
    labels = container("MPLS template options", {
        "label-position": leaf_list("Positions of the MPLS labels exported",
                                    value("integer", "<label-position>", "Label position",
                                          range=_field(schema.TemplateConfig, "label_positions")["range"]))})
    domain = "source-id" if fmt == "9" else "observation-domain-id"
    types = {f"{t}-template": labels if t.startswith("mpls") else flag(f"{t} template")
             for t in schema.TEMPLATE_TYPES[fmt]}
    meta = _field(schema.TemplateConfig, "domain_id")
    leaves = field_leaves(schema.TemplateConfig)
    return container("One or more templates", {
        **_pick(leaves, "flow-active-timeout", "flow-inactive-timeout", "template-id", "options-template-id"),
        "template-refresh-rate": refresh, "option-refresh-rate": refresh,
        domain: leaf(_first(meta["help"]), value("integer", f"<{domain}>", _first(meta["help"]),
                                                 range=meta["range"])),
        **types,
    })


def _services() -> Node:
    return container("Service PIC applications settings", {"flow-monitoring": container(
        "Configure flow monitoring", {
            "version9": container("Version 9 configuration", {"template": keyed(
                "One or more version 9 templates", _name("<template-name>", "Template name"), _template("9"))}),
            "version-ipfix": container("IPFIX configuration", {"template": keyed(
                "One or more IPFIX templates", _name("<template-name>", "Template name"), _template("ipfix"))}),
        })})


def _interfaces() -> Node:
    text = value("text", "<description>", "Text description of interface")
    address = keyed("Interface address/destination prefix",
                    value("interface-address", "<source>", "Interface address/destination prefix"),
                    container("Interface address", {"destination": leaf(
                        "Destination address", value("address", "<destination>", "Destination address"))}))
    bound = _name("<filter-name>", "Name of filter")
    family = container("Protocol family", {
        "filter": container("Filter to apply to the interface", {
            "input": leaf("Name of filter applied to received packets", bound),
            "output": leaf("Name of filter applied to transmitted packets", bound)}),
        "sampling": container("Statistical traffic sampling", {
            "input": flag("Sample all packets coming into the interface"),
            "output": flag("Sample all packets going out of the interface")}),
        "address": address,
    })
    unit = container("Logical interface", {"family": keyed("Protocol family", FAMILY, family),
                                           "description": leaf("Text description of interface", text)})
    interface = container("Physical interface", {
        "unit": keyed("Logical interface", value("integer", "<interface_unit_number>", "Interface unit number",
                                                 range=(0, 16385)), unit),
        "description": leaf("Text description of interface", text)})
    return keyed("Interface configuration", value("name", "<interface-name>", "Interface name",
                                                  pattern=checker.IFNAME_RE.pattern), interface)


def _linux_name(help: str) -> dict[str, Any]:
    return value("name", "<linux-interface>", help, pattern=checker.LINUX_IF_RE.pattern)


def _routing() -> Node:
    neighbor = container("One BGP session", {
        **field_leaves(schema.BgpNeighbor),
        "passive": flag("Wait for the router to connect (default)"),
        "active": flag("Connect to the router"),
    })
    prefix_file = container("A route file", {"format": leaf(
        "Format of the file", _choice("<format>", _help(schema.PrefixFileConfig, "format"), schema.PREFIX_FORMATS))})
    snmp = _field(schema.RoutingConfig, "snmp_index")
    return container("Route sources for AS numbers, masks and next hops (flowd extension)", {
        "bgp": container(_help(schema.RoutingConfig, "bgp"), {"neighbor": keyed(
            "BGP neighbor", value("address", "<address>", _help(schema.BgpNeighbor, "address")), neighbor)}),
        "kernel": flag(_help(schema.RoutingConfig, "kernel")),
        "prefix-file": keyed(_help(schema.RoutingConfig, "prefix_files"),
                             value("text", "<path>", _help(schema.PrefixFileConfig, "path")), prefix_file),
        "precedence": leaf_list("Order of the route sources when prefixes tie",
                                _choice("<source>", "Route source", {s: f"{s} routes" for s in schema.ROUTE_SOURCES})),
        "snmp-index": keyed(_help(schema.RoutingConfig, "snmp_index"), _linux_name("Linux interface name"),
                            leaf("SNMP index", value("integer", "<snmp-index>", "SNMP index", range=snmp["range"]))),
        **field_leaves(schema.RoutingConfig),
    })


def _flowd() -> Node:
    capture = container("How live interfaces are read", {
        **field_leaves(schema.CaptureConfig),
        "promiscuous": flag(_help(schema.CaptureConfig, "promiscuous")),
        "direction": leaf("Which packets of an interface are captured",
                          _choice("<direction>", "Capture direction", schema.DIRECTIONS)),
    })
    return container("flowd's own settings", {
        "interface-map": keyed("Router interface names to Linux interfaces",
                               value("name", "<interface-name>", "Junos interface name",
                                     pattern=checker.IFNAME_RE.pattern),
                               leaf("Linux interface", _linux_name("Linux interface name"))),
        "flow-table": container("The flow cache", field_leaves(schema.FlowTableConfig)),
        "control": container("The control socket", field_leaves(schema.ControlConfig)),
        "capture": capture,
        "metrics": container("The OpenMetrics endpoint (off unless present)", field_leaves(schema.MetricsConfig)),
        "netconf": container("NETCONF over SSH (off unless present)", field_leaves(schema.NetconfConfig)),
        "routing": _routing(),
    })


@cache
def statement_tree() -> Node:
    """The whole statement tree (a JSON-able dict), children in the order the validator lists them."""
    return container("Configuration", {
        "interfaces": _interfaces(),
        "forwarding-options": _forwarding_options(),
        "firewall": _firewall(),
        "services": _services(),
        "flowd": _flowd(),
    })
