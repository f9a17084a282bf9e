"""flowd.config and flowd.syntax.junos: the shipped files load, both syntaxes agree, bad input gives exact errors."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import fields, is_dataclass, make_dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from flowd.config.diagnosis import check_config_main
from flowd.config.docs import render_docs
from flowd.config.loader import (
    default_text,
    default_tree_module,
    detect_syntax,
    load_config,
    load_tree,
    parse_config,
    parse_tree,
)
from flowd.config.overrides import with_overrides
from flowd.config.schema import (
    Config,
    ConfigError,
    ControlConfig,
    FamilyOutput,
    FlowServer,
    InputBinding,
    RefreshRate,
    SamplingInput,
    ServiceInterface,
    TemplateConfig,
    Term,
    TermMatch,
)
from flowd.syntax import junos

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "etc" / "flowd.yaml"
SEED_CONF = ROOT / "etc" / "seed-sampling.conf"
SEED_DOC = ROOT / ".." / "shared" / "spec" / "seed-active-flow-monitoring.txt"

# The seed's stanza in YAML, with the seed's own addresses (only parsed, never contacted). Unlike the
# seed it puts `family inet` inside `sampling`, where Junos documents it.
SEED_YAML = """\
interfaces:
  sp-2/0/0:
    unit: {0: {family: {inet: {address: {10.5.5.1/32: {destination: 10.5.5.2}}}}}}
  fe-1/0/0:
    unit: {0: {family: {inet: {address: 10.60.2.2/30}}}}
  ge-2/3/0:
    unit: {0: {family: {inet: {filter: {input: catch_all}, address: 10.1.1.1/20}}}}
  ge-3/0/0:
    unit: {0: {family: {inet: {address: 10.2.2.1/24}}}}
forwarding-options:
  sampling:
    input: {rate: 1}
    family:
      inet:
        output:
          flow-server:
            10.60.2.1: {port: 2055, version: 5}
          flow-inactive-timeout: 15
          flow-active-timeout: 60
          interface:
            sp-2/0/0: {engine-id: 5, engine-type: 55, source-address: 10.60.2.2}
firewall:
  family:
    inet:
      filter:
        catch_all:
          term:
            default:
              then: {sample: true, count: counter1, accept: true}
"""

# A configuration using most statements, in curly syntax (addresses from documentation ranges).
RICH_CONF = """\
/* everything flowd reads */
interfaces {
    ge-0/0/0 {
        description "uplink to the core";
        unit 0 {
            family inet {
                filter {
                    input web;
                }
            }
            family inet6 {
                sampling {
                    input;
                    output;
                }
            }
        }
        unit 100 {
            family inet6 {
                filter {
                    input v6;
                }
            }
        }
    }
}
forwarding-options {
    sampling {
        input {
            rate 100;
            run-length 2;
            max-packets-per-second 5000;
        }
        family inet {
            output {
                flow-server 127.0.0.1 {
                    port 2055;
                    version9 {
                        template v4;
                    }
                    dscp 10;
                    source-address 127.0.0.1;
                }
                flow-server 192.0.2.7 {
                    port 2056;
                    version9;
                }
                flow-active-timeout 5m;
                flow-inactive-timeout 30s;
            }
        }
        family inet6 {
            input {
                rate 10;
            }
            output {
                flow-server ::1 {
                    port 4739;
                    version-ipfix {
                        template v6;
                    }
                }
            }
        }
    }
}
firewall {
    family inet {
        filter web {
            term http {
                from {
                    source-address {
                        192.0.2.0/24;
                        198.51.100.1;
                    }
                    protocol [ tcp 17 ];
                    destination-port [ http https 8000-8080 ];
                }
                then {
                    sample;
                    count web-hits;
                }
            }
            term 2 {
                from {
                    protocol 1-2;
                    port domain;
                }
                then discard;
            }
        }
    }
    family inet6 {
        filter v6 {
            term all {
                from {
                    next-header icmp6;
                    address 2001:db8::/32;
                }
                then {
                    sample;
                    accept;
                }
            }
        }
    }
}
services {
    flow-monitoring {
        version9 {
            template v4 {
                template-id 1024;
                options-template-id 1025;
                source-id 7;
                template-refresh-rate {
                    packets 100;
                    seconds 30;
                }
                ipv4-template;
            }
            template m {
                mpls-template {
                    label-position [ 1 2 ];
                }
            }
        }
        version-ipfix {
            template v6 {
                observation-domain-id 9;
                option-refresh-rate {
                    seconds 2m;
                }
                ipv6-template;
            }
        }
    }
}
flowd {
    interface-map {
        ge-0/0/0 eth0;
    }
    flow-table {
        max-flows 5000;
    }
    control {
        socket /tmp/flowd.sock;
    }
}
"""


def _strip(cfg: Config) -> Config:
    return replace(cfg, source="", tree={})


def _error(text: str, syntax: str = "yaml") -> str:
    source = "t.yaml" if syntax == "yaml" else "t.conf"
    with pytest.raises(ConfigError) as info:
        parse_config(textwrap.dedent(text), source=source, syntax=syntax)
    message = str(info.value)
    assert "\n" not in message
    return message


# --- shipped files ---------------------------------------------------------------------------------


def test_example_yaml_loads() -> None:
    cfg = load_config(str(EXAMPLE))
    assert cfg.source == str(EXAMPLE)
    assert cfg.sampling == SamplingInput(rate=1, run_length=0, max_packets_per_second=None)
    assert list(cfg.families) == ["inet"]
    inet = cfg.families["inet"]
    assert inet.flow_servers == (FlowServer("127.0.0.1", 2055, "5", None, 0, None),)
    assert (inet.active_timeout, inet.inactive_timeout) == (60.0, 15.0)
    assert inet.interface == ServiceInterface("sp-2/0/0", 5, 55, "127.0.0.1")
    assert cfg.inputs == (InputBinding("ge-2/3/0", "inet", "catch_all"),)
    assert cfg.filters["catch_all"].terms == (Term("default", TermMatch(), True, "counter1", "accept"),)
    assert cfg.interface_map == {"ge-2/3/0": "lo"}
    assert cfg.flow_table.max_flows == 1_000_000
    assert cfg.control == ControlConfig()  # the example leaves access control to the socket mode


def test_embedded_default_is_the_example() -> None:
    assert (ROOT / "flowd" / "data" / "default.yaml").read_bytes() == EXAMPLE.read_bytes()
    default = load_config(None)
    assert default.source == "flowd/data/default.yaml"
    assert _strip(default) == _strip(load_config(str(EXAMPLE)))


def test_embedded_default_tree_is_the_parsed_text() -> None:
    """The default's tree is held parsed (no YAML parser at start): the same tree and lines as the text gives."""
    assert (ROOT / "flowd" / "config" / "default_tree.py").read_text() == default_tree_module(), \
        "flowd/config/default_tree.py is stale: run python -m flowd.config.loader > flowd/config/default_tree.py"
    held, parsed = load_tree(None), parse_tree(default_text(), source="default.yaml", syntax="yaml")
    assert (held.tree, held.lines) == (parsed.tree, parsed.lines)
    held.tree["flowd"]["flow-table"]["max-flows"] = 5  # every load gets its own tree
    assert load_tree(None).tree == parsed.tree


