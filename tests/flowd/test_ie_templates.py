"""flowd.export.ie and flowd.export.templates: the IE table, templates as data, compiled layouts, plans.

Also home of the sample flows and the hand-written expected record (``expected``) that the v9,
IPFIX and TCP export tests compare decoded records with.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from flowdecode import ELEMENTS

from flowd.config.schema import RefreshRate, TemplateConfig
from flowd.export.ie import BY_ID, BY_NAME, IES, UnknownElement, field_dtype, lookup
from flowd.export.templates import (
    SOURCES,
    SPECS,
    ZERO,
    Carries,
    ExportFormat,
    ExportPlan,
    Template,
    options_template,
    plan_for,
    template_for,
)
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import KEY_BYTES, FlowKey

BOOT = 1_700_000_000.0
NOW = BOOT + 12.345678
BOOT_MS = 1_700_000_000_000


@dataclass(frozen=True, slots=True)
class Flow:
    """One finished flow as a person reads it; times in ms after BOOT."""

    src: str
    dst: str
    sport: int
    dport: int
    proto: int
    tos: int
    ifindex: int
    packets: int
    octets: int
    first_ms: int
    last_ms: int
    flags: int = 0
    ttl: tuple[int, int] = (64, 64)
    vlan: int = 0
    inner_vlan: int = 0
    mpls: tuple[int, int, int] = (0, 0, 0)  # label stack entries: label << 4 | exp << 1 | s
    end_reason: int = 1


SAMPLE = (
    # TCP with SYN PSH ACK FIN on VLAN 10 inside customer VLAN 20, idle timeout
    Flow("10.0.0.1", "192.0.2.80", 51514, 443, 6, 0x00, 3, 12, 6_240, 1_250, 3_500, 0x1B, (57, 64), 10, 20),
    # one DNS query marked DSCP EF, active timeout
    Flow("10.0.0.2", "198.51.100.53", 40000, 53, 17, 0xB8, 3, 1, 74, 2_000, 2_000, end_reason=2),
    # four ICMP echo requests (type 8 code 0 in the key's destination port), labelled 100/200 (S on 200)
    Flow("10.0.0.3", "203.0.113.9", 0, 0x0800, 1, 0x00, 4, 4, 336, 5_001, 8_004, ttl=(63, 63),
         mpls=(100 << 4 | 2 << 1, 200 << 4 | 1, 0)),
    # IPv6 TCP ended by FIN
    Flow("2001:db8::1", "2001:db8:ffff::80", 33000, 80, 6, 0x20, 7, 9, 4_321, 100, 900, 0x13, end_reason=3),
    # ICMPv6 echo request (type 128), forced end
    Flow("2001:db8::2", "2001:db8::53", 0, 128 << 8, 58, 0x00, 7, 2, 208, 4_000, 5_000, end_reason=4),
)
V4 = tuple(f for f in SAMPLE if ":" not in f.src)
V6 = tuple(f for f in SAMPLE if ":" in f.src)


def records(flows: Sequence[Flow], *, boot: float = BOOT) -> FlowRecords:
    """FlowRecords holding these flows, in order."""
    n = len(flows)
    keys = b"".join(FlowKey(ipaddress.ip_address(f.src), ipaddress.ip_address(f.dst), f.sport, f.dport,
                            f.proto, f.tos, f.ifindex).pack() for f in flows)
    return FlowRecords(
        key=np.frombuffer(keys, np.uint8).reshape(n, KEY_BYTES).copy(),
        packets=np.array([f.packets for f in flows], np.uint64),
        bytes=np.array([f.octets for f in flows], np.uint64),
        first=np.array([boot + f.first_ms / 1000 for f in flows], np.float64),
        last=np.array([boot + f.last_ms / 1000 for f in flows], np.float64),
        tcp_flags=np.array([f.flags for f in flows], np.uint8),
        ttl_min=np.array([f.ttl[0] for f in flows], np.uint8),
        ttl_max=np.array([f.ttl[1] for f in flows], np.uint8),
        vlan=np.array([f.vlan for f in flows], np.uint16),
        inner_vlan=np.array([f.inner_vlan for f in flows], np.uint16),
        mpls=np.array([f.mpls for f in flows], np.uint32).reshape(n, 3),
        end_reason=np.array([f.end_reason for f in flows], np.uint8),
    )


def numbered(n: int, *, v6: bool = False, start: int = 0) -> list[Flow]:
    """n distinct flows (flow i from 10.1.x.y or 2001:db8:1::i, i + 1 packets)."""
    out = []
    for i in range(start, start + n):
        src = f"2001:db8:1::{i + 1:x}" if v6 else f"10.1.{i // 256}.{i % 256}"
        dst = "2001:db8:2::1" if v6 else "192.0.2.1"
        out.append(Flow(src, dst, 1024 + i % 60000, 80, 6, 0, 1, i + 1, 100 * (i + 1), i, i + 10, 0x18))
    return out


def _label(entry: int) -> bytes:
    return entry.to_bytes(3, "big")


def expected(flow: Flow, names: Sequence[str], *, label_positions: Sequence[int] = (1, 2, 3)) -> dict[str, Any]:
    """The record flowd must send for ``flow``, written from the documented rules (not from the code)."""
    v4 = ":" not in flow.src
    icmp = flow.proto in (1, 58)
    zero_v4, zero_v6 = "0.0.0.0", "::"
    labels = [_label(flow.mpls[p - 1]) if p <= 3 else bytes(3) for p in label_positions]
    values: dict[str, Any] = {
        "sourceIPv4Address": flow.src, "destinationIPv4Address": flow.dst,
        "sourceIPv6Address": flow.src, "destinationIPv6Address": flow.dst,
        "ipClassOfService": flow.tos, "protocolIdentifier": flow.proto,
        "sourceTransportPort": 0 if icmp else flow.sport, "destinationTransportPort": flow.dport,  # ICMP: v5 style
        "icmpTypeCodeIPv4": flow.dport if icmp else 0, "icmpTypeCodeIPv6": flow.dport if icmp else 0,
        "ingressInterface": flow.ifindex, "egressInterface": 0, "vlanId": flow.vlan, "dot1qVlanId": flow.vlan,
        "dot1qCustomerVlanId": flow.inner_vlan, "sourceIPv4PrefixLength": 0, "destinationIPv4PrefixLength": 0,
        "sourceIPv6PrefixLength": 0, "destinationIPv6PrefixLength": 0, "bgpSourceAsNumber": 0,
        "bgpDestinationAsNumber": 0, "ipNextHopIPv4Address": zero_v4, "bgpNextHopIPv4Address": zero_v4,
        "ipNextHopIPv6Address": zero_v6, "bgpNextHopIPv6Address": zero_v6, "tcpControlBits": flow.flags,
        "minimumTTL": flow.ttl[0], "maximumTTL": flow.ttl[1], "flowEndReason": flow.end_reason,
        "ipVersion": 4 if v4 else 6, "flowDirection": 0, "fragmentIdentification": 0, "ipv6ExtensionHeaders": 0,
        "octetDeltaCount": flow.octets, "packetDeltaCount": flow.packets,
        "flowStartMilliseconds": BOOT_MS + flow.first_ms, "flowEndMilliseconds": BOOT_MS + flow.last_ms,
        "flowStartSysUpTime": flow.first_ms, "flowEndSysUpTime": flow.last_ms,
        "mplsTopLabelStackSection": labels[0] if labels else None,
        "mplsLabelStackSection2": labels[1] if len(labels) > 1 else None,
        "mplsLabelStackSection3": labels[2] if len(labels) > 2 else None,
        "mplsTopLabelIPv4Address": zero_v4, "sourceMacAddress": "00:00:00:00:00:00",
        "destinationMacAddress": "00:00:00:00:00:00", "ethernetType": 0x0800 if v4 else 0x86DD,
        "bgpNextAdjacentAsNumber": 0,
    }
    return {name: values[name] for name in names}


# -- the IE table ----------------------------------------------------------------------------------

def test_ie_names_and_ids_are_unique() -> None:
    assert len(BY_NAME) == len(IES)
    assert len(BY_ID) == len(IES)
    for ie in IES:
        dtype, shape = field_dtype(ie, ie.length)
        assert dtype.itemsize * int(np.prod(shape, dtype=np.int64)) == ie.length, ie


def test_ie_table_agrees_with_the_independent_decoder_table() -> None:
    """tests/flowdecode.py's table was written separately from the IANA registry."""
    for ie in IES:
        assert ie.id in ELEMENTS, f"{ie.name} ({ie.id}) is missing from tests/flowdecode.py"
        assert ELEMENTS[ie.id][0] == ie.name


