"""The configuration statement tree as plain data, and the walk that turns `set` words into a key path.

The daemon builds the tree from the configuration dataclasses (flowd.config.statements) and serves it
over the control socket (`config.schema`); the shell caches it for Tab and `?`. Both sides walk it
with this module, so `set` parsing, completion and the value checks can never disagree.

A node is a JSON object with a ``kind``:

    container   {"children": {keyword: node}}         forwarding-options { ... }
    list        {"key": value, "body": node | null}   flow-server ADDRESS { ... }; body null: `NAME;` entries
    leaf        {"value": value}                      rate N;
    leaf-list   {"value": value}                      protocol [ tcp udp ];
    flag        {}                                    sample;

and a ``help`` line. A value is ``{"type", "placeholder", "help", "range": [lo, hi] | null,
"choices": [[word, help], ...] | null, "pattern": regex | null}``; its type is one of `VALUE_TYPES`.
Keywords may be abbreviated to a unique prefix, as in the operational grammar.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

Node = Mapping[str, Any]
Key = str | int | float
KeyPath = tuple[Key, ...]

VALUE_TYPES: Final = ("integer", "duration", "address", "prefix", "interface-address", "name", "choice", "text",
                      "protocol", "port")
_INT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DURATION: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smh]?)")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600}
_RANGE: Final = re.compile(r"(.+?)-(.+)")

SYNTAX_ERROR: Final = "syntax error."
MISSING_ARGUMENT: Final = "missing argument."


class StatementError(Exception):
    """A `set`/`delete`/`edit` line that does not fit the tree: ``word`` is the index the caret points at."""

    def __init__(self, word: int, message: str) -> None:
        super().__init__(message)
        self.word = word
        self.message = message


@dataclass(frozen=True, slots=True)
class Step:
    """One element of a resolved path: the tree key and the schema node it leads to."""

    key: Key
    node: Node


@dataclass(frozen=True, slots=True)
class Resolved:
    """Where a line's words lead: the steps walked, and the value(s) given for a leaf or leaf-list."""

    steps: tuple[Step, ...]
    values: tuple[Key, ...] = ()

    @property
    def path(self) -> KeyPath:
        return tuple(s.key for s in self.steps)

    @property
    def node(self) -> Node:
        return self.steps[-1].node


def word_value(text: str) -> Key:
    """A word as a tree key or value: integer-looking words become ints, as the curly parser reads them."""
    return int(text) if _INT.fullmatch(text) else text


def _range_text(value: Mapping[str, Any]) -> str:
    lo, hi = value["range"]
    return f"{lo}..{hi}"


def _check_range(number: float, text: str, value: Mapping[str, Any], index: int) -> None:
    if value.get("range") is not None:
        lo, hi = value["range"]
        if not lo <= number <= hi:
            raise StatementError(index, f"error: value out of range: {text} is not within range "
                                        f"({_range_text(value)})")


def _number(text: str, value: Mapping[str, Any], index: int) -> int:
    if not _INT.fullmatch(text):
        raise StatementError(index, f"error: invalid numeric value: '{text}'")
    _check_range(int(text), text, value, index)
    return int(text)


def _choice(text: str, value: Mapping[str, Any], index: int) -> str:
    return keyword(text, [w for w, _ in value.get("choices") or ()], index)


def check_value(text: str, value: Mapping[str, Any], index: int) -> Key:
    """The tree value for ``text`` typed where ``value`` is expected; raise `StatementError` (Junos wording)."""
    kind = value["type"]
    if kind == "integer":
        return _number(text, value, index)
    if kind == "duration":
        m = _DURATION.fullmatch(text)
        if m is None:
            raise StatementError(index, f"error: invalid value: '{text}' (seconds, or 30s, 5m, 1h)")
        _check_range(float(m.group(1)) * _UNIT_SECONDS[m.group(2)], text, value, index)
        return word_value(text)
    if kind == "choice":
        return word_value(_choice(text, value, index))
    if kind in ("address", "prefix", "interface-address"):
        try:
            if kind == "address":
                return str(ipaddress.ip_address(text))
            if kind == "prefix":
                return str(ipaddress.ip_network(text))
            return str(ipaddress.ip_interface(text))
        except ValueError:
            what = {"address": "IP address", "prefix": "prefix", "interface-address": "address/length"}[kind]
            raise StatementError(index, f"error: invalid {what}: '{text}'") from None
    if kind in ("protocol", "port"):
        known = {w for w, _ in value.get("choices") or ()}
        lo, hi = value["range"]
        parts = [text]
        if text not in known and (m := _RANGE.fullmatch(text)):
            parts = [m.group(1), m.group(2)]
        for part in parts:
            if part in known:
                continue
            if not part.isdigit() or not lo <= int(part) <= hi:
                raise StatementError(index, f"error: invalid {kind}: '{text}' (a name, a number {lo}..{hi} "
                                            f"or a range N-M)")
        return word_value(text)
    if kind == "name" and value.get("pattern") and not re.fullmatch(value["pattern"], text):
        raise StatementError(index, f"error: invalid name: '{text}'")
    if not text:
        raise StatementError(index, SYNTAX_ERROR)
    return word_value(text) if kind == "name" else text


