"""Read → resolve → call → render → pipe → page: the interactive `PromptSession` loop and the batch runner."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import shutil
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TextIO

from prompt_toolkit import PromptSession
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from flowd.control.rpcs import RPCS
from shell.client import Client, ClientError, DaemonUnavailable
from shell.completer import GrammarCompleter
from shell.grammar import PARSER
from shell.keys import KeyContext, shell_bindings
from shell.pager import (
    LINE_BY_LINE,
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
from shell.render.streamed import StreamedText

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
    display = display_format(match.pipes)
    if RPCS[command.rpc].streamed and display is None:
        return await _streamed(match, client)
    result = await client.call(command.rpc, match.params)
    with _unexpected(command.rpc):
        lines = render(command.rpc, result, match.level, display)
    return _piped(lines, match)


async def _streamed(match: Match, client: Client) -> Output:
    """A streamed result's text: printed as its rows arrive when every pipe works line by line, else whole."""
    rpc = match.command.rpc
    assert rpc is not None
    text = StreamedText(lambda result: render(rpc, result, match.level), RPCS[rpc].streamed)
    parts = client.parts(rpc, match.params)

    async def lines() -> AsyncIterator[list[str]]:
        async for part in parts:
            with _unexpected(rpc):
                if got := text.feed(part):
                    yield got
        yield text.finish()

    if not all(p.keyword in LINE_BY_LINE for p in match.pipes):
        return _piped([line async for batch in lines() for line in batch], match)
    batches = lines()
    first: list[str] = await anext(batches, [])  # the first rows (a request that fails, fails here)
    output = _piped(first, match)

    async def rest() -> AsyncIterator[list[str]]:
        async for batch in batches:
            yield _piped(batch, match).lines

    return Output(output.lines, output.pageable, rest())


def _piped(lines: list[str], match: Match) -> Output:
    try:
        return apply_pipes(lines, match.pipes)
    except PipeError as exc:
        raise CommandError(str(exc)) from None


@contextlib.contextmanager
def _unexpected(rpc: str) -> Iterator[None]:
    """A reply the renderer cannot read becomes one error line."""
    try:
        yield
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        detail = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise CommandError(f"unexpected reply from flowd to {rpc} ({detail})") from None


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
        try:
            await _write_output(out, output)
        except (ClientError, CommandError) as exc:
            _write_lines(err, [f"error: {exc}"])
            status = 1
    return status


async def _write_output(out: TextIO, output: Output) -> None:
    """Print the lines, and those of a streamed result as they arrive."""
    _write_lines(out, output.lines)
    if output.rest is not None:
        async for lines in output.rest:
            _write_lines(out, lines)


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

    async def present(self, output: Output) -> None:
        """Show the output; a streamed one is printed as it arrives, or gathered first when it may be paged."""
        if output.rest is not None and output.pageable and self.out.isatty():
            lines = list(output.lines)
            async for more in output.rest:
                lines += more
            output = Output(lines)
        self.show(output)
        if output.rest is not None:
            async for more in output.rest:
                _write_lines(self.out, more)


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
            await terminal.present(await execute(result, client, parser))
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
