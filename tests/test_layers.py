"""The import rules of docs/architecture.md hold: every import stays inside its layer's allowance, and no circle.

The rules are the table under "## Import rules" in docs/architecture.md (one table, read here and shown
there): each row names a package or module and what of flowd (or of the shell) it may import; the
``asyncio`` column says whether it may use asyncio. Every import counts, at module level or inside a
function, ``if TYPE_CHECKING`` blocks included: a lazy import still ties the layers together.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "architecture.md"
PACKAGES = ("flowd", "shell")


@dataclass(frozen=True)
class Rule:
    owner: str  # a module or package (dotted); the longest matching owner applies
    allowed: tuple[str, ...]  # modules or packages (dotted) it may import; "*" = anything of flowd
    asyncio: bool


def read_rules() -> list[Rule]:
    """The rows of the "Import rules" table of docs/architecture.md."""
    text = DOC.read_text(encoding="utf-8")
    section = text.split("## Import rules", 1)[1].split("\n## ", 1)[0]
    rules = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        owners = re.findall(r"`([\w.]+)`", cells[0])
        allowed = tuple(re.findall(r"`([\w.*]+)`", cells[1]))
        for owner in owners:
            rules.append(Rule(owner, allowed, cells[2].lower() == "yes"))
    return rules


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def imports(name: str, path: Path) -> Iterator[tuple[str, int]]:
    """(imported module, line) for every import in the file, relative ones resolved."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                yield (f"{base}.{alias.name}" if base else alias.name), node.lineno
                # `from flowd.core import decode` imports flowd.core.decode; `from x import Name` imports x
            yield base, node.lineno


def known(target: str, mods: dict[str, Path]) -> str | None:
    """The project module a dotted import name refers to (itself or its longest known prefix)."""
    while target:
        if target in mods:
            return target
        target = target.rpartition(".")[0]
    return None


def covers(prefix: str, name: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def rule_for(name: str, rules: list[Rule]) -> Rule | None:
    matching = [r for r in rules if covers(r.owner, name)]
    return max(matching, key=lambda r: len(r.owner)) if matching else None


def test_the_rules_table_is_there() -> None:
    rules = read_rules()
    owners = {r.owner for r in rules}
    assert {"flowd.model", "flowd.core", "flowd.control.protocol", "shell"} <= owners


def test_every_module_has_a_rule() -> None:
    rules = read_rules()
    missing = [name for name in modules() if name not in ("flowd", "shell") and rule_for(name, rules) is None]
    assert not missing, f"modules with no row in docs/architecture.md's import rules: {missing}"


def test_imports_follow_the_layers() -> None:
    rules, mods = read_rules(), modules()
    broken = []
    for name, path in mods.items():
        rule = rule_for(name, rules)
        if rule is None:
            continue
        for target, line in imports(name, path):
            if target == "asyncio" or target.startswith("asyncio.") or target == "uvloop":
                if not rule.asyncio:
                    broken.append(f"{path.relative_to(REPO)}:{line}: {name} may not use {target}")
                continue
            mod = known(target, mods)
            if mod is None or mod in ("flowd", "shell") or covers(rule.owner, mod):
                continue  # third-party, the root package (its version), or inside its own layer
            if "*" in rule.allowed and mod.startswith("flowd"):
                continue
            if not any(covers(a, mod) for a in rule.allowed):
                broken.append(f"{path.relative_to(REPO)}:{line}: {name} imports {mod}")
    assert not broken, "imports that break docs/architecture.md's rules:\n" + "\n".join(sorted(set(broken)))


def test_no_import_circle() -> None:
    mods = modules()
    graph: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        for target, _ in imports(name, path):
            mod = known(target, mods)
            if mod is not None and mod != name and mod not in ("flowd", "shell"):
                graph[name].add(mod)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


LONGEST_MODULE: Final = 530  # lines; "no module over ~500 lines" (split at the module's own sections)


def test_no_module_is_too_long() -> None:
    long = {name: n for name, p in modules().items() if (n := len(p.read_text().splitlines())) > LONGEST_MODULE}
    assert not long, f"modules over {LONGEST_MODULE} lines (split them where their sections are): {long}"
