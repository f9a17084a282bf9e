"""The names a configuration defines (filters, counters, templates, flow servers...), for Tab and `?`.

A name source is a statement path pattern: keywords, ``*`` for any list entry, and ``{param}`` for the
entry a command's earlier option named (``show firewall filter F counter <Tab>`` offers F's counters
only; any filter's when none was named). The names at a pattern are the entries of the list it ends on,
or the values of the leaf it ends on (``then count NAME``). `configured` collects them from a tree once
per command line; `names` looks them up. `REFERENCES` says which leaves take a name defined elsewhere
(`version9 template NAME` names a `services flow-monitoring version9 template`), so configuration
mode offers the names of the candidate there too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from flowd.syntax.schema import (
    Key,
    KeyPath,
    Node,
    StatementError,
    candidates,
    show_path,
    walk,
    walk_several,
    word_value,
)

NameHelp = tuple[str, str]

FILTERS: Final = ("firewall family * filter",)
COUNTERS: Final = ("firewall family * filter {filter} term * then count",)
V9_TEMPLATES: Final = ("services flow-monitoring version9 template",)
IPFIX_TEMPLATES: Final = ("services flow-monitoring version-ipfix template",)
TEMPLATES: Final = V9_TEMPLATES + IPFIX_TEMPLATES
SNMP_INDEXES: Final = ("flowd routing snmp-index *",)  # the index configured for each Linux interface

_FLOW_SERVERS: Final = ("forwarding-options family * output flow-server *",
                        "forwarding-options sampling family * output flow-server *")
# A leaf (pattern) whose value names an entry defined elsewhere (name sources).
REFERENCES: Final[Mapping[str, tuple[str, ...]]] = {
    **{f"{server} version9 template": V9_TEMPLATES for server in _FLOW_SERVERS},
    **{f"{server} version-ipfix template": IPFIX_TEMPLATES for server in _FLOW_SERVERS},
    "interfaces * unit * family * filter input": FILTERS,
    "interfaces * unit * family * filter output": FILTERS,
}

Configured = dict[KeyPath, list[Key]]


def configured(schema: Node, tree: Any) -> Configured:
    """Every list path of ``tree`` with its entries, and every leaf with its value."""
    out: Configured = {}
    _collect(schema, tree, (), out)
    return out


def _key(key: Any) -> Key:
    return word_value(key) if isinstance(key, str) else key


def _collect(node: Node, tree: Any, path: KeyPath, out: Configured) -> None:
    kind = node["kind"]
    if kind == "leaf" and not isinstance(tree, (Mapping, list, bool)):
        out[path] = [_key(tree)]
    if not isinstance(tree, Mapping):
        return
    if kind == "list":
        out[path] = [_key(k) for k in tree]
        body = node["body"]
        if body is not None:
            for key, entry in tree.items():
                _collect(body, entry, path + (_key(key),), out)
    elif kind == "container":
        for key, child in node["children"].items():
            if key in tree:
                _collect(child, tree[key], path + (key,), out)


def _matches(pattern: Sequence[str], path: KeyPath, params: Mapping[str, Any]) -> bool:
    if len(pattern) != len(path):
        return False
    for want, key in zip(pattern, path, strict=True):
        if want.startswith("{") and want.endswith("}"):
            given = params.get(want[1:-1].replace("-", "_"))
            if given is not None and str(given) != str(key):
                return False
        elif want != "*" and want != str(key):
            return False
    return True


def names(known: Configured, patterns: Sequence[str], params: Mapping[str, Any] | None = None
          ) -> list[tuple[str, str]]:
    """The names configured at any of ``patterns`` (in configuration order, each once), each with the last key
    of where it was found (a list's keyword; for a value under an entry, the entry: `eth1` of `eth1 12;`)."""
    found: dict[str, str] = {}
    for pattern in patterns:
        words = tuple(pattern.split())
        for path, values in known.items():
            if _matches(words, path, params or {}):
                for value in values:
                    found.setdefault(str(value), str(path[-1]) if path else "")
    return list(found.items())


def references(path: KeyPath) -> tuple[str, ...]:
    """The name sources of the leaf at ``path`` (none for a leaf that names nothing)."""
    return next((sources for leaf, sources in REFERENCES.items() if _matches(leaf.split(), path, {})), ())


class Configuration:
    """A statement tree and the names of one configuration: what Tab and `?` offer at a statement's words."""

    def __init__(self, schema: Node, tree: Any) -> None:
        self.schema = schema
        self.known = configured(schema, tree)

    def statements(self, words: Sequence[str], base: KeyPath = (), *, several: bool = False) -> list[NameHelp]:
        """``(word or <placeholder>, help)`` pairs that may follow ``words`` below ``base``, configured names
        included (a list's entries; the names a referring leaf may take). ``several``: `set`'s words, which
        may name several statements of one level (`walk_several`)."""
        found = candidates(self.schema, base, words, known=self.known, several=several)
        try:
            done = walk_several(self.schema, base, words, values=False)[-1] if several else \
                walk(self.schema, base, words, values=False)
        except StatementError:
            return found
        if done.steps and not done.values and done.node["kind"] == "leaf":
            found += [(name, done.node["help"]) for name, _ in names(self.known, references(done.path))
                      if name not in {w for w, _ in found}]
        return found

    def error(self, words: Sequence[str], base: KeyPath = ()) -> StatementError | None:
        """Why ``words`` name no statement to show (None when they do)."""
        try:
            show_path(self.schema, base, words)
        except StatementError as exc:
            return exc
        return None

    def names(self, patterns: Sequence[str], params: Mapping[str, Any] | None = None) -> list[tuple[str, str]]:
        return names(self.known, patterns, params)
