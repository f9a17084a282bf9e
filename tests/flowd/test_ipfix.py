"""flowd.export.ipfix: golden bytes, padding, sequence, refresh, greeting, tshark and a real nfcapd."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from collectors import HAVE_NFDUMP, start_nfcapd
from flowdecode import (
    TSHARK,
    Decoder,
    Message,
    tshark_pdus,
    tshark_problems,
    tshark_records,
    write_udp_pcap,
)
from test_ie_templates import (
    BOOT,
    BOOT_MS,
    NOW,
    SAMPLE,
    V4,
    V6,
    Flow,
    expected,
    numbered,
    records,
)

from flowd.config.schema import TemplateConfig
from flowd.export.ipfix import (
    IPFIX_HEADER,
    MAX_SIZE,
    IpfixFraming,
    MalformedMessage,
    SetId,
    encode_ipfix,
    greeting,
)
from flowd.export.sequence import ExportState, Refresh
from flowd.export.templates import SPECS, ExportFormat, ExportPlan, plan_for
from flowd.model.batch import FlowRecords

DATA = Path(__file__).resolve().parents[1] / "data" / "export"
PORT = 4739
EXPORT_TIME = 1_700_000_012  # NOW in whole seconds


def plan(family: str = "inet", *, kind: str | None = None, rate: int = 1, domain: int = 9,
         exporter: str | None = "192.0.2.254") -> ExportPlan:
    family = "inet6" if kind == "ipv6" else family
    template = TemplateConfig("t", "ipfix", kind or ("ipv4" if family == "inet" else "ipv6"), domain_id=domain)
    return plan_for("ipfix", family, template, sampling_rate=rate, active_timeout=1800, inactive_timeout=60,
                    exporter_address=exporter)


def decode_all(messages: Sequence[bytes], decoder: Decoder | None = None) -> list[Message]:
    decoder = decoder or Decoder(unpadded_templates=True)
    return [decoder.datagram(m, "flowd") for m in messages]


def check_records(messages: Sequence[Message], flows: Sequence[Flow]) -> None:
    got = [r for m in messages for r in m.records]
    assert len(got) == len(flows)
    for record, flow in zip(got, flows, strict=True):
        assert record == expected(flow, list(record))


def check_sequence(messages: Sequence[Message], start: int = 0) -> None:
    """RFC 7011 §3.1: each header counts the data records (flow and options) sent before it."""
    sequence = start
    for m in messages:
        assert m.header["sequence"] == sequence
        sequence = (sequence + m.data_records) % 2**32


# -- golden bytes -----------------------------------------------------------------------------------

GOLDEN_NOTE = """\
{name}: one IPFIX message written by tests/flowd/test_ipfix.py
(`pytest tests/flowd/test_ipfix.py --update-golden`); never edit by hand.
Header: version 10, length {length}, export time 1700000012, sequence 0, observation domain 9.
Set 2: template {tid} ({kind}: absolute flowStart/EndMilliseconds, 1-octet TCP flags).
Set 3: options template {otid} (scope observationDomainId; samplingInterval 100, algorithm 1,
active 1800 s, inactive 60 s, systemInitTimeMilliseconds 1700000000000, samplingPacketInterval 1,
samplingPacketSpace 99, exporterIPv4Address 192.0.2.254; no padding), then its data set.
Data records carry ICMP type * 256 + code in destinationTransportPort as well as icmpTypeCode.
Flows: tests/flowd/test_ie_templates.py SAMPLE ({family} rows), boot 1700000000.
"""


@pytest.mark.parametrize("family, flows, name", [("inet", V4, "ipfix_ipv4.bin"), ("inet6", V6, "ipfix_ipv6.bin")])
def test_golden(family: str, flows: tuple[Flow, ...], name: str, update_golden: bool) -> None:
    p = plan(family, rate=100)
    (message,) = encode_ipfix(records(flows), now=NOW, boot=BOOT, state=ExportState(), plan=p)
    golden = DATA / name
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(message)
        golden.with_suffix(".txt").write_text(GOLDEN_NOTE.format(
            name=name, length=len(message), tid=p.data[0].template_id, otid=p.options.template_id,
            kind=p.data[0].template.carries.value, family=family))
    assert golden.exists(), f"{golden} is missing: run pytest {__file__} --update-golden"
    assert message == golden.read_bytes()


# -- our decoder -------------------------------------------------------------------------------------

def test_header_sets_padding_options_and_records_round_trip() -> None:
    (message,) = encode_ipfix(records(V4), now=NOW, boot=BOOT, state=ExportState(), plan=plan(rate=100))
    (msg,) = decode_all([message])
    assert msg.header == {"version": 10, "length": len(message), "export_time": EXPORT_TIME, "sequence": 0,
                          "domain": 9}
    assert [s[0] for s in msg.sets] == [SetId.TEMPLATE, SetId.OPTIONS_TEMPLATE, 512, 256]
    # template sets end with their last record (RFC 7011 §3.3.1 padding left out, python-ipfix reads
    # them to the end of the set); data sets are padded to 4 octets (the decoder checks zero and short)
    assert [length for set_id, length in msg.sets if set_id in (2, 3)] == \
        [4 + 4 + 4 * len(msg.templates[0].fields), 4 + 6 + 4 * len(msg.templates[1].fields)]
    assert all(length % 4 == 0 for set_id, length in msg.sets if set_id >= 256)
    assert [(t.template_id, t.options, t.scope) for t in msg.templates] == [(256, False, 0), (512, True, 1)]
    assert msg.options == [{
        "observationDomainId": 9, "samplingInterval": 100, "samplingAlgorithm": 1, "flowActiveTimeout": 1800,
        "flowInactiveTimeout": 60, "systemInitTimeMilliseconds": BOOT_MS, "samplingPacketInterval": 1,
        "samplingPacketSpace": 99, "exporterIPv4Address": "192.0.2.254"}]
    check_records([msg], V4)


@pytest.mark.parametrize("kind", [k for k, spec in SPECS.items() if ExportFormat.IPFIX in spec.formats])
def test_every_template_type_round_trips(kind: str) -> None:
    carried = [f for f in SAMPLE if kind in ("mpls", "bridge") or (":" in f.src) == (kind == "ipv6")]
    state = ExportState()
    messages = encode_ipfix(records(SAMPLE), now=NOW, boot=BOOT, state=state, plan=plan(kind=kind))
    check_records(decode_all(messages), carried)
    assert (state.not_carried, state.flow_records) == (len(SAMPLE) - len(carried), len(carried))



def test_one_plan_can_carry_both_families() -> None:
    """A collector that gets inet and inet6 in one domain needs one sequence: one plan, two templates."""
    v4, v6 = plan("inet"), plan("inet6")
    both = ExportPlan(v4.format, (v4.data[0], v6.data[0]), v4.options, domain_id=9, exporter_address="192.0.2.254")
    state = ExportState()
    messages = encode_ipfix(records(SAMPLE + tuple(numbered(40, v6=True))), now=NOW, boot=BOOT, state=state,
                            plan=both)
    decoded = decode_all(messages)
    assert [t.template_id for t in decoded[0].templates] == [256, 257, 512]
    check_sequence(decoded)
    check_records(decoded, list(V4) + list(V6) + numbered(40, v6=True))
    assert state.not_carried == 0

@pytest.mark.parametrize("n, max_size", [(0, MAX_SIZE), (1, MAX_SIZE), (11, MAX_SIZE), (12, MAX_SIZE),
                                         (300, MAX_SIZE), (300, 400), (3000, 65535)])
def test_split_keeps_every_message_under_max_size(n: int, max_size: int) -> None:
    flows = numbered(n)
    messages = encode_ipfix(records(flows), now=NOW, boot=BOOT, state=ExportState(), plan=plan(),
                            max_size=max_size)
    assert all(len(m) <= max_size for m in messages)
    decoded = decode_all(messages)
    assert [bool(m.templates) for m in decoded] == [True] + [False] * (len(messages) - 1)
    check_sequence(decoded)
    check_records(decoded, flows)


def test_sequence_counts_data_records_including_options_and_wraps() -> None:
    state = ExportState(options=Refresh(packets=2), sequence=2**32 - 20)
    first = encode_ipfix(records(numbered(40)), now=NOW, boot=BOOT, state=state, plan=plan())
    second = encode_ipfix(records(numbered(7, start=40)), now=NOW, boot=BOOT, state=state, plan=plan())
    decoded = decode_all(first + second)
    check_sequence(decoded, start=2**32 - 20)
    options = sum(len(m.options) for m in decoded)
    assert options == (len(decoded) + 1) // 2
    assert state.sequence == (2**32 - 20 + 47 + options) % 2**32
    assert state.flow_records == 47



def test_200k_flows_become_packets_well_under_a_second() -> None:
    n = 200_000
    base = records(numbered(1))
    recs = FlowRecords(
        key=np.repeat(base.key, n, axis=0), packets=np.arange(1, n + 1, dtype=np.uint64),
        bytes=np.arange(1, n + 1, dtype=np.uint64) * 64, first=np.full(n, BOOT + 1.0), last=np.full(n, BOOT + 2.0),
        tcp_flags=np.zeros(n, np.uint8), ttl_min=np.zeros(n, np.uint8), ttl_max=np.zeros(n, np.uint8),
        vlan=np.zeros(n, np.uint16), inner_vlan=np.zeros(n, np.uint16), mpls=np.zeros((n, 3), np.uint32),
        end_reason=np.ones(n, np.uint8))
    state = ExportState()
    out = encode_ipfix(recs, now=NOW, boot=BOOT, state=state, plan=plan())
    assert state.flow_records == n and all(len(d) <= MAX_SIZE for d in out)

# -- refresh ---------------------------------------------------------------------------------------------

def sets_per_message(messages: Sequence[bytes], decoder: Decoder | None = None) -> list[tuple[bool, bool, bool]]:
    """(template set, options template set, options data) present, per message."""
    return [(SetId.TEMPLATE in {s[0] for s in m.sets}, SetId.OPTIONS_TEMPLATE in {s[0] for s in m.sets},
             bool(m.options)) for m in decode_all(messages, decoder)]


def test_refresh_by_packet_count() -> None:
    state = ExportState(templates=Refresh(packets=4, seconds=600), options=Refresh(packets=3, seconds=600))
    messages = encode_ipfix(records(numbered(120)), now=NOW, boot=BOOT, state=state, plan=plan(), max_size=600)
    assert len(messages) >= 12
    assert sets_per_message(messages) == [(i % 4 == 0, i % 3 == 0, i % 3 == 0) for i in range(len(messages))]


def test_refresh_by_time() -> None:
    state = ExportState(templates=Refresh(packets=4800, seconds=10), options=Refresh(packets=4800, seconds=25))
    one = records(V4[:1])
    schedule = [(0.0, (True, True, True)), (9.999, (False, False, False)), (10.0, (True, False, False)),
                (20.0, (True, False, False)), (25.0, (False, True, True)), (30.0, (True, False, False))]
    for offset, want in schedule:
        messages = encode_ipfix(one, now=BOOT + offset, boot=BOOT, state=state, plan=plan())
        assert sets_per_message(messages) == [want], offset
    assert state.next_deadline() == BOOT + 40


def test_stream_state_never_puts_templates_in_the_stream() -> None:
    state = ExportState(templates=Refresh(packets=1), options=Refresh(packets=3), stream=True)
    p = plan()
    messages = encode_ipfix(records(numbered(60)), now=NOW, boot=BOOT, state=state, plan=p, max_size=600)
    decoder = Decoder()
    decoder.datagram(greeting(p, now=NOW, boot=BOOT), "flowd")  # announces every template
    assert sets_per_message(messages, decoder) == [(False, False, i % 3 == 0) for i in range(len(messages))]
    assert state.next_deadline() == NOW + 60  # only the options schedule runs
    assert not any(m.unknown_sets for m in decode_all(messages, decoder))


def test_idle_refresh_sends_templates_alone() -> None:
    state = ExportState()
    first = encode_ipfix(records([]), now=BOOT, boot=BOOT, state=state, plan=plan())
    (msg,) = decode_all(first)
    assert (msg.records, len(msg.options), msg.header["sequence"]) == ([], 1, 0)
    assert encode_ipfix(records([]), now=BOOT + 59, boot=BOOT, state=state, plan=plan()) == []
    (again,) = decode_all(encode_ipfix(records([]), now=BOOT + 60, boot=BOOT, state=state, plan=plan()))
    assert again.header["sequence"] == 1  # the first message's options data record counted


# -- greeting and framing (what the TCP sender relies on) -------------------------------------------------

def test_greeting_starts_a_session_at_sequence_0_and_renumbering_follows_it() -> None:
    """RFC 7011 §3.1 / §10.4: a TCP connection's first message has sequence 0 (was 0xFFFFFFFF)."""
    p = plan()
    state = ExportState(stream=True, sequence=500)
    state.options.sent(NOW)
    data = encode_ipfix(records(numbered(30)), now=NOW, boot=BOOT, state=state, plan=p)
    hello = greeting(p, now=NOW, boot=BOOT)
    framing = IpfixFraming(p, BOOT)
    sent, sequence = [], framing.data_records(hello)
    for message in data:
        sent.append(framing.renumber(message, sequence))
        sequence += framing.data_records(message)
    decoded = decode_all([hello, *sent])
    assert [s[0] for s in decoded[0].sets] == [SetId.TEMPLATE, SetId.OPTIONS_TEMPLATE, 512]
    assert (decoded[0].header["sequence"], len(decoded[0].options)) == (0, 1)
    check_sequence(decoded, start=0)
    assert [m[:8] + m[12:] for m in sent] == [m[:8] + m[12:] for m in data]  # only the sequence differs
    assert framing.export_time(hello) == framing.export_time(data[0]) == EXPORT_TIME


