"""prompt_toolkit `Completer` over the grammar: the words `Parser.candidates` says may come next."""

from __future__ import annotations

from collections.abc import Iterable

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from shell.parser import Parser


class GrammarCompleter(Completer):
    """Completes keywords, pipe names and literal values; placeholders (`<limit>`) are only shown by `?`."""

    def __init__(self, parser: Parser) -> None:
        self.parser = parser

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        listing = self.parser.candidates(text)
        for candidate in listing.candidates:
            if candidate.insertable:
                yield Completion(candidate.word, start_position=listing.start - len(text),
                                 display_meta=candidate.help)