def test_seed_conf_means_the_same_as_yaml() -> None:
    seed = load_config(str(SEED_CONF))
    yaml_cfg = parse_config(SEED_YAML, source="seed.yaml", syntax="yaml")
    assert _strip(seed) == _strip(yaml_cfg)
    inet = seed.families["inet"]
    assert inet.flow_servers == (FlowServer("10.60.2.1", 2055, "5", None, 0, None),)
    assert inet.interface == ServiceInterface("sp-2/0/0", 5, 55, "10.60.2.2")
    assert (inet.active_timeout, inet.inactive_timeout) == (60.0, 15.0)
    assert seed.inputs == (InputBinding("ge-2/3/0", "inet", "catch_all", 0),)
    assert seed.interface_map == {}


@pytest.mark.skipif(not SEED_DOC.exists(), reason="../shared is not present")
def test_seed_conf_is_copied_verbatim() -> None:
    stanza = SEED_CONF.read_text()
    assert stanza.startswith("interfaces {\n") and stanza.count("\n") == 70
    assert stanza in SEED_DOC.read_text()


def test_docs_are_current() -> None:
    assert (ROOT / "docs" / "config.md").read_text() == render_docs(), \
        "docs/config.md is stale: run python -m flowd.config.docs --docs > docs/config.md"


# --- a configuration using most statements ------------------------------------------------------------


