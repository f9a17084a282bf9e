"""Golden-file comparison for shell output (rewrite with `pytest --update-golden`, never by hand)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
GOLDEN_DIR: Final = REPO / "tests" / "data" / "shell"
SHARED: Final = REPO / ".." / "shared"


def check_golden(name: str, lines: Sequence[str], update: bool) -> None:
    """Assert `lines` equal tests/data/shell/NAME (or rewrite it when `update`)."""
    path = GOLDEN_DIR / name
    text = "".join(line + "\n" for line in lines)
    if update:
        path.write_text(text)
        return
    assert path.exists(), f"{path} is missing: run pytest tests/shell --update-golden"
    assert text == path.read_text(), f"output differs from {path.name}"


def seed_blocks() -> dict[str, list[str]] | None:
    """The outputs in ../shared/spec/show-outputs.md keyed by command (None when shared/ is absent)."""
    spec = SHARED / "spec" / "show-outputs.md"
    if not spec.exists():
        return None
    blocks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in spec.read_text().splitlines():
        if line.startswith("user@router1> "):
            current = blocks.setdefault(line.removeprefix("user@router1> "), [])
        elif line.startswith("```") or not line.strip():
            current = None
        elif current is not None:
            current.append(line)
    return blocks
