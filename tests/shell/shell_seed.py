"""The seed's show-output values (../shared/spec/show-outputs.md) as daemon results in docs/control-protocol.md shapes."""

from __future__ import annotations

from typing import Any, Final

from flowd.config.statements import statement_tree
from flowd.syntax.schema import outline


def _iface(local_index: int, **fields: Any) -> dict[str, Any]:
    return {"interfaces": [{"interface": "sp-2/0/0", "local_index": local_index,
                            "service_name": "(default sampling)", **fields}]}


def _flow(proto: int, src: str, sport: int, dst: str, dport: int, packets: int, octets: int) -> dict[str, Any]:
    return {"protocol": proto, "tos": 0, "tcp_flags": 0,
            "source_address": src, "source_prefix_length": 32, "source_port": sport,
            "destination_address": dst, "destination_prefix_length": 32, "destination_port": dport,
            "input_snmp_interface_index": 1, "output_snmp_interface_index": 0,
            "input_interface": "eth0", "output_interface": "",
            "source_as": 0, "destination_as": 0, "start_time": 79167425, "end_time": 79167430,
            "packets": packets, "bytes": octets, "time_since_last_active_timeout": 5,
            "last_active_timeout_packets": 0, "last_active_timeout_bytes": 0}


SEED_FLOWS: Final = [
    _flow(17, "10.1.1.2", 53, "10.0.0.1", 53, 4329, 3386035),
    _flow(0, "10.1.1.2", 0, "10.0.0.2", 0, 4785, 3719654),
    _flow(0, "10.1.1.2", 0, "10.0.1.2", 0, 4530, 3518769),
    _flow(17, "10.1.1.2", 0, "10.0.7.1", 0, 5011, 3916767),
    _flow(6, "10.1.1.2", 20, "10.3.0.1", 20, 1, 1494),
    _flow(6, "10.1.1.2", 20, "10.168.80.1", 20, 1, 677),
    _flow(6, "10.1.1.2", 20, "10.69.192.1", 20, 1, 446),
    _flow(6, "10.1.1.2", 20, "10.239.240.1", 20, 1, 1426),
    _flow(6, "10.1.1.2", 20, "10.126.160.1", 20, 1, 889),
    _flow(6, "10.1.1.2", 20, "10.71.224.1", 20, 1, 1046),
]

def template_flow(src: str, dst: str, sport: int, dport: int, proto: int, masks: tuple[int, int],
                  snmp: tuple[int, int], times: tuple[int, int], packets: int, octets: int,
                  labels: tuple[int, int, int] = (0, 0, 0)) -> dict[str, Any]:
    """An `accounting.aggregation_template` flow object (a flow-detail one plus the template fields)."""
    flow = _flow(proto, src, sport, dst, dport, packets, octets)
    flow.update(input_snmp_interface_index=snmp[0], output_snmp_interface_index=snmp[1], start_time=times[0],
                end_time=times[1], mpls_labels=list(labels), top_label_address="0.0.0.0", bgp_next_hop="0.0.0.0",
                source_mask=masks[0], destination_mask=masks[1])
    return flow


# template type -> the flow of junos-reference.md §1.8's real-router sample of that type (values the text does
# not show are flowd's). The IPv6 addresses are as the daemon sends them (compressed).
TEMPLATE_FLOWS: Final[dict[str, dict[str, Any]]] = {
    "ipv4": template_flow("10.120.202.64", "10.169.14.158", 8, 0, 1, (32, 30), (618, 620), (79167425, 79167425),
                          1, 84),
    "ipv6": template_flow("100::2", "200::2", 0, 0, 59, (64, 64), (1169, 776), (58268748, 58418928), 38, 3116),
    "mpls": template_flow("10.0.0.1", "10.0.0.2", 0, 0, 0, (32, 32), (1014, 624), (0, 0), 2, 184,
                          labels=(299792, 16, 0)),
    "mpls-ipv4": dict(template_flow("192.168.51.2", "192.168.61.2", 0, 0, 61, (0, 0), (1169, 776),
                                    (58267189, 58426191), 2, 180, labels=(299888, 16, 0)),
                      top_label_address="27.93.202.40"),
    "peer-as-billing": template_flow("10.1.1.2", "10.0.0.1", 53, 53, 17, (32, 32), (618, 0),
                                     (79167425, 79167430), 4329, 3386035),
    "bridge": dict(template_flow("192.0.2.1", "198.51.100.7", 443, 51514, 6, (32, 32), (3, 0), (1200, 4800), 9,
                                 5120),
                   source_mac="02:00:00:00:00:01", destination_mac="0a:0b:0c:0d:0e:0f", ethernet_type="0x0800",
                   vlan_id=12),
}


