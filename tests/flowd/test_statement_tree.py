"""The statement tree and the validator agree both ways: a configuration using every statement of the tree
validates, and at every block the validator allows exactly the tree's statements, no more, no fewer."""

from __future__ import annotations

import copy
import shlex
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from flowd.config import loader as config
from flowd.config.build import build_config
from flowd.config.statements import statement_tree
from flowd.syntax import junos
from flowd.syntax.compare import compare
from flowd.syntax.edit import normalize, set_statement
from flowd.syntax.schema import KeyPath, Node, StatementError, candidates, walk, walk_several

REPO = Path(__file__).resolve().parents[2]
SCHEMA = statement_tree()

# Every statement of the tree at least once (mutually exclusive ones in different entries), valid as a whole.
EVERY = """\
interfaces {
    ge-0/0/0 {
        description "uplink";
        unit 0 {
            description "unit zero";
            family inet {
                filter { input f4; output f4; }
                address 192.0.2.1/24 { destination 192.0.2.2; }
            }
            family inet6 {
                sampling { input; output; }
            }
        }
    }
}
forwarding-options {
    sampling {
        input { rate 10; run-length 1; max-packets-per-second 1000; maximum-packet-length 128; }
        family inet {
            input { rate 5; run-length 2; max-packets-per-second 100; maximum-packet-length 64; }
            output {
                flow-server 127.0.0.1 {
                    port 2055;
                    version 8;
                    source-address 127.0.0.1;
                    dscp 8;
                    transport udp;
                    aggregation {
                        autonomous-system;
                        protocol-port;
                        source-prefix;
                        destination-prefix;
                        source-destination-prefix { caida-compliant; }
                    }
                    autonomous-system-type peer;
                    local-dump;
                }
                flow-server 127.0.0.2 { port 2056; version 5; no-local-dump; }
                flow-active-timeout 120;
                flow-inactive-timeout 30;
                interface sp-2/0/0 { engine-id 5; engine-type 55; source-address 127.0.0.1; }
                aggregate-export-interval 120;
                inline-jflow { flow-export-rate 20; }
            }
        }
    }
    family inet6 {
        output {
            flow-server ::1 { port 4739; version9 { template v6; } }
            flow-server ::2 { port 4740; version-ipfix { template x6; } transport tcp; }
        }
    }
}
firewall {
    family inet {
        filter f4 {
            term a {
                from {
                    source-address { 10.0.0.0/8; }
                    destination-address { 192.0.2.0/24; }
                    address { 198.51.100.0/24; }
                    protocol [ tcp udp ];
                    source-port [ 80 https ];
                    destination-port 1024-65535;
                    port ssh;
                }
                then { sample; count c1; accept; }
            }
            term b { then { discard; } }
        }
    }
    family inet6 {
        filter f6 { term a { from { next-header tcp; } then { sample; } } }
    }
}
services {
    flow-monitoring {
        version9 {
            template t9 {
                flow-active-timeout 60;
                flow-inactive-timeout 30;
                template-id 1024;
                options-template-id 1025;
                template-refresh-rate { packets 100; seconds 30; }
                option-refresh-rate { packets 200; seconds 40; }
                source-id 7;
                ipv4-template;
            }
            template v6 { ipv6-template; }
            template t9m { mpls-template { label-position [ 1 2 ]; } }
            template t9mi { mpls-ipv4-template; }
            template t9b { bridge-template; }
            template t9p { peer-as-billing-template; }
        }
        version-ipfix {
            template tx {
                flow-active-timeout 60;
                flow-inactive-timeout 30;
                template-id 1026;
                options-template-id 1027;
                template-refresh-rate { packets 100; seconds 30; }
                option-refresh-rate { packets 200; seconds 40; }
                observation-domain-id 9;
                ipv4-template;
            }
            template x6 { ipv6-template; }
            template txm { mpls-template; }
            template txmi { mpls-ipv4-template { label-position 3; } }
            template txb { bridge-template; }
        }
    }
}
flowd {
    interface-map { ge-0/0/0 eth0; }
    flow-table { max-flows 1000; }
    control { socket /run/flowd/flowd.sock; read-group flowd; admin-group flowd-admin; }
    capture {
        workers 1;
        ring-blocks 4;
        block-size 65536;
        block-timeout 50;
        snaplen 128;
        promiscuous;
        direction both;
    }
    metrics { listen 127.0.0.1; port 9477; }
    netconf {
        listen 127.0.0.1;
        port 8300;
        authorized-keys /etc/flowd/netconf/%u.keys;
        host-key /etc/flowd/netconf/host.key;
        max-sessions 2;
        idle-timeout 60;
        max-message-size 65536;
    }
    routing {
        bgp {
            neighbor 192.0.2.1 {
                peer-as 65001;
                local-as 65002;
                local-address 192.0.2.2;
                router-id 192.0.2.2;
                port 1179;
                speaker "exabgp --debug";
                passive;
            }
            neighbor 192.0.2.3 { peer-as 65001; local-as 65001; local-address 192.0.2.2; router-id 192.0.2.2; active; }
        }
        kernel;
        prefix-file /etc/flowd/routes.txt { format ip2asn; }
        prefix-file /etc/flowd/more-routes.txt;
        precedence [ kernel bgp prefix-file ];
        snmp-index { eth0 5; }
        local-dump /var/log/flowd/dump;
    }
}
"""


