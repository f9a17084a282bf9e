"""Building blocks shared by the renderers: Junos header/body lines and the element tree behind `| display`."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

HEADER_INDENT: Final = "  "  # interface/service header lines and section titles
BODY_INDENT: Final = "    "  # `Label: value` body lines


@dataclass(frozen=True, slots=True)
class Element:
    """One XML element of a reply: a leaf holds `text`, a container holds `children`."""

    tag: str
    text: str | None = None
    children: tuple[Element, ...] = ()


def fmt(value: Any) -> str:
    """A value as Junos prints it: booleans as Yes/No, everything else as text."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


def leaf(tag: str, value: Any) -> Element:
    return Element(tag, fmt(value))


def node(tag: str, children: Iterable[Element]) -> Element:
    return Element(tag, None, tuple(children))


def pairs(items: Sequence[tuple[str, Any]], indent: str = BODY_INDENT) -> str:
    """One line of `Label: value` pairs joined by ", "."""
    return indent + ", ".join(f"{label}: {fmt(value)}" for label, value in items)


def pair_lines(items: Sequence[tuple[str, Any]], per_line: int = 2, indent: str = BODY_INDENT) -> list[str]:
    """`items` laid out `per_line` pairs to a line."""
    return [pairs(items[i:i + per_line], indent) for i in range(0, len(items), per_line)]


def interface_header(block: Mapping[str, Any]) -> list[str]:
    """The two lines every `show services accounting` block starts with."""
    first = f"Service Accounting interface: {block['interface']}, Local interface index: {block['local_index']}"
    return [HEADER_INDENT + first, f"{HEADER_INDENT}Service name: {block['service_name']}"]


def interface_leaves(block: Mapping[str, Any]) -> list[Element]:
    """The interface identity as the XML leaves that start each per-interface element."""
    return [leaf("interface-name", block["interface"]), leaf("local-index", block["local_index"]),
            leaf("service-name", block["service_name"])]


def interfaces(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The per-interface blocks of an `accounting.*` result."""
    blocks = result["interfaces"]
    if not isinstance(blocks, list):
        raise TypeError("'interfaces' is not a list")
    return blocks
