"""The grammar: abbreviations, options, pipes, every error text with its caret column, `?` listings."""

from __future__ import annotations

from typing import Any

import pytest
from shell_golden import check_golden

from shell.commands import (
    Ambiguous,
    Command,
    GrammarError,
    Incomplete,
    Invalid,
    Local,
    Match,
    Opt,
    PipeCall,
)
from shell.grammar import COMMANDS, KEYWORD_HELP, PARSER, PIPES
from shell.parser import (
    Parser,
    failure_lines,
    failure_text,
    split_commands,
    split_words,
)
from shell.tokens import IntRange

PROMPT = "user@host> "

# line -> (command path, params, level, pipes)
MATCHES: list[tuple[str, str, dict[str, Any], str | None, tuple[PipeCall, ...]]] = [
    ("show services accounting flow", "show services accounting flow", {}, None, ()),
    ("sh ser acc fl", "show services accounting flow", {}, None, ()),
    ("sh serv acc fl", "show services accounting flow", {}, None, ()),
    ("sh ser acc f", "show services accounting flow", {}, None, ()),
    ("  show   services accounting   errors  ", "show services accounting errors", {}, None, ()),
    ("sh ser acc flow-d", "show services accounting flow-detail", {}, "terse", ()),
    ("sh ser acc e name all", "show services accounting errors", {"name": "all"}, None, ()),
    ("show services accounting memory name *", "show services accounting memory", {"name": "*"}, None, ()),
    ("show services accounting status name sampler-1", "show services accounting status", {"name": "sampler-1"},
     None, ()),
    ("sh ser acc pa", "show services accounting packet-size-distribution", {}, None, ()),
    ("sh ser acc u", "show services accounting usage", {}, None, ()),
    ("show services accounting flow-detail limit 10", "show services accounting flow-detail", {"limit": 10},
     "terse", ()),
    ("sh ser acc flow-detail ext lim 1 ord p", "show services accounting flow-detail",
     {"limit": 1, "order": "packets"}, "extensive", ()),
    ("show services accounting flow-detail detail order bytes", "show services accounting flow-detail",
     {"order": "bytes"}, "detail", ()),
    (("show services accounting flow-detail source-prefix 10.1.1.7/24 destination-prefix 2001:db8::1 proto 17 "
      "source-port 53 destination-port 5353 tos 184 input-snmp-interface-index 3 output-snmp-interface-index 4 "
      "source-as 64512 destination-as 4294967295 name *"),
     "show services accounting flow-detail",
     {"source_prefix": "10.1.1.0/24", "destination_prefix": "2001:db8::1/128", "proto": 17, "source_port": 53,
      "destination_port": 5353, "tos": 184, "input_snmp_interface_index": 3, "output_snmp_interface_index": 4,
      "source_as": 64512, "destination_as": 4294967295, "name": "*"}, "terse", ()),
    ("sh ser acc ag te template-name x", "show services accounting aggregation template", {"template_name": "x"},
     "terse", ()),
    ("show services accounting aggregation template extensive limit 3 template-name ipv4-tmpl name all | display xml",
     "show services accounting aggregation template", {"template_name": "ipv4-tmpl", "limit": 3, "name": "all"},
     "extensive", (PipeCall("display", "xml"),)),
    ("sh ser acc ag te template-name 'with space' det", "show services accounting aggregation template",
     {"template_name": "with space"}, "detail", ()),
    ("show passive-monitoring error", "show passive-monitoring error", {}, None, ()),
    ("sh pas fl", "show passive-monitoring flow", {}, None, ()),
    ("sh pas m", "show passive-monitoring memory", {}, None, ()),
    ("sh pas s", "show passive-monitoring status", {}, None, ()),
    ("sh pas u", "show passive-monitoring usage", {}, None, ()),
    ("clear services accounting statistics", "clear services accounting statistics", {}, None, ()),
    ("cl ser acc fl", "clear services accounting flow", {}, None, ()),
    ("show version", "show version", {}, None, ()),
    ("sh sys up", "show system uptime", {}, None, ()),
    ("sh conf", "show configuration", {}, None, ()),
    ("show configuration | display set", "show configuration", {}, None, (PipeCall("display", "set"),)),
    ("show version | count", "show version", {}, None, (PipeCall("count"),)),
    ("show version|count", "show version", {}, None, (PipeCall("count"),)),
    ("sh ver | m Host | c", "show version", {}, None, (PipeCall("match", "Host"), PipeCall("count"))),
    ('show version | match "Host|Model" | except \'a b\' | last 3 | no-more',
     "show version", {}, None, (PipeCall("match", "Host|Model"), PipeCall("except", "a b"), PipeCall("last", 3),
                                PipeCall("no-more"))),
    ("show version | find Py | save /tmp/x.txt", "show version", {}, None,
     (PipeCall("find", "Py"), PipeCall("save", "/tmp/x.txt"))),
    ("show services accounting flow | display xml", "show services accounting flow", {}, None,
     (PipeCall("display", "xml"),)),
    ("sh ser acc flow | d j", "show services accounting flow", {}, None, (PipeCall("display", "json"),)),
    ("exit", "exit", {}, None, ()),
    ("quit", "quit", {}, None, ()),
    ("help", "help", {}, None, ()),
]


