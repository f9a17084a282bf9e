"""`| display xml` and `| display json`: an element tree as Junos XML (in its rpc-reply) or Junos JSON.

Junos JSON writes every element as a list of objects and every leaf as ``[{"data": "value"}]``;
repeated elements with one tag become one list, in order.
"""

from __future__ import annotations

import json
from typing import Any, Final
from xml.sax.saxutils import escape

from shell.render.common import Element

XML_INDENT: Final = "    "
# Junos puts its release in this namespace; flowd puts its own name there.
JUNOS_XMLNS: Final = "http://xml.juniper.net/junos/flowd/junos"


def element_lines(element: Element, depth: int) -> list[str]:
    pad = XML_INDENT * depth
    if element.text is not None:
        return [f"{pad}<{element.tag}>{escape(element.text)}</{element.tag}>"]
    if not element.children:
        return [f"{pad}<{element.tag}></{element.tag}>"]
    lines = [f"{pad}<{element.tag}>"]
    for child in element.children:
        lines += element_lines(child, depth + 1)
    lines.append(f"{pad}</{element.tag}>")
    return lines


def to_xml(root: Element) -> list[str]:
    """The reply as `| display xml` prints it."""
    return [f'<rpc-reply xmlns:junos="{JUNOS_XMLNS}">', *element_lines(root, 1),
            f"{XML_INDENT}<cli>", f"{XML_INDENT * 2}<banner></banner>", f"{XML_INDENT}</cli>", "</rpc-reply>"]


def _json_value(element: Element) -> dict[str, Any]:
    if element.text is not None:
        return {"data": element.text}
    grouped: dict[str, list[dict[str, Any]]] = {}
    for child in element.children:
        grouped.setdefault(child.tag, []).append(_json_value(child))
    return grouped


def to_json(root: Element) -> list[str]:
    """The reply as `| display json` prints it."""
    return json.dumps({root.tag: [_json_value(root)]}, indent=4, ensure_ascii=False).splitlines()