@pytest.mark.parametrize("name, ident, length", [
    ("octetDeltaCount", 1, 8), ("packetDeltaCount", 2, 8), ("tcpControlBits", 6, 1),
    ("fragmentIdentification", 54, 4), ("ipv6ExtensionHeaders", 64, 4), ("mplsTopLabelStackSection", 70, 3),
    ("mplsLabelStackSection2", 71, 3), ("mplsLabelStackSection3", 72, 3), ("sourceMacAddress", 56, 6),
    ("destinationMacAddress", 80, 6), ("ethernetType", 256, 2), ("vlanId", 58, 2), ("dot1qVlanId", 243, 2),
    ("dot1qCustomerVlanId", 245, 2), ("flowStartMilliseconds", 152, 8), ("flowEndMilliseconds", 153, 8),
    ("flowStartSysUpTime", 22, 4), ("flowEndSysUpTime", 21, 4), ("systemInitTimeMilliseconds", 160, 8),
    ("samplingInterval", 34, 4), ("samplingAlgorithm", 35, 1), ("flowActiveTimeout", 36, 2),
    ("flowInactiveTimeout", 37, 2), ("exporterIPv4Address", 130, 4), ("exporterIPv6Address", 131, 16),
    ("observationDomainId", 149, 4), ("flowEndReason", 136, 1), ("minimumTTL", 52, 1), ("maximumTTL", 53, 1),
    ("ipVersion", 60, 1), ("flowDirection", 61, 1), ("icmpTypeCodeIPv4", 32, 2), ("icmpTypeCodeIPv6", 139, 2),
    ("sourceIPv4PrefixLength", 9, 1), ("destinationIPv4PrefixLength", 13, 1), ("sourceIPv6PrefixLength", 29, 1),
    ("destinationIPv6PrefixLength", 30, 1), ("bgpSourceAsNumber", 16, 4), ("bgpDestinationAsNumber", 17, 4),
    ("ipNextHopIPv4Address", 15, 4), ("bgpNextHopIPv4Address", 18, 4), ("ipNextHopIPv6Address", 62, 16),
    ("bgpNextHopIPv6Address", 63, 16), ("ingressInterface", 10, 4), ("egressInterface", 14, 4),
])
def test_brief_elements(name: str, ident: int, length: int) -> None:
    ie = lookup(name)
    assert (ie.id, ie.length) == (ident, length)