def test_framing_counts_records_per_message() -> None:
    p = plan()
    framing = IpfixFraming(p, BOOT)
    messages = encode_ipfix(records(numbered(30)), now=NOW, boot=BOOT, state=ExportState(), plan=p)
    decoded = decode_all(messages)
    assert [framing.flow_records(m) for m in messages] == [len(d.records) for d in decoded]
    assert [framing.data_records(m) for m in messages] == [d.data_records for d in decoded]
    assert [framing.sequence(m) for m in messages] == [d.header["sequence"] for d in decoded]
    with pytest.raises(MalformedMessage, match="not one IPFIX message"):
        framing.flow_records(messages[0] + messages[1])
    with pytest.raises(MalformedMessage, match="shorter than its header"):
        framing.flow_records(b"\x00\x0a")
    assert IPFIX_HEADER.size == 16


@pytest.mark.parametrize("kwargs, message", [
    ({"max_size": 100}, "export packets of 84 octets of sets cannot hold the templates"),
    ({"max_size": 65536}, "IPFIX message size 65536: expected 17..65535"),
    ({"plan": plan_for("9", "inet")}, "encode_ipfix needs a version-ipfix export plan"),
])
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"now": NOW, "boot": BOOT, "state": ExportState(), "plan": plan(), **kwargs}
    with pytest.raises(ValueError, match=message):
        encode_ipfix(records(V4), **args)


