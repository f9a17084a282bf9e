"""Candidate configuration editing: `set`, `delete` and `edit`-level lookups on a nested statement tree.

The tree is the nested dict the curly and YAML parsers give (flowd.syntax.junos); a `Resolved` path
(flowd.syntax.schema.walk) says which keys are containers, list entries, leaves or flags. Editing
expands the short forms the parsers accept on the way down (`version9;` → a block, `family inet;` → one
entry, a YAML list of prefixes → entries), so every edit works on either syntax's tree.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from flowd.syntax.junos import is_keyed_list
from flowd.syntax.schema import Key, KeyPath, Node, Resolved

Tree = dict[Key, Any]


def _block(parent: Tree, key: Key, *, entries: bool) -> Tree:
    """``parent[key]`` as a dict, created or expanded from a short form."""
    value = parent.get(key)
    if isinstance(value, dict):
        return value
    new: Tree
    if entries and isinstance(value, list):
        new = {item: True for item in value}
    elif entries and value is not None and value is not True:
        new = {value: True}
    else:
        new = {}
    parent[key] = new
    return new


def _parent(tree: Tree, resolved: Resolved) -> Tree:
    """The dict that holds the last step's key, creating the blocks on the way."""
    node = tree
    for step in resolved.steps[:-1]:
        node = _block(node, step.key, entries=step.node["kind"] == "list")
    return node


def set_statement(tree: Tree, resolved: Resolved) -> None:
    """Apply a `set` (in place): a leaf's value, a leaf-list's new values, a flag, an entry or a block."""
    if not resolved.steps:
        return
    parent = _parent(tree, resolved)
    last = resolved.steps[-1]
    kind = last.node["kind"]
    if kind == "leaf":
        parent[last.key] = resolved.values[0]
    elif kind == "leaf-list":
        old = parent.get(last.key)
        items = list(old) if isinstance(old, list) else ([] if old is None else [old])
        items.extend(v for v in resolved.values if v not in items)
        parent[last.key] = items
    elif kind == "flag":
        if not isinstance(parent.get(last.key), dict):
            parent[last.key] = True
    else:  # a container, a list keyword, or a list entry with a body
        _block(parent, last.key, entries=kind == "list")


def _prune(tree: Tree, resolved: Resolved, depth: int) -> None:
    """Remove containers left empty by a delete, innermost first (list entries stay)."""
    for end in range(depth, 0, -1):
        step = resolved.steps[end - 1]
        if step.node["kind"] not in ("container", "list"):
            return
        holder = lookup(tree, resolved.path[: end - 1])
        if not isinstance(holder, dict) or holder.get(step.key) != {}:
            return
        if end >= 2 and resolved.steps[end - 2].node["kind"] == "list":
            return  # an entry (`flow-server A {}`) is a statement of its own
        del holder[step.key]


def delete_statement(tree: Tree, resolved: Resolved) -> bool:
    """Apply a `delete` (in place); False when the statement is not in the tree (Junos: `warning: statement not found`)."""
    path = resolved.path
    if not path:
        had = bool(tree)
        tree.clear()
        return had
    holder = lookup(tree, path[:-1])
    last = path[-1]
    if not isinstance(holder, dict) or last not in holder:
        # `family inet;` and YAML lists keep entries outside a dict: expand, then look again.
        parent = lookup(tree, path[:-2]) if len(path) >= 2 else None
        if isinstance(parent, dict) and len(resolved.steps) >= 2 and resolved.steps[-2].node["kind"] == "list":
            entries = _block(parent, path[-2], entries=True)
            if last in entries:
                del entries[last]
                _prune(tree, resolved, len(path) - 1)
                return True
        return False
    if resolved.values:
        old = holder[last]
        items = list(old) if isinstance(old, list) else [old]
        kept = [v for v in items if v not in resolved.values]
        if len(kept) == len(items):
            return False
        if kept:
            holder[last] = kept
            return True
    del holder[last]
    _prune(tree, resolved, len(path) - 1)
    return True


def lookup(tree: Mapping[Key, Any], path: KeyPath) -> Any:
    """The subtree at ``path`` (None when absent); a one-line entry (`family inet;`) reads as an empty block."""
    node: Any = tree
    for key in path:
        if isinstance(node, Mapping) and key in node:
            node = node[key]
        elif node == key or (isinstance(node, list) and key in node):
            node = True
        else:
            return None
        if node is True:
            node = {}
    return node


def shown(tree: Mapping[Key, Any], resolved: Resolved) -> tuple[KeyPath, Tree]:
    """What `show` prints for a resolved statement: where the statements sit and the statements. A hierarchy,
    list or entry gives its contents (empty when nothing is configured there); one statement (`... input
    rate`) gives itself at its parent (`rate 1;`)."""
    path = resolved.path
    if path and resolved.node["kind"] in ("leaf", "leaf-list", "flag"):
        holder = lookup(tree, path[:-1])
        found = holder.get(path[-1]) if isinstance(holder, Mapping) else None
        return path[:-1], {} if found is None else {path[-1]: copy.deepcopy(found)}
    found = lookup(tree, path)
    return path, copy.deepcopy(found) if isinstance(found, dict) else {}


def wrap(path: KeyPath, tree: Any) -> Any:
    """``tree`` (found at ``path``) inside its keys, as a whole configuration (`| display set` needs the path)."""
    for key in reversed(path):
        tree = {key: tree}
    return tree


def normalize(schema: Node, tree: Mapping[Key, Any]) -> Tree:
    """One spelling per meaning, so that trees compare equal when they configure the same thing.

    An empty block or entry is the flag form ``True`` (`name;`), a leaf-list of one value that value
    (`protocol tcp;`); a keyed list (junos.KEYED_LISTS) holding one plain entry is the one-line form
    (`family inet;`, `address 10.1.1.1/20;`), as Junos prints it, other lists a dict of entries (YAML
    lists expanded). Statements the schema does not know are kept as they are (the validator reports them).
    """
    return _normalize(schema, tree, ())


def _normalize(node: Node, tree: Mapping[Key, Any], path: KeyPath) -> Tree:
    out: Tree = {}
    children = node.get("children", {}) if node["kind"] == "container" else {}
    for key, value in tree.items():
        child = children.get(key) if isinstance(key, str) else None
        here = path + (key,)
        if child is None:
            out[key] = copy.deepcopy(value)
        elif child["kind"] == "list":
            out[key] = _entries(child, value, here)
        elif child["kind"] == "container" and isinstance(value, Mapping):
            out[key] = _normalize(child, value, here) or True
        elif child["kind"] == "leaf-list" and isinstance(value, list) and len(value) == 1:
            out[key] = value[0]  # Junos prints one value without brackets
        else:
            out[key] = copy.deepcopy(value)
    return out


def _entries(node: Node, value: Any, path: KeyPath) -> Any:
    if isinstance(value, list):
        value = {item: True for item in value}
    elif not isinstance(value, Mapping):
        value = {value: True}
    body = node["body"]
    entries: Tree = {}
    for name, entry in value.items():
        if isinstance(entry, Mapping) and body is not None and body["kind"] == "container":
            entries[name] = _normalize(body, entry, path + (name,)) or True
        else:
            entries[name] = True if entry == {} else copy.deepcopy(entry)
    if len(entries) == 1 and is_keyed_list(path):
        (name, entry), = entries.items()
        if entry is True:
            return name
    return entries
