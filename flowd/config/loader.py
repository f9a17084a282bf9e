"""Loading configuration text: YAML (with line numbers) or Junos curly braces → `Config`; the embedded default.

Loading is bounded (MAX_TEXT here; nesting and number length in flowd.syntax.junos, and for YAML also aliases
and the values they expand to in flowd.config.yaml_text): whatever a file holds, the outcome is a `Config` or
one `ConfigError` line, soon.

The embedded default is declared once, as YAML text (flowd/data/default.yaml, the same text as
etc/flowd.yaml and what `--install-service` installs). Its parsed tree is held as Python beside it
(flowd/config/default_tree.py, written by ``python -m flowd.config.loader``; a test checks it matches the
text), so a run without --config neither imports nor runs the YAML parser.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Final

from flowd.config.build import build_config
from flowd.config.schema import DEFAULT_SOURCE, Config, ConfigError
from flowd.syntax import junos

# What a configuration may be, so that loading one stays fast and small whatever the file holds (and a
# reload never blocks the daemon for long): its length here, the rest where each syntax is parsed.
MAX_TEXT: Final = 1024 * 1024

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
    suffix = os.path.splitext(path)[1].lower()
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
    if len(text) > MAX_TEXT:
        raise ConfigError(source, None, (), f"{len(text)} characters; a configuration may have at most {MAX_TEXT}")
    if syntax == "auto":
        syntax = detect_syntax(text)
    if syntax == "yaml":
        from flowd.config.yaml_text import parse_yaml  # the YAML library only when YAML text is parsed

        parsed = parse_yaml(text, source)
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
    with open(os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "default.yaml"), encoding="utf-8") as f:
        return f.read()


def load_config(path: str | None) -> Config:
    """Load and validate a configuration file (``None``: the embedded default); raise `ConfigError`."""
    parsed = load_tree(path)
    return build_config(parsed.tree, path or DEFAULT_SOURCE, parsed.lines)


def load_tree(path: str | None) -> junos.ParsedTree:
    """Read and parse a configuration file (``None``: the embedded default), not yet validated."""
    if path is None:
        from flowd.config import default_tree  # parsed when it was written: no YAML parser at start

        return junos.ParsedTree(default_tree.tree(), default_tree.lines())
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TEXT * 4 + 1)  # UTF-8: at most 4 bytes a character; never read a huge file whole
        text = data.decode("utf-8")
    except OSError as exc:
        raise ConfigError(path, None, (), f"cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, (), f"not UTF-8 text (byte {exc.start})") from None
    return parse_tree(text, source=path, syntax=syntax_for(path, text))


_TREE_MODULE: Final = '''"""The embedded default configuration (flowd/data/default.yaml) parsed: written by
``python -m flowd.config.loader > flowd/config/default_tree.py``; edit the YAML text, not this file."""

from __future__ import annotations

from typing import Any

from flowd.syntax.junos import Key, KeyPath


def tree() -> dict[Key, Any]:
    """A new copy of the statement tree."""
    return {tree}


def lines() -> dict[KeyPath, int]:
    """The line of every key path in the text."""
    return {lines}
'''


def default_tree_module() -> str:
    """flowd/config/default_tree.py for the embedded default text: its tree and key lines as Python literals."""
    parsed = parse_tree(default_text(), source=DEFAULT_SOURCE, syntax="yaml")
    return _TREE_MODULE.format(tree=_literal(parsed.tree, 4, 11), lines=_literal(parsed.lines, 4, 11))


def _literal(value: object, indent: int, column: int) -> str:
    """``value`` as Python source that starts at ``column`` on a line indented ``indent``: on that line when it
    ends by column 110, else one mapping entry per line."""
    flat = repr(value)
    if not isinstance(value, dict) or column + len(flat) <= 110:
        return flat
    inner = " " * (indent + 4)
    entries = "".join(f"{inner}{key!r}: {_literal(item, indent + 4, len(inner) + len(repr(key)) + 2)},\n"
                      for key, item in value.items())
    return "{\n" + entries + " " * indent + "}"


if __name__ == "__main__":
    sys.stdout.write(default_tree_module())
