"""Junos key behaviour for the prompt: `?` lists completions, Tab and Space complete keywords."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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


@dataclass(frozen=True, slots=True)
class KeyContext:
    """What the key handlers need: the grammar and the prompt text (for echo and caret columns)."""

    parser: Parser
    prompt: str
    config: Callable[[], ConfigSession | None] = field(default=lambda: None)  # the session in configuration mode
    config_prompt: str = ""

    @property
    def completer(self) -> Completer:
        session = self.config()
        if session is not None:
            from shell.configmode import ConfigCompleter
            return ConfigCompleter(session)
        return GrammarCompleter(self.parser)

    @property
    def current_prompt(self) -> str:
        return self.config_prompt if self.config() is not None else self.prompt

    def help_lines(self, text: str) -> list[str]:
        """`?`: the operational grammar's listing, or configuration mode's."""
        session = self.config()
        if session is not None:
            from shell.configmode import help_lines
            return help_lines(session, text)
        return self.parser.help_lines(text, len(self.prompt))


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


def shell_bindings(ctx: KeyContext) -> KeyBindings:
    """`?`, Tab and Space as on a Junos router."""
    bindings = KeyBindings()

    @bindings.add("?")
    def _help(event: KeyPressEvent) -> None:
        """List what may come next (`Possible completions:`); does not insert `?` (except inside quotes)."""
        buffer = event.current_buffer
        text = buffer.document.text_before_cursor
        if _in_quotes(text):
            buffer.insert_text("?")
            return
        _print_above(ctx, text + "?", ctx.help_lines(text))

    @bindings.add("tab")
    def _tab(event: KeyPressEvent) -> None:
        """Complete the word: the only candidate, else their common prefix, else list them."""
        buffer = event.current_buffer
        text = buffer.document.text_before_cursor
        if _in_quotes(text):
            return
        completions = _completions(ctx, buffer)
        if len(completions) == 1:
            buffer.apply_completion(completions[0])
            buffer.insert_text(" ")
            return
        if not completions:
            if ctx.config() is None and ctx.parser.candidates(text).failure is not None:
                _print_above(ctx, text, ctx.help_lines(text))
            return
        suffix = get_common_complete_suffix(buffer.document, completions)
        if suffix:
            buffer.insert_text(suffix)
        else:
            _print_above(ctx, text, ctx.help_lines(text))

    @bindings.add(" ")
    def _space(event: KeyPressEvent) -> None:
        """Complete a keyword that only one word continues, then insert the space."""
        buffer = event.current_buffer
        text = buffer.document.text_before_cursor
        if text and not text[-1].isspace() and not _in_quotes(text) and ctx.config() is None:
            listing = ctx.parser.candidates(text)
            completions = _completions(ctx, buffer)
            # As Enter would: the only candidate, or the one that prefixes all others (`fl` -> `flow`).
            chosen = [c for c in completions if all(o.text.startswith(c.text) for o in completions)]
            if len(chosen) == 1 and not listing.free_value:
                buffer.apply_completion(chosen[0])
        buffer.insert_text(" ")

    return bindings