def test_rich_configuration() -> None:
    cfg = parse_config(RICH_CONF, source="rich.conf", syntax="junos")
    assert cfg.sampling == SamplingInput(rate=100, run_length=2, max_packets_per_second=5000)
    inet, inet6 = cfg.families["inet"], cfg.families["inet6"]
    assert inet.input == cfg.sampling
    assert inet6.input == SamplingInput(rate=10, run_length=2, max_packets_per_second=5000)
    assert inet.flow_servers == (
        FlowServer("127.0.0.1", 2055, "9", "127.0.0.1", 10, "v4"),
        FlowServer("192.0.2.7", 2056, "9", None, 0, None),
    )
    assert (inet.active_timeout, inet.inactive_timeout) == (300.0, 30.0)
    assert (inet6.active_timeout, inet6.inactive_timeout, inet6.interface) == (1800.0, 60.0, None)
    assert inet6.flow_servers == (FlowServer("::1", 4739, "ipfix", None, 0, "v6"),)
    web = cfg.filters["web"]
    assert web.family == "inet"
    assert web.terms[0] == Term("http", TermMatch(
        source_address=(ipaddress.ip_network("192.0.2.0/24"), ipaddress.ip_network("198.51.100.1/32")),
        protocol=(6, 17), destination_port=((80, 80), (443, 443), (8000, 8080))), True, "web-hits", None)
    assert web.terms[1] == Term("2", TermMatch(protocol=(1, 2), port=((53, 53),)), False, None, "discard")
    assert cfg.filters["v6"].terms[0].match == TermMatch(protocol=(58,),
                                                         address=(ipaddress.ip_network("2001:db8::/32"),))
    assert cfg.inputs == (InputBinding("ge-0/0/0", "inet", "web", 0), InputBinding("ge-0/0/0", "inet6", None, 0),
                          InputBinding("ge-0/0/0", "inet6", "v6", 100))
    assert cfg.outputs == (InputBinding("ge-0/0/0", "inet6", None, 0),)
    assert cfg.templates == {
        "v4": TemplateConfig("v4", "9", "ipv4", 1024, 1025, 7, None, None, RefreshRate(100, 30.0), RefreshRate()),
        "m": TemplateConfig("m", "9", "mpls", label_positions=(1, 2)),
        "v6": TemplateConfig("v6", "ipfix", "ipv6", domain_id=9, option_refresh=RefreshRate(4800, 120.0)),
    }
    assert cfg.interface_map == {"ge-0/0/0": "eth0"}
    assert (cfg.flow_table.max_flows, cfg.control.socket, cfg.control.read_group) == (5000, "/tmp/flowd.sock", None)


def test_rich_configuration_as_yaml_is_equal() -> None:
    curly = parse_config(RICH_CONF, source="rich.conf", syntax="junos")
    import yaml

    as_yaml = yaml.safe_dump(curly.tree, sort_keys=False)
    assert _strip(parse_config(as_yaml, source="rich.yaml", syntax="yaml")) == _strip(curly)


def _schema_objects(value: object) -> Iterator[object]:
    """Every schema dataclass instance in ``value``, depth first."""
    if is_dataclass(value) and not isinstance(value, type):
        yield value
        for f in fields(value):
            yield from _schema_objects(getattr(value, f.name))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _schema_objects(item)
    elif isinstance(value, tuple):
        for item in value:
            yield from _schema_objects(item)


def test_schema_classes_compare_hash_and_print_as_dataclasses_do() -> None:
    """The schema's classes take equality, hash and repr from flowd.model.record.Frozen: the same results as
    the methods @dataclass(frozen=True) generates, held against a generated twin of each instance."""
    objects = list(_schema_objects(parse_config(RICH_CONF, source="rich.conf", syntax="junos")))
    assert {type(o).__name__ for o in objects} >= {"Config", "SamplingInput", "FamilyOutput", "FlowServer", "Filter",
                                                    "Term", "TermMatch", "InputBinding", "TemplateConfig"}
    for obj in objects:
        cls = type(obj)
        twin_cls = make_dataclass(cls.__qualname__, [(f.name, f.type) for f in fields(cls)], frozen=True)
        values = [getattr(obj, f.name) for f in fields(cls)]
        twin = twin_cls(*values)
        assert repr(obj) == repr(twin)
        assert obj == cls(*values) and obj is not cls(*values)
        assert obj != twin and obj.__eq__(twin) is NotImplemented
        try:
            assert hash(obj) == hash(twin) == hash(cls(*values))
        except TypeError:  # a mapping field: unhashable either way
            with pytest.raises(TypeError):
                hash(twin)
    first, second = FlowServer("127.0.0.1", 2055), FlowServer("127.0.0.1", 2056)
    assert first != second and len({first, second, FlowServer("127.0.0.1", 2055)}) == 2


# --- bad input -> exact one-line errors -------------------------------------------------------------------

OUTPUT = """\
forwarding-options:
  sampling:
    family:
      inet:
        output:
"""

