"""Junos key behaviour for the prompt: `?` lists completions, Tab and Space complete keywords."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import (
    CompleteEvent,
    Completer,
    Completion,
    get_common_complete_suffix,
)
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from shell.completer import GrammarCompleter
from shell.parser import Parser, split_words

if TYPE_CHECKING:
    from shell.configmode import ConfigSession
    from flowd.syntax.names import Configuration
    from shell.configured import ActiveConfiguration


@dataclass(frozen=True, slots=True)
class KeyContext:
    """What the key handlers need: the grammar and the prompt text (for echo and caret columns)."""

    parser: Parser
    prompt: str
    config: Callable[[], ConfigSession | None] = field(default=lambda: None)  # the session in configuration mode
    config_prompt: str = ""
    active: ActiveConfiguration | None = None  # operational mode's configuration, fetched when a line needs it

    @property
    def completer(self) -> Completer:
        session = self.config()
        if session is not None:
            from shell.configmode import ConfigCompleter
            return ConfigCompleter(session)
        return GrammarCompleter(self.parser, lambda: self.configured)

    def fetching(self, text: str) -> Awaitable[object] | None:
        """The configuration's fetch, when the line reaches a statement or a configured name for the first
        time in this command line (operational mode); None when there is nothing to wait for."""
        active = self.active
        if self.config() is None and active is not None and not active.fetched and \
                self.parser.needs_configuration(text):
            return active.ensure()
        return None


    @property
    def current_prompt(self) -> str:
        return self.config_prompt if self.config() is not None else self.prompt

    def help_lines(self, text: str) -> list[str]:
        """`?`: the operational grammar's listing, or configuration mode's."""
        session = self.config()
        if session is not None:
            from shell.configmode import help_lines
            return help_lines(session, text)
        return self.parser.help_lines(text, len(self.prompt), self.configured)

    @property
    def configured(self) -> Configuration | None:
        """Operational mode's configuration for this command line, when it has been fetched."""
        return self.active.config if self.active is not None else None


def _after(fetch: Awaitable[object] | None, then: Callable[[], None]) -> Coroutine[Any, Any, None] | None:
    """Run ``then`` now, or after ``fetch`` in a background task (prompt_toolkit runs an awaitable handler so)."""
    if fetch is None:
        then()
        return None

    async def later() -> None:
        await fetch
        then()
    return later()


def _in_quotes(text: str) -> bool:
    return split_words(text)[1]


def _print_above(ctx: KeyContext, line: str, lines: list[str]) -> None:
    """Print the typed line and `lines` above the prompt, then let prompt_toolkit redraw the line."""
    def show() -> None:
        print(ctx.current_prompt + line)
        for out in lines:
            print(out)

    run_in_terminal(show)


def _completions(ctx: KeyContext, buffer: Buffer) -> list[Completion]:
    return list(ctx.completer.get_completions(buffer.document, CompleteEvent(completion_requested=True)))


def _complete(ctx: KeyContext, buffer: Buffer, text: str) -> None:
    """Tab's work once the configuration (when the line needs it) is there."""
    completions = _completions(ctx, buffer)
    if len(completions) == 1:
        buffer.apply_completion(completions[0])
        buffer.insert_text(" ")
        return
    if not completions:
        if ctx.config() is None and ctx.parser.candidates(text, ctx.active.config if ctx.active else None
                                                          ).failure is not None:
            _print_above(ctx, text, ctx.help_lines(text))
        return
    suffix = get_common_complete_suffix(buffer.document, completions)
    if suffix:
        buffer.insert_text(suffix)
    else:
        _print_above(ctx, text, ctx.help_lines(text))


def shell_bindings(ctx: KeyContext) -> KeyBindings:
    """`?`, Tab and Space as on a Junos router."""
    bindings = KeyBindings()

    @bindings.add("?")
    def _help(event: KeyPressEvent) -> Coroutine[Any, Any, None] | None:
        """List what may come next (`Possible completions:`); does not insert `?` (except inside quotes)."""
        buffer = event.current_buffer
        text = buffer.document.text_before_cursor
        if _in_quotes(text):
            buffer.insert_text("?")
            return None
        return _after(ctx.fetching(text), lambda: _print_above(ctx, text + "?", ctx.help_lines(text)))

    @bindings.add("tab")
    def _tab(event: KeyPressEvent) -> Coroutine[Any, Any, None] | None:
        """Complete the word: the only candidate, else their common prefix, else list them."""
        buffer = event.current_buffer
        text = buffer.document.text_before_cursor
        if _in_quotes(text):
            return None
        return _after(ctx.fetching(text), lambda: _complete(ctx, buffer, text))

    @bindings.add(" ")
    def _space(event: KeyPressEvent) -> None:
        """Complete a keyword that only one word continues, then insert the space."""
        buffer = event.current_buffer
        text = buffer.document.text_before_cursor
        if text and not text[-1].isspace() and not _in_quotes(text) and ctx.config() is None:
            listing = ctx.parser.candidates(text, ctx.configured)
            completions = _completions(ctx, buffer)
            # As Enter would: the only candidate, or the one that prefixes all others (`fl` -> `flow`).
            chosen = [c for c in completions if all(o.text.startswith(c.text) for o in completions)]
            if len(chosen) == 1 and not listing.free_value:
                buffer.apply_completion(chosen[0])
        buffer.insert_text(" ")

    return bindings
