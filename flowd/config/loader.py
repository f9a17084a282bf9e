"""Loading configuration text: YAML (with line numbers) or Junos curly braces → `Config`; `--check-config`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import yaml

from flowd.config.build import build_config
from flowd.config.checker import describe
from flowd.config.schema import DEFAULT_SOURCE, Config, ConfigError
from flowd.syntax import junos
from flowd.syntax.junos import KeyPath

# --- loading ------------------------------------------------------------------------------------------


class _LinedDict(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key and any repeated key."""

    __slots__ = ("duplicate", "lines")

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}
        self.duplicate: tuple[Any, int, int] | None = None  # (key, first line, repeated line)


class _LineLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that records the line of every mapping key (plain safe_load loses them)."""

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


def _plain(value: Any, path: KeyPath, lines: dict[KeyPath, int], source: str) -> Any:
    """Turn `_LinedDict`s into plain dicts, collecting the key lines by path."""
    if isinstance(value, _LinedDict):
        if value.duplicate is not None:
            key, first, again = value.duplicate
            raise ConfigError(source, again, path + (key,), f"duplicate key (first given on line {first})")
        out: dict[Any, Any] = {}
        for key, item in value.items():
            lines[path + (key,)] = value.lines[key]
            out[key] = _plain(item, path + (key,), lines, source)
        return out
    if isinstance(value, list):
        return [_plain(item, path, lines, source) for item in value]
    return value


def _parse_yaml(text: str, source: str) -> junos.ParsedTree:
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, line, (), f"YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, (), f"YAML error: {exc}") from None
    lines: dict[KeyPath, int] = {}
    tree = _plain(raw, (), lines, source)
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(source, 1, (), f"expected a mapping of statements at the top, got {describe(tree)}")
    return junos.ParsedTree(tree, lines)


_TAG_PREFIXES: Final = ("inactive:", "protect:", "replace:", "delete:", "active:")
_YAML_FIRST_LINE: Final = re.compile(r"""(?:---|-\s|\{|"[^"]*"\s*:|'[^']*'\s*:|[^\s#{};\[\]"']+:(?:\s|$))""")


def detect_syntax(text: str) -> str:
    """"junos" when the first statement is curly-brace style (`name ... {` or `name ...;`), else "yaml"."""
    in_comment = False
    for raw in text.splitlines():
        line = raw.strip()
        while line:
            if in_comment:
                end = line.find("*/")
                if end < 0:
                    line = ""
                    break
                line, in_comment = line[end + 2:].strip(), False
            elif line.startswith("/*"):
                line, in_comment = line[2:], True
            else:
                break
        if not line or line.startswith("#"):
            continue
        return "yaml" if _YAML_FIRST_LINE.match(line) and not line.startswith(_TAG_PREFIXES) else "junos"
    return "yaml"


def syntax_for(path: str, text: str) -> str:
    """Syntax by file suffix (.conf = junos, .yaml/.yml = yaml), else by content."""
    suffix = Path(path).suffix.lower()
    if suffix == ".conf":
        return "junos"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    return detect_syntax(text)


def parse_config(text: str, *, source: str, syntax: str) -> Config:
    """Parse and validate configuration text; ``syntax`` is "yaml", "junos" or "auto"."""
    parsed = parse_tree(text, source=source, syntax=syntax)
    return build_config(parsed.tree, source, parsed.lines)


def parse_tree(text: str, *, source: str, syntax: str) -> junos.ParsedTree:
    """Parse configuration text into its tree, not yet validated; raise `ConfigError` for a syntax error."""
    if syntax == "auto":
        syntax = detect_syntax(text)
    if syntax == "yaml":
        parsed = _parse_yaml(text, source)
    elif syntax == "junos":
        try:
            parsed = junos.parse(text)
        except junos.JunosSyntaxError as exc:
            raise ConfigError(source, exc.line, exc.path, f"syntax error: {exc.message}") from None
    else:
        raise ValueError(f"syntax must be 'yaml', 'junos' or 'auto', not {syntax!r}")
    if not parsed.tree:  # most likely a file caught half-written or truncated: never run (or reload) with it
        raise ConfigError(source, None, (), "the configuration is empty (no statements): it would sample and export "
                                            "nothing")
    return parsed


def default_text() -> str:
    """The embedded default configuration (the same text as etc/flowd.yaml)."""
    return (Path(__file__).parents[1] / "data" / "default.yaml").read_text(encoding="utf-8")


def load_config(path: str | None) -> Config:
    """Load and validate a configuration file (``None``: the embedded default); raise `ConfigError`."""
    parsed = load_tree(path)
    return build_config(parsed.tree, path or DEFAULT_SOURCE, parsed.lines)


def load_tree(path: str | None) -> junos.ParsedTree:
    """Read and parse a configuration file (``None``: the embedded default), not yet validated."""
    if path is None:
        return parse_tree(default_text(), source=DEFAULT_SOURCE, syntax="yaml")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, None, (), f"cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, (), f"not UTF-8 text (byte {exc.start})") from None
    return parse_tree(text, source=path, syntax=syntax_for(path, text))