BAD: list[tuple[str, str, str]] = [
    ("yaml", "forwarding-options:\n  sampling:\n    input:\n      rat: 1\n",
     "t.yaml:4: forwarding-options.sampling.input.rat: unknown statement (expected one of: rate, run-length, "
     "max-packets-per-second, maximum-packet-length)"),
    ("yaml", "forwardng-options: {}\n",
     "t.yaml:1: forwardng-options: unknown statement (expected one of: interfaces, forwarding-options, firewall, "
     "services, flowd)"),
    ("yaml", "forwarding-options:\n  sampling:\n    input:\n      rate: fast\n",
     "t.yaml:4: forwarding-options.sampling.input.rate: expected an integer, got fast"),
    ("yaml", "forwarding-options:\n  sampling:\n    input: 5\n",
     "t.yaml:3: forwarding-options.sampling.input: expected a block of statements, got 5"),
    ("yaml", "forwarding-options:\n  sampling:\n    input:\n      rate: 0\n",
     "t.yaml:4: forwarding-options.sampling.input.rate: expected 1..16000000, got 0"),
    ("yaml", OUTPUT + "          flow-active-timeout: 5\n",
     "t.yaml:6: forwarding-options.sampling.family.inet.output.flow-active-timeout: expected 60..1800, got 5"),
    ("yaml", OUTPUT + "          flow-inactive-timeout: 31m\n",
     "t.yaml:6: forwarding-options.sampling.family.inet.output.flow-inactive-timeout: expected 15..1800, got 31m"),
    ("yaml", OUTPUT + "          flow-inactive-timeout: soon\n",
     "t.yaml:6: forwarding-options.sampling.family.inet.output.flow-inactive-timeout: expected a duration in "
     "seconds (60, 30s, 5m, 1h), got soon"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {version: 5}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.port: missing: a flow "
     "server needs a port"),
    ("yaml", OUTPUT + "          flow-server:\n            collector: {port: 2055}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet.output.flow-server.collector: expected an IPv4 or IPv6 "
     "address, got collector"),
    ("yaml", OUTPUT + "          flow-server:\n" + "".join(
        f"            127.0.0.{i}: {{port: 2055}}\n" for i in range(1, 10)),
     "t.yaml:15: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.9: at most 8 flow servers "
     "are allowed per family (this is number 9)"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {port: 2055, version: 500}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.version: version 500 is not "
     "supported (flowd exports versions 5 and 8, version9 and version-ipfix)"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {port: 2055, version: 8}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.aggregation: missing: a "
     "version 8 flow server needs aggregation { ... }"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {port: 2055, aggregation: {protocol-port: true}}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.aggregation: aggregation "
     "needs version 8"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {port: 2055, version: 8, aggregation: "
                      "{protocol-port: true}}\n            127.0.0.2: {port: 2055, version9: true}\n",
     "t.yaml:8: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.2: version 5/8 and version "
     "9/IPFIX flow servers cannot be mixed in one output"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {port: 70000}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.port: expected 1..65535, "
     "got 70000"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {port: 2055}\n"
                      "            127.0.0.2: {port: 2055, version9: true}\n",
     "t.yaml:8: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.2: version 5/8 and version "
     "9/IPFIX flow servers cannot be mixed in one output"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {port: 2055, version9: {template: t1}}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.version9.template: template "
     "t1 is not defined under services flow-monitoring version9 template"),
    ("yaml", OUTPUT + "          flow-server:\n            127.0.0.1: {port: 2055, source-address: '::1'}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet.output.flow-server.127.0.0.1.source-address: "
     "source-address ::1 and flow server 127.0.0.1 are of different address families"),
    ("yaml", OUTPUT.replace("inet:", "inet6:") + "          flow-server:\n            '::1': {port: 2055}\n",
     "t.yaml:7: forwarding-options.sampling.family.inet6.output.flow-server.::1.version: version 5 carries IPv4 "
     "flows only; family inet6 needs version9 or version-ipfix"),
    ("yaml", OUTPUT.replace("inet:", "mpls:") + "          flow-active-timeout: 60\n",
     "t.yaml:4: forwarding-options.sampling.family.mpls: unsupported family (expected inet or inet6)"),
    ("yaml", OUTPUT + "          interface: {ge-1/0/0: {engine-id: 1}}\n",
     "t.yaml:6: forwarding-options.sampling.family.inet.output.interface.ge-1/0/0: expected a services interface "
     "name (sp-, ms- or mo-FPC/PIC/PORT, such as sp-2/0/0), got ge-1/0/0"),
    ("yaml", OUTPUT + "          interface: {sp-1/0/0: {engine-id: 256}}\n",
     "t.yaml:6: forwarding-options.sampling.family.inet.output.interface.sp-1/0/0.engine-id: expected 0..255, "
     "got 256"),
    ("yaml", "forwarding-options:\n  sampling:\n    family:\n      inet: {output: {flow-active-timeout: 60}}\n"
             "  family:\n    inet:\n      output: {flow-active-timeout: 90}\n",
     "t.yaml:6: forwarding-options.family.inet: family inet is also configured at "
     "forwarding-options.sampling.family.inet"),
    ("yaml", "firewall:\n  family:\n    inet:\n      filter:\n        f:\n          term:\n            t:\n"
             "              from:\n                source-address: [10.0.0.0/8, 10.0.0.0/33]\n",
     "t.yaml:9: firewall.family.inet.filter.f.term.t.from.source-address: expected an IPv4 prefix such as "
     "10.0.0.0/8, got 10.0.0.0/33"),
    ("yaml", "firewall:\n  family:\n    inet:\n      filter:\n        f:\n          term:\n            t:\n"
             "              from:\n                destination-address: 10.1.2.3/8\n",
     "t.yaml:9: firewall.family.inet.filter.f.term.t.from.destination-address: 10.1.2.3/8 has host bits set "
     "(did you mean 10.0.0.0/8?)"),
    ("yaml", "firewall:\n  family:\n    inet:\n      filter:\n        f:\n          term:\n            t:\n"
             "              from:\n                address: 2001:db8::/32\n",
     "t.yaml:9: firewall.family.inet.filter.f.term.t.from.address: expected an IPv4 prefix (family inet), got "
     "2001:db8::/32"),
    ("yaml", "firewall:\n  family:\n    inet:\n      filter:\n        f:\n          term:\n            t:\n"
             "              from:\n                destination-port: [http, htpp]\n",
     "t.yaml:9: firewall.family.inet.filter.f.term.t.from.destination-port: expected a port number 0..65535, a "
     "range such as 1024-65535, or a name such as http or domain, got htpp"),
    ("yaml", "firewall:\n  family:\n    inet:\n      filter:\n        f:\n          term:\n            t:\n"
             "              from:\n                source-port: 2000-1000\n",
     "t.yaml:9: firewall.family.inet.filter.f.term.t.from.source-port: range 2000-1000 is reversed"),
    ("yaml", "firewall:\n  family:\n    inet:\n      filter:\n        f:\n          term:\n            t:\n"
             "              from:\n                protocol: [tcp, tcpp]\n",
     "t.yaml:9: firewall.family.inet.filter.f.term.t.from.protocol: expected a protocol name (tcp, udp, icmp, "
     "icmp6, ...) or a number 0..255, got tcpp"),
    ("yaml", "firewall:\n  family:\n    inet:\n      filter:\n        f:\n          term:\n            t:\n"
             "              then: {accept: true, discard: true}\n",
     "t.yaml:8: firewall.family.inet.filter.f.term.t.then.discard: accept and discard are mutually exclusive"),
    ("yaml", "firewall:\n  family:\n    inet:\n      filter:\n        f:\n          term:\n            t:\n"
             "              then: {sample: false}\n",
     "t.yaml:8: firewall.family.inet.filter.f.term.t.then.sample: expected a flag (true; delete the statement "
     "to turn it off), got a flag (false)"),
    ("yaml", "interfaces:\n  ge-2/3/0:\n    unit:\n      0:\n        family:\n          inet:\n"
             "            filter: {input: catch_all}\n",
     "t.yaml:7: interfaces.ge-2/3/0.unit.0.family.inet.filter.input: filter catch_all is not defined under "
     "firewall family inet filter"),
    ("yaml", "interfaces:\n  ge-2/3/0:\n    unit:\n      16386: {family: {inet: {sampling: {input: true}}}}\n",
     "t.yaml:4: interfaces.ge-2/3/0.unit.16386: expected 0..16385, got 16386"),
    ("yaml", "flowd:\n  interface-map:\n    ge-2/3/0: eth0/1\n",
     "t.yaml:3: flowd.interface-map.ge-2/3/0: expected a Linux interface name (1..15 characters, no '/', ':' or "
     "spaces), got eth0/1"),
    ("yaml", "flowd:\n  flow-table: {max-flows: 0}\n",
     "t.yaml:2: flowd.flow-table.max-flows: expected 1..64225280, got 0"),
    ("yaml", "services:\n  flow-monitoring:\n    version9:\n      template:\n        a: {template-id: 1024, "
             "ipv4-template: true}\n        b: {template-id: 1024, ipv4-template: true}\n",
     "t.yaml:6: services.flow-monitoring.version9.template.b.template-id: template-id 1024 is already used by "
     "template a"),
    ("yaml", "services:\n  flow-monitoring:\n    version-ipfix:\n      template:\n        a: {source-id: 1}\n",
     "t.yaml:5: services.flow-monitoring.version-ipfix.template.a.source-id: unknown statement (expected one of: "
     "flow-active-timeout, flow-inactive-timeout, template-id, options-template-id, template-refresh-rate, "
     "option-refresh-rate, observation-domain-id, ipv4-template, ipv6-template, mpls-template, mpls-ipv4-template, "
     "bridge-template)"),
    ("yaml", "services:\n  flow-monitoring:\n    version9:\n      template:\n        a: {template-id: 99}\n",
     "t.yaml:5: services.flow-monitoring.version9.template.a.template-id: expected 1024..65535, got 99"),
    ("yaml", "forwarding-options:\n  sampling:\n    input: {rate: 1}\n    input: {rate: 2}\n",
     "t.yaml:4: forwarding-options.sampling.input: duplicate key (first given on line 3)"),
    ("yaml", "forwarding-options:\n  sampling: {input: {rate: 1}\n",
     "t.yaml:3: YAML syntax error: expected ',' or '}', but got '<stream end>'"),
    ("yaml", "- rate\n", "t.yaml:1: expected a mapping of statements at the top, got a list [ ... ]"),
    ("junos", "forwarding-options {\n    sampling {\n        input {\n            rate 1\n        }\n    }\n}\n",
     "t.conf:4: forwarding-options.sampling.input.rate: syntax error: missing ';' after 'rate 1'"),
    ("junos", "forwarding-options {\n    sampling {\n        input {\n            rate 1\n"
              "            run-length 2;\n        }\n    }\n}\n",
     "t.conf:4: forwarding-options.sampling.input.rate: syntax error: missing ';' after 'rate 1'"),
    ("junos", "forwarding-options {\n    sampling {\n        input {\n            rate 1;\n    }\n}\n",
     "t.conf:1: forwarding-options: syntax error: missing '}' to close 'forwarding-options {' (unbalanced "
     "braces)"),
    ("junos", "firewall {\n}\n}\n", "t.conf:3: syntax error: unexpected '}' (unbalanced braces)"),
    ("junos", "interfaces {\n    inactive: ge-1/0/0 {\n        unit 0;\n    }\n}\n",
     "t.conf:2: interfaces: syntax error: 'inactive:' tags are not supported; delete the tag (or the whole "
     "statement if it should stay inactive)"),
    ("junos", "forwarding-options {\n    sampling {\n        input {\n            rate 1;\n            rate 2;\n",
     "t.conf:5: forwarding-options.sampling.input.rate: syntax error: 'rate' is already set on line 4"),
    ("junos", "/* unterminated\nforwarding-options { }\n", "t.conf:1: syntax error: unterminated /* comment"),
    ("junos", "interfaces {\n    ge-1/0/0 {\n        description \"open;\n    }\n}\n",
     "t.conf:3: syntax error: unterminated quoted string"),
    ("junos", "firewall {\n    family inet {\n        filter f {\n            term t {\n                from {\n"
              "                    source-address {\n                        10.0.0.0/8;\n"
              "                        10.1.0.0/16 except;\n" + "}\n" * 6,
     "t.conf:8: firewall.family.inet.filter.f.term.t.from.source-address.10.1.0.0/16: 'except' entries are not "
     "supported (10.1.0.0/16 except)"),
]


@pytest.mark.parametrize(("syntax", "text", "expected"), BAD, ids=[f"{i}-{b[0]}" for i, b in enumerate(BAD)])
def test_bad_input_gives_exact_error(syntax: str, text: str, expected: str) -> None:
    assert _error(text, syntax) == expected


def test_docs_example_error_is_real() -> None:
    example = next(line.strip() for line in render_docs().splitlines() if line.startswith("    etc/flowd.yaml:"))
    text = EXAMPLE.read_text().replace("flow-active-timeout: 60 ", "flow-active-timeout: 5 ")
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="etc/flowd.yaml", syntax="yaml")
    assert str(info.value) == example