# -- tshark ---------------------------------------------------------------------------------------------

TSHARK_FIELDS = {
    "cflow.srcaddr": "sourceIPv4Address", "cflow.dstaddr": "destinationIPv4Address",
    "cflow.srcaddrv6": "sourceIPv6Address", "cflow.dstaddrv6": "destinationIPv6Address",
    "cflow.protocol": "protocolIdentifier", "cflow.srcport": "sourceTransportPort",
    "cflow.dstport": "destinationTransportPort", "cflow.octets": "octetDeltaCount",
    "cflow.packets": "packetDeltaCount", "cflow.inputint": "ingressInterface", "cflow.ttl_max": "maximumTTL",
    "cflow.flow_end_reason": "flowEndReason", "cflow.dot1q_customer_vlan_id": "dot1qCustomerVlanId",
    "cflow.ethernet_type": "ethernetType", "cflow.srcmac": "sourceMacAddress",
}


@pytest.mark.integration
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("kind, host", [(k, "127.0.0.1") for k, spec in SPECS.items()
                                        if ExportFormat.IPFIX in spec.formats] + [("ipv6", "::1")])
def test_tshark_decodes_every_template_type(kind: str, host: str, tmp_path: Path) -> None:
    state = ExportState(templates=Refresh(packets=3), options=Refresh(packets=4))
    p = plan(kind=kind, rate=10)
    flows = list(SAMPLE) + numbered(60) + numbered(20, v6=True)
    messages = encode_ipfix(records(flows), now=NOW, boot=BOOT, state=state, plan=p, max_size=700)
    messages += encode_ipfix(records(SAMPLE), now=NOW + 61, boot=BOOT, state=state, plan=p, max_size=700)
    pcap = tmp_path / "ipfix.pcap"
    write_udp_pcap(pcap, messages, src=host, dst=host, dport=PORT)
    assert tshark_problems(pcap, [PORT]) == ""  # also: tshark's own sequence analysis agrees
    ours = decode_all(messages)
    compared = 0
    for frame, msg in zip(tshark_pdus(pcap, [PORT]), ours, strict=True):
        (pdu,) = frame
        shown, missing = tshark_records(pdu)
        assert (missing, len(shown)) == (0, msg.data_records)
        assert (pdu["cflow.len"], pdu["cflow.sequence"]) == (str(msg.header["length"]), str(msg.header["sequence"]))
        for mine, theirs in zip(msg.ordered, shown, strict=True):
            for field, name in TSHARK_FIELDS.items():
                if name in mine:
                    assert theirs[field] == str(mine[name]), (field, mine, theirs)
                    compared += 1
            if "flowStartMilliseconds" in mine:
                start = theirs["cflow.timedelta_tree"]["cflow.abstimestart"]
                assert start.endswith(f"{mine['flowStartMilliseconds'] % 1000:03d}000000 UTC")
    assert compared > 0


