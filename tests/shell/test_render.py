"""Renderers: the seed's values in → the seed's blocks out, byte for byte; other levels, extras, display formats."""

from __future__ import annotations

import copy
import itertools
import json
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from shell_golden import SHARED, check_golden, seed_blocks
from shell_seed import SEED_FLOWS, SEED_RESULTS, TEMPLATE_FLOWS, template_result

from shell.render import RENDERERS, render
from shell.render.aggregation_template import LAYOUTS, full_address
from shell.render.flow_detail import protocol_text
from shell.render.system import junos_age, uptime_text

# golden file -> (method, level, the command that printed it in show-outputs.md)
SEED_GOLDENS = {
    "errors.txt": ("accounting.errors", None, "show services accounting errors"),
    "flow_detail_terse.txt": ("accounting.flow_detail", "terse", "show services accounting flow-detail limit 10"),
    "memory.txt": ("accounting.memory", None, "show services accounting memory"),
    "packet_size_distribution.txt": ("accounting.packet_size_distribution", None,
                                     "show services accounting packet-size-distribution"),
    "status.txt": ("accounting.status", None, "show services accounting status"),
    "usage.txt": ("accounting.usage", None, "show services accounting usage"),
    "flow.txt": ("accounting.flow", None, "show services accounting flow"),
}


