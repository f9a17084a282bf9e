"""`show configuration`: the daemon's nested configuration object as Junos curly-brace text, `set` lines,
Junos configuration XML or JSON, and `| compare`'s difference lines.

The printing is flowd.syntax.junos's (pure, shared with the daemon's parser, so the text always reads back
into the same tree). JSON turned integer keys such as ``unit 0`` into strings; they are turned back
first, so they print bare while string *values* that look like numbers stay quoted. A result holds the
statements (`config`), the path they sit at (`path`: a hierarchy's contents print without the hierarchy,
as Junos prints them, `| display set` and XML with it) and the statement tree cut down to them (`schema`,
flowd.syntax.schema.outline), which tells lists from hierarchies for XML and JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from flowd.syntax.edit import wrap
from flowd.syntax.junos import curly_lines
from flowd.syntax.junos import to_set as _to_set
from shell.render.common import Element, leaf, node
from shell.render.structured import to_xml

_INT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")
_OTHER: Final = {"kind": "container", "children": {}}  # a statement the tree does not describe
_ENTRY_TAGS: Final = {("interfaces",): "interface"}  # lists whose entries Junos XML names apart from the list


def revive(tree: Any) -> Any:
    """Undo what JSON did to the tree's integer keys."""
    if isinstance(tree, Mapping):
        return {(int(k) if isinstance(k, str) and _INT.fullmatch(k) else k): revive(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [revive(v) for v in tree]
    return tree


def _path(result: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(revive(list(result.get("path", []))))


def _config(result: Mapping[str, Any]) -> Mapping[str, Any]:
    config = result["config"]
    if not isinstance(config, Mapping):
        raise TypeError("'config' is not an object")
    return revive(config)  # type: ignore[no-any-return]


def to_curly(tree: Mapping[str, Any], path: Sequence[Any] = ()) -> list[str]:
    """The statements (found at ``path``) as `show configuration` prints them (4-space indent)."""
    return curly_lines(revive(tree), tuple(path))


def to_set(tree: Mapping[str, Any], path: Sequence[Any] = ()) -> list[str]:
    """The statements as ``| display set`` prints them: one `set` line per leaf with the full path."""
    return _to_set(wrap(tuple(path), revive(tree)))


def render_configuration(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    return to_curly(_config(result), _path(result))


def render_configuration_set(result: Mapping[str, Any]) -> list[str]:
    return to_set(_config(result), _path(result))


def _entries(value: Any) -> Mapping[Any, Any]:
    """A list's entries, whichever short form the tree keeps them in (`family inet;`, a YAML list)."""
    if isinstance(value, Mapping):
        return value
    return {v: True for v in value} if isinstance(value, list) else {value: True}


def _child(schema: Mapping[str, Any], key: Any) -> Mapping[str, Any]:
    children = schema.get("children") or {}
    found = children.get(key) if isinstance(key, str) else None
    return found if found is not None else _OTHER


def _body(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    return schema.get("body") or _OTHER


def _elements(schema: Mapping[str, Any], tree: Mapping[Any, Any], path: tuple[Any, ...]) -> list[Element]:
    out: list[Element] = []
    for key, value in tree.items():
        child = _child(schema, key)
        here = path + (key,)
        if child["kind"] == "list":
            body = _body(child)
            if child["key"]["type"] == "choice":  # `family inet { ... }`: <family><inet>...</inet></family>
                out.append(node(str(key), (_element(str(name), body, entry, here + (name,))
                                           for name, entry in _entries(value).items())))
                continue
            tag = _ENTRY_TAGS.get(here, str(key))
            items = [node(tag, (leaf("name", name), *_contents(body, entry, here + (name,))))
                     for name, entry in _entries(value).items()]
            out += [node(str(key), items)] if tag != key else items
        else:
            out += _leaves(str(key), child, value, here)
    return out


def _contents(schema: Mapping[str, Any], value: Any, path: tuple[Any, ...]) -> list[Element]:
    return _elements(schema, value, path) if isinstance(value, Mapping) else []


def _element(tag: str, schema: Mapping[str, Any], value: Any, path: tuple[Any, ...]) -> Element:
    return node(tag, _contents(schema, value, path))


def _leaves(tag: str, schema: Mapping[str, Any], value: Any, path: tuple[Any, ...]) -> list[Element]:
    if isinstance(value, Mapping):
        return [_element(tag, schema, value, path)]
    if value is True:
        return [Element(tag)]
    if isinstance(value, list):
        return [leaf(tag, v) for v in value]
    return [leaf(tag, value)]


def configuration_tree(result: Mapping[str, Any]) -> Element:
    """The Junos `configuration` element of the statements, inside their hierarchy."""
    tree = wrap(_path(result), _config(result))
    return node("configuration", _elements(result.get("schema") or _OTHER, tree, ()))


def render_configuration_xml(result: Mapping[str, Any]) -> list[str]:
    return to_xml(configuration_tree(result))


def _json(element: Element) -> Any:
    if element.text is not None:
        return element.text
    if not element.children:
        return [None]  # a flag, as Junos JSON writes it
    grouped: dict[str, list[Any]] = {}
    for child in element.children:
        grouped.setdefault(child.tag, []).append(_json(child))
    return {tag: values[0] if len(values) == 1 and not _repeated(element, tag) else values
            for tag, values in grouped.items()}


def _repeated(parent: Element, tag: str) -> bool:
    """List entries (and leaf-list values) stay arrays in Junos JSON even when there is one."""
    return any(c.tag == tag and any(g.tag == "name" for g in c.children) for c in parent.children)


def render_configuration_json(result: Mapping[str, Any]) -> list[str]:
    """`| display json`: ``{"configuration": ...}``, lists as arrays of objects, flags ``[null]``."""
    return json.dumps({"configuration": _json(configuration_tree(result))}, indent=4).splitlines()


def render_compare(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    """`| compare rollback N`: the `[edit ...]` / `+` / `-` lines as the daemon made them."""
    return [str(line) for line in result["lines"]]


def compare_tree(result: Mapping[str, Any]) -> Element:
    """`| compare ... | display xml`: the difference as Junos wraps it (`configuration-output` text)."""
    return node("configuration-information", (leaf("configuration-output", "\n".join(render_compare(result))),))