def keyword(text: str, children: Iterable[str], index: int) -> str:
    """The keyword (child statement or choice) ``text`` names: exact, else a unique prefix; else `syntax error.`."""
    children = list(children)
    if text in children:
        return text
    found = [k for k in children if k.startswith(text)]
    if len(found) == 1:
        return found[0]
    raise StatementError(index, SYNTAX_ERROR)


def node_at(schema: Node, path: Sequence[Key]) -> Node:
    """The schema node a tree key path leads to; a path ending on a list keyword gives the list node."""
    node = schema
    expect_key = False
    for key in path:
        if expect_key:
            node = _body(node)
            expect_key = False
            continue
        if node["kind"] != "container" or key not in node["children"]:
            raise KeyError(key)
        node = node["children"][key]
        expect_key = node["kind"] == "list"
    return node


def _body(node: Node) -> Node:
    return node["body"] if node["body"] is not None else {"kind": "flag", "help": node["help"]}


def walk(schema: Node, base: Sequence[Key], words: Sequence[str], *, values: bool) -> Resolved:
    """Resolve ``words`` below the tree path ``base`` (the `[edit ...]` level).

    With ``values`` (`set`), a leaf needs its value (a leaf-list one or more, `[ a b ]` accepted), and a
    list its entry name; without (`delete`, `edit`, `show`), the words may stop anywhere.
    """
    resolved, _ = _start(schema, base, words, values, several=False)
    return resolved


def walk_several(schema: Node, base: Sequence[Key], words: Sequence[str], *, values: bool = True
                 ) -> tuple[Resolved, ...]:
    """`set` words naming several statements of one level, as Junos takes them: after a leaf's value or a
    flag, the next word names another statement beside it (`flow-server A port 2055 version 8 aggregation
    protocol-port`). ``values`` applies to the last statement, as in `walk`."""
    out: list[Resolved] = []
    resolved, i = _start(schema, base, words, values, several=True)
    out.append(resolved)
    while i < len(words):
        steps, node = _holder(schema, resolved.steps)
        resolved, i = _walk(node, steps, words, i, values, True)
        out.append(resolved)
    return tuple(out)


def _holder(schema: Node, steps: Sequence[Step]) -> tuple[list[Step], Node]:
    """The steps to the container that holds the last step (a leaf or flag), and that container."""
    k = len(steps) - 2
    if k >= 0 and steps[k].node["kind"] == "list":
        k -= 1  # the leaf or flag is a list entry's body: its holder holds the list
    return list(steps[: k + 1]), steps[k].node if k >= 0 else schema


def _start(schema: Node, base: Sequence[Key], words: Sequence[str], values: bool, several: bool
           ) -> tuple[Resolved, int]:
    steps = [Step(k, node_at(schema, base[: i + 1])) for i, k in enumerate(base)]
    node = node_at(schema, base)
    if node["kind"] == "list":
        return _walk_list(node, steps, words, 0, values, several)
    return _walk(node, steps, words, 0, values, several)


def show_path(schema: Node, base: Sequence[Key], words: Sequence[str]) -> Resolved:
    """The statement ``words`` name below ``base`` for `show` (a hierarchy, a list, an entry or one statement);
    a value after a statement's keyword is `syntax error.` under the value."""
    resolved = walk(schema, base, words, values=False)
    if resolved.values:
        raise StatementError(len(resolved.steps) - len(base), SYNTAX_ERROR)
    return resolved


