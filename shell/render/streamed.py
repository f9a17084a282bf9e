"""The text of a streamed result as its rows arrive: each batch of rows becomes its lines, and is let go.

The renderers are ``result -> lines`` functions over a whole result; this applies one to the rows as
they come, so the shell holds lines, never the whole result. The first batch is rendered with the
result's header; each later batch together with the last row before it, whose lines (and the header's)
are dropped, so whatever a renderer puts between two rows (a blank line between extensive blocks) is
kept. A table's columns are as wide as each batch needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

Render = Callable[[Any], list[str]]


class StreamedText:
    """Feed it the head, then each batch of rows; it returns the lines to print for each."""

    def __init__(self, render: Render, into: Sequence[str | int]) -> None:
        self.render = render
        self.into = tuple(into)
        self.head: Any = None
        self.last: Any = None

    def _with(self, rows: list[Any]) -> list[str]:
        target: Any = self.head
        for step in self.into:
            target = target[step]
        target[:] = rows
        return self.render(self.head)

    def feed(self, part: Any) -> list[str]:
        """The lines for this part (none for the head: the header waits for the first rows)."""
        if self.head is None:
            self.head = part
            return []
        rows = list(part)
        if not rows:
            return []
        if self.last is None:
            lines = self._with(rows)
        else:
            lines = self._with([self.last, *rows])[len(self._with([self.last])):]
        self.last = rows[-1]
        return lines

    def finish(self) -> list[str]:
        """The lines still owed at the end: when no rows came, the head as it is (the header alone, or all of a
        result that came whole)."""
        if self.head is not None and self.last is None:
            return self.render(self.head)
        return []