def template_result(kind: str, flows: list[dict[str, Any]], name: str = "xflow1", fmt: str = "ipfix"
                    ) -> dict[str, Any]:
    """An `accounting.aggregation_template` result for a template of type `kind`."""
    return _iface(468, template={"name": name, "type": kind, "format": fmt}, flows=flows)


# method -> result, exactly the seed's numbers (flowd's extra error counters empty, as the seed has none).
SEED_RESULTS: Final[dict[str, Any]] = {
    "accounting.errors": _iface(
        542, no_memory=0, not_ip=0, not_ipv4=0, header_too_small=0, allocation_failures=0, free_failures=0,
        free_list_failures=0, memory_overload=False, pps_overload=False, bps_overload=True,
        other_drops={}, export_failures=[]),
    "accounting.flow_detail": _iface(468, flows=SEED_FLOWS),
    # the seed has no aggregation output: junos-reference.md §1.8's IPv4 sample stands in
    "accounting.aggregation_template": template_result("ipv4", [TEMPLATE_FLOWS["ipv4"]]),
    "accounting.memory": _iface(
        468, allocation_count=437340, free_count=430681, maximum_allocated=6782, allocations_per_second=3366,
        frees_per_second=6412, memory_used=133416928, memory_free=133961744),
    "accounting.packet_size_distribution": _iface(
        468, ranges=[{"start": 64, "end": 96, "packets": 1705156, "percentage": 100}]),
    "accounting.status": _iface(
        468, interface_state="Monitoring", group_index=0, export_interval=60, export_format="cflowd v5",
        protocol="IPv4", engine_type=55, engine_id=5, route_record_count=13, ifl_snmp_count=30, as_count=1,
        time_set=True, configuration_set=True, route_record_set=True, ifl_snmp_map_set=True),
    "accounting.usage": _iface(468, uptime_ms=4790345, interrupt_time_us=1668537848, load_5s=71, load_1m=63),
    "accounting.flow": _iface(
        468, flow_packets=56130820, flow_bytes=3592372480, flow_packets_10s_rate=0, flow_bytes_10s_rate=0,
        active_flows=0, total_flows=2, flows_exported=2, flow_packets_exported=4, flows_inactive_timed_out=2,
        flows_active_timed_out=0),
    "accounting.clear_statistics": {},
    "accounting.clear_flows": {"flows_cleared": 3},
    "system.version": {"hostname": "router1", "model": "flowd", "version": "0.1.0", "python": "3.11.7",
                       "packages": [{"name": "numpy", "comment": "numpy 1.26.4"},
                                    {"name": "prompt_toolkit", "comment": "prompt_toolkit 3.0.52"}]},
    "system.uptime": {"current_time": "2020-03-26T08:16:41Z", "system_booted": "2019-08-29T09:02:22Z",
                      "daemon_started": "2019-08-29T09:03:25Z", "last_configured": "2020-03-05T16:04:34Z",
                      "last_configured_by": "cisco", "time_source": "LOCAL CLOCK",
                      "load_average": [0.43, 0.43, 0.42], "users": 5},
    # the seed's catch_all filter counting counter1, and a second filter with two counters and one without
    "firewall.show": {"filters": [
        {"name": "catch_all", "counters": [{"name": "counter1", "packets": 7364, "bytes": 1050866}]},
        {"name": "web", "counters": [{"name": "http", "packets": 12, "bytes": 6480},
                                     {"name": "https-and-a-long-counter-name-here", "packets": 123456789012,
                                      "bytes": 98765432109876}]},
        {"name": "quiet", "counters": []}]},
    "firewall.clear": {},
    # two commits and the configuration the daemon started with; the newest awaits confirmation
    "config.history": {"commits": [
        {"index": 0, "user": "alice", "time": 1796300000.0, "comment": "", "confirmed": 5, "via": "cli",
         "rollback_in": 240.0},
        {"index": 1, "user": "alice", "time": 1796299000.0, "comment": "typed the seed's stanza", "confirmed": None,
         "via": "cli"},
        {"index": 2, "user": "flowd", "time": 1796298000.0, "comment": "configuration at start", "confirmed": None,
         "via": "cli"}]},
}

