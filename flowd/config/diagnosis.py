"""`flowd --check-config`: every error of a configuration file, in file order, one `FILE:LINE: path: message` each.

The validator stops at the first error it meets, and it meets them in its own order (templates,
filters, sampling, interfaces, flowd), not the file's. To find them all, the statement each error
names is taken out of the tree and the tree validated again, until it validates or `MAX_ERRORS`
are found; the errors are then sorted by line. An error that only follows from a removal (a block
that now lacks what was removed from it, a reference to a removed name) is not reported again.
A syntax error stops at once: the rest of the file cannot be read reliably.
"""

from __future__ import annotations

import copy
import re
import sys
from typing import Any, Final

from flowd.config.build import build_config
from flowd.config.loader import load_tree
from flowd.config.schema import DEFAULT_SOURCE, ConfigError
from flowd.syntax.junos import Key, KeyPath

MAX_ERRORS: Final = 20
# Statements whose entries are named (`filter NAME`, `template NAME`): other statements refer to the names.
_NAMED: Final = frozenset({"filter", "template", "term", "flow-server", "interface", "interfaces", "unit"})


def every_error(path: str | None, limit: int = MAX_ERRORS) -> list[ConfigError]:
    """The configuration file's errors in file order (at most ``limit``); empty when it is valid."""
    try:
        parsed = load_tree(path)
    except ConfigError as exc:
        return [exc]
    tree: dict[Key, Any] = copy.deepcopy(parsed.tree)
    removed: list[KeyPath] = []
    found: list[ConfigError] = []
    while len(found) < limit:
        try:
            build_config(tree, path or DEFAULT_SOURCE, parsed.lines)
            break
        except ConfigError as exc:
            where = tuple(exc.path)
            if not _follows_from(exc, where, removed):
                found.append(exc)
            taken = _remove(tree, where)
            if taken is None or taken in removed:
                break  # nothing left to take out: the error is about the file as a whole
            removed.append(taken)
    return sorted(found, key=lambda e: (e.line is None, e.line or 0))


def _follows_from(exc: ConfigError, where: KeyPath, removed: list[KeyPath]) -> bool:
    """The error is a consequence of a statement already taken out (and reported)."""
    for gone in removed:
        if gone[: len(where)] == where:
            return True  # the statement taken out, now missing, or a block that lost a statement
        named = len(gone) >= 2 and gone[-2] in _NAMED
        if named and re.search(rf"(?<![\w-]){re.escape(str(gone[-1]))}(?![\w-])", exc.message):
            return True  # refers to a named entry that was taken out
    return False


def _remove(tree: dict[Key, Any], where: KeyPath) -> KeyPath | None:
    """Take the deepest statement on ``where`` that exists out of the tree; return its path."""
    node: Any = tree
    depth = 0
    for key in where:
        if not isinstance(node, dict) or key not in node:
            break
        node = node[key]
        depth += 1
    if depth == 0:
        return None
    parent: Any = tree
    for key in where[: depth - 1]:
        parent = parent[key]
    del parent[where[depth - 1]]
    return where[:depth]


def check_config_main(path: str | None, limit: int = MAX_ERRORS) -> int:
    """Print Junos's success line and return 0, or every error (file order, at most ``limit``) and 1."""
    errors = every_error(path, limit)
    for error in errors:
        print(error, file=sys.stderr)
    if len(errors) >= limit:
        print(f"flowd: stopped after {limit} errors", file=sys.stderr)
    if errors:
        return 1
    print("configuration check succeeds")
    return 0
