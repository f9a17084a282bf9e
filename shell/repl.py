"""Read → resolve → call → render → pipe → page: the interactive `PromptSession` loop and the batch runner."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
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
from prompt_toolkit.completion import DynamicCompleter
from prompt_toolkit.history import FileHistory, History, InMemoryHistory

from flowd.control.rpcs import RPCS
from shell.client import Client, ClientError, DaemonUnavailable
from shell.clisettings import SESSION
from shell.commands import ENTER_WORD, Local, Match
from shell.configmode import (
    DISCARD_QUESTION,
    EXIT_QUESTION,
    UNCOMMITTED,
    ConfigCommandError,
    ConfigSession,
    LeaveConfiguration,
)
from shell.configured import ActiveConfiguration
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
from shell.parser import Parser, failure_lines, failure_text, format_candidates
from shell.render import ALL_ACCOUNTING, render, render_sections
from shell.render.streamed import StreamedText

HISTORY_FILE: Final = "~/.flowcli_history"


class CommandError(Exception):
    """A command ran but produced no output to show; `str()` is the line printed after `error: `."""


class ExitShell(Exception):
    """`exit` / `quit`."""


def prompt_text(mark: str = ">") -> str:
    """``user@host> `` (``user@host# `` in configuration mode) with the real user and the short host name."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname().split('.')[0]}{mark} "


async def _help(match: Match, client: Client, parser: Parser) -> Output:
    listing = parser.candidates("")
    return Output(format_candidates(c for c in listing.candidates if c.word != ENTER_WORD), False)


async def _exit(match: Match, client: Client, parser: Parser) -> Output:
    raise ExitShell


async def _set_cli(match: Match, client: Client, parser: Parser) -> Output:
    params = match.params
    return Output(SESSION.apply(params.get("screen_length"), params.get("screen_width"), match.level or None),
                  False)


async def _cli_history(match: Match, client: Client, parser: Parser) -> Output:
    return _piped(SESSION.history_lines(), match)


async def _all_accounting(match: Match, client: Client, parser: Parser) -> Output:
    results = [(method, await client.call(method, {})) for method in ALL_ACCOUNTING]
    return _piped(render_sections(results, display_format(match.pipes)), match)


def _piped(lines: list[str], match: Match) -> Output:
    try:
        return apply_pipes(lines, match.pipes)
    except PipeError as exc:
        raise CommandError(str(exc)) from None


async def _configure(match: Match, client: Client, parser: Parser) -> Output:
    raise CommandError("already in configuration mode")  # `run configure`; the loops enter it themselves


LOCAL_ACTIONS: Final[dict[Local, Callable[[Match, Client, Parser], Awaitable[Output]]]] = {
    Local.HELP: _help,
    Local.EXIT: _exit,
    Local.CONFIGURE: _configure,
    Local.SET_CLI: _set_cli,
    Local.CLI_HISTORY: _cli_history,
    Local.ALL_ACCOUNTING: _all_accounting,
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
    method, params = match.call
    result = await client.call(method, params)
    if "error" in result:  # a statement the daemon's tree does not hold (the shell had no tree to check it)
        raise CommandError(str(result["error"]["message"]).removeprefix("error: "))
    with _unexpected(method):
        lines = render(method, result, match.level, display)
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

    return Output(output.lines, output.pageable, output.hold, rest())


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
    config: ConfigSession | None = None

    async def operational(text: str) -> Output:
        result = parser.resolve(text)
        if not isinstance(result, Match):
            raise ConfigCommandError(failure_text(result) if result is not None else [])
        return await execute(result, client, parser)

    for line in commands:
        SESSION.remember(line)
        if config is not None:
            try:
                output = await config.execute(line)
            except LeaveConfiguration as leave:
                _write_lines(out, leave.lines)
                if await config.changed():
                    _write_lines(err, [UNCOMMITTED])
                await config.leave()
                config = None
                _write_lines(out, ["Exiting configuration mode"])
                continue
            except (ConfigCommandError, CommandError) as exc:
                lines = exc.lines if isinstance(exc, ConfigCommandError) else [f"error: {exc}"]
                _write_lines(err, [ln if ln.startswith(("error:", "warning:", "[edit", " ")) else f"error: {ln}"
                                   for ln in lines])
                status = 1
                continue
            except DaemonUnavailable as exc:
                _write_lines(err, [f"error: {exc}"])
                return 1
            except ClientError as exc:
                _write_lines(err, [f"error: {exc}"])
                status = 1
                continue
            _write_lines(out, output.lines)
            continue
        result = parser.resolve(line)
        if isinstance(result, Match) and result.command.local is Local.CONFIGURE:
            session = ConfigSession(client, operational)
            try:
                _write_lines(out, await session.enter(result.level or "shared"))
            except ConfigCommandError as exc:
                _write_lines(err, exc.lines)
                status = 1
                continue
            except ClientError as exc:
                _write_lines(err, [f"error: {exc}"])
                return 1
            config = session
            continue
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
        """The page height: `set cli screen-length`, else the terminal's (0: never page)."""
        return SESSION.rows(shutil.get_terminal_size().lines)

    def show(self, output: Output) -> None:
        """Print (timestamped, wrapped and paged as `set cli` says)."""
        lines = SESSION.stamp() + SESSION.wrap(output.lines)
        if output.pageable and self.out.isatty() and (output.hold or needs_pager(lines, self.rows())):
            def write(text: str) -> None:
                self.out.write(text)
                self.out.flush()

            with terminal_keys() as read_key:
                page(lines, write, read_key, self.rows() or len(lines) + 1, output.hold)
        else:
            _write_lines(self.out, lines)

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
    """The `user@host> ` loop: Ctrl-C clears the line, Ctrl-D on an empty line or `exit` leaves.

    `configure` switches to configuration mode (flowd.shell.configmode): the `user@host# ` prompt under an
    `[edit ...]` banner, until `exit` at the top level, `quit` or `exit configuration-mode`.
    """
    prompt = prompt_text() if prompt is None else prompt
    config_prompt = prompt[:-2] + "# " if prompt.endswith("> ") else prompt
    terminal = terminal or Terminal()
    mode: list[ConfigSession] = []  # the configuration-mode session, while there is one
    active = ActiveConfiguration(client)
    ctx = KeyContext(parser, prompt, lambda: mode[0] if mode else None, config_prompt, active)
    session: PromptSession[str] = PromptSession(
        history=_history(Path(history or Path(HISTORY_FILE).expanduser())),
        key_bindings=shell_bindings(ctx),
        completer=DynamicCompleter(lambda: ctx.completer),
        complete_while_typing=False,
    )

    async def operational(text: str) -> Output:
        result = parser.resolve(text)
        if not isinstance(result, Match):
            raise ConfigCommandError(failure_lines(result, len(config_prompt) + text_offset[0])
                                     if result is not None else [])
        return await execute(result, client, parser)

    text_offset = [0]

    async def ask(question: str) -> bool:
        try:
            answer = await session.prompt_async(question, completer=None)
        except (KeyboardInterrupt, EOFError):
            return False
        return answer.strip().lower() in ("", "y", "yes")

    while True:
        active.forget()
        config = mode[0] if mode else None
        if config is not None:
            _write_lines(terminal.out, ["", config.banner()])
        try:
            line = await session.prompt_async(config_prompt if config is not None else prompt)
        except KeyboardInterrupt:
            continue
        except EOFError:
            if config is None:
                return 0
            line = "exit configuration-mode"
        SESSION.remember(line)
        try:
            if config is not None:
                text_offset[0] = line.find("run") + 4 if line.lstrip().startswith("run") else 0
                try:
                    output = await config.execute(line)
                except LeaveConfiguration as leave:
                    _write_lines(terminal.out, leave.lines)
                    if await config.changed():
                        _write_lines(terminal.out, [UNCOMMITTED])
                        question = EXIT_QUESTION if config.mode == "shared" else DISCARD_QUESTION
                        if not await ask(question):
                            continue
                    await config.leave()
                    mode.clear()
                    _write_lines(terminal.out, ["Exiting configuration mode"])
                    continue
                except ConfigCommandError as exc:
                    caret = [] if exc.column is None else [" " * (len(config_prompt) + exc.column) + "^"]
                    _write_lines(terminal.out, caret + exc.lines)
                    continue
                terminal.show(output)
                continue
            if parser.needs_configuration(line + " "):  # statement words: checked as Tab and `?` list them
                await active.ensure()
            result = parser.resolve(line, active.config)
            if isinstance(result, Match) and result.command.local is Local.CONFIGURE:
                entering = ConfigSession(client, operational, _terminal_reader(session))
                try:
                    _write_lines(terminal.out, await entering.enter(result.level or "shared"))
                except ConfigCommandError as exc:
                    _write_lines(terminal.out, exc.lines)
                    continue
                mode.append(entering)
                continue
            if result is None:
                continue
            if not isinstance(result, Match):
                _write_lines(terminal.out, failure_lines(result, len(prompt)))
                continue
            refresh = next((int(p.arg) for p in result.pipes if p.keyword == "refresh"), None)
            if refresh is not None:
                await _refresh(result, client, parser, terminal, refresh)
                continue
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
            mode.clear()  # the connection was the configuration-mode session
            continue


async def _refresh(match: Match, client: Client, parser: Parser, terminal: Terminal, seconds: int) -> None:
    """`| refresh N`: run the command again every N seconds, each time under a `---(refreshed at ...)---`
    line, until Ctrl-C (which ends the refreshing, not the shell)."""
    try:
        while True:
            output = await execute(match, client, parser)
            lines = list(output.lines)
            if output.rest is not None:  # a streamed result: the whole of it, each time
                async for more in output.rest:
                    lines += more
            stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S %Z")
            _write_lines(terminal.out, [f"---(refreshed at {stamp})---", *SESSION.wrap(lines)])
            await asyncio.sleep(seconds)
    except (asyncio.CancelledError, KeyboardInterrupt):
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
        _write_lines(terminal.out, ["!!! Refresh interrupted by user"])


def _terminal_reader(session: PromptSession[str]) -> Callable[[], Awaitable[list[str]]]:
    """`load ... terminal`: lines typed until Ctrl-D, as Junos reads them ([Type ^D at a new line to end input])."""
    async def read() -> list[str]:
        print("[Type ^D at a new line to end input]")
        lines: list[str] = []
        while True:
            try:
                lines.append(await session.prompt_async("", completer=None))
            except EOFError:
                return lines
            except KeyboardInterrupt:
                return []
    return read
