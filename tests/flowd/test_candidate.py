"""Configuration mode's pure parts: the statement tree walk, candidate edits, compare, the rollback store."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from seed_set import seed_set

from flowd.config import loader as config
from flowd.config.rollback import RollbackStore
from flowd.config.statements import statement_tree
from flowd.syntax import junos
from flowd.syntax.compare import compare
from flowd.syntax.edit import delete_statement, normalize, set_statement
from flowd.syntax.schema import (
    MISSING_ARGUMENT,
    SYNTAX_ERROR,
    StatementError,
    candidates,
    walk,
)

REPO = Path(__file__).resolve().parents[2]
SCHEMA = statement_tree()



def apply_set(tree: dict[Any, Any], lines: str) -> None:
    for line in lines.splitlines():
        verb, *words = line.split()
        resolved = walk(SCHEMA, (), words, values=verb == "set")
        (set_statement if verb == "set" else delete_statement)(tree, resolved)


def seed_tree() -> dict[Any, Any]:
    text = (REPO / "etc" / "seed-sampling.conf").read_text().replace("10.60.2.1", "127.0.0.1")
    return junos.parse(text).tree


def test_seed_typed_with_set_validates_like_the_seed_file() -> None:
    tree: dict[Any, Any] = {}
    apply_set(tree, seed_set())
    typed = config.parse_config(junos.to_curly(tree), source="typed", syntax="junos")
    seed = config.parse_config(junos.to_curly(seed_tree()), source="seed", syntax="junos")
    for name in ("sampling", "families", "filters", "inputs", "templates"):
        assert getattr(typed, name) == getattr(seed, name)
    assert compare(normalize(SCHEMA, seed_tree()), normalize(SCHEMA, tree)) == []


def test_display_set_lines_read_back_into_the_same_tree() -> None:
    tree = seed_tree()
    again: dict[Any, Any] = {}
    apply_set(again, "\n".join(junos.to_set(tree)))
    assert compare(normalize(SCHEMA, tree), normalize(SCHEMA, again)) == []


@pytest.mark.parametrize("words, index, message", [
    ("forwarding-options sampling input rate 0", 4,
     "error: value out of range: 0 is not within range (1..16000000)"),
    ("forwarding-options sampling input rate x", 4, "error: invalid numeric value: 'x'"),
    ("forwarding-options sampling input rate", 4, MISSING_ARGUMENT),
    ("forwarding-options samplin input bogus 1", 3, SYNTAX_ERROR),
    ("forwarding-options bogus", 1, SYNTAX_ERROR),
    ("forwarding-options family inet output flow-server 10.0.0.300 port 1", 5, "error: invalid IP address: '10.0.0.300'"),
    ("forwarding-options family inet output flow-active-timeout 5", 5,
     "error: value out of range: 5 is not within range (60..1800)"),
    ("firewall family inet filter f term t then sample extra", 9, SYNTAX_ERROR),
    ("firewall family inet filter f term t from protocol bogus", 9,
     "error: invalid protocol: 'bogus' (a name, a number 0..255 or a range N-M)"),
])
def test_bad_set_lines_name_the_word_and_the_junos_message(words: str, index: int, message: str) -> None:
    with pytest.raises(StatementError) as info:
        walk(SCHEMA, (), words.split(), values=True)
    assert (info.value.word, info.value.message) == (index, message)


def test_abbreviated_keywords_and_edit_levels() -> None:
    tree: dict[Any, Any] = {}
    set_statement(tree, walk(SCHEMA, ("forwarding-options", "sampling"), "in ra 100".split(), values=True))
    set_statement(tree, walk(SCHEMA, ("forwarding-options", "family"), "inet output flow-server 127.0.0.1 port 9".split(),
                             values=True))
    assert tree == {"forwarding-options": {"sampling": {"input": {"rate": 100}},
                                           "family": {"inet": {"output": {"flow-server": {"127.0.0.1": {"port": 9}}}}}}}


def test_delete_prunes_empty_blocks_and_keeps_entries() -> None:
    tree = seed_tree()
    apply_set(tree, "delete forwarding-options family inet output flow-server 127.0.0.1 port\n"
                    "delete forwarding-options family inet output flow-server 127.0.0.1 version\n"
                    "delete forwarding-options sampling input rate")
    out = tree["forwarding-options"]
    assert out["family"]["inet"]["output"]["flow-server"] == {"127.0.0.1": {}}
    assert "sampling" not in out
    assert not delete_statement(tree, walk(SCHEMA, (), "firewall family inet filter nothere".split(), values=False))


def test_leaf_lists_and_yaml_short_forms() -> None:
    tree: dict[Any, Any] = {"firewall": {"family": {"inet": {"filter": {"f": {"term": {"t": {
        "from": {"protocol": "tcp", "source-address": ["10.0.0.0/8"]}}}}}}}}}
    apply_set(tree, "set firewall family inet filter f term t from protocol [ udp tcp ]\n"
                    "set firewall family inet filter f term t from source-address 192.0.2.0/24\n"
                    "delete firewall family inet filter f term t from source-address 10.0.0.0/8")
    frm = tree["firewall"]["family"]["inet"]["filter"]["f"]["term"]["t"]["from"]
    assert frm == {"protocol": ["tcp", "udp"], "source-address": {"192.0.2.0/24": True}}


def test_compare_prints_junos_headers_and_marks() -> None:
    old = seed_tree()
    new = copy.deepcopy(old)
    apply_set(new, "set forwarding-options sampling input rate 100\n"
                   "set forwarding-options family inet output flow-server 127.0.0.2 port 2056\n"
                   "delete firewall family inet filter catch_all term default then count")
    assert compare(old, new) == [
        "[edit forwarding-options sampling input]",
        "-   rate 1;",
        "+   rate 100;",
        "[edit forwarding-options family inet output]",
        "+   flow-server 127.0.0.2 {",
        "+       port 2056;",
        "+   }",
        "[edit firewall family inet filter catch_all term default then]",
        "-   count counter1;",
    ]


def test_candidates_list_keywords_values_and_configured_names() -> None:
    assert [w for w, _ in candidates(SCHEMA, (), ["forwarding-options", "sampling", "input"])] == \
        ["max-packets-per-second", "maximum-packet-length", "rate", "run-length"]
    assert candidates(SCHEMA, (), "forwarding-options sampling input rate".split()) == \
        [("<rate>", "Sample 1 packet out of N (1 samples every packet) (1..16000000)")]
    known = {("firewall", "family", "inet", "filter"): ["catch_all"]}
    assert ("catch_all", "Define a firewall filter") in candidates(SCHEMA, (), "firewall family inet filter".split(),
                                                                    known=known)
    assert candidates(SCHEMA, (), "forwarding-options bogus".split()) == []


SAMPLE: dict[str, str] = {"address": "127.0.0.1", "prefix": "10.0.0.0/8", "interface-address": "10.0.0.1/24",
                          "protocol": "tcp", "port": "80", "text": "x", "name": "x1"}


def _sample(value: dict[str, Any]) -> str:
    if value["type"] in ("integer", "duration"):
        return str(value["range"][0]) if value["range"] else "1"
    if value["type"] == "choice":
        return str(value["choices"][0][0])
    if value["type"] == "name" and value["pattern"] and value["pattern"].startswith("(?:sp"):
        return "sp-0/0/0"
    return SAMPLE[value["type"]]


def _statements(node: dict[str, Any], words: list[str]) -> list[list[str]]:
    """One `set` line (as words) per leaf, flag and list entry of the tree."""
    kind = node["kind"]
    if kind == "container":
        return [line for key, child in node["children"].items() for line in _statements(child, words + [key])]
    if kind == "list":
        entry = words + [_sample(node["key"])]
        return [entry] if node["body"] is None else _statements(node["body"], entry)
    if kind in ("leaf", "leaf-list"):
        return [words + [_sample(node["value"])]]
    return [words]


@pytest.mark.parametrize("words", _statements(SCHEMA, []), ids=" ".join)
def test_every_statement_of_the_tree_is_one_the_validator_knows(words: list[str]) -> None:
    """The tree offers only statements the validator reads (it may still want more, never 'unknown')."""
    if "next-header" in words:  # family inet6's name for protocol
        words = [("inet6" if w == "inet" else w) for w in words]
    tree: dict[Any, Any] = {}
    set_statement(tree, walk(SCHEMA, (), words, values=True))
    try:
        config.parse_config(junos.to_curly(normalize(SCHEMA, tree)), source="t", syntax="junos")
    except config.ConfigError as exc:
        assert "unknown statement" not in exc.message and "expected a block" not in exc.message, exc


def test_rollback_store_keeps_fifty_newest_first(tmp_path: Path) -> None:
    store = RollbackStore(tmp_path / "rollback", keep=50)
    for i in range(55):
        store.add(f"n {i};\n", user="alice", time=1000.0 + i, comment=f"c{i}")
    assert len(store) == 50
    assert store.get(0).text == "n 54;\n" and store.get(0).comment == "c54"
    assert store.get(49).text == "n 5;\n"
    assert store.get(50) is None
    assert [c.comment for c in store.history()[:2]] == ["c54", "c53"]
