"""`show configuration` as curly-brace text and as `| display set`, checked against goldens and flowd.syntax.junos."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shell_golden import REPO, check_golden
from shell_seed import SEED_CONFIG

from flowd.syntax import junos
from shell.render.configuration import to_curly, to_set


def test_curly_golden(update_golden: bool) -> None:
    check_golden("configuration.txt", to_curly(SEED_CONFIG), update_golden)


def test_set_golden(update_golden: bool) -> None:
    check_golden("configuration_set.txt", to_set(SEED_CONFIG), update_golden)


def test_curly_layout() -> None:
    lines = to_curly({"forwarding-options": {"sampling": {"input": {"rate": 1, "run-length": 0}, "disable": True}}})
    assert lines == [
        "forwarding-options {",
        "    sampling {",
        "        input {",
        "            rate 1;",
        "            run-length 0;",
        "        }",
        "        disable;",
        "    }",
        "}",
    ]


@pytest.mark.parametrize(("tree", "curly", "sets"), [
    ({"a": {"b": ["x", "y z", 3]}}, ["a {", '    b [ x "y z" 3 ];', "}"], ['set a b x', 'set a b "y z"', "set a b 3"]),
    ({"a": {"b": []}}, ["a {", "    b [ ];", "}"], []),
    ({"a": {"name": "60"}}, ["a {", '    name "60";', "}"], ['set a name "60"']),
    ({"a": {"f": 1.5}}, ["a {", "    f 1.5;", "}"], ["set a f 1.5"]),
    ({"a": {}}, ["a {", "}"], ["set a"]),
    ({"interfaces": {"eth0": {"unit": {"0": {"description": 'say "hi"'}}}}},
     ["interfaces {", "    eth0 {", "        unit 0 {", '            description "say \\"hi\\"";', "        }",
      "    }", "}"], ['set interfaces eth0 unit 0 description "say \\"hi\\""']),
])
def test_leaf_forms(tree: dict[str, Any], curly: list[str], sets: list[str]) -> None:
    assert to_curly(tree) == curly
    assert to_set(tree) == sets


def _through_json(tree: Any) -> Any:
    return json.loads(json.dumps(tree))


@pytest.mark.parametrize("path", [REPO / "etc" / "seed-sampling.conf"])
def test_same_text_as_the_daemons_printer(path: Path) -> None:
    """The tree the daemon parses, sent as JSON, prints as flowd.syntax.junos prints it, and parses back the same."""
    tree = junos.parse(path.read_text()).tree
    received = _through_json(tree)
    assert to_curly(received) == junos.to_curly(tree).splitlines()
    assert to_set(received) == junos.to_set(tree)
    assert _through_json(junos.parse("\n".join(to_curly(received))).tree) == received


def test_seed_config_is_what_the_daemon_parses_from_the_seed() -> None:
    tree = junos.parse((REPO / "etc" / "seed-sampling.conf").read_text()).tree
    assert _through_json(tree) == SEED_CONFIG