@pytest.mark.parametrize("name, length, message", [
    ("tcpControlBits", 4, "tcpControlBits: unsigned16 cannot be encoded in 4 octets"),
    ("sourceIPv4Address", 16, "sourceIPv4Address: ipv4Address takes 4 octets, not 16"),
    ("flowStartMilliseconds", 4, "flowStartMilliseconds: dateTimeMilliseconds takes 8 octets, not 4"),
    ("mplsTopLabelStackSection", 0, "mplsTopLabelStackSection: octetArray length must be 1..65534, not 0"),
])
def test_impossible_lengths_are_refused(name: str, length: int, message: str) -> None:
    with pytest.raises(ValueError) as err:
        field_dtype(lookup(name), length)
    assert str(err.value) == message


def test_unknown_element() -> None:
    with pytest.raises(UnknownElement) as err:
        lookup("octetsDeltaCount")
    assert str(err.value) == "unknown information element 'octetsDeltaCount'"


# -- templates as data ------------------------------------------------------------------------------

KINDS = [(kind, fmt) for kind, spec in SPECS.items() for fmt in ExportFormat if fmt in spec.formats]

# Reference §3: the MX inline IPv4 template, in order.
MX_IPV4_ORDER = [8, 12, 5, 4, 7, 11, 32, 10, 58, 9, 13, 16, 17, 15, 6, 14, 52, 53, 136, 60, 18, 61, 243, 245, 54,
                 1, 2, 152, 153]


