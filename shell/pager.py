"""Output pipes (`| match`, `| count`, `| save` ...) and the pager (`---(more NN%)---`).

Pipes are pure ``lines -> lines`` steps run left to right. `| display` is not one of them: it picks the
renderer before the pipes run (`shell.render.render`). The pager runs only when the shell is
interactive, `| no-more` was not given, and the output is taller than the terminal (litecli's rule).
"""

from __future__ import annotations

import os
import re
import sys
import termios
import tty
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from shell.commands import PipeCall


class PipeError(Exception):
    """A pipe could not run (for example `| save` to a directory that does not exist)."""


def _regex(pattern: str) -> re.Pattern[str]:
    # Junos matches without regard to case.
    return re.compile(pattern, re.IGNORECASE)


def _match(lines: list[str], pattern: Any) -> list[str]:
    rx = _regex(pattern)
    return [line for line in lines if rx.search(line)]


def _except(lines: list[str], pattern: Any) -> list[str]:
    rx = _regex(pattern)
    return [line for line in lines if not rx.search(line)]


def _find(lines: list[str], pattern: Any) -> list[str]:
    rx = _regex(pattern)
    return next((lines[i:] for i, line in enumerate(lines) if rx.search(line)), [])


def _count(lines: list[str], _: Any) -> list[str]:
    return [f"Count: {len(lines)} lines"]


def _last(lines: list[str], n: Any) -> list[str]:
    return lines[-int(n):]


def _save(lines: list[str], filename: Any) -> list[str]:
    path = Path(str(filename)).expanduser()
    try:
        path.write_text("".join(line + "\n" for line in lines))
    except OSError as exc:
        raise PipeError(f"could not write '{filename}': {exc.strerror or exc}") from None
    return [f"Wrote {len(lines)} lines of output to '{filename}'"]


def _trim(lines: list[str], n: Any) -> list[str]:
    return [line[int(n):] for line in lines]


def _unchanged(lines: list[str], _: Any) -> list[str]:
    return lines


PIPE_STEPS: Final[dict[str, Callable[[list[str], Any], list[str]]]] = {
    "match": _match,
    "except": _except,
    "find": _find,
    "count": _count,
    "last": _last,
    "save": _save,
    "trim": _trim,
    "no-more": _unchanged,  # only turns the pager off
    "hold": _unchanged,  # only keeps the pager at the end of the output
    "refresh": _unchanged,  # the REPL runs the command again every N seconds
    "display": _unchanged,  # chose the renderer already
    "compare": _unchanged,  # chose the method already (the command's `compare`)
}
NO_PAGER: Final = frozenset({"no-more", "save"})
LINE_BY_LINE: Final = frozenset({"match", "except", "no-more", "display"})  # pipes that need no later lines


@dataclass(frozen=True, slots=True)
class Output:
    """Lines ready to print, and whether the pager may hold them; ``rest`` yields the lines of a streamed
    result still to come (print them as they arrive)."""

    lines: list[str]
    pageable: bool = True
    hold: bool = False  # `| hold`: the pager stays at the end until q
    rest: AsyncIterator[list[str]] | None = None


def display_format(pipes: Sequence[PipeCall]) -> str | None:
    """The `| display` format asked for (the last one wins), if any."""
    return next((str(p.arg) for p in reversed(pipes) if p.keyword == "display"), None)


def apply_pipes(lines: Sequence[str], pipes: Sequence[PipeCall]) -> Output:
    """Run the pipes left to right; raise `PipeError` when one cannot run."""
    out = list(lines)
    for pipe in pipes:
        out = PIPE_STEPS[pipe.keyword](out, pipe.arg)
    return Output(out, not any(p.keyword in NO_PAGER for p in pipes), any(p.keyword == "hold" for p in pipes))


def needs_pager(lines: Sequence[str], rows: int) -> bool:
    """Whether the output is taller than the terminal less the line the pager prompt takes (rows 0: never)."""
    return rows > 0 and len(lines) > rows - 1


PAGER_HELP: Final = (
    "",
    "Keys at the ---(more)--- prompt:",
    "  Space          Display the next page",
    "  Enter          Display the next line",
    "  h              Display this help",
    "  q, Ctrl-C      Stop the output (and leave a held page)",
    "",
)


def page(lines: Sequence[str], write: Callable[[str], Any], read_key: Callable[[], str], rows: int,
         hold: bool = False) -> None:
    """Show `lines` a screen at a time: Space = next screen, Enter = next line, h = help, q (or Ctrl-C/D) = stop.

    With ``hold`` (`| hold`) the prompt stays after the last line until q.
    """
    screen = max(1, rows - 1)
    shown, step, total = 0, screen, len(lines)
    while shown < total or hold:
        for line in lines[shown:shown + step]:
            write(line + "\n")
        shown = min(total, shown + step)
        if shown >= total and not hold:
            return
        prompt = f"---(more {100 * shown // total if total else 100}%)---"
        while True:
            write(prompt)
            key = read_key()
            write("\r" + " " * len(prompt) + "\r")
            if key == " ":
                step = screen
            elif key in ("\r", "\n"):
                step = 1
            elif key in ("q", "Q", "\x03", "\x04", ""):
                return
            elif key in ("h", "H"):
                for line in PAGER_HELP:
                    write(line + "\n")
                continue
            else:
                continue
            break


@contextmanager
def terminal_keys(fd: int | None = None) -> Iterator[Callable[[], str]]:
    """Single keystrokes from the terminal (cbreak mode, no echo, no signals) for the pager; restored on exit."""
    fd = sys.stdin.fileno() if fd is None else fd
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    mode = termios.tcgetattr(fd)
    mode[3] &= ~termios.ISIG  # Ctrl-C arrives as a key ("\x03"), which stops the pager
    termios.tcsetattr(fd, termios.TCSANOW, mode)

    def read_key() -> str:
        try:
            return os.read(fd, 1).decode(errors="replace")
        except KeyboardInterrupt:
            return "\x03"

    try:
        yield read_key
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