def _with_flows(flows: list[dict[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = copy.deepcopy(SEED_RESULTS["accounting.flow_detail"])
    result["interfaces"][0]["flows"] = flows
    return result


def _ipv6_flows() -> list[dict[str, Any]]:
    first = dict(SEED_FLOWS[0], source_address="2001:db8:ffff:ffff:ffff:ffff:ffff:1", source_port=65535,
                 destination_address="2001:db8::53", protocol=17, packets=123456789, bytes=98765432109)
    second = dict(SEED_FLOWS[4], source_address="fe80::1", destination_address="ff02::1:ff00:1", protocol=58,
                  input_interface="enp0s31f6.100", tos=184)
    third = dict(SEED_FLOWS[4], protocol=253)
    return [first, second, third]


def _two_ipv4_flows() -> list[dict[str, Any]]:
    second = dict(TEMPLATE_FLOWS["mpls-ipv4"], mpls_labels=[0, 0, 0], top_label_address="0.0.0.0", source_mask=32,
                  destination_mask=32)
    return [TEMPLATE_FLOWS["ipv4"], second]


AGGREGATION = "accounting.aggregation_template"

OTHER_GOLDENS = {
    **{f"aggregation_template_{kind.replace('-', '_')}.txt":
       (AGGREGATION, "extensive", template_result(kind, [TEMPLATE_FLOWS[kind]]), None) for kind in TEMPLATE_FLOWS},
    "aggregation_template_terse.txt": (AGGREGATION, "terse", template_result("ipv4", _two_ipv4_flows()), None),
    "aggregation_template_detail.txt": (AGGREGATION, "detail", template_result("ipv4", _two_ipv4_flows()), None),
    "aggregation_template_mpls_terse.txt": (AGGREGATION, None, template_result("mpls", [TEMPLATE_FLOWS["mpls"]]),
                                            None),
    "aggregation_template_empty.txt": (AGGREGATION, "extensive", template_result("bridge", [], "l2", "9"), None),
    "aggregation_template_mpls_ipv4.xml": (AGGREGATION, None, template_result("mpls-ipv4",
                                                                              [TEMPLATE_FLOWS["mpls-ipv4"]]), "xml"),
    "aggregation_template_ipv6.json": (AGGREGATION, None, template_result("ipv6", [TEMPLATE_FLOWS["ipv6"]]), "json"),
    "flow_detail_detail.txt": ("accounting.flow_detail", "detail", _with_flows(SEED_FLOWS[:4]), None),
    "flow_detail_extensive.txt": ("accounting.flow_detail", "extensive", _with_flows(SEED_FLOWS[:2]), None),
    "flow_detail_ipv6.txt": ("accounting.flow_detail", "terse", _with_flows(_ipv6_flows()), None),
    "flow_detail_ipv6_detail.txt": ("accounting.flow_detail", "detail", _with_flows(_ipv6_flows()), None),
    "flow_detail_empty.txt": ("accounting.flow_detail", "terse", _with_flows([]), None),
    "aggregation_as.txt": ("accounting.aggregation_as", "terse", SEED_RESULTS["accounting.aggregation_as"], None),
    "aggregation_as_extensive.txt": ("accounting.aggregation_as", "extensive",
                                     SEED_RESULTS["accounting.aggregation_as"], None),
    "aggregation_protocol_port.txt": ("accounting.aggregation_protocol_port", None,
                                      SEED_RESULTS["accounting.aggregation_protocol_port"], None),
    "aggregation_source_prefix_detail.txt": ("accounting.aggregation_source_prefix", "detail",
                                             SEED_RESULTS["accounting.aggregation_source_prefix"], None),
    "aggregation_destination_prefix.txt": ("accounting.aggregation_destination_prefix", "detail",
                                           SEED_RESULTS["accounting.aggregation_destination_prefix"], None),
    "aggregation_source_destination_prefix.txt": (
        "accounting.aggregation_source_destination_prefix", "extensive",
        SEED_RESULTS["accounting.aggregation_source_destination_prefix"], None),
    "aggregation_source_destination_prefix.xml": (
        "accounting.aggregation_source_destination_prefix", None,
        SEED_RESULTS["accounting.aggregation_source_destination_prefix"], "xml"),
    "aggregation_as.json": ("accounting.aggregation_as", None, SEED_RESULTS["accounting.aggregation_as"], "json"),
    "routing.txt": ("accounting.routing", None, SEED_RESULTS["accounting.routing"], None),
    "routing.xml": ("accounting.routing", None, SEED_RESULTS["accounting.routing"], "xml"),
    "version.txt": ("system.version", None, SEED_RESULTS["system.version"], None),
    "uptime.txt": ("system.uptime", None, SEED_RESULTS["system.uptime"], None),
    "errors.json": ("accounting.errors", None, SEED_RESULTS["accounting.errors"], "json"),
    "flow.xml": ("accounting.flow", None, SEED_RESULTS["accounting.flow"], "xml"),
    "flow_detail.json": ("accounting.flow_detail", None, _with_flows(SEED_FLOWS[:1]), "json"),
    "packet_size_distribution.xml": ("accounting.packet_size_distribution", None,
                                     SEED_RESULTS["accounting.packet_size_distribution"], "xml"),
    "uptime.xml": ("system.uptime", None, SEED_RESULTS["system.uptime"], "xml"),
    "firewall.txt": ("firewall.show", None, SEED_RESULTS["firewall.show"], None),
    "firewall.xml": ("firewall.show", None, SEED_RESULTS["firewall.show"], "xml"),
    "firewall.json": ("firewall.show", None, SEED_RESULTS["firewall.show"], "json"),
    "commit_history.txt": ("config.history", None, SEED_RESULTS["config.history"], None),
    "commit_history.xml": ("config.history", None, SEED_RESULTS["config.history"], "xml"),
}


@pytest.mark.parametrize("name", sorted(SEED_GOLDENS))
def test_seed_output_matches_golden(name: str, update_golden: bool) -> None:
    method, level, _ = SEED_GOLDENS[name]
    check_golden(name, render(method, SEED_RESULTS[method], level), update_golden)


@pytest.mark.parametrize("name", sorted(SEED_GOLDENS))
def test_golden_is_the_seed_block(name: str) -> None:
    """The golden files are literally show-outputs.md's blocks (so the renderer reproduces the seed)."""
    blocks = seed_blocks()
    if blocks is None:
        pytest.skip("../shared/spec/show-outputs.md is not available")
    _, _, command = SEED_GOLDENS[name]
    method, level, _ = SEED_GOLDENS[name]
    assert render(method, SEED_RESULTS[method], level) == blocks[command]


@pytest.mark.parametrize("name", sorted(OTHER_GOLDENS))
def test_other_output_matches_golden(name: str, update_golden: bool) -> None:
    method, level, result, display = OTHER_GOLDENS[name]
    check_golden(name, render(method, result, level, display), update_golden)


def test_errors_extras_follow_the_seed_lines(update_golden: bool) -> None:
    result = copy.deepcopy(SEED_RESULTS["accounting.errors"])
    block = result["interfaces"][0]
    block["other_drops"] = {"not-ipv6": 3, "bad-ip-header": 7, "unsupported-link-type": 0}
    block["export_failures"] = [{"flow_server": "127.0.0.1:2055", "family": "inet", "failures": 2},
                                {"flow_server": "[::1]:9995", "family": "inet", "failures": 0}]
    lines = render("accounting.errors", result)
    assert lines[:8] == render("accounting.errors", SEED_RESULTS["accounting.errors"])
    assert lines[8:] == [
        "    Packets dropped (not IPv6): 3, Packets dropped (bad IP header): 7",
        "    Packets dropped (unsupported link type): 0",
        "    Export packet failures (127.0.0.1:2055): 2, Export packet failures ([::1]:9995): 0",
    ]
    check_golden("errors_extras.txt", lines, update_golden)
    entries = json.loads("\n".join(render("accounting.errors", result, None, "json")))
    info = entries["services-accounting-information"][0]["error-information"][0]
    assert [d["drop-reason"][0]["data"] for d in info["error-other-drop"]] == list(block["other_drops"])
    assert info["error-export-failure"][0]["flow-server"][0]["data"] == "127.0.0.1:2055"


@pytest.mark.parametrize("level", ["terse", "detail"])
def test_flow_detail_columns_line_up_and_widen(level: str) -> None:
    """Every value starts where its header starts, with at least two spaces before the next column."""
    lines = render("accounting.flow_detail", _with_flows(_ipv6_flows() + SEED_FLOWS[:2]), level)[2:]
    header, rows = lines[0], lines[2:]
    starts = [m.start() for m in re.finditer(r"\S+", header)]
    for row in rows:
        cells = list(re.finditer(r"\S+", row))
        assert [m.start() for m in cells] == starts, row
        for left, right in itertools.pairwise(cells):
            assert right.start() - left.end() >= 2
    assert all(line == line.rstrip() for line in lines)


@pytest.mark.parametrize(("number", "text"), [(0, "ip(0)"), (1, "icmp(1)"), (6, "tcp(6)"), (17, "udp(17)"),
                                              (58, "icmp6(58)"), (253, "253")])
def test_protocol_names(number: int, text: str) -> None:
    assert protocol_text(number) == text


def test_blocks_repeat_per_interface() -> None:
    result = copy.deepcopy(SEED_RESULTS["accounting.usage"])
    second = dict(result["interfaces"][0], interface="sp-2/1/0", local_index=469, uptime_ms=1)
    result["interfaces"].append(second)
    lines = render("accounting.usage", result)
    assert len(lines) == 10
    assert lines[5] == "  Service Accounting interface: sp-2/1/0, Local interface index: 469"
    assert lines[8] == "    Uptime: 1 milliseconds, Interrupt time: 1668537848 microseconds"


@pytest.mark.parametrize("method", sorted(m for m, r in RENDERERS.items()
                                          if "json" in r.displays and m != "system.configuration"))
def test_display_json_is_junos_json(method: str) -> None:
    """Every leaf is [{"data": "..."}] and every container a list of objects."""
    doc = json.loads("\n".join(render(method, SEED_RESULTS[method], None, "json")))

    def walk(value: Any) -> None:
        assert isinstance(value, list) and value
        for item in value:
            assert isinstance(item, dict)
            if "data" in item:
                assert list(item) == ["data"] and isinstance(item["data"], str)
            else:
                for child in item.values():
                    walk(child)

    assert len(doc) == 1
    walk(next(iter(doc.values())))


@pytest.mark.parametrize("method", sorted(m for m, r in RENDERERS.items() if "xml" in r.displays))
def test_display_xml_is_well_formed_rpc_reply(method: str) -> None:
    lines = render(method, SEED_RESULTS[method], None, "xml")
    root = ET.fromstring("\n".join(lines))
    assert root.tag == "rpc-reply"
    assert lines[0].startswith('<rpc-reply xmlns:junos="http://xml.juniper.net/junos/')
    assert [child.tag for child in root][-1] == "cli"


def test_json_path_of_a_junos_script() -> None:
    """The access pattern real Junos scripts use works on our JSON."""
    doc = json.loads("\n".join(render("accounting.errors", SEED_RESULTS["accounting.errors"], None, "json")))
    info = doc["services-accounting-information"][0]["error-information"][0]
    assert info["error-packets-dropped-no-memory"][0]["data"] == "0"
    assert info["error-bytes-per-second-overload"][0]["data"] == "Yes"
    assert info["interface-name"][0]["data"] == "sp-2/0/0"


def test_xml_escapes_text() -> None:
    result = copy.deepcopy(SEED_RESULTS["accounting.flow"])
    result["interfaces"][0]["service_name"] = "a<b>&c"
    assert "        <service-name>a&lt;b&gt;&amp;c</service-name>" in "\n".join(
        render("accounting.flow", result, None, "xml")).replace("    <flow-information>\n", "")


@pytest.mark.parametrize(("seconds", "age"), [(0, "00:00:00"), (3599, "00:59:59"), (86399, "23:59:59"),
                                              (86400, "1d 00:00"), (7 * 86400 + 61, "1w0d 00:01"),
                                              (18141379, "29w6d 23:16")])
def test_junos_age(seconds: int, age: str) -> None:
    assert junos_age(seconds) == age


@pytest.mark.parametrize(("seconds", "text"), [(5, "5 secs"), (1, "1 sec"), (60, "1 min"), (300, "5 mins"),
                                               (3600, "1:00"), (86400, "1 day"), (2 * 86400 + 65, "2 days, 1 min"),
                                               (209 * 86400 + 23 * 3600 + 14 * 60, "209 days, 23:14")])
def test_uptime_text(seconds: int, text: str) -> None:
    assert uptime_text(seconds) == text


def test_clear_commands_print_nothing() -> None:
    assert render("accounting.clear_flows", {"flows_cleared": 3}) == []
    assert render("accounting.clear_statistics", {}) == []


def _captured(result: dict[str, Any]) -> dict[str, Any]:
    """The seed's result plus two workers capturing ge-2/3/0 on eth1, which was deleted and came back."""
    out: dict[str, Any] = copy.deepcopy(result)
    block = out["interfaces"][0]
    block["kernel_statistics"] = [
        {"worker": 0, "interface": "ge-2/3/0", "linux_interface": "eth1", "packets": 10233, "drops": 0},
        {"worker": 1, "interface": "ge-2/3/0", "linux_interface": "eth1", "packets": 9767, "drops": 12},
        {"worker": 0, "interface": "eth2", "linux_interface": "eth2", "packets": 5, "drops": 0},
    ]
    block["captures"] = [
        {"interface": "ge-2/3/0", "linux_interface": "eth1", "state": "up", "ifindex": 13,
         "workers": [{"worker": 0, "packets": 10233, "drops": 0}, {"worker": 1, "packets": 9767, "drops": 12}],
         "events": [{"time": "2026-11-25T10:00:00+00:00", "message": "attached, ifindex 12"},
                    {"time": "2026-11-25T10:00:01+00:00", "message": "detached: interface deleted"},
                    {"time": "2026-11-25T11:00:02+01:00", "message": "re-attached, ifindex 13"}]},
        {"interface": "eth2", "linux_interface": "eth2", "state": "detached: renamed to eth9", "ifindex": None,
         "workers": [{"worker": 0, "packets": 5, "drops": 0}], "events": []},
    ]
    return out


def test_live_capture_lines_follow_the_seed_lines(update_golden: bool) -> None:
    errors = render("accounting.errors", _captured(SEED_RESULTS["accounting.errors"]))
    assert errors[:8] == render("accounting.errors", SEED_RESULTS["accounting.errors"])
    assert errors[8:] == ["    Kernel capture ge-2/3/0 (eth1), worker 0: 10233 packets, 0 drops",
                          "    Kernel capture ge-2/3/0 (eth1), worker 1: 9767 packets, 12 drops",
                          "    Kernel capture eth2, worker 0: 5 packets, 0 drops"]
    check_golden("errors_kernel.txt", errors, update_golden)
    status = render("accounting.status", _captured(SEED_RESULTS["accounting.status"]))
    seed = render("accounting.status", SEED_RESULTS["accounting.status"])
    assert status[:len(seed)] == seed
    assert status[len(seed):] == [
        "  Capture interface: ge-2/3/0 (eth1), State: up, SNMP index: 13",
        "    Worker 0: 10233 kernel packets, 0 kernel drops",
        "    Worker 1: 9767 kernel packets, 12 kernel drops",
        "    2026-11-25 10:00:00 UTC ge-2/3/0 (eth1): attached, ifindex 12",
        "    2026-11-25 10:00:01 UTC ge-2/3/0 (eth1): detached: interface deleted",
        "    2026-11-25 10:00:02 UTC ge-2/3/0 (eth1): re-attached, ifindex 13",
        "  Capture interface: eth2, State: detached: renamed to eth9, SNMP index: none",
        "    Worker 0: 5 kernel packets, 0 kernel drops",
    ]
    check_golden("status_captures.txt", status, update_golden)
    doc = json.loads("\n".join(render("accounting.status", _captured(SEED_RESULTS["accounting.status"]), None,
                                      "json")))
    info = doc["services-accounting-information"][0]["status-information"][0]
    first = info["capture-information"][0]
    assert first["capture-snmp-index"][0]["data"] == "13"
    assert [e["event-message"][0]["data"] for e in first["capture-event"]][-1] == "re-attached, ifindex 13"
    assert first["capture-worker-statistics"][1]["kernel-drops"][0]["data"] == "12"
    doc = json.loads("\n".join(render("accounting.errors", _captured(SEED_RESULTS["accounting.errors"]), None,
                                      "json")))
    kernel = doc["services-accounting-information"][0]["error-information"][0]["error-kernel-capture"]
    assert [(k["capture-worker"][0]["data"], k["kernel-drops"][0]["data"]) for k in kernel] == [
        ("0", "0"), ("1", "12"), ("0", "0")]


# -- show services accounting aggregation template ---------------------------------------------------------

def reference_template_blocks() -> dict[str, list[str]] | None:
    """junos-reference.md §1.8's four real-router samples by template type (None when shared/ is absent)."""
    spec = SHARED / "spec" / "junos-reference.md"
    if not spec.exists():
        return None
    text = spec.read_text()
    section = text[text.index("### 1.8 "):text.index("### 1.9 ")]
    samples = re.findall(r"^(IPv4|IPv6|MPLS|MPLS-IPv4) template.*?```\n(.*?)```", section, re.MULTILINE | re.DOTALL)
    return {kind.lower(): body.splitlines() for kind, body in samples}


@pytest.mark.parametrize("kind", ["ipv4", "ipv6", "mpls", "mpls-ipv4"])
def test_extensive_block_is_the_real_router_sample(kind: str) -> None:
    """The §1.8 values in, §1.8's block out, byte for byte (after the two interface header lines)."""
    blocks = reference_template_blocks()
    if blocks is None:
        pytest.skip("../shared/spec/junos-reference.md is not available")
    want = blocks[kind]
    if not want[0].startswith("  "):  # the MPLS-IPv4 sample lost its two-space indent in the fixture it came from
        want = ["  " + line for line in want]
    lines = render(AGGREGATION, template_result(kind, [TEMPLATE_FLOWS[kind]]), "extensive")
    assert lines[:2] == ["  Service Accounting interface: sp-2/0/0, Local interface index: 468",
                         "  Service name: (default sampling)"]
    assert lines[2:] == want


def test_levels_print_nested_subsets() -> None:
    """terse: addresses, ports, protocol, counts; detail adds masks and SNMP indexes; extensive adds the times."""
    result = template_result("ipv4", [TEMPLATE_FLOWS["ipv4"]])
    terse, detail, extensive = (render(AGGREGATION, result, level)[2:] for level in ("terse", "detail", "extensive"))
    assert render(AGGREGATION, result)[2:] == terse  # terse is the default
    assert [line.split(":")[0].strip() for line in terse] == ["Source address", "Source port", "Protocol",
                                                             "Packet count"]
    assert [line for line in detail if line not in terse] == [
        "  Source mask: 32, Destination mask: 30", "  Input SNMP interface index: 618, Output SNMP interface index: 620"]
    assert [line for line in extensive if line not in detail] == ["  Start time: 79167425, End time: 79167425"]
    assert [line for line in extensive if line in detail] == detail


def test_blocks_are_separated_by_one_blank_line() -> None:
    lines = render(AGGREGATION, template_result("ipv6", [TEMPLATE_FLOWS["ipv6"]] * 3), "extensive")[2:]
    assert lines.count("") == 2
    assert lines[8] == lines[17] == ""
    assert lines[:8] == lines[9:17] == lines[18:]


@pytest.mark.parametrize(("text", "full"), [
    ("100::2", "100:0:0:0:0:0:0:2"), ("2001:db8::53", "2001:db8:0:0:0:0:0:53"), ("::", "0:0:0:0:0:0:0:0"),
    ("fe80::0a:b", "fe80:0:0:0:0:0:a:b"), ("10.1.1.2", "10.1.1.2"),
])
def test_full_address(text: str, full: str) -> None:
    assert full_address(text) == full


def test_xml_entries_carry_the_reference_tags() -> None:
    """Tag names and order as the reference (and real routers' XML) give them, per template type."""
    doc = ET.fromstring("\n".join(render(AGGREGATION, template_result("ipv4", [TEMPLATE_FLOWS["ipv4"]]), None, "xml")))
    entry = doc.find("services-accounting-information/flow-aggregate-template-detail/"
                     "flow-aggregate-template-detail-ipv4/detail-entry")
    assert entry is not None
    assert [(e.tag, e.text) for e in entry] == [
        ("source-address", "10.120.202.64"), ("destination-address", "10.169.14.158"), ("source-port", "8"),
        ("destination-port", "0"), ("protocol", "1"), ("tos", "0"), ("tcp-flags", "0"), ("source-mask", "32"),
        ("destination-mask", "30"), ("input-snmp-interface-index", "618"), ("output-snmp-interface-index", "620"),
        ("start-time", "79167425"), ("end-time", "79167425"), ("packet-count", "1"), ("byte-count", "84")]
    mpls = json.loads("\n".join(render(AGGREGATION, template_result("mpls-ipv4", [TEMPLATE_FLOWS["mpls-ipv4"]]),
                                       None, "json")))
    block = mpls["services-accounting-information"][0]["flow-aggregate-template-detail"][0]
    assert block["interface-name"][0]["data"] == "sp-2/0/0"
    entry_json = block["flow-aggregate-template-detail-mpls-ipv4"][0]["detail-entry"][0]
    assert [entry_json[f"mpls-label-{i}"][0]["data"] for i in (1, 2, 3)] == ["299888", "16", "0"]
    assert entry_json["top-label-address"][0]["data"] == "27.93.202.40"
    assert set(LAYOUTS) == {"ipv4", "ipv6", "mpls", "mpls-ipv4", "peer-as-billing", "bridge"}


def test_flow_detail_extensive_shows_kept_mac_addresses() -> None:
    flow = dict(SEED_FLOWS[0], source_mac="02:00:00:00:00:01", destination_mac="0a:0b:0c:0d:0e:0f")
    plain, with_macs = (render("accounting.flow_detail", _with_flows([f]), "extensive")[2:] for f in (SEED_FLOWS[0], flow))
    assert with_macs == plain + ["    Source MAC address: 02:00:00:00:00:01, Destination MAC address: 0a:0b:0c:0d:0e:0f"]
    tree = render("accounting.flow_detail", _with_flows([flow]), None, "xml")
    assert "<source-mac-address>02:00:00:00:00:01</source-mac-address>" in "\n".join(tree)


def test_bridge_flows_show_their_mac_addresses() -> None:
    result = template_result("bridge", [TEMPLATE_FLOWS["bridge"]])
    assert render(AGGREGATION, result)[2:] == [
        "  Source MAC address: 02:00:00:00:00:01, Destination MAC address: 0a:0b:0c:0d:0e:0f",
        "  Ethernet type: 0x0800, VLAN ID: 12", "  Packet count: 9, Byte count: 5120"]
    assert render(AGGREGATION, template_result("bridge", []))[2:] == []


def test_a_flow_server_of_both_families_is_told_apart_in_errors() -> None:
    result = copy.deepcopy(SEED_RESULTS["accounting.errors"])
    result["interfaces"][0]["export_failures"] = [{"flow_server": "127.0.0.1:4739", "family": "inet", "failures": 0},
                                                  {"flow_server": "127.0.0.1:4739", "family": "inet6", "failures": 3}]
    assert render("accounting.errors", result)[-1] == (
        "    Export packet failures (127.0.0.1:4739, inet): 0, Export packet failures (127.0.0.1:4739, inet6): 3")