@pytest.mark.parametrize("kind, fmt", KINDS)
def test_compiled_layout_and_template_record_agree(kind: str, fmt: ExportFormat) -> None:
    compiled = template_for(kind, fmt).compile()
    lengths = [e.length for e in compiled.elements]
    assert compiled.record_size == sum(lengths)
    offsets = compiled.dtype.fields
    assert offsets is not None
    assert [offsets[e.ie.name][1] for e in compiled.elements] == \
        [sum(lengths[:i]) for i in range(len(lengths))]  # no gaps, in row order
    record = compiled.template_record(fmt)
    tid, count = struct.unpack_from("!HH", record)
    pairs = [struct.unpack_from("!HH", record, 4 + 4 * i) for i in range(count)]
    assert (tid, len(record)) == (SPECS[kind].template_id, 4 + 4 * count)
    assert pairs == [(e.ie.id, e.length) for e in compiled.elements]
    for e in compiled.elements:
        assert e.source == ZERO or e.source in SOURCES


def test_ipv4_template_is_the_mx_inline_order() -> None:
    ipfix = template_for("ipv4", ExportFormat.IPFIX).compile()
    assert [e.ie.id for e in ipfix.elements] == MX_IPV4_ORDER
    v9 = template_for("ipv4", ExportFormat.V9).compile()
    assert [e.ie.id for e in v9.elements] == [22 if i == 152 else 21 if i == 153 else i for i in MX_IPV4_ORDER]


@pytest.mark.parametrize("kind", [k for k, spec in SPECS.items() if ExportFormat.IPFIX in spec.formats])
def test_v9_flavour_changes_only_times_and_icmpv6(kind: str) -> None:
    ipfix = [(e.ie.name, e.length) for e in template_for(kind, ExportFormat.IPFIX).compile().elements]
    v9 = [(e.ie.name, e.length) for e in template_for(kind, ExportFormat.V9).compile().elements]
    swap = {("flowStartMilliseconds", 8): ("flowStartSysUpTime", 4),
            ("flowEndMilliseconds", 8): ("flowEndSysUpTime", 4),
            ("icmpTypeCodeIPv6", 2): ("icmpTypeCodeIPv4", 2)}
    assert v9 == [swap.get(pair, pair) for pair in ipfix]
    assert not any(name.endswith("Milliseconds") for name, _ in v9)
    assert ("tcpControlBits", 1) in ipfix or kind in ("mpls", "bridge", "peer-as-billing")  # RFC 7011 §6.2


def test_each_family_template_carries_its_rows() -> None:
    assert {kind: spec.carries for kind, spec in SPECS.items()} == {
        "ipv4": Carries.IPV4, "ipv6": Carries.IPV6, "mpls": Carries.ANY, "mpls-ipv4": Carries.IPV4,
        "bridge": Carries.ANY, "peer-as-billing": Carries.IPV4}
    ids = [spec.template_id for spec in SPECS.values()] + [spec.options_template_id for spec in SPECS.values()]
    assert len(set(ids)) == len(ids) and min(ids) >= 256 and max(ids) < 1024