def test_missing_filter_error_in_seed_points_at_the_interface_line() -> None:
    text = SEED_CONF.read_text().replace("input catch_all;", "input catch_none;")
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "catch_none" in s)
    assert _error(text, "junos") == (f"t.conf:{line}: interfaces.ge-2/3/0.unit.0.family.inet.filter.input: "
                                     "filter catch_none is not defined under firewall family inet filter")


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^.*missing\.yaml: cannot read the configuration: No such file"):
        load_config(str(tmp_path / "missing.yaml"))


# --- the Junos parser ----------------------------------------------------------------------------------


def test_junos_parse_forms_and_lines() -> None:
    text = (
        "# comment\n"
        "a {\n"
        "    flag;  /* inline\n comment */\n"
        "    leaf 60;\n"
        '    quoted "60";\n'
        '    spaced "two words" ;\n'
        "    list [ tcp 17 1.5 ];\n"
        "    deep x y;\n"
        "    entry one { k v; }\n"
        "    entry two { k w; }\n"
        "}\n"
    )
    parsed = junos.parse(text)
    assert parsed.tree == {"a": {"flag": True, "leaf": 60, "quoted": "60", "spaced": "two words",
                                 "list": ["tcp", 17, 1.5], "deep": {"x": "y"},
                                 "entry": {"one": {"k": "v"}, "two": {"k": "w"}}}}
    assert parsed.lines[("a",)] == 2
    assert parsed.lines[("a", "flag")] == 3
    assert parsed.lines[("a", "leaf")] == 5
    assert parsed.lines[("a", "entry", "one")] == 10
    assert parsed.lines[("a", "entry", "two", "k")] == 11


