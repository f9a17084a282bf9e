"""Tab completion through the prompt_toolkit adapter: Document + CompleteEvent -> exact Completion lists."""

from __future__ import annotations

import pytest
from prompt_toolkit.completion import CompleteEvent, Completion
from prompt_toolkit.document import Document

from shell.completer import GrammarCompleter
from shell.grammar import PARSER


def complete(text: str) -> list[Completion]:
    return list(GrammarCompleter(PARSER).get_completions(Document(text), CompleteEvent(completion_requested=True)))


@pytest.mark.parametrize(("text", "expected"), [
    ("", [("clear", 0), ("configure", 0), ("exit", 0), ("help", 0), ("quit", 0), ("set", 0), ("show", 0)]),
    ("sh", [("show", -2)]),
    ("show s", [("services", -1), ("system", -1)]),
    ("show ser", [("services", -3)]),
    ("sh ser acc fl", [("flow", -2), ("flow-detail", -2)]),
    ("show services accounting flow ", [("name", 0)]),
    ("show services accounting flow name ", [("*", 0), ("all", 0)]),
    ("show services accounting flow-detail limit ", []),
    ("show services accounting flow-detail ord", [("order", -3)]),
    ("show services accounting flow-detail order p", [("packets", -1)]),
    ("show version | ", [("count", 0), ("display", 0), ("except", 0), ("find", 0), ("hold", 0), ("last", 0),
                         ("match", 0), ("no-more", 0), ("refresh", 0), ("save", 0), ("trim", 0)]),
    ("show version|n", [("no-more", -1)]),
    ("show version | display j", [("json", -1)]),
    ("show configuration | display ", [("json", 0), ("set", 0), ("xml", 0)]),
    ("show configuration | ", [("compare", 0), ("count", 0), ("display", 0), ("except", 0), ("find", 0), ("hold", 0),
                               ("last", 0), ("match", 0), ("no-more", 0), ("refresh", 0), ("save", 0), ("trim", 0)]),
    ("show configuration | compare ", [("rollback", 0)]),
    ("show configuration | compare rollback ", []),
    ("show version | match ", []),
    ("show foo ", []),
    ("show ver x", []),
])
def test_completions(text: str, expected: list[tuple[str, int]]) -> None:
    assert [(c.text, c.start_position) for c in complete(text)] == expected


def test_completions_carry_help() -> None:
    (completion,) = complete("show ver")
    assert completion.display_meta_text == "Show software version"
