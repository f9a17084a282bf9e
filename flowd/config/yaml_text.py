"""YAML configuration text → the statement tree with the line of every key, bounded (MAX_DEPTH,
MAX_ALIASES, MAX_VALUES, MAX_DIGITS).

flowd.config.loader imports this module only when it parses YAML text: a run with a Junos file or with the
embedded default (held parsed in flowd/config/default_tree.py) does without the YAML library.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Final

import yaml

from flowd.config.checker import describe
from flowd.config.schema import ConfigError
from flowd.syntax import junos
from flowd.syntax.junos import KeyPath

# Beside the limits Junos text has (nesting, digits): YAML aliases and the values they expand to.
MAX_DEPTH: Final = junos.MAX_DEPTH
MAX_ALIASES: Final = 100
MAX_VALUES: Final = 100_000
MAX_DIGITS: Final = junos.MAX_DIGITS
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


class _LinedDict(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key and any repeated key."""

    __slots__ = ("duplicate", "lines")

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}
        self.duplicate: tuple[Any, int, int] | None = None  # (key, first line, repeated line)


class _LineLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that records the line of every mapping key (plain safe_load loses them), and that
    refuses what would make loading slow, deep or huge: nesting deeper than MAX_DEPTH, more than MAX_ALIASES
    aliases, an alias inside its own anchor, integers longer than MAX_DIGITS."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.aliases = 0
        self.open_anchors: list[str | None] = []  # of the nodes being composed, outermost first

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise yaml.composer.ComposerError(None, None, f"more than {MAX_ALIASES} aliases", mark)
            if event.anchor in self.open_anchors:
                raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor} is inside its own anchor "
                                                  f"&{event.anchor} (a recursive structure)", mark)
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self.depth += 1
        self.open_anchors.append(getattr(event, "anchor", None))
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1
            self.open_anchors.pop()

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        digits = len(node.value.lstrip("+-").replace("_", ""))
        if digits > MAX_DIGITS:
            raise yaml.constructor.ConstructorError(None, None, f"an integer of {digits} digits; at most "
                                                    f"{MAX_DIGITS} are accepted", node.start_mark)
        return super().construct_yaml_int(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _LinedDict:
        self.flatten_mapping(node)
        mapping = _LinedDict()
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        "found an unhashable key", key_node.start_mark) from None
            line = key_node.start_mark.line + 1
            if key in mapping.lines:
                if mapping.duplicate is None:
                    mapping.duplicate = (key, mapping.lines[key], line)
            else:
                mapping.lines[key] = line
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_LinedDict]:
    data = _LinedDict()
    yield data
    built = loader.construct_mapping(node)
    data.update(built)
    data.lines, data.duplicate = built.lines, built.duplicate


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:int", _LineLoader.construct_yaml_int)


class _Plain:
    """Turns `_LinedDict`s into plain dicts, collecting the key lines by path; every alias is expanded here,
    so the values are counted (an alias bomb stops at MAX_VALUES) and each string is checked for text that
    cannot be written out again (a lone surrogate, which a YAML escape can spell)."""

    def __init__(self, lines: dict[KeyPath, int], source: str) -> None:
        self.lines = lines
        self.source = source
        self.values = 0

    def __call__(self, value: Any, path: KeyPath, line: int | None) -> Any:
        self.values += 1
        if self.values > MAX_VALUES:
            raise ConfigError(self.source, line, path, f"more than {MAX_VALUES} values (aliases expand to "
                                                       "that many)")
        if isinstance(value, str) and _SURROGATE.search(value):
            raise ConfigError(self.source, line, path, f"{value.encode('utf-8', 'backslashreplace').decode()!r} "
                                                       "is not valid Unicode (a lone surrogate)")
        if isinstance(value, _LinedDict):
            if value.duplicate is not None:
                key, first, again = value.duplicate
                raise ConfigError(self.source, again, path + (key,), f"duplicate key (first given on line {first})")
            out: dict[Any, Any] = {}
            for key, item in value.items():
                here = self.lines[path + (key,)] = value.lines[key]
                self(key, path, here)
                out[key] = self(item, path + (key,), here)
            return out
        if isinstance(value, list):
            return [self(item, path, line) for item in value]
        return value


def parse_yaml(text: str, source: str) -> junos.ParsedTree:
    """Parse YAML configuration text into its tree, not yet validated; raise `ConfigError` for bad YAML."""
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = "YAML error" if isinstance(exc, yaml.composer.ComposerError | yaml.constructor.ConstructorError) \
            else "YAML syntax error"
        raise ConfigError(source, line, (), f"{what}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, (), f"YAML error: {exc}") from None
    lines: dict[KeyPath, int] = {}
    tree = _Plain(lines, source)(raw, (), None)
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(source, 1, (), f"expected a mapping of statements at the top, got {describe(tree)}")
    return junos.ParsedTree(tree, lines)
