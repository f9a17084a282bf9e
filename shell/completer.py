"""prompt_toolkit `Completer` over the grammar: the words `Parser.candidates` says may come next."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from shell.commands import Configured
from shell.parser import Parser


class GrammarCompleter(Completer):
    """Completes keywords, pipe names, literal values and configured names (``config``: the statement tree and
    names, when the shell has them); placeholders (`<limit>`) are only shown by `?`."""

    def __init__(self, parser: Parser, config: Callable[[], Configured | None] = lambda: None) -> None:
        self.parser = parser
        self.config = config

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        listing = self.parser.candidates(text, self.config())
        for candidate in listing.candidates:
            if candidate.insertable:
                yield Completion(candidate.word, start_position=listing.start - len(text),
                                 display_meta=candidate.help)