def test_junos_keyed_list_collects_repeated_entries() -> None:
    text = ("interfaces { ge-0/0/0 { unit 0 { family inet {\n address 192.0.2.1/24;\n address 192.0.2.2/24;\n"
            " address 192.0.2.3/24 { destination 192.0.2.4; }\n } } } }\n")
    tree = junos.parse(text).tree
    assert tree["interfaces"]["ge-0/0/0"]["unit"][0]["family"]["inet"]["address"] == {
        "192.0.2.1/24": True, "192.0.2.2/24": True, "192.0.2.3/24": {"destination": "192.0.2.4"}}
    assert parse_config(text, source="t.conf", syntax="junos").inputs == ()


def test_seed_to_set() -> None:
    lines = junos.to_set(load_config(str(SEED_CONF)).tree)
    assert lines[:2] == ["set interfaces sp-2/0/0 unit 0 family inet address 10.5.5.1/32 destination 10.5.5.2",
                         "set interfaces fe-1/0/0 unit 0 family inet address 10.60.2.2/30"]
    assert "set forwarding-options sampling input rate 1" in lines
    assert "set forwarding-options family inet output flow-server 10.60.2.1 port 2055" in lines
    assert lines[-3:] == ["set firewall family inet filter catch_all term default then sample",
                          "set firewall family inet filter catch_all term default then count counter1",
                          "set firewall family inet filter catch_all term default then accept"]
    assert len(lines) == 16


