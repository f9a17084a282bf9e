"""Junos key behaviour for the prompt: `?` lists completions, Tab and Space complete keywords."""

from __future__ import annotations

from dataclasses import dataclass

from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.buffer import Buffer
from prompt_toolkit.completion import (
    CompleteEvent,
    Completion,
    get_common_complete_suffix,
)
from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent

from shell.completer import GrammarCompleter
from shell.parser import Parser, split_words


@dataclass(frozen=True, slots=True)
class KeyContext:
    """What the key handlers need: the grammar and the prompt text (for echo and caret columns)."""

    parser: Parser
    prompt: str

    @property
    def completer(self) -> GrammarCompleter:
        return GrammarCompleter(self.parser)


def _in_quotes(text: str) -> bool:
    return split_words(text)[1]


def _print_above(ctx: KeyContext, line: str, lines: list[str]) -> None:
    """Print the typed line and `lines` above the prompt, then let prompt_toolkit redraw the line."""
    def show() -> None:
        print(ctx.prompt + line)
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
        _print_above(ctx, text + "?", ctx.parser.help_lines(text, len(ctx.prompt)))

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
            listing = ctx.parser.candidates(text)
            if listing.failure is not None:
                _print_above(ctx, text, ctx.parser.help_lines(text, len(ctx.prompt)))
            return
        suffix = get_common_complete_suffix(buffer.document, completions)
        if suffix:
            buffer.insert_text(suffix)
        else:
            _print_above(ctx, text, ctx.parser.help_lines(text, len(ctx.prompt)))

    @bindings.add(" ")
    def _space(event: KeyPressEvent) -> None:
        """Complete a keyword that only one word continues, then insert the space."""
        buffer = event.current_buffer
        text = buffer.document.text_before_cursor
        if text and not text[-1].isspace() and not _in_quotes(text):
            listing = ctx.parser.candidates(text)
            completions = _completions(ctx, buffer)
            # As Enter would: the only candidate, or the one that prefixes all others (`fl` -> `flow`).
            chosen = [c for c in completions if all(o.text.startswith(c.text) for o in completions)]
            if len(chosen) == 1 and not listing.free_value:
                buffer.apply_completion(chosen[0])
        buffer.insert_text(" ")

    return bindings
