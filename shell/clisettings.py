"""The shell's own session settings and history: `set cli screen-length | screen-width | timestamp`, `show cli history`.

One shell process is one CLI session, so the settings live in one `CliSession` (``SESSION``) that the
REPL reads when it prints: the page height (`screen-length`, 0 = never page), the width long lines
are wrapped at (`screen-width`, 0 = never wrap), and whether each command's output starts with a
timestamp line (`Dec 03 12:20:01`, as Junos prints it).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

HISTORY_KEPT: Final = 100  # commands `show cli history` remembers (Junos keeps the last 100)


@dataclass(slots=True)
class CliSession:
    """`set cli` settings and the commands typed, with when."""

    screen_length: int | None = None  # None: the terminal's height
    screen_width: int | None = None  # None: the terminal's width (lines are not wrapped by the shell)
    timestamp: bool = False
    history: list[tuple[float, str]] = field(default_factory=list)
    clock: Callable[[], float] = time.time

    def remember(self, line: str) -> None:
        if line.strip():
            self.history.append((self.clock(), line.strip()))
            del self.history[:-HISTORY_KEPT]

    def history_lines(self) -> list[str]:
        """`show cli history`: ``HH:MM:SS -- COMMAND`` per command, oldest first (local time, as Junos)."""
        return [f"{dt.datetime.fromtimestamp(when).strftime('%H:%M:%S')} -- {line}" for when, line in self.history]

    def stamp(self) -> list[str]:
        """The line `set cli timestamp` puts before each output (``Dec 03 12:20:01``), or none."""
        if not self.timestamp:
            return []
        return [dt.datetime.fromtimestamp(self.clock()).strftime("%b %d %H:%M:%S")]

    def rows(self, terminal_rows: int) -> int:
        """Rows a page holds; 0 means never page."""
        return terminal_rows if self.screen_length is None else self.screen_length

    def wrap(self, lines: Sequence[str]) -> list[str]:
        """Lines cut at `screen-width` (continuations follow on lines of their own), unless it is unset or 0."""
        width = self.screen_width
        if not width:
            return list(lines)
        out: list[str] = []
        for line in lines:
            out.extend(line[i:i + width] for i in range(0, max(len(line), 1), width))
        return out

    def apply(self, screen_length: int | None, screen_width: int | None, timestamp: str | None) -> list[str]:
        """`set cli ...`: change what was given; the Junos confirmation lines."""
        lines: list[str] = []
        if screen_length is not None:
            self.screen_length = screen_length
            lines.append(f"Screen length set to {screen_length}")
        if screen_width is not None:
            self.screen_width = screen_width
            lines.append(f"Screen width set to {screen_width}")
        if timestamp is not None:
            self.timestamp = timestamp == "timestamp"
            lines.append("Enabling timestamp" if self.timestamp else "Disabling timestamp")
        return lines


SESSION: Final = CliSession()
