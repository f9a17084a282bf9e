"""`show configuration`: the daemon's nested configuration object as Junos curly-brace text or `set` lines.

The printing is flowd.syntax.junos's (pure, shared with the daemon's parser, so the text always reads back
into the same tree). JSON turned integer keys such as ``unit 0`` into strings; they are turned back
first, so they print bare while string *values* that look like numbers stay quoted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from flowd.syntax.junos import to_curly as _to_curly
from flowd.syntax.junos import to_set as _to_set

_INT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")


def revive(node: Any) -> Any:
    """Undo what JSON did to the tree's integer keys."""
    if isinstance(node, Mapping):
        return {(int(k) if isinstance(k, str) and _INT.fullmatch(k) else k): revive(v) for k, v in node.items()}
    if isinstance(node, list):
        return [revive(v) for v in node]
    return node


def to_curly(tree: Mapping[str, Any]) -> list[str]:
    """The configuration as `show configuration` prints it (4-space indent)."""
    return _to_curly(revive(tree)).splitlines()


def to_set(tree: Mapping[str, Any]) -> list[str]:
    """The configuration as ``| display set`` prints it: one `set` line per leaf (per leaf-list value)."""
    return _to_set(revive(tree))


def _config(result: Mapping[str, Any]) -> Mapping[str, Any]:
    config = result["config"]
    if not isinstance(config, Mapping):
        raise TypeError("'config' is not an object")
    return config


def render_configuration(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    return to_curly(_config(result))


def render_configuration_set(result: Mapping[str, Any]) -> list[str]:
    return to_set(_config(result))