# -- a real collector --------------------------------------------------------------------------------------

def nfdump_view(flow: Flow, *, rate: int = 1) -> dict[str, Any]:
    return {"src": flow.src, "dst": flow.dst, "sport": flow.sport, "dport": flow.dport, "proto": flow.proto,
            "tos": flow.tos, "tcp_flags": flow.flags, "packets": flow.packets * rate, "bytes": flow.octets * rate,
            "first_ms": BOOT_MS + flow.first_ms, "last_ms": BOOT_MS + flow.last_ms, "input": flow.ifindex,
            "output": 0, "sampled": rate > 1}


def comparable(flows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("src", "dst", "sport", "dport", "proto", "tos", "tcp_flags", "packets", "bytes", "first_ms",
            "last_ms", "input", "output", "sampled")
    return sorted(({k: f[k] for k in keys} for f in flows), key=lambda f: (f["src"], f["sport"], f["first_ms"]))


def nfdump_sequence_errors(decoded: Sequence[Message]) -> int:
    """What nfcapd 1.7 reports: it advances its expected sequence by *flow* records only, so each
    message after one carrying options data looks out of sequence to it (RFC 7011 §3.1 counts all
    Data Records, as flowd, tshark and test_sequence_* do)."""
    errors, seen_data = 0, False
    for prev, _ in itertools.pairwise(decoded):
        seen_data = seen_data or bool(prev.records)
        if seen_data and prev.options:
            errors += 1
    return errors


@pytest.mark.integration
@pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")
@pytest.mark.parametrize("family, host, rate", [("inet", "127.0.0.1", 1), ("inet6", "::1", 1),
                                                ("inet", "::1", 10), ("inet6", "127.0.0.1", 3)])
def test_nfcapd_stores_every_flow(family: str, host: str, rate: int, tmp_path: Path) -> None:
    v6 = family == "inet6"
    flows = [f for f in SAMPLE if (":" in f.src) == v6] + numbered(150, v6=v6)
    state = ExportState(templates=Refresh(packets=5))
    p = plan(family, rate=rate)
    messages = encode_ipfix(records(flows[:100]), now=NOW, boot=BOOT, state=state, plan=p)
    messages += encode_ipfix(records(flows[100:]), now=NOW + 61, boot=BOOT, state=state, plan=p)
    sock_family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with start_nfcapd(tmp_path, host=host) as collector, socket.socket(sock_family, socket.SOCK_DGRAM) as sock:
        for message in messages:
            sock.sendto(message, (host, collector.port))
        collector.wait_idle()
    summary = collector.summary()
    assert summary is not None
    assert comparable(collector.flows()) == comparable([nfdump_view(f, rate=rate) for f in flows])
    assert (summary["flows"], summary["bad_packets"]) == (len(flows), 0)
    assert summary["sequence_errors"] == nfdump_sequence_errors(decode_all(messages))