def _walk(node: Node, steps: list[Step], words: Sequence[str], i: int, values: bool, several: bool
          ) -> tuple[Resolved, int]:
    """One statement from word ``i``; with ``several`` it may end before the words do (the next index)."""
    while i < len(words):
        kind = node["kind"]
        if kind == "container":
            name = keyword(words[i], node["children"], i)
            node = node["children"][name]
            steps.append(Step(name, node))
            i += 1
            if node["kind"] == "list":
                return _walk_list(node, steps, words, i, values, several)
            continue
        if kind == "leaf":
            if i + 1 != len(words) and not several:
                raise StatementError(i + 1, SYNTAX_ERROR)
            return Resolved(tuple(steps), (check_value(words[i], node["value"], i),)), i + 1
        if kind == "leaf-list":
            items = [w for w in words[i:] if w not in ("[", "]")]
            return Resolved(tuple(steps), tuple(check_value(w, node["value"], i + n)
                                                for n, w in enumerate(items))), len(words)
        if not several:
            raise StatementError(i, SYNTAX_ERROR)  # a flag takes nothing after it
        return Resolved(tuple(steps)), i
    if values and node["kind"] in ("leaf", "leaf-list"):
        raise StatementError(len(words), MISSING_ARGUMENT)
    return Resolved(tuple(steps)), i


def _walk_list(node: Node, steps: list[Step], words: Sequence[str], i: int, values: bool, several: bool
               ) -> tuple[Resolved, int]:
    if i == len(words):
        if values:
            raise StatementError(i, MISSING_ARGUMENT)
        return Resolved(tuple(steps)), i
    key = check_value(words[i], node["key"], i)
    body = _body(node)
    steps.append(Step(key, body))
    return _walk(body, steps, words, i + 1, values, several)


def outline(node: Node, tree: Any) -> dict[str, Any]:
    """The statement tree cut down to what ``tree`` holds, kinds only (lists keep their key type): enough to
    print the tree as Junos XML, small enough to send with it."""
    kind = node["kind"]
    if kind == "container" and isinstance(tree, Mapping):
        children = node["children"]
        return {"kind": kind, "children": {k: outline(children[k], v) for k, v in tree.items() if k in children}}
    if kind == "list":
        body = node["body"]
        merged: dict[Any, Any] = {}
        for entry in tree.values() if isinstance(tree, Mapping) else ():
            _union(merged, entry)
        return {"kind": kind, "key": {"type": node["key"]["type"]},
                "body": None if body is None else outline(body, merged)}
    return {"kind": kind}


def _union(into: dict[Any, Any], more: Any) -> None:
    if not isinstance(more, Mapping):
        return
    for key, value in more.items():
        if isinstance(value, Mapping):
            if not isinstance(into.get(key), dict):
                into[key] = {}
            _union(into[key], value)
        else:
            into.setdefault(key, value)


# --- completion and `?` -------------------------------------------------------------------------------


def _value_help(value: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = [(w, h) for w, h in value.get("choices") or ()] if value["type"] == "choice" else []
    if value["type"] != "choice":
        text = value["help"]
        if value.get("range") is not None and value["type"] in ("integer", "duration"):
            text = f"{text} ({_range_text(value)})"
        out.append((value["placeholder"], text))
        out.extend((w, h) for w, h in value.get("choices") or ())
    return out


def candidates(schema: Node, base: Sequence[Key], words: Sequence[str], *,
               known: Mapping[KeyPath, Sequence[Key]] | None = None, several: bool = False) -> list[tuple[str, str]]:
    """What may be typed after ``words`` below ``base``: ``(word or <placeholder>, help)`` pairs.

    ``known`` maps list paths to the entries configured there (offered beside the placeholder, as Junos
    offers configured names). An error in ``words`` gives no candidates; so do a complete leaf and a flag,
    unless ``several`` (`set`) lets another statement of their level follow (`walk_several`).
    """
    try:
        done = walk_several(schema, base, words, values=False)[-1] if several else walk(schema, base, words,
                                                                                         values=False)
    except StatementError:
        return []
    if several and done.steps and (done.node["kind"] == "flag" or (done.values and done.node["kind"] == "leaf")):
        _, holder = _holder(schema, done.steps)
        return sorted((k, child["help"]) for k, child in holder["children"].items())
    if done.values:
        return []
    node = done.node if done.steps else schema
    kind = node["kind"]
    if kind == "container":
        return sorted((k, child["help"]) for k, child in node["children"].items())
    if kind == "list":
        out = _value_help(node["key"])
        out.extend((str(name), node["help"]) for name in (known or {}).get(done.path, ()))
        return out
    if kind in ("leaf", "leaf-list"):
        return _value_help(node["value"])
    return []