@pytest.mark.parametrize(("line", "path", "params", "level", "pipes"), MATCHES)
def test_resolves(line: str, path: str, params: dict[str, Any], level: str | None,
                  pipes: tuple[PipeCall, ...]) -> None:
    result = PARSER.resolve(line)
    assert isinstance(result, Match), result
    assert (result.command.path, result.params, result.level, result.pipes) == (path, params, level, pipes)


# line -> (message, caret column within the line, bad word)
ERRORS = [
    ("foo", "unknown command.", 0, "foo"),
    ("  foo bar", "unknown command.", 2, "foo"),
    ("show version c", "syntax error, expecting <command>.", 13, "c"),
    ("show services accounting foo", "syntax error, expecting <command>.", 25, "foo"),
    ("show services accounting flow limit 5", "syntax error, expecting <command>.", 30, "limit"),
    ("show services accounting flow-detail limit abc", "syntax error.", 43, "abc"),
    ("show services accounting flow-detail limit 0", "syntax error.", 43, "0"),
    ("show services accounting flow-detail proto 256", "syntax error.", 43, "256"),
    ("show services accounting flow-detail source-prefix 10.1.1.300", "syntax error.", 51, "10.1.1.300"),
    ("show services accounting flow-detail order size", "syntax error.", 43, "size"),
    ("show services accounting flow-detail limit 1 limit 2", "syntax error, expecting <command>.", 45, "limit"),
    ("show services accounting flow-detail terse extensive", "syntax error, expecting <command>.", 43,
     "extensive"),
    ("show version | foo", "syntax error, expecting <command>.", 15, "foo"),
    ("show version | display set", "syntax error.", 23, "set"),
    ("show version | match (", "syntax error.", 21, "("),
    ("show version | count x", "syntax error, expecting <command>.", 21, "x"),
    ("clear services accounting flow | count", "syntax error, expecting <command>.", 31, "|"),
    ("show | count", "syntax error, expecting <command>.", 5, "|"),
    ("show", "syntax error, expecting <command>.", 5, ""),
    ("show services ", "syntax error, expecting <command>.", 14, ""),
    ("show services accounting flow-detail limit", "syntax error, expecting <limit>.", 43, ""),
    ("show version |", "syntax error, expecting <command>.", 15, ""),
    ("show version | match", "syntax error, expecting <regular-expression>.", 21, ""),
    # a required option still missing: the caret one column after the line, wherever the line stops
    ("show services accounting aggregation template", "syntax error, expecting <template-name>.", 46, ""),
    ("sh ser acc ag te", "syntax error, expecting <template-name>.", 17, ""),
    ("show services accounting aggregation template extensive limit 5",
     "syntax error, expecting <template-name>.", 64, ""),
    ("show services accounting aggregation template template-name", "syntax error, expecting <template-name>.",
     60, ""),
    ("show services accounting aggregation template | count", "syntax error, expecting <template-name>.", 46, "|"),
    ("show services accounting aggregation", "syntax error, expecting <command>.", 37, ""),
    ("show services accounting aggregation bogus", "syntax error, expecting <command>.", 37, "bogus"),
    ("show services accounting aggregation template template-name x template-name y",
     "syntax error, expecting <command>.", 62, "template-name"),
]


@pytest.mark.parametrize(("line", "message", "column", "word"), ERRORS)
def test_error_text_and_caret(line: str, message: str, column: int, word: str) -> None:
    result = PARSER.resolve(line)
    assert isinstance(result, Invalid | Incomplete), result
    assert (result.message, result.column, result.word) == (message, column, word)
    caret, text = failure_lines(result, len(PROMPT))[:2]
    assert caret == " " * (len(PROMPT) + column) + "^"
    assert text == message


def test_reference_examples_exactly() -> None:
    """junos-reference.md §4's error examples, line for line."""
    shown = [PROMPT + "foo", *failure_lines(PARSER.resolve("foo"), len(PROMPT))]  # type: ignore[arg-type]
    assert shown == ["user@host> foo", "           ^", "unknown command."]
    shown = [PROMPT + "show version c", *failure_lines(PARSER.resolve("show version c"), len(PROMPT))]  # type: ignore[arg-type]
    assert shown == ["user@host> show version c", "                        ^", "syntax error, expecting <command>."]