@pytest.mark.parametrize("positions, names", [
    ((1, 2, 3), ["mplsTopLabelStackSection", "mplsLabelStackSection2", "mplsLabelStackSection3"]),
    ((2,), ["mplsTopLabelStackSection"]),
    ((3, 1), ["mplsTopLabelStackSection", "mplsLabelStackSection2"]),
    ((5, 1, 2), ["mplsTopLabelStackSection", "mplsLabelStackSection2", "mplsLabelStackSection3"]),
])
def test_label_positions_pick_the_stack_entries(positions: tuple[int, ...], names: list[str]) -> None:
    compiled = template_for("mpls", ExportFormat.IPFIX, label_positions=positions).compile()
    got = [e.ie.name for e in compiled.elements if e.ie.name.startswith("mpls")]
    assert got == names
    flow = SAMPLE[2]
    raw = np.frombuffer(compiled.encode(records([flow]), BOOT), compiled.dtype)[0]
    want = expected(flow, names, label_positions=positions)
    assert [bytes(raw[n]) for n in names] == [want[n] for n in names]


@pytest.mark.parametrize("rows, template_id, message", [
    ((("sourceIPv4Address", "src_ipv4"), ("sourceIPv4Address", "dst_ipv4")), 300,
     "template 300 lists sourceIPv4Address twice"),
    ((("octetDeltaCount", "octets"),), 255, "template id 255: expected 256..65535"),
    ((), 300, "template 300 has no fields"),
    ((("tcpControlBits", "tcp_flags", 3),), 300, "tcpControlBits: unsigned16 cannot be encoded in 3 octets"),
    ((("octetDeltaCount", "bytes"),), 300, "template 300: octetDeltaCount has no source 'bytes'"),
])
def test_bad_templates_are_refused(rows: tuple[Any, ...], template_id: int, message: str) -> None:
    with pytest.raises(ValueError) as err:
        Template(template_id, rows).compile()
    assert str(err.value) == message


def test_an_options_scope_must_be_one_v9_can_express() -> None:
    with pytest.raises(ValueError) as err:
        Template(600, (("ingressInterface", "x"), ("samplingInterval", "y")), scope=1).compile()
    assert str(err.value) == "template 600: ingressInterface cannot be a scope field"


@pytest.mark.parametrize("call, message", [
    (lambda: template_for("vpls", ExportFormat.V9),
     "unknown template type 'vpls' (expected one of ipv4, ipv6, mpls, mpls-ipv4, bridge, peer-as-billing)"),
    (lambda: template_for("peer-as-billing", ExportFormat.IPFIX),
     "peer-as-billing-template is not available in version-ipfix"),
    (lambda: template_for("mpls", ExportFormat.V9, label_positions=(1, 9)),
     "label positions [1, 9]: expected 1 to 3 values in 1..8"),
    (lambda: template_for("mpls", ExportFormat.V9, label_positions=()),
     "label positions []: expected 1 to 3 values in 1..8"),
])
def test_template_for_refuses_what_junos_does_not_offer(call: Any, message: str) -> None:
    with pytest.raises(ValueError) as err:
        call()
    assert str(err.value) == message


# -- vectorised encoding == one struct per record ---------------------------------------------------

_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _packed(value: Any) -> Any:
    if isinstance(value, str):
        if ":" in value and len(value) == 17 and value.count(":") == 5 and "::" not in value:
            return bytes(int(b, 16) for b in value.split(":"))
        return ipaddress.ip_address(value).packed
    return value