def every_tree() -> dict[Any, Any]:
    return junos.parse(EVERY).tree


def test_the_configuration_of_every_statement_validates() -> None:
    config.parse_config(EVERY, source="every", syntax="junos")


def _edges(node: Node, seen: set[int]) -> Iterator[tuple[int, str]]:
    """(id of a container, child keyword) for every container of the tree, each shared node once."""
    if id(node) in seen:
        return
    seen.add(id(node))
    if node["kind"] == "container":
        for key, child in node["children"].items():
            yield id(node), key
            yield from _edges(child, seen)
    elif node["kind"] == "list" and node["body"] is not None:
        yield from _edges(node["body"], seen)


def _used(node: Node, tree: Any, out: set[tuple[int, str]]) -> None:
    """The edges of the tree that the configuration ``tree`` (below ``node``) uses."""
    if node["kind"] == "list" and node["body"] is not None:
        entries = tree if isinstance(tree, Mapping) else {tree: True}
        for entry in entries.values():
            _used(node["body"], entry, out)
    elif node["kind"] == "container" and isinstance(tree, Mapping):
        for key, value in tree.items():
            out.add((id(node), key))
            _used(node["children"][key], value, out)


def test_the_configuration_uses_every_statement_of_the_tree() -> None:
    used: set[tuple[int, str]] = set()
    _used(SCHEMA, every_tree(), used)
    names = {}
    for parent, key in _edges(SCHEMA, set()):
        names[(parent, key)] = key
    missing = sorted(names[e] for e in set(names) - used)
    assert missing == []


def _blocks(node: Node, tree: Mapping[Any, Any], path: KeyPath) -> Iterator[tuple[KeyPath, Node]]:
    """Every block of the configuration that the tree declares a container, with its schema node."""
    yield path, node
    for key, value in tree.items():
        child = node["children"][key]
        if child["kind"] == "container" and isinstance(value, Mapping):
            yield from _blocks(child, value, path + (key,))
        elif child["kind"] == "list" and isinstance(value, Mapping) and child["body"] is not None \
                and child["body"]["kind"] == "container":
            for name, entry in value.items():
                if isinstance(entry, Mapping):
                    yield from _blocks(child["body"], entry, path + (key, name))


BLOCKS = list(_blocks(SCHEMA, every_tree(), ()))


@pytest.mark.parametrize("path, node", BLOCKS, ids=[" ".join(map(str, p)) or "top" for p, _ in BLOCKS])
def test_every_block_allows_exactly_the_statements_of_the_tree(path: KeyPath, node: Node) -> None:
    tree = every_tree()
    block = tree
    for key in path:
        block = block[key]
    block["no-such-statement"] = True
    with pytest.raises(config.ConfigError) as caught:
        build_config(tree, "every", {})
    allowed = list(node["children"])
    if path[:3] == ("firewall", "family", "inet") and path[-1] == "from":
        allowed.remove("next-header")  # family inet6's name for protocol
    assert (caught.value.path, caught.value.message) == (
        path + ("no-such-statement",), f"unknown statement (expected one of: {', '.join(allowed)})")


def _set_lines(tree: Mapping[Any, Any]) -> list[list[str]]:
    return [shlex.split(line)[1:] for line in junos.to_set(tree)]