# The seed's sampling configuration (../shared/spec/seed-active-flow-monitoring.txt) as the daemon sends it.
SEED_CONFIG: Final[dict[str, Any]] = {
    "interfaces": {
        "sp-2/0/0": {"unit": {"0": {"family": {"inet": {"address": {"10.5.5.1/32": {"destination": "10.5.5.2"}}}}}}},
        "fe-1/0/0": {"unit": {"0": {"family": {"inet": {"address": "10.60.2.2/30"}}}}},
        "ge-2/3/0": {"unit": {"0": {"family": {"inet": {"filter": {"input": "catch_all"},
                                                         "address": "10.1.1.1/20"}}}}},
        "ge-3/0/0": {"unit": {"0": {"family": {"inet": {"address": "10.2.2.1/24"}}}}},
    },
    "forwarding-options": {
        "sampling": {"input": {"rate": 1}},
        "family": {"inet": {"output": {
            "flow-server": {"10.60.2.1": {"port": 2055, "version": 5}},
            "flow-inactive-timeout": 15,
            "flow-active-timeout": 60,
            "interface": {"sp-2/0/0": {"engine-id": 5, "engine-type": 55, "source-address": "10.60.2.2"}},
        }}},
    },
    "firewall": {"family": {"inet": {"filter": {"catch_all": {"term": {"default": {
        "then": {"sample": True, "count": "counter1", "accept": True}}}}}}}},
}
SEED_RESULTS["system.configuration"] = {"path": [], "config": SEED_CONFIG,
                                        "schema": outline(statement_tree(), SEED_CONFIG)}
# `show configuration forwarding-options | compare rollback 1` after `rate 1` became `rate 100` and a second
# flow server was added.
SEED_RESULTS["config.compare_rollback"] = {"lines": [
    "[edit forwarding-options sampling input]", "-   rate 1;", "+   rate 100;",
    "[edit forwarding-options family inet output]", "+   flow-server 127.0.0.2 {", "+       port 2056;", "+   }"]}


def _aggregate(**fields: Any) -> dict[str, Any]:
    return {**fields, "start_time": 79167425, "end_time": 79170430}


AGGREGATION_RESULTS: Final[dict[str, Any]] = {  # two aggregates of each type, and the route sources
    "accounting.aggregation_as": _iface(
        468, aggregation_type="as", aggregation_source="export-interval", entries=[
            _aggregate(source_as=64501, destination_as=23456, input_snmp_interface_index=501,
                       output_snmp_interface_index=502, flow_count=12, packet_count=4329, byte_count=3386035),
            _aggregate(source_as=0, destination_as=64502, input_snmp_interface_index=501,
                       output_snmp_interface_index=0, flow_count=1, packet_count=1, byte_count=1494)]),
    "accounting.aggregation_protocol_port": _iface(
        468, aggregation_type="protocol-port", aggregation_source="flow-cache", entries=[
            _aggregate(protocol=17, source_port=53, destination_port=53, flow_count=2, packet_count=4329,
                       byte_count=3386035),
            _aggregate(protocol=6, source_port=20, destination_port=20, flow_count=6, packet_count=6,
                       byte_count=5978)]),
    "accounting.aggregation_source_prefix": _iface(
        468, aggregation_type="source-prefix", aggregation_source="flow-cache", entries=[
            _aggregate(source_prefix="10.1.0.0", source_prefix_length=16, source_as=64501,
                       input_snmp_interface_index=501, flow_count=10, packet_count=18660, byte_count=14545737)]),
    "accounting.aggregation_destination_prefix": _iface(
        468, aggregation_type="destination-prefix", aggregation_source="flow-cache", entries=[
            _aggregate(destination_prefix="10.0.0.0", destination_prefix_length=22, destination_as=64502,
                       output_snmp_interface_index=502, flow_count=3, packet_count=13644, byte_count=10625458),
            _aggregate(destination_prefix="0.0.0.0", destination_prefix_length=0, destination_as=0,
                       output_snmp_interface_index=0, flow_count=7, packet_count=5016, byte_count=3920745)]),
    "accounting.aggregation_source_destination_prefix": _iface(
        468, aggregation_type="source-destination-prefix", aggregation_source="export-interval", entries=[
            _aggregate(source_prefix="10.1.0.0", source_prefix_length=16, destination_prefix="10.0.0.0",
                       destination_prefix_length=22, source_as=64501, destination_as=64502,
                       input_snmp_interface_index=501, output_snmp_interface_index=502, flow_count=3,
                       packet_count=13644, byte_count=10625458)]),
    "accounting.routing": _iface(
        468, routing={"precedence": ["bgp", "kernel", "prefix-file"], "sources": [
            {"source_name": "bgp 192.0.2.2", "source_type": "bgp", "state": "Established", "ipv4_prefixes": 902244,
             "ipv6_prefixes": 201433, "announced": 1150231, "withdrawn": 46554, "flushed": 0, "errors": 0,
             "last_error": "", "last_update": "2026-12-03 12:00:01 UTC"},
            {"source_name": "/etc/flowd/routes.txt", "source_type": "prefix-file", "state": "Loaded",
             "ipv4_prefixes": 2, "ipv6_prefixes": 0, "announced": 2, "withdrawn": 0, "flushed": 0, "errors": 1,
             "last_error": "/etc/flowd/routes.txt:3: bad prefix '10.0.0.1/8'",
             "last_update": "2026-12-03 11:58:00 UTC"}]}),
}
SEED_RESULTS.update(AGGREGATION_RESULTS)
