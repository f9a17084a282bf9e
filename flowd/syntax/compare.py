"""`show | compare`: the difference between two statement trees in Junos's `[edit ...]` / `+` / `-` format.

    [edit forwarding-options sampling input]
    -    rate 1;
    +    rate 100;
    [edit forwarding-options family inet output]
    +    flow-server 127.0.0.1 {
    +        port 2055;
    +    }

Each changed statement is printed under a header naming the hierarchy that holds it; consecutive
changes under one hierarchy share the header. A changed leaf is its old line then its new line; a
statement added or removed is printed whole. Nothing is printed when the trees are equal.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flowd.syntax.junos import Key, KeyPath, curly_lines, is_keyed_list

_MARK_PAD = "   "  # after the + or -, so a first-level statement starts at column 4 as in Junos


def _statement(key: Key, value: Any, path: KeyPath) -> tuple[KeyPath, list[str]]:
    """Where the statement is printed and its lines; a list entry prints under its list's keyword, as Junos
    does (`[edit ... output]` / `+   flow-server 127.0.0.2 {`)."""
    if path and is_keyed_list(path):
        entry: Any = key if value is True else {key: value}
        return path[:-1], curly_lines({path[-1]: entry}, path[:-1], 0)
    return path, curly_lines({key: value}, path, 0)


def _marked(mark: str, key: Key, value: Any, path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    where, lines = _statement(key, value, path)
    for line in lines:
        yield where, f"{mark}{_MARK_PAD}{line}"


def _changes(old: Mapping[Key, Any], new: Mapping[Key, Any], path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    for key, value in old.items():
        if key not in new:
            yield from _marked("-", key, value, path)
    for key, value in new.items():
        if key not in old:
            yield from _marked("+", key, value, path)
            continue
        before = old[key]
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            yield from _changes(before, value, path + (key,))
        elif before != value or type(before) is not type(value):
            yield from _marked("-", key, before, path)
            yield from _marked("+", key, value, path)


def compare(old: Mapping[Key, Any], new: Mapping[Key, Any], base: KeyPath = ()) -> list[str]:
    """The Junos compare lines turning ``old`` into ``new`` (both trees at ``base``)."""
    out: list[str] = []
    header: KeyPath | None = None
    for path, line in _changes(old, new, base):
        if path != header:
            out.append("[edit" + "".join(f" {k}" for k in path) + "]")
            header = path
        out.append(line)
    return out