@pytest.mark.parametrize("name", ["every", "etc/seed-sampling.conf", "etc/flowd.yaml"])
def test_configuration_mode_sets_every_statement_a_file_may_hold(name: str) -> None:
    """Each `show | display set` line of a valid file is a `set` the tree takes, and they rebuild the file."""
    if name == "every":
        tree = every_tree()
    else:
        tree = config.load_tree(str(REPO / name)).tree
    typed: dict[Any, Any] = {}
    for words in _set_lines(tree):
        set_statement(typed, walk(SCHEMA, (), words, values=True))
    assert compare(normalize(SCHEMA, copy.deepcopy(tree)), normalize(SCHEMA, typed)) == []


def _list_paths(node: Node, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Node]]:
    if node["kind"] == "container":
        for key, child in node["children"].items():
            yield from _list_paths(child, path + (key,))
    elif node["kind"] == "list":
        yield path, node
        if node["body"] is not None:
            yield from _list_paths(node["body"], path + ("*",))


def test_the_curly_parser_collects_entries_at_the_lists_of_the_tree() -> None:
    """junos.KEYED_LISTS (the syntax layer cannot import the tree) names the tree's lists of named blocks.

    Lists whose entries carry a value (`interface-map { ge-0/0/0 eth0; }`) are not among them, nor the
    top `interfaces` (no `interfaces ge-0/0/0;` one-line form).
    """
    blocks = {path for path, node in _list_paths(SCHEMA, ()) if node["body"] is None or node["body"]["kind"] == "container"}
    assert set(junos.KEYED_LISTS) == blocks - {("interfaces",)}


V8_LINE = ("forwarding-options sampling family inet output flow-server 127.0.0.1 port 2055 version 8 aggregation "
           "protocol-port")


def test_one_set_line_may_name_several_statements_of_a_level() -> None:
    tree: dict[Any, Any] = {}
    for resolved in walk_several(SCHEMA, (), V8_LINE.split()):
        set_statement(tree, resolved)
    assert tree["forwarding-options"]["sampling"]["family"]["inet"]["output"]["flow-server"] == {
        "127.0.0.1": {"port": 2055, "version": 8, "aggregation": {"protocol-port": True}}}
    config.parse_config(junos.to_curly(normalize(SCHEMA, tree)), source="t", syntax="junos")
    tree = {}
    for line in ("kernel local-dump /var/log/d", "prefix-file /etc/r.txt format ip2asn"):
        for resolved in walk_several(SCHEMA, ("flowd", "routing"), line.split()):
            set_statement(tree, resolved)
    assert tree["flowd"]["routing"] == {"kernel": True, "local-dump": "/var/log/d",
                                        "prefix-file": {"/etc/r.txt": {"format": "ip2asn"}}}


@pytest.mark.parametrize("words, index, message", [
    (V8_LINE.replace("version 8", "version 7"), 10, "syntax error."),
    (V8_LINE.replace("protocol-port", "protocol-ports"), 12, "syntax error."),
    (V8_LINE.replace("port 2055", "port 70000"), 8, "error: value out of range: 70000 is not within range "
                                                     "(1..65535)"),
    ("flowd routing prefix-file /etc/r.txt format csv", 5, "syntax error."),
    ("flowd routing snmp-index eth0 -1", 4, "error: value out of range: -1 is not within range (0..4294967295)"),
    ("forwarding-options sampling input rate 100 run-length", 6, "missing argument."),
])
def test_a_bad_word_anywhere_in_a_several_statement_line_is_refused(words: str, index: int, message: str) -> None:
    with pytest.raises(StatementError) as caught:
        walk_several(SCHEMA, (), words.split())
    assert (caught.value.word, caught.value.message) == (index, message)


def test_set_completion_offers_the_statements_beside_a_complete_leaf_or_flag() -> None:
    server = [w for w, _ in candidates(SCHEMA, (), V8_LINE.split()[:-4], several=True)]
    assert server[:3] == ["aggregation", "autonomous-system-type", "dscp"] and "version" in server
    assert [w for w, _ in candidates(SCHEMA, (), V8_LINE.split(), several=True)] == [
        "autonomous-system", "destination-prefix", "protocol-port", "source-destination-prefix", "source-prefix"]
    assert candidates(SCHEMA, (), V8_LINE.split()[:-4]) == []  # delete, edit, show: one statement
    assert ("aggregate-export-interval", "How often version 8 servers get the aggregates of the flows that ended "
            "since the last export") in candidates(SCHEMA, (), "forwarding-options family inet output".split())
    assert ("<snmp-index>", "SNMP index (0..4294967295)") in candidates(
        SCHEMA, (), "flowd routing snmp-index eth0".split())