AMBIGUOUS = [
    ("show s", 5, ["services", "system"]),
    ("show services accounting aggregation template te", 46, ["template-name", "terse"]),
    ("show services accounting flow-detail d", 37,
     ["destination-as", "destination-port", "destination-prefix", "detail"]),
    ("show services accounting flow-detail source-p", 37, ["source-port", "source-prefix"]),
    ("show services accounting flow-detail o", 37, ["order", "output-snmp-interface-index"]),
]


@pytest.mark.parametrize(("line", "column", "words"), AMBIGUOUS)
def test_ambiguous(line: str, column: int, words: list[str]) -> None:
    result = PARSER.resolve(line)
    assert isinstance(result, Ambiguous), result
    assert result.column == column
    assert [c.word for c in result.completions] == words
    lines = failure_lines(result, len(PROMPT))
    assert lines[1] == f"'{line.split()[-1]}' is ambiguous."
    assert lines[2] == "Possible completions:"
    assert len(lines) == 3 + len(words)


def test_ambiguous_listing_layout() -> None:
    result = PARSER.resolve("show s")
    assert failure_lines(result, len(PROMPT)) == [  # type: ignore[arg-type]
        "                ^",
        "'s' is ambiguous.",
        "Possible completions:",
        "  services             Show services information",
        "  system               Show system information",
    ]


@pytest.mark.parametrize(("line", "text"), [
    ("foo", ["error: unknown command: foo"]),
    ("show version c", ["error: syntax error, expecting <command>: c"]),
    ("show services accounting flow-detail limit abc", ["error: syntax error: abc"]),
    ("show", ["error: syntax error, expecting <command>"]),
    ("show services accounting aggregation template", ["error: syntax error, expecting <template-name>"]),
    ("show s", ["error: 's' is ambiguous.", "Possible completions:",
                "  services             Show services information",
                "  system               Show system information"]),
])
def test_non_interactive_error_text(line: str, text: list[str]) -> None:
    result = PARSER.resolve(line)
    assert not isinstance(result, Match) and result is not None
    assert failure_text(result) == text


def test_blank_line_is_nothing() -> None:
    assert PARSER.resolve("") is None
    assert PARSER.resolve("   ") is None


# line -> the words `?` lists (in order)
HELP_WORDS = [
    ("", ["clear", "configure", "exit", "help", "quit", "set", "show"]),
    ("show ", ["cli", "configuration", "firewall", "passive-monitoring", "services", "system", "version"]),
    ("set cli ", ["<[Enter]>", "no-timestamp", "screen-length", "screen-width", "timestamp"]),
    ("show cli ", ["history"]),
    ("show firewall ", ["<[Enter]>", "counter", "filter", "|"]),
    ("show firewall filter ", ["<filter-name>"]),
    ("clear firewall ", ["counter", "filter"]),
    ("configure ", ["<[Enter]>", "exclusive", "private"]),
    ("show s", ["services", "system"]),
    ("show services accounting ", ["<[Enter]>", "aggregation", "errors", "flow", "flow-detail", "memory",
                                   "packet-size-distribution", "routing", "status", "usage", "|"]),
    ("show services accounting a", ["aggregation"]),
    ("show services accounting aggregation ", ["as", "destination-prefix", "protocol-port", "source-destination-prefix",
                                               "source-prefix", "template"]),
    # no <[Enter]> and no | until the required template-name is given
    ("show services accounting aggregation template ", ["detail", "extensive", "limit", "name", "template-name",
                                                        "terse"]),
    ("show services accounting aggregation template template-name ", ["<template-name>"]),
    ("show services accounting aggregation template template-name x ",
     ["<[Enter]>", "detail", "extensive", "limit", "name", "terse", "|"]),
    ("show services accounting aggregation template extensive ", ["limit", "name", "template-name"]),
    ("show services accounting fl", ["flow", "flow-detail"]),
    ("show services accounting flow ", ["<[Enter]>", "name", "|"]),
    ("show services accounting flow name ", ["<name>", "*", "all"]),
    ("show services accounting flow-detail limit ", ["<limit>"]),
    ("show services accounting flow-detail order ", ["bytes", "packets"]),
    ("show services accounting flow-detail limit 5 extensive ",
     ["<[Enter]>", "destination-as", "destination-port", "destination-prefix", "input-snmp-interface-index", "name",
      "order", "output-snmp-interface-index", "proto", "source-as", "source-port", "source-prefix", "tos", "|"]),
    ("show version ", ["<[Enter]>", "|"]),
    ("show version | ", ["count", "display", "except", "find", "hold", "last", "match", "no-more", "refresh", "save",
                         "trim"]),
    ("show version |", ["count", "display", "except", "find", "hold", "last", "match", "no-more", "refresh", "save",
                        "trim"]),
    ("show version | trim ", ["<columns>"]),
    ("show version | refresh ", ["<seconds>"]),
    ("show version | display ", ["json", "xml"]),
    ("show configuration | display ", ["json", "set", "xml"]),
    ("show version | match ", ["<regular-expression>"]),
    ("show version | count ", ["<[Enter]>", "|"]),
    ("clear services accounting flow ", ["<[Enter]>"]),
    ("exit ", ["<[Enter]>"]),
]


