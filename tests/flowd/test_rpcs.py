"""Every control method answers exactly its contract (flowd/control/rpcs.py), and everything derived from it is in step."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from flowd.config.loader import load_config, parse_config
from flowd.config.overrides import with_overrides
from flowd.control import methods
from flowd.control.config_methods import CONFIG_METHODS, Caller
from flowd.control.database import open_database
from flowd.control.rpcs import BLOCK, RPCS, BadParam, Kind, render_docs
from flowd.control.streamed import Streamed, whole
from flowd.core import query
from flowd.runtime.probe import Probe
from shell.commands import Opt, Statement
from shell.grammar import COMMANDS

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000.0
TEMPLATE_CONFIG = """
services: {flow-monitoring: {version-ipfix: {template: {v4: {ipv4-template: true}}}}}
forwarding-options:
  sampling:
    input: {rate: 1}
    family: {inet: {output: {flow-server: {127.0.0.1: {port: 9, version-ipfix: {template: v4}}}}}}
firewall: {family: {inet: {filter: {f: {term: {t: {then: {count: c, accept: true}}}}}}}}
"""
# A configuration-mode session's requests, in the order a session makes them (method, params).
SESSION: list[tuple[str, dict[str, Any]]] = [
    ("config.schema", {}), ("config.history", {}), ("config.enter", {"mode": "private"}),
    ("config.set", {"path": [], "words": "forwarding-options sampling input rate 5".split()}),
    ("config.set", {"path": [], "words": "forwarding-options sampling input rate 0".split()}),
    ("config.delete", {"path": [], "words": "forwarding-options sampling input run-length".split()}),
    ("config.edit", {"path": [], "words": ["forwarding-options"]}),
    ("config.show", {"path": ["forwarding-options"]}), ("config.show", {"path": [], "words": ["bogus"]}),
    ("config.compare", {"path": []}), ("config.compare_rollback", {"words": ["forwarding-options"], "rollback": 0}),
    ("config.status", {}), ("config.commit", {"check": True}), ("config.commit", {"comment": "five"}),
    ("config.rollback", {"index": 1}), ("config.load", {"mode": "merge", "text": "flowd { flow-table { max-flows 9; } }"}),
    ("config.exit", {}),
]


def test_every_contract_has_a_method_and_back() -> None:
    assert set(RPCS) == set(methods.METHODS) | set(CONFIG_METHODS)
    assert not set(methods.METHODS) & set(CONFIG_METHODS)


def test_the_flow_filters_the_query_matches_are_the_contracts() -> None:
    detail = RPCS["accounting.flow_detail"]
    assert {p.name for p in detail.params if p.kind is Kind.INTEGER} - {"limit"} == set(query.FLOW_FILTERS)


def test_control_protocol_doc_has_the_generated_table() -> None:
    text = (REPO / "docs" / "control-protocol.md").read_text(encoding="utf-8")
    assert render_docs() in text, "docs/control-protocol.md is stale: paste `python -m flowd.control.rpcs --docs`"


def test_the_docs_command_prints_the_table() -> None:
    done = subprocess.run([sys.executable, "-m", "flowd.control.rpcs", "--docs"], capture_output=True, text=True,
                          check=True)
    assert done.stdout == render_docs()


def test_shell_options_are_the_contracts_params() -> None:
    """Each command's options (but the output level) are its method's params: same names, ranges, help."""
    for command in COMMANDS:
        if command.rpc is None:
            continue
        rpc = RPCS[command.rpc]
        opts = {o.param_name: o for o in command.options if isinstance(o, Opt)}
        statements = {o.param: o for o in command.options if isinstance(o, Statement)}
        assert set(opts) | set(statements) == {p.name for p in rpc.params}, command.path
        for p in rpc.params:
            if p.name in statements:
                assert statements[p.name].help == p.help and p.kind is Kind.WORDS and not p.required
                continue
            assert opts[p.name].help == p.help and opts[p.name].required == p.required
            if p.kind is Kind.INTEGER:
                value = opts[p.name].value
                assert (value.lo, value.hi) == (p.low, p.high), command.path  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "params", "message"), [
    ("accounting.flow_detail", {"limit": 0}, "limit: expected an integer 1..10000000, got 0"),
    ("accounting.flow_detail", {"limit": True}, "limit: expected an integer 1..10000000, got True"),
    ("accounting.flow_detail", {"order": "flows"}, "order: expected bytes or packets, got 'flows'"),
    ("accounting.flow_detail", {"source_prefix": "10.0.0.300/8"}, "source_prefix: expected an address prefix"),
    ("accounting.flow_detail", {"input_snmp_interface_index": 2**32}, "expected an integer 0..4294967295"),
    ("accounting.flow_detail", {"colour": 1}, "unknown parameter(s): colour"),
    ("accounting.aggregation_template", {}, "template_name: required"),
    ("accounting.aggregation_template", {"template_name": ""}, "template_name: expected a non-empty string"),
    ("system.version", {"name": "x"}, "unknown parameter(s): name"),
])
def test_bad_params_name_the_parameter(method: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(BadParam, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        RPCS[method].check(params)
    probe = Probe(with_overrides(load_config(None), flow_servers=[]), now=T0)
    with pytest.raises(methods.BadParams, match="expected|unknown|required"):
        asyncio.run(methods.call(probe, method, params, lambda: T0))


def test_a_configuration_session_answers_within_its_contracts(tmp_path: Path) -> None:
    path = tmp_path / "flowd.yaml"
    path.write_text(TEMPLATE_CONFIG)
    db = open_database(str(path), lambda text: parse_config(text, source="c", syntax="junos"), lambda user: True,
                       active=load_config(str(path)).tree, rollback_dir=str(tmp_path / "rollback"))
    seen = set()
    for method, params in SESSION:
        RPCS[method].check(params)
        result = CONFIG_METHODS[method](db, Caller(1, "alice", 100), params, T0)
        assert result and set(result) <= set(RPCS[method].result), (method, result)
        seen.add(method)
    assert seen == set(CONFIG_METHODS)


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_each_method_returns_exactly_its_declared_fields(method: str) -> None:
    rpc = RPCS[method]
    probe = Probe(parse_config(TEMPLATE_CONFIG, source="t.yaml", syntax="yaml"), now=T0)
    params: dict[str, Any] = {"template_name": "v4"} if method == "accounting.aggregation_template" else \
        {"filter": "f"} if method == "firewall.clear" else {}
    result = whole(asyncio.run(methods.call(probe, method, params, lambda: T0 + 1)))
    if method.startswith("accounting.") and "interfaces" in result:
        for block in result["interfaces"]:
            assert tuple(block)[:3] == BLOCK
            assert tuple(block)[3:] == rpc.result
    else:
        assert tuple(result) == rpc.result


@pytest.mark.parametrize("method", sorted(methods.METHODS))
def test_exactly_the_declared_methods_stream_their_list(method: str) -> None:
    probe = Probe(parse_config(TEMPLATE_CONFIG, source="t.yaml", syntax="yaml"), now=T0)
    params: dict[str, Any] = {"template_name": "v4"} if method == "accounting.aggregation_template" else \
        {"filter": "f"} if method == "firewall.clear" else {}
    result = asyncio.run(methods.call(probe, method, params, lambda: T0 + 1))
    assert isinstance(result, Streamed) == bool(RPCS[method].streamed)
    if isinstance(result, Streamed):
        assert result.into == RPCS[method].streamed