@pytest.mark.parametrize("kind, fmt", KINDS)
def test_vectorised_records_equal_struct_packing(kind: str, fmt: ExportFormat) -> None:
    compiled = template_for(kind, fmt).compile()
    carried = [f for f in SAMPLE if compiled.template.carries is Carries.ANY
               or (compiled.template.carries is Carries.IPV4) == (":" not in f.src)]
    layout = struct.Struct("!" + "".join(
        _CODES[e.length] if e.ie.type.startswith("unsigned") or e.ie.type.startswith("dateTime")
        else f"{e.length}s" for e in compiled.elements))
    names = [e.ie.name for e in compiled.elements]
    want = b"".join(layout.pack(*(_packed(v) for v in expected(f, names).values())) for f in carried)
    assert compiled.encode(records(carried), BOOT) == want


def test_encode_rows_gives_each_row_to_the_template_that_carries_it() -> None:
    plan = plan_for("ipfix", "inet", active_timeout=60, inactive_timeout=15)
    blocks, skipped = plan.encode_rows(records(SAMPLE), BOOT)
    assert [(b.template.template_id, b.count) for b in blocks] == [(256, len(V4))]
    assert skipped == len(V6)
    both = ExportPlan(plan.format, (plan.data[0], template_for("ipv6", ExportFormat.IPFIX).compile()), plan.options)
    blocks, skipped = both.encode_rows(records(SAMPLE), BOOT)
    assert [(b.template.template_id, b.count) for b in blocks] == [(256, len(V4)), (257, len(V6))]
    assert skipped == 0
    anything = plan_for("ipfix", "inet", TemplateConfig("b", "ipfix", "bridge"), active_timeout=60,
                        inactive_timeout=15)
    blocks, skipped = anything.encode_rows(records(SAMPLE), BOOT)
    assert [(b.template.template_id, b.count, skipped) for b in blocks] == [(260, len(SAMPLE), 0)]


def test_200k_flows_encode() -> None:
    """200k rows at once (their speed: benchmarks/component_rates.py)."""
    n = 200_000
    rng = np.random.default_rng(3)
    base = records(numbered(1))
    recs = FlowRecords(
        key=np.repeat(base.key, n, axis=0), packets=rng.integers(1, 2**40, n).astype(np.uint64),
        bytes=rng.integers(1, 2**40, n).astype(np.uint64), first=BOOT + rng.random(n) * 10,
        last=BOOT + 10 + rng.random(n), tcp_flags=rng.integers(0, 256, n).astype(np.uint8),
        ttl_min=np.zeros(n, np.uint8), ttl_max=np.zeros(n, np.uint8), vlan=np.zeros(n, np.uint16),
        inner_vlan=np.zeros(n, np.uint16), mpls=np.zeros((n, 3), np.uint32), end_reason=np.ones(n, np.uint8))
    compiled = template_for("ipv4", ExportFormat.IPFIX).compile()
    raw = compiled.encode(recs, BOOT)
    assert len(raw) == n * compiled.record_size


# -- plans -------------------------------------------------------------------------------------------

def test_plan_defaults_per_family() -> None:
    v4 = plan_for("9", "inet", active_timeout=1800, inactive_timeout=60)
    v6 = plan_for("ipfix", "inet6", sampling_rate=100, active_timeout=120.4, inactive_timeout=15,
                  exporter_address="2001:db8::9")
    assert (v4.format, [t.template_id for t in v4.data], v4.options.template_id, v4.domain_id) == \
        (ExportFormat.V9, [256], 512, 1)
    assert v6.domain_id == 2  # the families never share a domain (separate sockets and sequences)
    assert (v6.format, [t.template_id for t in v6.data], v6.options.template_id) == (ExportFormat.IPFIX, [257], 513)
    assert (v6.sampling_interval, v6.active_timeout, v6.inactive_timeout) == (100, 120, 15)
    assert [e.ie.name for e in v4.options.elements] == [
        "observationDomainId", "samplingInterval", "samplingAlgorithm", "flowActiveTimeout",
        "flowInactiveTimeout", "systemInitTimeMilliseconds"]
    assert [e.ie.name for e in v6.options.elements][-3:] == [
        "samplingPacketInterval", "samplingPacketSpace", "exporterIPv6Address"]


