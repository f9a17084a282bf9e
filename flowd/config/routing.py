"""Validation of the routing statements: `flowd routing { ... }` and a flow server's version 8 aggregation."""

from __future__ import annotations

from typing import Any

from flowd.config.checker import Checker, describe
from flowd.config.schema import (
    AGGREGATIONS,
    PREFIX_FORMATS,
    ROUTE_SOURCES,
    BgpNeighbor,
    PrefixFileConfig,
    RoutingConfig,
    field_range,
)
from flowd.syntax.junos import Key, KeyPath



def read_routing(c: Checker, node: Any, path: KeyPath) -> RoutingConfig:
    block = c.block(node, path, flag_ok=True)
    values = c.read_leaves(RoutingConfig, block, path)
    if "kernel" in block:
        values["kernel"] = c.flag(block["kernel"], path + ("kernel",))
    if "bgp" in block:
        bpath = path + ("bgp",)
        sessions = c.block(block["bgp"], bpath)
        values["bgp"] = tuple(_neighbor(c, name, body, bpath + ("neighbor", name))
                              for name, body in c.entries(sessions.get("neighbor"), bpath + ("neighbor",)))
    if "prefix-file" in block:
        fpath = path + ("prefix-file",)
        values["prefix_files"] = tuple(_prefix_file(c, name, body, fpath + (name,))
                                       for name, body in c.entries(block["prefix-file"], fpath))
    if "precedence" in block:
        values["precedence"] = _precedence(c, block["precedence"], path + ("precedence",))
    if "snmp-index" in block:
        spath = path + ("snmp-index",)
        pairs = []
        for name, value in c.block(block["snmp-index"], spath).items():
            if not isinstance(name, str) or not name or "/" in name or len(name) > 15:
                c.fail(spath + (name,), f"expected a Linux interface name, got {describe(name)}")
            pairs.append((name, c.integer(value, spath + (name,), field_range(RoutingConfig, "snmp_index"))))
        values["snmp_index"] = tuple(pairs)
    return RoutingConfig(**values)


def _neighbor(c: Checker, name: Key, body: Any, path: KeyPath) -> BgpNeighbor:
    address = c.address(name, path)
    block = c.block(body, path, flag_ok=True)
    for key in ("peer-as", "local-as", "local-address", "router-id"):
        if key not in block:
            c.fail(path + (key,), f"missing: a BGP neighbor needs {key}")
    values = c.read_leaves(BgpNeighbor, block, path)
    if "passive" in block and "active" in block:
        c.fail(path + ("active",), "passive and active are mutually exclusive")
    for key in ("passive", "active"):
        if key in block:
            c.flag(block[key], path + (key,))
    values["passive"] = "active" not in block
    if ":" in values["router_id"]:
        c.fail(path + ("router-id",), f"expected an IPv4 address, got {values['router_id']}")
    return BgpNeighbor(address, **values)


def _prefix_file(c: Checker, name: Key, body: Any, path: KeyPath) -> PrefixFileConfig:
    if not isinstance(name, str) or not name or "\0" in name:
        c.fail(path, f"expected a file path, got {describe(name)}")
    block = c.block(body, path, flag_ok=True) if body is not True else {}
    fmt = block.get("format", "flowd")
    if fmt not in PREFIX_FORMATS:
        c.fail(path + ("format",), f"expected {' or '.join(PREFIX_FORMATS)}, got {describe(fmt)}")
    return PrefixFileConfig(name, str(fmt))


def _precedence(c: Checker, node: Any, path: KeyPath) -> tuple[str, ...]:
    items = node if isinstance(node, list) else [node]
    if sorted(items) != sorted(ROUTE_SOURCES):
        c.fail(path, f"expected each of {', '.join(ROUTE_SOURCES)} once, got {describe(node)}")
    return tuple(str(i) for i in items)


def read_aggregation(c: Checker, node: Any, path: KeyPath) -> tuple[tuple[str, ...], bool]:
    """A version 8 server's `aggregation { ... }`: the methods in order, and caida-compliant."""
    block = c.block(node, path, flag_ok=True)
    if not block:
        c.fail(path, f"expected at least one of {', '.join(AGGREGATIONS)}")
    caida = False
    for key, value in block.items():
        if key == "source-destination-prefix" and value is not True:
            inner = c.block(value, path + (key,), flag_ok=True)
            if "caida-compliant" in inner:
                caida = c.flag(inner["caida-compliant"], path + (key, "caida-compliant"))
        elif value is not True:
            c.flag(value, path + (key,))
    return tuple(k for k in AGGREGATIONS if k in block), caida
