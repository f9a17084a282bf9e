"""`show configuration [STATEMENT]` and the configured names Tab and `?` offer: the grammar with the daemon's
statement tree (flowd.syntax.names.Configuration), the renderers of one hierarchy (text, set, XML, JSON) and of
`| compare rollback N`, and configuration mode's referring leaves; goldens under tests/data/shell."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from prompt_toolkit.completion import CompleteEvent
from prompt_toolkit.document import Document
from shell_golden import REPO, check_golden

from flowd.config.statements import statement_tree
from flowd.syntax import junos
from flowd.syntax.edit import normalize, shown, wrap
from flowd.syntax.names import Configuration
from flowd.syntax.schema import outline, show_path
from shell.commands import Invalid, Match, PipeCall
from shell.completer import GrammarCompleter
from shell.configmode import ConfigSession, completions, help_lines
from shell.grammar import PARSER
from shell.parser import failure_lines
from shell.render import render

SCHEMA = statement_tree()
TEMPLATES = """
services { flow-monitoring {
    version9 { template v4 { ipv4-template; } }
    version-ipfix { template ipfix-v6 { ipv6-template; } template ipfix-v4 { ipv4-template; } }
} }
firewall { family inet6 { filter v6_only { term all { then { count six; accept; } } } } }
flowd { routing { snmp-index { eth1 12; eth2 13; } } }
"""
TREE = normalize(SCHEMA, junos.parse((REPO / "etc" / "seed-sampling.conf").read_text() + TEMPLATES).tree)
CONFIG = Configuration(SCHEMA, TREE)
PROMPT = "user@host> "


def result(*words: str) -> dict[str, Any]:
    """What `system.configuration` answers for `show configuration WORDS` (as its handler builds it), via JSON."""
    path, tree = shown(TREE, show_path(SCHEMA, (), words))
    sent: dict[str, Any] = json.loads(json.dumps({"path": list(path), "config": tree,
                                                  "schema": outline(SCHEMA, wrap(path, tree))}))
    return sent


def tab(line: str) -> list[str]:
    completer = GrammarCompleter(PARSER, lambda: CONFIG)
    return [c.text for c in completer.get_completions(Document(line), CompleteEvent(completion_requested=True))]


@pytest.mark.parametrize(("line", "words"), [
    ("show configuration ", ["firewall", "flowd", "forwarding-options", "interfaces", "services"]),
    ("show configuration flowd routing snmp-index ", ["eth1", "eth2"]),
    ("show configuration fo", ["forwarding-options"]),
    ("show configuration forwarding-options family inet output flow-server ", ["10.60.2.1"]),
    ("show configuration interfaces ", ["sp-2/0/0", "fe-1/0/0", "ge-2/3/0", "ge-3/0/0"]),
    ("show configuration services flow-monitoring version-ipfix template ", ["ipfix-v6", "ipfix-v4"]),
    ("show configuration firewall family inet filter ", ["catch_all"]),
    ("show firewall filter ", ["catch_all", "v6_only"]),
    ("show firewall filter c", ["catch_all"]),
    ("show firewall filter catch_all counter ", ["counter1"]),
    ("show firewall counter ", ["counter1", "six"]),
    ("clear firewall filter v6_only counter ", ["six"]),
    ("show services accounting aggregation template template-name ", ["v4", "ipfix-v6", "ipfix-v4"]),
    ("show services accounting aggregation template template-name ipfix-v", ["ipfix-v6", "ipfix-v4"]),
    ("show services accounting flow-detail input-snmp-interface-index ", ["12", "13"]),
    ("show services accounting aggregation as output-snmp-interface-index 1", ["12", "13"]),
])
def test_tab_offers_statements_and_configured_names(line: str, words: list[str]) -> None:
    assert tab(line) == sorted(words)


def test_without_the_configuration_nothing_is_offered_but_the_line_still_parses() -> None:
    assert [c.word for c in PARSER.candidates("show firewall filter ").candidates] == ["<filter-name>"]
    assert [c.word for c in PARSER.candidates("show configuration ").candidates] == \
        ["<[Enter]>", "<statement>", "|"]
    match = PARSER.resolve("show configuration bogus words")
    assert isinstance(match, Match) and match.params == {"words": ["bogus", "words"]}  # the daemon checks them


def test_question_mark_lists_names_in_the_junos_layout(update_golden: bool) -> None:
    lines = PARSER.help_lines("show firewall filter ", len(PROMPT), CONFIG)
    check_golden("help_firewall_filter.txt", lines, update_golden)
    assert lines[1:] == ["  <filter-name>        Name of filter", "  catch_all            Configured filter",
                         "  v6_only              Configured filter"]
    lines = PARSER.help_lines("show services accounting flow-detail input-snmp-interface-index ", len(PROMPT),
                              CONFIG)
    assert lines[1:] == ["  <index>              Input SNMP interface index to match (0..4294967295)",
                         "  12                   SNMP index of eth1", "  13                   SNMP index of eth2"]
    lines = PARSER.help_lines("show configuration forwarding-options ", len(PROMPT), CONFIG)
    check_golden("help_show_configuration.txt", lines, update_golden)
    assert "  sampling             " in "\n".join(lines) and lines[1].startswith("  <[Enter]>")


@pytest.mark.parametrize(("line", "word", "column"), [
    ("show configuration foo", "foo", 19),
    ("show configuration forwarding-options bogus", "bogus", 38),
    ("show configuration forwarding-options sampling input rate 1", "1", 58),
])
def test_a_word_that_is_no_statement_is_a_syntax_error_under_it(line: str, word: str, column: int) -> None:
    failure = PARSER.resolve(line, CONFIG)
    assert failure == Invalid("syntax error.", word, column)
    assert failure_lines(failure, len(PROMPT)) == [" " * (len(PROMPT) + column) + "^", "syntax error."]


@pytest.mark.parametrize(("line", "params", "pipes"), [
    ("show configuration", {}, ()),
    ("sh conf forw samp in", {"words": ["forw", "samp", "in"]}, ()),
    ("show configuration forwarding-options | display set", {"words": ["forwarding-options"]},
     (PipeCall("display", "set"),)),
    ("show configuration | compare rollback 3", {}, (PipeCall("compare", 3),)),
    ("show configuration interfaces | com r 0 | match unit", {"words": ["interfaces"]},
     (PipeCall("compare", 0), PipeCall("match", "unit"))),
])
def test_show_configuration_lines(line: str, params: dict[str, Any], pipes: tuple[PipeCall, ...]) -> None:
    match = PARSER.resolve(line, CONFIG)
    assert isinstance(match, Match) and match.command.path == "show configuration"
    assert (match.params, match.pipes) == (params, pipes)


@pytest.mark.parametrize(("line", "message"), [
    ("show configuration | compare", "syntax error, expecting rollback."),
    ("show configuration | compare rollback", "syntax error, expecting <rollback>."),
    ("show configuration | compare rollback 50", "syntax error."),
    ("show version | compare rollback 1", "syntax error, expecting <command>."),
])
def test_compare_takes_rollback_0_to_49_on_show_configuration_only(line: str, message: str) -> None:
    failure = PARSER.resolve(line, CONFIG)
    assert not isinstance(failure, Match) and failure is not None and failure.message == message


def test_one_hierarchy_as_text_set_xml_and_json(update_golden: bool) -> None:
    shown_ = result("forwarding-options")
    text = render("system.configuration", shown_)
    check_golden("configuration_forwarding_options.txt", text, update_golden)
    assert text[:3] == ["sampling {", "    input {", "        rate 1;"]
    assert "family inet {" in text  # a keyed list prints `family inet {`, as at the top
    sets = render("system.configuration", shown_, None, "set")
    check_golden("configuration_forwarding_options_set.txt", sets, update_golden)
    assert sets[0] == "set forwarding-options sampling input rate 1"
    xml = render("system.configuration", result("forwarding-options", "family", "inet", "output"), None, "xml")
    check_golden("configuration_output.xml", xml, update_golden)
    output = ET.fromstring("\n".join(xml)).find("configuration/forwarding-options/family/inet/output")
    assert output is not None
    assert [(s.findtext("name"), s.findtext("port")) for s in output.iter("flow-server")] == [("10.60.2.1", "2055")]
    data = json.loads("\n".join(render("system.configuration", result("firewall"), None, "json")))
    check_golden("configuration_firewall.json", json.dumps(data, indent=4).splitlines(), update_golden)
    (filter_,) = data["configuration"]["firewall"]["family"]["inet"]["filter"]
    assert filter_["name"] == "catch_all" and filter_["term"][0]["then"] == \
        {"sample": [None], "count": "counter1", "accept": [None]}


def test_the_whole_configuration_as_xml_names_interfaces_and_lists() -> None:
    root = ET.fromstring("\n".join(render("system.configuration", result(), None, "xml")))
    names = [i.findtext("name") for i in root.iterfind("configuration/interfaces/interface")]
    assert names == ["sp-2/0/0", "fe-1/0/0", "ge-2/3/0", "ge-3/0/0"]
    assert root.find("configuration/firewall/family/inet/filter/term/then/sample") is not None


@pytest.mark.parametrize(("words", "text"), [
    (("forwarding-options", "sampling", "input", "rate"), ["rate 1;"]),
    (("interfaces", "ge-2/3/0", "unit", "0", "family", "inet", "filter"), ["input catch_all;"]),
    (("forwarding-options", "family", "inet6"), []),  # nothing configured there: nothing printed
    (("interfaces", "xe-0/0/0"), []),
])
def test_one_statement_and_what_is_not_configured(words: tuple[str, ...], text: list[str]) -> None:
    assert render("system.configuration", result(*words)) == text


def test_compare_rollback_text_and_xml(update_golden: bool) -> None:
    lines = ["[edit forwarding-options sampling input]", "-   rate 1;", "+   rate 100;"]
    check_golden("compare_rollback.txt", render("config.compare_rollback", {"lines": lines}), update_golden)
    xml = render("config.compare_rollback", {"lines": lines}, None, "xml")
    check_golden("compare_rollback.xml", xml, update_golden)
    assert ET.fromstring("\n".join(xml)).findtext("configuration-information/configuration-output") == \
        "\n".join(lines)
    data = json.loads("\n".join(render("config.compare_rollback", {"lines": lines}, None, "json")))
    assert data["configuration-information"][0]["configuration-output"][0]["data"] == "\n".join(lines)


def session() -> ConfigSession:
    s = ConfigSession(None, None)  # type: ignore[arg-type]  # completion never calls the daemon
    s.schema, s.config = SCHEMA, CONFIG
    return s


@pytest.mark.parametrize(("line", "words"), [
    ("set forwarding-options family inet output flow-server 10.60.2.1 version9 template ", ["v4"]),
    ("set forwarding-options family inet output flow-server 10.60.2.1 version-ipfix template ",
     ["ipfix-v4", "ipfix-v6"]),
    ("set interfaces ge-3/0/0 unit 0 family inet filter input ", ["catch_all", "v6_only"]),
    ("delete forwarding-options family inet output flow-server ", ["10.60.2.1"]),
    ("set services flow-monitoring version9 template ", ["v4"]),
    ("show | compare ", ["rollback"]),
    ("show forwarding-options | display ", ["json", "set", "xml"]),
])
def test_configuration_mode_offers_the_candidates_names(line: str, words: list[str]) -> None:
    start, found = completions(session(), line)
    assert start == len(line) and [w for w, _ in found] == words


def test_configuration_mode_question_mark_after_a_pipe() -> None:
    lines = help_lines(session(), "show | compare rollback ")
    assert lines == ["Possible completions:",
                     "  <rollback>           Compare configuration changes with prior version (0..49)"]
    lines = help_lines(session(), "set forwarding-options family inet output flow-server 10.60.2.1 version9 "
                                  "template ")
    assert lines[1:] == ["  <template>           Template name", "  v4                   Template configuration"]