@pytest.mark.parametrize("family, kind, configured, sent", [
    ("inet", "ipv4", None, 1), ("inet6", "ipv6", None, 2), ("inet", "ipv4", 0, 0), ("inet6", "ipv6", 7, 7)])
def test_domain_is_the_configured_one_else_the_familys(family: str, kind: str, configured: int | None,
                                                      sent: int) -> None:
    template = TemplateConfig("t", "ipfix", kind, domain_id=configured)
    assert plan_for("ipfix", family, template).domain_id == sent


def test_plan_follows_the_configured_template() -> None:
    cfg = TemplateConfig("t", "ipfix", "mpls-ipv4", template_id=2048, options_template_id=2049, domain_id=42,
                         template_refresh=RefreshRate(10, 30.0), label_positions=(2,))
    plan = plan_for("ipfix", "inet", cfg, sampling_rate=1, active_timeout=60, inactive_timeout=60,
                    exporter_address="192.0.2.1")
    assert ([t.template_id for t in plan.data], plan.options.template_id, plan.domain_id) == ([2048], 2049, 42)
    names = [e.ie.name for e in plan.data[0].elements]
    assert names[0] == "mplsTopLabelStackSection" and "mplsLabelStackSection2" not in names
    assert names[-1] == "mplsTopLabelIPv4Address"
    values = plan.option_values(BOOT)
    assert (values["domain_id"], values["system_init_ms"], values["exporter_address"]) == \
        (42, BOOT_MS, bytes([192, 0, 2, 1]))
    only_options_id = TemplateConfig("u", "9", "ipv4", template_id=1500)
    assert plan_for("9", "inet", only_options_id).options.template_id == 512


@pytest.mark.parametrize("args, message", [
    (("9", "inet", TemplateConfig("t", "ipfix", "ipv4")),
     "template t is a version-ipfix template, the flow server exports version9"),
    (("ipfix", "inet6", TemplateConfig("t", "ipfix", "ipv4")), "ipv4-template cannot carry family inet6 flows"),
    (("ipfix", "bridge"), "family 'bridge': expected inet or inet6"),
])
def test_plan_refuses_mismatches(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ValueError) as err:
        plan_for(*args)
    assert str(err.value) == message


@pytest.mark.parametrize("kwargs, message", [
    ({"domain_id": 2**32}, "domain id 4294967296: expected 0..4294967295"),
    ({"sampling_interval": 0}, "sampling interval 0: expected 1..4294967295"),
    ({"active_timeout": 70000}, "active timeout 70000: expected 0..65535 s"),
    ({"exporter_address": "192.0.2.1"}, "the options template and the exporter address disagree"),
])
def test_plan_validation(kwargs: dict[str, Any], message: str) -> None:
    base = plan_for("ipfix", "inet")
    fields = {"format": base.format, "data": base.data, "options": base.options, **kwargs}
    with pytest.raises(ValueError) as err:
        ExportPlan(**fields)
    assert str(err.value) == message


def test_options_template_records_per_format() -> None:
    compiled = options_template(512, 4, sampled=True).compile()
    ipfix = compiled.template_record(ExportFormat.IPFIX)
    v9 = compiled.template_record(ExportFormat.V9)
    ids = [(e.ie.id, e.length) for e in compiled.elements]
    assert ipfix == struct.pack("!HHH", 512, len(ids), 1) + b"".join(struct.pack("!HH", *p) for p in ids)
    # v9: scope System (1) with the Source ID's 4 octets, then the options; lengths in octets
    v9_ids = [(1, 4)] + ids[1:]
    assert v9 == struct.pack("!HHH", 512, 4, 4 * (len(ids) - 1)) + b"".join(struct.pack("!HH", *p) for p in v9_ids)
