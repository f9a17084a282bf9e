"""Reading values out of a parsed configuration tree: one `Checker` turns each failure into a `ConfigError` at its line."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from typing import Any, Final, NoReturn

from flowd.config.schema import PATH_MAX, SOCKET_PATH_MAX, ConfigError, Prefix
from flowd.syntax.junos import Key, KeyPath
from flowd.syntax.schema import Node, node_at

NAME_RE: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
IFNAME_RE: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
SERVICE_IF_RE: Final = re.compile(r"(?:sp|ms|mo)-[0-9]+/[0-9]+/[0-9]+")
LINUX_IF_RE: Final = re.compile(r"[^/\s:]{1,15}")
GROUP_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_DURATION: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smh]?)")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600}

# --- validation -------------------------------------------------------------------------------------


def describe(value: Any) -> str:
    """A value as error messages show it after ``got``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a flag ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a block { ... }"
    if isinstance(value, list):
        return "a list [ ... ]"
    if isinstance(value, str):
        plain = value and value == value.strip() and " " not in value and not re.fullmatch(r"-?[0-9.]+", value)
        return value if plain else repr(value)  # quoted when it would read as a number
    return str(value)


def dotted(path: KeyPath) -> str:
    return ".".join(str(k) for k in path)


class Checker:
    """Reads values out of the tree; every failure becomes a `ConfigError` at the path's line.

    ``statements`` is the statement tree (flowd.config.statements): the statements each block allows.
    """

    def __init__(self, source: str, lines: Mapping[KeyPath, int], statements: Node) -> None:
        self.source = source
        self.lines = lines
        self.statements = statements

    def line(self, path: KeyPath) -> int | None:
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def fail(self, path: KeyPath, message: str) -> NoReturn:
        raise ConfigError(self.source, self.line(path), path, message)

    def keywords(self, path: KeyPath) -> list[str] | None:
        """The statements the tree allows in the block at ``path``; None for a list's entries (any names)."""
        node = node_at(self.statements, path)
        return None if node["kind"] == "list" else list(node.get("children", ()))

    def block(self, node: Any, path: KeyPath, *, flag_ok: bool = False, omit: Sequence[str] = ()) -> Mapping[Key, Any]:
        """A block of statements; statements the tree does not allow there (or ``omit``) are errors."""
        if node is True and flag_ok:
            return {}
        if not isinstance(node, Mapping):
            self.fail(path, f"expected a block of statements, got {describe(node)}")
        allowed = self.keywords(path)
        if allowed is not None:
            allowed = [k for k in allowed if k not in omit]
            for key in node:
                if key not in allowed:
                    hint = f"expected one of: {', '.join(allowed)}" if allowed else "this block takes no statements"
                    self.fail(path + (key,), f"unknown statement ({hint})")
        return node

    def entries(self, node: Any, path: KeyPath) -> list[tuple[Key, Any]]:
        """Entries of a keyed list (`flow-server A {...}`); the one-line form `family inet;` is one entry."""
        if isinstance(node, Mapping):
            return list(node.items())
        if isinstance(node, (str, int)) and not isinstance(node, bool):
            return [(node, True)]
        self.fail(path, f"expected NAME {{ ... }} entries, got {describe(node)}")

    def integer(self, node: Any, path: KeyPath, rng: tuple[int, int]) -> int:
        if isinstance(node, bool) or not isinstance(node, int):
            self.fail(path, f"expected an integer, got {describe(node)}")
        lo, hi = rng
        if not lo <= node <= hi:
            self.fail(path, f"expected {lo}..{hi}, got {node}")
        return node

    def duration(self, node: Any, path: KeyPath, rng: tuple[int, int]) -> float:
        seconds: float | None = None
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            seconds = float(node)
        elif isinstance(node, str) and (m := _DURATION.fullmatch(node)):
            seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        if seconds is None:
            self.fail(path, f"expected a duration in seconds (60, 30s, 5m, 1h), got {describe(node)}")
        lo, hi = rng
        if not lo <= seconds <= hi:
            self.fail(path, f"expected {lo}..{hi}, got {describe(node)}")
        return seconds

    def flag(self, node: Any, path: KeyPath) -> bool:
        if node is not True:
            self.fail(path, f"expected a flag (true; delete the statement to turn it off), got {describe(node)}")
        return True

    def name(self, node: Any, path: KeyPath, what: str) -> str:
        if isinstance(node, int) and not isinstance(node, bool) and node >= 0:
            return str(node)
        if not isinstance(node, str) or not NAME_RE.fullmatch(node):
            self.fail(path, f"expected a {what} name (letters, digits, '_', '-', '.', ':'), got {describe(node)}")
        return node

    def address(self, node: Any, path: KeyPath) -> str:
        try:
            if not isinstance(node, str):
                raise ValueError
            return str(ipaddress.ip_address(node))
        except ValueError:
            self.fail(path, f"expected an IPv4 or IPv6 address, got {describe(node)}")

    def prefix(self, node: Any, path: KeyPath, family: str) -> Prefix:
        example = "10.0.0.0/8" if family == "inet" else "2001:db8::/32"
        kind = "IPv4" if family == "inet" else "IPv6"
        if isinstance(node, str) and node.split()[1:] == ["except"]:
            self.fail(path, f"'except' entries are not supported ({node})")
        if not isinstance(node, str):
            self.fail(path, f"expected an {kind} prefix such as {example}, got {describe(node)}")
        try:
            net = ipaddress.ip_network(node)
        except ValueError:
            try:
                loose = ipaddress.ip_network(node, strict=False)
            except ValueError:
                self.fail(path, f"expected an {kind} prefix such as {example}, got {describe(node)}")
            self.fail(path, f"{node} has host bits set (did you mean {loose}?)")
        if net.version != (4 if family == "inet" else 6):
            self.fail(path, f"expected an {kind} prefix (family {family}), got {node}")
        return net

    def read_leaves(self, cls: type, block: Mapping[Key, Any], path: KeyPath) -> dict[str, Any]:
        """Values of the simple leaf statements of ``cls`` present in ``block`` (by field metadata)."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            key = f.metadata.get("key")
            if key is None or key not in block:
                continue
            reader = _READERS[f.metadata["kind"]]
            out[f.name] = reader(self, block[key], path + (key,), f.metadata)
        return out


def _read_socket(c: Checker, node: Any, path: KeyPath, meta: Mapping[str, Any]) -> str:
    if not isinstance(node, str) or not node or "\0" in node:
        c.fail(path, f"expected a socket path, got {describe(node)}")
    if len(node.encode()) > SOCKET_PATH_MAX:
        c.fail(path, f"socket path is {len(node.encode())} bytes; "
                     f"at most {SOCKET_PATH_MAX} fit in a Unix socket address")
    return node


def _read_path(c: Checker, node: Any, path: KeyPath, meta: Mapping[str, Any]) -> str:
    if not isinstance(node, str) or not node or "\0" in node or len(node.encode()) > PATH_MAX:
        c.fail(path, f"expected a file path (at most {PATH_MAX} bytes), got {describe(node)}")
    return node


def _read_group(c: Checker, node: Any, path: KeyPath, meta: Mapping[str, Any]) -> str:
    if not isinstance(node, str) or not GROUP_RE.fullmatch(node):
        c.fail(path, f"expected a group name, got {describe(node)}")
    return node


def _read_text(c: Checker, node: Any, path: KeyPath, meta: Mapping[str, Any]) -> str:
    if not isinstance(node, str) or not node.strip() or "\0" in node:
        c.fail(path, f"expected a non-empty string, got {describe(node)}")
    return node


_READERS: Final[Mapping[str, Callable[[Checker, Any, KeyPath, Mapping[str, Any]], Any]]] = {
    "integer": lambda c, node, path, meta: c.integer(node, path, meta["range"]),
    "duration": lambda c, node, path, meta: c.duration(node, path, meta["range"]),
    "address": lambda c, node, path, meta: c.address(node, path),
    "socket": _read_socket,
    "group": _read_group,
    "path": _read_path,
    "text": _read_text,
}
