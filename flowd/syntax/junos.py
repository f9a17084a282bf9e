"""Junos curly-brace configuration text ⇄ the nested dict YAML gives: tokenizer, parser, printers.

Syntax accepted (what `show configuration` prints and `load` reads):

    name;                 flag statement          -> {"name": True}
    name value;           leaf                    -> {"name": value}
    a b value;            nested leaf             -> {"a": {"b": value}}
    name [ v1 v2 ];       leaf-list               -> {"name": [v1, v2]}
    a b { ... }           container / list entry  -> {"a": {"b": {...}}}
    # to end of line,  /* ... */,  "quoted strings" (backslash escapes \\" and \\\\)

Words that look like YAML numbers (``60``, ``-1``, ``1.5``) become int/float, so a curly file and
the YAML file of the same meaning give equal trees; quoted words stay strings. A container statement
repeated merges into the first one (``flow-server A {..} flow-server B {..}``); a leaf repeated with a
different value is an error, except at the list positions of ``KEYED_LISTS`` (``address A; address B;``),
where the entries are collected. ``inactive:``/``protect:`` tags are rejected.

Every statement's key path gets the line it first appears on (`ParsedTree.lines`), so validation
errors can name a line. `to_curly` and `to_set` print a tree the way `show configuration` and
``| display set`` do; ``parse(to_curly(tree)).tree == tree`` for every tree they accept.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

Key = str | int | float
KeyPath = tuple[Key, ...]

# Keyed lists (several entries under one statement name): printed `name KEY { ... }` by `to_curly`,
# and `name A; name B;` collects entries here instead of failing as a duplicate leaf. "*" = any key.
KEYED_LISTS: Final[tuple[tuple[str, ...], ...]] = (
    ("interfaces", "*", "unit"),
    ("interfaces", "*", "unit", "*", "family"),
    ("interfaces", "*", "unit", "*", "family", "*", "address"),
    ("forwarding-options", "family"),
    ("forwarding-options", "family", "*", "output", "flow-server"),
    ("forwarding-options", "family", "*", "output", "interface"),
    ("forwarding-options", "sampling", "family"),
    ("forwarding-options", "sampling", "family", "*", "output", "flow-server"),
    ("forwarding-options", "sampling", "family", "*", "output", "interface"),
    ("firewall", "family"),
    ("firewall", "family", "*", "filter"),
    ("firewall", "family", "*", "filter", "*", "term"),
    ("firewall", "family", "*", "filter", "*", "term", "*", "from", "source-address"),
    ("firewall", "family", "*", "filter", "*", "term", "*", "from", "destination-address"),
    ("firewall", "family", "*", "filter", "*", "term", "*", "from", "address"),
    ("services", "flow-monitoring", "version9", "template"),
    ("services", "flow-monitoring", "version-ipfix", "template"),
    ("flowd", "routing", "bgp", "neighbor"),
    ("flowd", "routing", "prefix-file"),
)

_INT: Final = re.compile(r"-?(?:0|[1-9][0-9]*)")
MAX_DEPTH: Final = 64  # statements nested in one another (flowd's deepest is under 15)
MAX_DIGITS: Final = 20  # digits of a number (a 64-bit value has at most 20)
_FLOAT: Final = re.compile(r"-?[0-9]+\.[0-9]+")
_SPECIAL: Final = frozenset('{};[]"')
_NEEDS_QUOTES: Final = re.compile(r'[\s{};\[\]"#\\]|^$|^/\*')
_TAGS: Final = ("inactive:", "protect:", "replace:", "delete:", "active:")
_INDENT: Final = "    "


class JunosSyntaxError(Exception):
    """Bad curly-brace syntax: ``line`` (1-based), the enclosing key ``path`` and a one-line message."""

    def __init__(self, line: int, message: str, path: KeyPath = ()) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message
        self.path = path


@dataclass(frozen=True, slots=True)
class ParsedTree:
    """A configuration tree plus the line where each key path first appears."""

    tree: dict[Key, Any]
    lines: dict[KeyPath, int]


class _Kind(Enum):
    WORD = "word"
    STRING = "string"
    PUNCT = "punct"


@dataclass(frozen=True, slots=True)
class _Token:
    kind: _Kind
    text: str
    line: int

    @property
    def value(self) -> Key:
        """The token as a tree key or leaf value (numbers only for unquoted words)."""
        if self.kind is _Kind.WORD:
            if _INT.fullmatch(self.text):
                if (digits := len(self.text.lstrip("-"))) > MAX_DIGITS:
                    raise JunosSyntaxError(self.line, f"a number of {digits} digits; at most {MAX_DIGITS} are "
                                           "accepted")
                return int(self.text)
            if _FLOAT.fullmatch(self.text):
                return float(self.text)
        return self.text


def _tokenize(text: str) -> list[_Token]:
    """Split text into words, quoted strings and the punctuation ``{ } ; [ ]``; drop comments."""
    out: list[_Token] = []
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
        elif c.isspace():
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise JunosSyntaxError(line, "unterminated /* comment")
            line += text.count("\n", i, end)
            i = end + 2
        elif c in "{};[]":
            out.append(_Token(_Kind.PUNCT, c, line))
            i += 1
        elif c == '"':
            start_line, j, chars = line, i + 1, []
            while True:
                if j >= n:
                    raise JunosSyntaxError(start_line, "unterminated quoted string")
                ch = text[j]
                if ch == '"':
                    break
                if ch == "\\" and j + 1 < n:
                    j += 1
                    ch = text[j]
                if ch == "\n":
                    line += 1
                chars.append(ch)
                j += 1
            out.append(_Token(_Kind.STRING, "".join(chars), start_line))
            i = j + 1
        else:
            j = i
            while j < n and not text[j].isspace() and text[j] not in _SPECIAL:
                j += 1
            out.append(_Token(_Kind.WORD, text[i:j], line))
            i = j
    return out


def is_keyed_list(path: Sequence[Key]) -> bool:
    """Whether the statement at ``path`` holds list entries (see ``KEYED_LISTS``)."""
    return any(len(p) == len(path) and all(q == "*" or q == str(k) for q, k in zip(p, path, strict=True))
               for p in KEYED_LISTS)


def _show(path: Sequence[Key]) -> str:
    return " ".join(str(k) for k in path)


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.lines: dict[KeyPath, int] = {}

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def block(self, node: dict[Key, Any], path: KeyPath, opener: _Token | None, title: str) -> None:
        """Statements up to the matching ``}`` (or end of text at the top level)."""
        while True:
            tok = self.peek()
            if tok is None:
                if opener is not None:
                    raise JunosSyntaxError(opener.line, f"missing '}}' to close '{title} {{' (unbalanced braces)",
                                           path)
                return
            if tok.kind is _Kind.PUNCT and tok.text == "}":
                if opener is None:
                    raise JunosSyntaxError(tok.line, "unexpected '}' (unbalanced braces)", path)
                self.take()
                return
            self.statement(node, path)

    def statement(self, node: dict[Key, Any], path: KeyPath) -> None:
        words: list[_Token] = []
        while (tok := self.peek()) is not None and tok.kind is not _Kind.PUNCT:
            if words and tok.line != words[-1].line:
                # Junos statements are one line each: a word on a new line means a lost ';'.
                raise JunosSyntaxError(words[-1].line, f"missing ';' after '{_words(words)}'", path + (words[0].value,))
            if tok.kind is _Kind.WORD and tok.text in _TAGS:
                raise JunosSyntaxError(tok.line, f"'{tok.text}' tags are not supported; delete the tag "
                                       "(or the whole statement if it should stay inactive)", path)
            words.append(self.take())
        if not words:
            assert tok is not None
            raise JunosSyntaxError(tok.line, f"unexpected '{tok.text}'", path)
        keys = tuple(w.value for w in words)
        where = path + keys[:1]
        if tok is None:
            raise JunosSyntaxError(words[-1].line, f"missing ';' after '{_words(words)}'", where)
        line = words[0].line
        if tok.text == ";":
            self.take()
            if len(keys) == 1:
                self.put(node, path, keys, True, line)
            else:
                self.put(node, path, keys[:-1], keys[-1], line)
        elif tok.text == "[":
            self.take()
            items: list[Key] = []
            while (item := self.peek()) is not None and item.kind is not _Kind.PUNCT:
                items.append(self.take().value)
            if item is None or item.text != "]":
                raise JunosSyntaxError(item.line if item else words[-1].line,
                                       f"missing ']' to close the list of '{_words(words)}'", where)
            self.take()
            end = self.peek()
            if end is None or end.text != ";":
                raise JunosSyntaxError(item.line, f"missing ';' after '{_words(words)} [ ... ]'", where)
            self.take()
            self.put(node, path, keys, items, line)
        elif tok.text == "{":
            if len(path) + len(keys) > MAX_DEPTH:
                raise JunosSyntaxError(line, f"nested deeper than {MAX_DEPTH} levels", path[:2])
            opener = self.take()
            child = self.put(node, path, keys, {}, line)
            self.block(child, path + keys, opener, _words(words))
        else:
            raise JunosSyntaxError(words[-1].line, f"missing ';' after '{_words(words)}'", where)

    def put(self, node: dict[Key, Any], path: KeyPath, keys: KeyPath, value: Any, line: int) -> dict[Key, Any]:
        """Insert ``keys -> value`` below ``node``; return the container when ``value`` is a dict."""
        for key in keys[:-1]:
            node = self._container(node, path, key, line)
            path += (key,)
        last = keys[-1]
        here = path + (last,)
        if isinstance(value, dict):
            return self._container(node, path, last, line)
        if last not in node:
            node[last] = value
            self.lines[here] = line
            return node
        old = node[last]
        if old == value and type(old) is type(value):
            return node
        if is_keyed_list(here) and not isinstance(value, list):
            entries = self._container(node, path, last, line)
            self._add_entry(entries, here, value, line)
            return node
        first = self.lines.get(here, line)
        raise JunosSyntaxError(line, f"'{_show(keys)}' is already set on line {first}", here)

    def _container(self, node: dict[Key, Any], path: KeyPath, key: Key, line: int) -> dict[Key, Any]:
        here = path + (key,)
        old = node.get(key)
        if isinstance(old, dict):
            return old
        new: dict[Key, Any] = {}
        if old is None:
            node[key] = new
            self.lines[here] = line
            return new
        if is_keyed_list(here) and not isinstance(old, list):
            # `address A;` seen before `address B { ... }`: turn the leaf into the first entry.
            node[key] = new
            self._add_entry(new, here, old, self.lines[here])
            return new
        first = self.lines.get(here, line)
        raise JunosSyntaxError(line, f"'{key}' was given a value on line {first} and cannot also be a block", here)

    def _add_entry(self, entries: dict[Key, Any], path: KeyPath, entry: Key | bool, line: int) -> None:
        if isinstance(entry, bool):
            raise JunosSyntaxError(line, f"'{path[-1]}' needs a name here", path)
        entries.setdefault(entry, True)
        self.lines.setdefault(path + (entry,), line)


def _words(words: Sequence[_Token]) -> str:
    return " ".join(w.text if w.kind is _Kind.WORD else f'"{w.text}"' for w in words)


def parse(text: str) -> ParsedTree:
    """Parse Junos curly-brace configuration text; raise `JunosSyntaxError` on bad syntax."""
    parser = _Parser(_tokenize(text))
    tree: dict[Key, Any] = {}
    parser.block(tree, (), None, "")
    return ParsedTree(tree, parser.lines)


# --- printers -------------------------------------------------------------------------------------


def _atom(value: Any) -> str:
    """One key or leaf value as Junos prints it (quoted when it would not read back the same)."""
    if isinstance(value, bool):
        raise TypeError(f"cannot print {value!r} as a Junos value")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"cannot print {value!r} as a Junos value")
        text = repr(value)
        return text if _FLOAT.fullmatch(text) else format(value, "f")
    if isinstance(value, str):
        if _NEEDS_QUOTES.search(value) or _INT.fullmatch(value) or _FLOAT.fullmatch(value) or value in _TAGS:
            return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return value
    raise TypeError(f"cannot print {type(value).__name__} {value!r} as a Junos value")


def _leaf_text(key: Key, value: Any) -> str:
    if value is True:
        return f"{_atom(key)};"
    if isinstance(value, list):
        return f"{_atom(key)} [ {' '.join(_atom(v) for v in value)} ];" if value else f"{_atom(key)} [ ];"
    return f"{_atom(key)} {_atom(value)};"


def _curly_lines(node: Mapping[Any, Any], path: KeyPath, depth: int) -> Iterator[str]:
    pad = _INDENT * depth
    for key, value in node.items():
        here = path + (key,)
        if not isinstance(value, Mapping):
            yield pad + _leaf_text(key, value)
        elif is_keyed_list(here) and value:
            # Entries with a body print as `key NAME { ... }`; plain entries are grouped in a
            # `key { NAME; }` block so the tree reads back unchanged.
            plain: list[tuple[Key, Any]] = []
            for name, body in value.items():
                if isinstance(body, Mapping):
                    yield from _flush_plain(key, plain, pad, depth)
                    plain = []
                    yield f"{pad}{_atom(key)} {_atom(name)} {{"
                    yield from _curly_lines(body, here + (name,), depth + 1)
                    yield pad + "}"
                else:
                    plain.append((name, body))
            yield from _flush_plain(key, plain, pad, depth)
        else:
            yield f"{pad}{_atom(key)} {{"
            yield from _curly_lines(value, here, depth + 1)
            yield pad + "}"


def _flush_plain(key: Key, plain: list[tuple[Key, Any]], pad: str, depth: int) -> Iterator[str]:
    if not plain:
        return
    yield f"{pad}{_atom(key)} {{"
    for name, body in plain:
        yield _INDENT * (depth + 1) + _leaf_text(name, body)
    yield pad + "}"


def curly_lines(node: Mapping[Any, Any], path: KeyPath = (), depth: int = 0) -> list[str]:
    """The statements of ``node`` (found at ``path`` in the whole tree) as curly lines, ``depth`` levels in."""
    return list(_curly_lines(node, path, depth))


def to_curly(tree: Mapping[Any, Any]) -> str:
    """The tree as `show configuration` prints it (4-space indent, one statement per line)."""
    lines = list(_curly_lines(tree, (), 0))
    return "\n".join(lines) + "\n" if lines else ""


def _set_lines(node: Mapping[Any, Any], prefix: str) -> Iterator[str]:
    for key, value in node.items():
        here = f"{prefix} {_atom(key)}"
        if isinstance(value, Mapping):
            if value:
                yield from _set_lines(value, here)
            else:
                yield here
        elif value is True:
            yield here
        elif isinstance(value, list):
            for item in value:
                yield f"{here} {_atom(item)}"
        else:
            yield f"{here} {_atom(value)}"


def to_set(tree: Mapping[Any, Any]) -> list[str]:
    """The tree as ``| display set`` prints it: one ``set`` line per leaf (one per leaf-list value)."""
    return list(_set_lines(tree, "set"))

