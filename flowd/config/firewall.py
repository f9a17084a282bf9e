"""Validation of `firewall family F filter NAME { term ... }` statements into `Filter` objects."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from flowd.config.checker import Checker, describe
from flowd.config.ip_names import PORTS, PROTOCOLS
from flowd.config.schema import (
    FAMILIES,
    Filter,
    Prefix,
    Term,
    TermMatch,
)
from flowd.syntax.junos import Key, KeyPath


def read_firewall(c: Checker, node: Any, path: KeyPath) -> dict[str, Filter]:
    fw = c.block(node, path)
    filters: dict[str, Filter] = {}
    for fam, body in c.entries(fw.get("family", {}), path + ("family",)):
        fpath = path + ("family", fam)
        if fam not in FAMILIES:
            c.fail(fpath, "unsupported family (expected inet or inet6)")
        assert isinstance(fam, str)
        block = c.block(body, fpath, flag_ok=True)
        for fname, fbody in c.entries(block.get("filter", {}), fpath + ("filter",)):
            here = fpath + ("filter", fname)
            name = c.name(fname, here, "filter")
            if name in filters:
                other = filters[name].family
                c.fail(here, f"filter {name} is defined twice" if other == fam else
                       f"filter {name} is also defined in family {other}; flowd needs unique filter names")
            fblock = c.block(fbody, here, flag_ok=True)
            terms: list[Term] = []
            for tname, tbody in c.entries(fblock.get("term", {}), here + ("term",)):
                terms.append(_term(c, tname, tbody, here + ("term", tname), fam, terms))
            filters[name] = Filter(name, fam, tuple(terms))
    return filters


def _term(c: Checker, key: Key, node: Any, path: KeyPath, family: str, earlier: Sequence[Term]) -> Term:
    name = c.name(key, path, "term")
    if any(t.name == name for t in earlier):
        c.fail(path, f"term {name} is defined twice")
    block = c.block(node, path, flag_ok=True)
    match = _match(c, block["from"], path + ("from",), family) if "from" in block else TermMatch()
    sample, count, action = _then(c, block["then"], path + ("then",)) if "then" in block else (False, None, None)
    return Term(name, match, sample, count, action)


def _match(c: Checker, node: Any, path: KeyPath, family: str) -> TermMatch:
    block = c.block(node, path, flag_ok=True, omit=() if family == "inet6" else ("next-header",))
    if "protocol" in block and "next-header" in block:
        c.fail(path + ("next-header",), "protocol and next-header are the same condition; give one of them")
    values: dict[str, Any] = {}
    for key in ("source-address", "destination-address", "address"):
        if key in block:
            values[key.replace("-", "_")] = _prefixes(c, block[key], path + (key,), family)
    for key in ("protocol", "next-header"):
        if key in block:
            values["protocol"] = _protocols(c, block[key], path + (key,))
    for key in ("source-port", "destination-port", "port"):
        if key in block:
            values[key.replace("-", "_")] = _ports(c, block[key], path + (key,))
    return TermMatch(**values)


def _prefixes(c: Checker, node: Any, path: KeyPath, family: str) -> tuple[Prefix, ...]:
    items: list[tuple[Any, KeyPath]]
    if isinstance(node, Mapping):  # curly: source-address { 10.0.0.0/8; 192.0.2.0/24 except; }
        items = []
        for key, value in node.items():
            if value == "except":
                c.fail(path + (key,), f"'except' entries are not supported ({key} except)")
            if value is not True:
                c.fail(path + (key,), f"expected a prefix entry, got {describe(value)} after it")
            items.append((key, path + (key,)))
    elif isinstance(node, list):
        items = [(value, path) for value in node]
    elif isinstance(node, str):
        items = [(node, path)]
    else:
        c.fail(path, f"expected a prefix or a list of prefixes, got {describe(node)}")
    if not items:
        c.fail(path, "expected at least one prefix")
    return tuple(dict.fromkeys(c.prefix(value, where, family) for value, where in items))


def as_list(c: Checker, node: Any, path: KeyPath, what: str) -> list[Any]:
    items = node if isinstance(node, list) else [node]
    if not items:
        c.fail(path, f"expected at least one {what}")
    return items


def _protocols(c: Checker, node: Any, path: KeyPath) -> tuple[int, ...]:
    out: list[int] = []
    for item in as_list(c, node, path, "protocol"):
        if isinstance(item, int) and not isinstance(item, bool):
            out.append(c.integer(item, path, (0, 255)))
        elif isinstance(item, str) and item in PROTOCOLS:
            out.append(PROTOCOLS[item])
        elif isinstance(item, str) and (m := re.fullmatch(r"([0-9]+)-([0-9]+)", item)):
            lo, hi = c.integer(int(m.group(1)), path, (0, 255)), c.integer(int(m.group(2)), path, (0, 255))
            if lo > hi:
                c.fail(path, f"range {item} is reversed")
            out.extend(range(lo, hi + 1))
        else:
            c.fail(path, f"expected a protocol name (tcp, udp, icmp, icmp6, ...) or a number 0..255, "
                         f"got {describe(item)}")
    return tuple(dict.fromkeys(out))


def _port_number(item: Any) -> int | None:
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    if isinstance(item, str):
        if item.isdigit():
            return int(item)
        return PORTS.get(item)
    return None


def _ports(c: Checker, node: Any, path: KeyPath) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for item in as_list(c, node, path, "port"):
        pair: tuple[int, int] | None = None
        single = _port_number(item)
        if single is not None:
            pair = (single, single)
        elif isinstance(item, str):
            for i, ch in enumerate(item):  # `1024-65535`, `ftp-data-http`: try each '-' as the range dash
                if ch == "-":
                    lo, hi = _port_number(item[:i]), _port_number(item[i + 1:])
                    if lo is not None and hi is not None:
                        pair = (lo, hi)
                        break
        if pair is None:
            c.fail(path, f"expected a port number 0..65535, a range such as 1024-65535, or a name such as "
                         f"http or domain, got {describe(item)}")
        for number in pair:
            c.integer(number, path, (0, 65535))
        if pair[0] > pair[1]:
            c.fail(path, f"range {item} is reversed")
        out.append(pair)
    return tuple(dict.fromkeys(out))


def _then(c: Checker, node: Any, path: KeyPath) -> tuple[bool, str | None, str | None]:
    if node in ("accept", "discard", "sample"):  # one-line form: `then accept;`
        node = {node: True}
    block = c.block(node, path)
    sample = c.flag(block["sample"], path + ("sample",)) if "sample" in block else False
    count = c.name(block["count"], path + ("count",), "counter") if "count" in block else None
    action: str | None = None
    for key in ("accept", "discard"):
        if key in block:
            c.flag(block[key], path + (key,))
            if action is not None:
                c.fail(path + (key,), "accept and discard are mutually exclusive")
            action = key
    return sample, count, action
