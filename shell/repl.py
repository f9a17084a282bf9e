"""Read → resolve → call → render → pipe → page: the interactive `PromptSession` loop and the batch runner."""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import socket
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from shell.client import Client, ClientError, DaemonUnavailable
from shell.completer import GrammarCompleter
from shell.grammar import PARSER
from shell.keys import KeyContext, shell_bindings
from shell.pager import (
    Output,
    PipeError,
    apply_pipes,
    display_format,
    needs_pager,
    page,
    terminal_keys,
)
from shell.parser import (
    ENTER_WORD,
    Local,
    Match,
    Parser,
    failure_lines,
    failure_text,
    format_candidates,
)
from shell.render import render

HISTORY_FILE: Final = "~/.flowcli_history"


class CommandError(Exception):
    """A command ran but produced no output to show; `str()` is the line printed after `error: `."""


class ExitShell(Exception):
    """`exit` / `quit`."""


def prompt_text() -> str:
    """``user@host> `` with the real user and the short host name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname().split('.')[0]}> "


async def _help(match: Match, client: Client, parser: Parser) -> Output:
    listing = parser.candidates("")
    return Output(format_candidates(c for c in listing.candidates if c.word != ENTER_WORD), False)


async def _exit(match: Match, client: Client, parser: Parser) -> Output:
    raise ExitShell


LOCAL_ACTIONS: Final[dict[Local, Callable[[Match, Client, Parser], Awaitable[Output]]]] = {
    Local.HELP: _help,
    Local.EXIT: _exit,
}


async def execute(match: Match, client: Client, parser: Parser = PARSER) -> Output:
    """Run a resolved line; raise `ClientError`, `CommandError` or `ExitShell` instead of output."""
    command = match.command
    if command.local is not None:
        return await LOCAL_ACTIONS[command.local](match, client, parser)
    assert command.rpc is not None
    result = await client.call(command.rpc, match.params)
    try:
        lines = render(command.rpc, result, match.level, display_format(match.pipes))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CommandError(f"unexpected reply from flowd to {command.rpc} ({detail})") from None
    try:
        return apply_pipes(lines, match.pipes)
    except PipeError as exc:
        raise CommandError(str(exc)) from None


def _write_lines(out: TextIO, lines: Iterable[str]) -> None:
    out.writelines(line + "\n" for line in lines)
    out.flush()


async def run_batch(commands: Iterable[str], client: Client, out: TextIO, err: TextIO,
                    parser: Parser = PARSER) -> int:
    """Non-interactive: run each command, output to `out`, `error: ...` lines to `err`; 1 after any error."""
    status = 0
    for line in commands:
        result = parser.resolve(line)
        if result is None:
            continue
        if not isinstance(result, Match):
            _write_lines(err, failure_text(result))
            status = 1
            continue
        try:
            output = await execute(result, client, parser)
        except ExitShell:
            break
        except DaemonUnavailable as exc:
            _write_lines(err, [f"error: {exc}"])
            return 1
        except (ClientError, CommandError) as exc:
            _write_lines(err, [f"error: {exc}"])
            status = 1
            continue
        _write_lines(out, output.lines)
    return status


@dataclass(slots=True)
class Terminal:
    """Where interactive output goes, and how the pager reads keys (a seam for tests)."""

    out: TextIO = sys.stdout

    def rows(self) -> int:
        return shutil.get_terminal_size().lines

    def show(self, output: Output) -> None:
        if output.pageable and self.out.isatty() and needs_pager(output.lines, self.rows()):
            def write(text: str) -> None:
                self.out.write(text)
                self.out.flush()

            with terminal_keys() as read_key:
                page(output.lines, write, read_key, self.rows())
        else:
            _write_lines(self.out, output.lines)


def _history(path: Path) -> History:
    """The history file, or history kept in memory when the file cannot be written."""
    try:
        with path.open("a"):
            pass
    except OSError:
        return InMemoryHistory()
    return FileHistory(str(path))


async def run_interactive(client: Client, *, prompt: str | None = None, history: Path | None = None,
                          parser: Parser = PARSER, terminal: Terminal | None = None) -> int:
    """The `user@host> ` loop: Ctrl-C clears the line, Ctrl-D on an empty line or `exit` leaves."""
    prompt = prompt_text() if prompt is None else prompt
    terminal = terminal or Terminal()
    session: PromptSession[str] = PromptSession(
        history=_history(Path(history or Path(HISTORY_FILE).expanduser())),
        key_bindings=shell_bindings(KeyContext(parser, prompt)),
        completer=GrammarCompleter(parser),
        complete_while_typing=False,
    )
    while True:
        try:
            line = await session.prompt_async(prompt)
        except KeyboardInterrupt:
            continue
        except EOFError:
            return 0
        result = parser.resolve(line)
        if result is None:
            continue
        if not isinstance(result, Match):
            _write_lines(terminal.out, failure_lines(result, len(prompt)))
            continue
        try:
            output = await execute(result, client, parser)
        except ExitShell:
            return 0
        except (ClientError, CommandError) as exc:
            _write_lines(terminal.out, [f"error: {exc}"])
            continue
        except asyncio.CancelledError:
            # Ctrl-C while waiting for the daemon: abandon the command, keep the shell.
            task = asyncio.current_task()
            if task is None or task.uncancel() > 0:
                raise
            await client.close()
            continue
        terminal.show(output)