@pytest.mark.parametrize(("line", "words"), HELP_WORDS)
def test_question_mark_lists(line: str, words: list[str]) -> None:
    listing = PARSER.candidates(line)
    assert listing.failure is None
    assert [c.word for c in listing.candidates] == words


def test_question_mark_after_error_shows_the_error() -> None:
    assert PARSER.help_lines("show foo ", len(PROMPT)) == [" " * 16 + "^", "syntax error, expecting <command>."]
    assert PARSER.help_lines("show ver x", len(PROMPT)) == [" " * 20 + "^", "syntax error, expecting <command>."]
    assert PARSER.help_lines("foo", len(PROMPT)) == [" " * 11 + "^", "unknown command."]


@pytest.mark.parametrize(("name", "line"), [
    ("help_top.txt", ""),
    ("help_show_services_accounting.txt", "show services accounting "),
    ("help_flow_detail.txt", "show services accounting flow-detail "),
    ("help_pipes.txt", "show services accounting flow | "),
    ("help_limit.txt", "show services accounting flow-detail limit "),
    ("help_aggregation_template.txt", "show services accounting aggregation template "),
])
def test_question_mark_output(name: str, line: str, update_golden: bool) -> None:
    check_golden(name, PARSER.help_lines(line, len(PROMPT)), update_golden)


def test_help_columns() -> None:
    lines = PARSER.help_lines("show services accounting flow ", len(PROMPT))
    assert lines == ["Possible completions:",
                     "  <[Enter]>            Execute this command",
                     "  name                 Name of accounting service",
                     "  |                    Pipe through a command"]


@pytest.mark.parametrize(("line", "words", "text"), [
    ('show version | match "a b|c" | count', ["show", "version", "|", "match", "a b|c", "|", "count"], False),
    ("a|b", ["a", "|", "b"], False),
    ("match 'it''s'", ["match", "its"], False),
    ('match "open', ["match", "open"], True),
])
def test_split_words(line: str, words: list[str], text: bool) -> None:
    split, open_quote = split_words(line)
    assert [w.text for w in split] == words
    assert open_quote is text


def test_split_words_columns() -> None:
    split, _ = split_words('  show  "a b" |x')
    assert [(w.start, w.end) for w in split] == [(2, 6), (8, 13), (14, 15), (15, 16)]


@pytest.mark.parametrize(("text", "commands"), [
    ("show version; show system uptime", ["show version", "show system uptime"]),
    ('show version | match "a;b"; exit', ['show version | match "a;b"', "exit"]),
    (" ; ;show version;", ["show version"]),
])
def test_split_commands(text: str, commands: list[str]) -> None:
    assert split_commands(text) == commands


def test_every_keyword_path_has_help() -> None:
    for command in COMMANDS:
        words = command.words
        for depth in range(1, len(words)):
            assert " ".join(words[:depth]) in KEYWORD_HELP


def test_grammar_errors_are_caught_when_compiling() -> None:
    ok = Command("show thing", "Show a thing", rpc="x.thing")
    with pytest.raises(GrammarError, match="no help"):
        Parser([Command("show other thing", "x", rpc="x", displays=())], {"show": "Show"}, PIPES, {})
    with pytest.raises(GrammarError, match="declared twice"):
        Parser([ok, ok], {"show": "Show"}, PIPES, {"json": "", "xml": ""})
    with pytest.raises(GrammarError, match="exactly one"):
        Parser([Command("quit", "Quit", rpc="x", local=Local.EXIT, displays=())], {}, PIPES, {})
    with pytest.raises(GrammarError, match="repeated"):
        Parser([Command("show", "S", rpc="x", displays=(), options=(Opt("a", IntRange(0, 1), "a"),
                                                                  Opt("a", IntRange(0, 1), "a")))], {}, PIPES, {})
    with pytest.raises(GrammarError, match="display format"):
        Parser([Command("show", "S", rpc="x", displays=("yaml",))], {}, PIPES, {})