def test_to_set_splits_lists_and_quotes() -> None:
    assert junos.to_set({"a": {"p": ["tcp", 17], "d": "x y", "e": {}}}) == [
        "set a p tcp", "set a p 17", 'set a d "x y"', "set a e"]


def test_to_curly_prints_like_show_configuration() -> None:
    text = junos.to_curly(load_config(str(SEED_CONF)).tree)
    assert "        unit 0 {\n            family inet {\n" in text
    assert "            flow-server 10.60.2.1 {\n                port 2055;\n" in text
    assert "        filter catch_all {\n            term default {\n" in text
    assert "                    sample;\n" in text


ROUND_TRIP_TREES: list[dict[Any, Any]] = [
    {"a": {"b": True, "n": 0, "f": 60.5, "s": "0", "q": 'say "hi"', "w": "two words", "empty": {},
           "l": [1, "x y", "-"], "none": [], "hash": "#x", "tag": "inactive:"}},
    {"interfaces": {"ge-0/0/0": {"unit": {0: True, 1: {"family": "inet"}, 2: {}, "x": "y"}}}},
    {"firewall": {"family": {"inet": {"filter": {"f": {"term": {"t": {"from": {
        "source-address": {"10.0.0.0/8": True, "10.1.0.0/16": "except"}}}}}}}}}},
]


@pytest.mark.parametrize("tree", ROUND_TRIP_TREES)
def test_to_curly_round_trip_of_odd_trees(tree: dict[Any, Any]) -> None:
    assert junos.parse(junos.to_curly(tree)).tree == tree


@pytest.mark.parametrize("source", ["etc/flowd.yaml", "etc/seed-sampling.conf", "rich"])
def test_to_curly_round_trip_of_configs(source: str) -> None:
    cfg = (parse_config(RICH_CONF, source="rich.conf", syntax="junos") if source == "rich"
           else load_config(str(ROOT / source)))
    text = junos.to_curly(cfg.tree)
    assert junos.parse(text).tree == cfg.tree
    assert _strip(parse_config(text, source="again.conf", syntax="junos")) == _strip(cfg)


def test_to_curly_rejects_values_it_cannot_print() -> None:
    with pytest.raises(TypeError):
        junos.to_curly({"a": False})
    with pytest.raises(TypeError):
        junos.to_curly({"a": None})


# --- syntax detection ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "syntax"), [
    ("# c\n\nforwarding-options:\n  sampling: {}\n", "yaml"),
    ("---\nflowd: {}\n", "yaml"),
    ("/* c\n still */ interfaces {\n}\n", "junos"),
    ("# c\nforwarding-options { sampling { input { rate 1; } } }\n", "junos"),
    ("system host-name r1;\n", "junos"),
    ("inactive: interfaces { }\n", "junos"),
    ("", "yaml"),
])
def test_detect_syntax(text: str, syntax: str) -> None:
    assert detect_syntax(text) == syntax


def test_load_picks_syntax_by_suffix_then_content(tmp_path: Path) -> None:
    curly = tmp_path / "router.txt"
    curly.write_text(SEED_CONF.read_text())
    assert _strip(load_config(str(curly))) == _strip(load_config(str(SEED_CONF)))
    yml = tmp_path / "seed.cfg"
    yml.write_text(SEED_YAML)
    assert _strip(load_config(str(yml))) == _strip(load_config(str(SEED_CONF)))
    wrong = tmp_path / "seed.conf"
    wrong.write_text(SEED_YAML)  # .conf forces Junos syntax
    with pytest.raises(ConfigError, match=r"seed\.conf:\d+: .*syntax error"):
        load_config(str(wrong))


# --- command-line overrides --------------------------------------------------------------------------------


def test_with_overrides_replaces_servers_and_timeouts() -> None:
    cfg = load_config(str(SEED_CONF))
    new = with_overrides(cfg, flow_servers=[("127.0.0.1", 9995), ("::1", 9996)], active_timeout=120,
                             inactive_timeout=30, sampling_rate=10)
    inet = new.families["inet"]
    assert inet.flow_servers == (FlowServer("127.0.0.1", 9995), FlowServer("::1", 9996))
    assert (inet.active_timeout, inet.inactive_timeout) == (120.0, 30.0)
    assert new.sampling.rate == inet.input.rate == 10
    assert inet.interface == cfg.families["inet"].interface
    assert new.source == cfg.source and new.inputs == cfg.inputs
    assert "flow-server 127.0.0.1 {" in junos.to_curly(new.tree)
    assert cfg.families["inet"].flow_servers[0].address == "10.60.2.1"  # the original is untouched


