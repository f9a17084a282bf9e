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

from flowd.syntax.junos import Key, KeyPath, curly_lines

_MARK_PAD = "   "  # after the + or -, so a first-level statement starts at column 4 as in Junos


def _statement(key: Key, value: Any, path: KeyPath) -> list[str]:
    return curly_lines({key: value}, path, 0)


def _changes(old: Mapping[Key, Any], new: Mapping[Key, Any], path: KeyPath) -> Iterator[tuple[KeyPath, str]]:
    for key, value in old.items():
        if key not in new:
            for line in _statement(key, value, path):
                yield path, f"-{_MARK_PAD}{line}"
    for key, value in new.items():
        if key not in old:
            for line in _statement(key, value, path):
                yield path, f"+{_MARK_PAD}{line}"
            continue
        before = old[key]
        if isinstance(before, Mapping) and isinstance(value, Mapping):
            yield from _changes(before, value, path + (key,))
        elif before != value or type(before) is not type(value):
            for line in _statement(key, before, path):
                yield path, f"-{_MARK_PAD}{line}"
            for line in _statement(key, value, path):
                yield path, f"+{_MARK_PAD}{line}"


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