def test_with_overrides_creates_inet_output_when_none() -> None:
    cfg = parse_config("flowd: {}\n", source="t.yaml", syntax="yaml")
    assert cfg.families == {}
    new = with_overrides(cfg, flow_servers=[("127.0.0.1", 2055)])
    assert new.families == {"inet": FamilyOutput("inet", SamplingInput(), (FlowServer("127.0.0.1", 2055),))}
    assert with_overrides(cfg) is cfg


def test_with_overrides_export_version_keeps_templates() -> None:
    cfg = parse_config(RICH_CONF, source="rich.conf", syntax="junos")
    v9 = with_overrides(cfg, export_version="9").families
    assert [s.template for s in v9["inet"].flow_servers] == ["v4", None]
    assert v9["inet6"].flow_servers == (FlowServer("::1", 4739, "9", None, 0, None),)
    five = with_overrides(load_config(str(SEED_CONF)), export_version="ipfix")
    assert five.families["inet"].flow_servers[0].version == "ipfix"


@pytest.mark.parametrize(("kwargs", "expected"), [
    ({"flow_servers": [("localhost", 2055)]}, "command line: --flow-server: expected an IPv4 or IPv6 address, "
                                              "got localhost"),
    ({"flow_servers": [("127.0.0.1", 1), ("127.0.0.1", 2)]},
     "command line: --flow-server: 127.0.0.1 is given twice (flow servers are keyed by address)"),
    ({"flow_servers": [(f"127.0.0.{i}", 2055) for i in range(1, 10)]},
     "command line: forwarding-options.family.inet.output.flow-server.127.0.0.9: at most 8 flow servers are "
     "allowed per family (this is number 9)"),
    ({"active_timeout": 30}, "command line: --active-timeout: expected 60..1800, got 30"),
    ({"inactive_timeout": 1801.0}, "command line: --inactive-timeout: expected 15..1800, got 1801.0"),
    ({"sampling_rate": 0}, "command line: --sampling-rate: expected 1..16000000, got 0"),
    ({"export_version": "8"}, "command line: --export-version: expected 5, 9 or ipfix, got 8"),
])
def test_with_overrides_errors(kwargs: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        with_overrides(load_config(str(SEED_CONF)), **kwargs)
    assert str(info.value) == expected


def test_with_overrides_v5_cannot_serve_inet6() -> None:
    cfg = parse_config(RICH_CONF, source="rich.conf", syntax="junos")
    with pytest.raises(ConfigError, match=r"^command line: forwarding-options\.sampling\.family\.inet6\.output\."
                                          r"flow-server\.::1\.version: version 5 carries IPv4 flows only"):
        with_overrides(cfg, export_version="5")


# --- flowd --check-config ---------------------------------------------------------------------------------


def _check(path: str | None) -> subprocess.CompletedProcess[str]:
    code = f"import sys; from flowd.config.diagnosis import check_config_main; sys.exit(check_config_main({path!r}))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_check_config_main_exit_codes(tmp_path: Path) -> None:
    good = _check(str(SEED_CONF))
    assert (good.returncode, good.stdout, good.stderr) == (0, "configuration check succeeds\n", "")
    default = _check(None)
    assert (default.returncode, default.stdout) == (0, "configuration check succeeds\n")
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text("flowd:\n  flow-table: {max-flows: many}\n")
    bad = _check(str(bad_file))
    assert (bad.returncode, bad.stdout) == (1, "")
    assert bad.stderr == f"{bad_file}:2: flowd.flow-table.max-flows: expected an integer, got many\n"


def test_check_config_main_in_process(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert check_config_main(str(EXAMPLE)) == 0
    assert capsys.readouterr().out == "configuration check succeeds\n"
    assert check_config_main(str(tmp_path / "nope.conf")) == 1
    assert "cannot read the configuration" in capsys.readouterr().err


TEMPLATE_TIMEOUTS = """
services {{ flow-monitoring {{ version9 {{ template t {{ flow-active-timeout 120; flow-inactive-timeout 20;
    ipv4-template; }} }} }} }}
forwarding-options {{ sampling {{ input {{ rate 1; }} family inet {{ output {{
    flow-active-timeout 300;
    flow-server 127.0.0.1 {{ port 2055; version9 {{ template t; }} }}
    {second}
}} }} }} }}
"""


def test_template_timeouts_override_the_outputs() -> None:
    cfg = parse_config(TEMPLATE_TIMEOUTS.format(second=""), source="t.conf", syntax="junos")
    inet = cfg.families["inet"]
    assert (inet.active_timeout, inet.inactive_timeout) == (120.0, 20.0)
    assert cfg.templates["t"].active_timeout == 120.0


def test_template_timeouts_must_agree_within_a_family() -> None:
    text = TEMPLATE_TIMEOUTS.format(second="flow-server 127.0.0.2 { port 2055; version9; }")
    with pytest.raises(ConfigError, match=r"t.conf:\d+: forwarding-options.sampling.family.inet.output.flow-server: "
                                          r"these flow servers' templates set different flow-active-timeout"):
        parse_config(text, source="t.conf", syntax="junos")
