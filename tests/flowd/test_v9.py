"""flowd.export.v9: golden bytes, our decoder and tshark as readers, refresh schedules, real nfcapd."""

from __future__ import annotations

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
from flowd.export.sequence import ExportState, Refresh
from flowd.export.templates import SPECS, ExportFormat, ExportPlan, plan_for
from flowd.export.v9 import MAX_SIZE, FlowSetId, encode_v9
from flowd.model.batch import FlowRecords

DATA = Path(__file__).resolve().parents[1] / "data" / "export"
PORT = 2055
HEADER_NOW = 1_700_000_013  # the first whole second at or after NOW
UPTIME_NOW = 13_000  # ms from BOOT to HEADER_NOW


def plan(family: str = "inet", *, kind: str | None = None, rate: int = 1, source_id: int = 7,
         exporter: str | None = "192.0.2.254") -> ExportPlan:
    family = "inet6" if kind == "ipv6" else family
    template = TemplateConfig("t", "9", kind or ("ipv4" if family == "inet" else "ipv6"), domain_id=source_id)
    return plan_for("9", family, template, sampling_rate=rate, active_timeout=1800, inactive_timeout=60,
                    exporter_address=exporter)


def decode_all(datagrams: Sequence[bytes], decoder: Decoder | None = None) -> list[Message]:
    decoder = decoder or Decoder()
    return [decoder.datagram(d, "flowd") for d in datagrams]


def check_records(messages: Sequence[Message], flows: Sequence[Flow]) -> None:
    """Every decoded flow record equals the hand-written expectation, in order."""
    got = [r for m in messages for r in m.records]
    assert len(got) == len(flows)
    for record, flow in zip(got, flows, strict=True):
        assert record == expected(flow, list(record))


# -- golden bytes -----------------------------------------------------------------------------------

GOLDEN_NOTE = """\
{name}: one NetFlow v9 export packet written by tests/flowd/test_v9.py
(`pytest tests/flowd/test_v9.py --update-golden`); never edit by hand.
Header: version 9, count {count} (1 template, 1 options template, 1 options data, {n} flows),
sysUptime 13000 ms and unix_secs 1700000013 (the whole second at or after export time
1700000012.345678, boot 1700000000), sequence 0, source id 7.
FlowSet 0: template {tid} ({kind}, the v9 flavour: FIRST/LAST_SWITCHED, 1-octet TCP flags).
FlowSet 1: options template {otid} (scope System = source id 7; samplingInterval 100, algorithm 1,
active 1800 s, inactive 60 s, systemInitTimeMilliseconds 1700000000000, samplingPacketInterval 1,
samplingPacketSpace 99, exporterIPv4Address 192.0.2.254), then its data record.
Flows: tests/flowd/test_ie_templates.py SAMPLE ({family} rows); ICMP type * 256 + code goes in
ICMP_TYPE and in L4_DST_PORT, as v5 carries it.
"""


@pytest.mark.parametrize("family, flows, name", [("inet", V4, "v9_ipv4.bin"), ("inet6", V6, "v9_ipv6.bin")])
def test_golden(family: str, flows: tuple[Flow, ...], name: str, update_golden: bool) -> None:
    p = plan(family, rate=100)
    (datagram,) = encode_v9(records(flows), now=NOW, boot=BOOT, state=ExportState(), plan=p)
    golden = DATA / name
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_bytes(datagram)
        golden.with_suffix(".txt").write_text(GOLDEN_NOTE.format(
            name=name, count=3 + len(flows), n=len(flows), tid=p.data[0].template_id, otid=p.options.template_id,
            kind=p.data[0].template.carries.value, family=family))
    assert golden.exists(), f"{golden} is missing: run pytest {__file__} --update-golden"
    assert datagram == golden.read_bytes()


# -- our decoder -------------------------------------------------------------------------------------

def test_header_templates_options_and_records_round_trip() -> None:
    (datagram,) = encode_v9(records(V4), now=NOW, boot=BOOT, state=ExportState(), plan=plan(rate=100))
    (msg,) = decode_all([datagram])
    assert msg.header == {"version": 9, "count": 3 + len(V4), "sys_uptime": UPTIME_NOW,
                          "unix_secs": HEADER_NOW, "sequence": 0, "source_id": 7}
    assert msg.record_count == msg.header["count"]
    assert [(t.template_id, t.options) for t in msg.templates] == [(256, False), (512, True)]
    assert [s[0] for s in msg.sets] == [FlowSetId.TEMPLATE, FlowSetId.OPTIONS_TEMPLATE, 512, 256]
    assert all(length % 4 == 0 for _, length in msg.sets)
    assert msg.options == [{
        "scopeSystem": 7, "samplingInterval": 100, "samplingAlgorithm": 1, "flowActiveTimeout": 1800,
        "flowInactiveTimeout": 60, "systemInitTimeMilliseconds": BOOT_MS, "samplingPacketInterval": 1,
        "samplingPacketSpace": 99, "exporterIPv4Address": "192.0.2.254"}]
    check_records([msg], V4)
    # the collector's boot estimate from the header is exactly the boot the options announce
    assert msg.header["unix_secs"] * 1000 - msg.header["sys_uptime"] == BOOT_MS


@pytest.mark.parametrize("kind", [k for k, spec in SPECS.items() if ExportFormat.V9 in spec.formats])
def test_every_template_type_round_trips(kind: str) -> None:
    p = plan(kind=kind)
    carried = [f for f in SAMPLE if kind in ("mpls", "bridge") or (":" in f.src) == (kind == "ipv6")]
    datagrams = encode_v9(records(SAMPLE), now=NOW, boot=BOOT, state=(state := ExportState()), plan=p)
    check_records(decode_all(datagrams), carried)
    assert state.not_carried == len(SAMPLE) - len(carried)
    assert state.flow_records == len(carried)


@pytest.mark.parametrize("n, max_size", [(0, MAX_SIZE), (1, MAX_SIZE), (16, MAX_SIZE), (17, MAX_SIZE),
                                         (200, MAX_SIZE), (200, 512), (1000, 9000)])
def test_split_keeps_every_packet_under_max_size(n: int, max_size: int) -> None:
    flows = numbered(n)
    datagrams = encode_v9(records(flows), now=NOW, boot=BOOT, state=ExportState(), plan=plan(), max_size=max_size)
    assert all(len(d) <= max_size for d in datagrams)
    messages = decode_all(datagrams)
    assert [m.header["sequence"] for m in messages] == list(range(len(datagrams)))
    assert [bool(m.templates) for m in messages] == [True] + [False] * (len(datagrams) - 1)
    assert all(m.record_count == m.header["count"] for m in messages)
    check_records(messages, flows)
    record = plan().data[0].record_size
    if n > 1:  # packets are filled: the first one not full would not hold one more record
        assert all(len(d) + record > max_size - 3 for d in datagrams[:-1])


def test_sequence_counts_packets_across_calls_and_wraps() -> None:
    state = ExportState(sequence=2**32 - 2)
    first = encode_v9(records(numbered(40)), now=NOW, boot=BOOT, state=state, plan=plan())
    second = encode_v9(records(numbered(5, start=40)), now=NOW, boot=BOOT, state=state, plan=plan())
    assert (len(first), len(second)) == (3, 1)
    assert [m.header["sequence"] for m in decode_all(first + second)] == [2**32 - 2, 2**32 - 1, 0, 1]
    assert (state.sequence, state.messages, state.flow_records) == (2, 4, 45)


def test_flow_times_clamp_at_boot() -> None:
    early = Flow("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 1, 1, -5_000, 250)
    (msg,) = decode_all(encode_v9(records([early]), now=NOW, boot=BOOT, state=ExportState(), plan=plan()))
    assert (msg.records[0]["flowStartSysUpTime"], msg.records[0]["flowEndSysUpTime"]) == (0, 250)


def test_header_instant_rounds_up_only_a_fraction() -> None:
    for now, secs in ((BOOT + 12.0, 1_700_000_012), (BOOT + 12.000001, 1_700_000_013), (NOW, HEADER_NOW)):
        (msg,) = decode_all(encode_v9(records(V4), now=now, boot=BOOT, state=ExportState(), plan=plan()))
        assert (msg.header["unix_secs"], msg.header["sys_uptime"]) == (secs, (secs - 1_700_000_000) * 1000)
        assert all(r["flowEndSysUpTime"] <= msg.header["sys_uptime"] for r in msg.records)



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
    out = encode_v9(recs, now=NOW, boot=BOOT, state=state, plan=plan())
    assert state.flow_records == n and all(len(d) <= MAX_SIZE for d in out)

# -- refresh schedules, driven by literal times ---------------------------------------------------------

def sets_per_packet(datagrams: Sequence[bytes]) -> list[tuple[bool, bool]]:
    """(template flowset present, options template flowset present) for each packet."""
    out = []
    for m in decode_all(datagrams):
        ids = {s[0] for s in m.sets}
        out.append((FlowSetId.TEMPLATE in ids, FlowSetId.OPTIONS_TEMPLATE in ids))
    return out


def test_refresh_by_packet_count() -> None:
    state = ExportState(templates=Refresh(packets=3, seconds=600), options=Refresh(packets=5, seconds=600))
    datagrams = encode_v9(records(numbered(120)), now=NOW, boot=BOOT, state=state, plan=plan(), max_size=600)
    assert len(datagrams) >= 11
    got = sets_per_packet(datagrams)
    assert got == [(i % 3 == 0, i % 5 == 0) for i in range(len(datagrams))]
    assert (state.templates.sends, state.options.sends) == ((len(datagrams) + 2) // 3, (len(datagrams) + 4) // 5)


def test_refresh_by_time() -> None:
    state = ExportState(templates=Refresh(packets=4800, seconds=60), options=Refresh(packets=4800, seconds=90))
    one = records(V4[:1])
    schedule = [(0.0, (True, True)), (30.0, (False, False)), (59.999, (False, False)), (60.0, (True, False)),
                (89.999, (False, False)), (90.0, (False, True)), (120.0, (True, False)), (180.0, (True, True))]
    for offset, want in schedule:
        datagrams = encode_v9(one, now=BOOT + offset, boot=BOOT, state=state, plan=plan())
        assert sets_per_packet(datagrams) == [want], offset


def test_idle_refresh_sends_templates_alone_and_only_when_due() -> None:
    state = ExportState()
    empty = records([])
    first = encode_v9(empty, now=BOOT, boot=BOOT, state=state, plan=plan())
    assert sets_per_packet(first) == [(True, True)]
    (msg,) = decode_all(first)
    assert (msg.records, msg.header["count"]) == ([], 3)
    assert state.next_deadline() == BOOT + 60
    assert encode_v9(empty, now=BOOT + 59, boot=BOOT, state=state, plan=plan()) == []
    assert sets_per_packet(encode_v9(empty, now=BOOT + 60, boot=BOOT, state=state, plan=plan())) == [(True, True)]


def test_restart_and_time_running_backwards_resend_at_once() -> None:
    state = ExportState()
    one = records(V4[:1])
    encode_v9(one, now=BOOT + 100, boot=BOOT, state=state, plan=plan())
    assert sets_per_packet(encode_v9(one, now=BOOT + 101, boot=BOOT, state=state, plan=plan())) == [(False, False)]
    state.restart()
    assert sets_per_packet(encode_v9(one, now=BOOT + 102, boot=BOOT, state=state, plan=plan())) == [(True, True)]
    assert sets_per_packet(encode_v9(one, now=BOOT + 50, boot=BOOT, state=state, plan=plan())) == [(True, True)]


@pytest.mark.parametrize("kwargs, message", [
    ({"max_size": 200}, "export packets of 180 octets of sets cannot hold the templates"),
    ({"plan": plan_for("ipfix", "inet")}, "encode_v9 needs a version9 export plan"),
    ({"max_size": 70_000}, "v9 packet size 70000: expected 21..65507"),
])
def test_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"now": NOW, "boot": BOOT, "state": ExportState(), "plan": plan(), **kwargs}
    with pytest.raises(ValueError, match=message):
        encode_v9(records(V4), **args)


def test_refresh_rates_from_the_template_configuration() -> None:
    from flowd.config.schema import RefreshRate
    cfg = TemplateConfig("t", "9", "ipv4", template_refresh=RefreshRate(10, 20.0), option_refresh=RefreshRate(7, 30.0))
    state = ExportState.for_template(cfg)
    assert (state.templates.packets, state.templates.seconds, state.options.packets, state.options.seconds) == \
        (10, 20.0, 7, 30.0)
    default = ExportState.for_template(None)
    assert (default.templates.packets, default.templates.seconds) == (4800, 60.0)
    with pytest.raises(ValueError, match="refresh packets: expected >= 1, got 0"):
        Refresh(packets=0)


# -- tshark ---------------------------------------------------------------------------------------------

TSHARK_FIELDS = {
    "cflow.srcaddr": "sourceIPv4Address", "cflow.dstaddr": "destinationIPv4Address",
    "cflow.srcaddrv6": "sourceIPv6Address", "cflow.dstaddrv6": "destinationIPv6Address",
    "cflow.protocol": "protocolIdentifier", "cflow.srcport": "sourceTransportPort",
    "cflow.dstport": "destinationTransportPort", "cflow.octets": "octetDeltaCount",
    "cflow.packets": "packetDeltaCount", "cflow.inputint": "ingressInterface", "cflow.ttl_min": "minimumTTL",
    "cflow.flow_end_reason": "flowEndReason", "cflow.vlanid": "vlanId",
}


def tshark_check(tmp_path: Path, datagrams: Sequence[bytes], *, dst: str = "127.0.0.1") -> list[dict[str, Any]]:
    """tshark finds no problem, decodes every record with its template; returns its records."""
    pcap = tmp_path / "v9.pcap"
    write_udp_pcap(pcap, datagrams, src=dst, dst=dst, dport=PORT)
    assert tshark_problems(pcap, [PORT]) == ""
    shown: list[dict[str, Any]] = []
    for frame, msg in zip(tshark_pdus(pcap, [PORT]), decode_all(datagrams), strict=True):
        assert len(frame) == 1
        assert frame[0]["cflow.count"] == str(msg.header["count"])
        recs, missing = tshark_records(frame[0])
        assert missing == 0
        assert len(recs) == msg.data_records
        shown.extend(recs)
    return shown


@pytest.mark.integration
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("kind", [k for k, spec in SPECS.items() if ExportFormat.V9 in spec.formats])
def test_tshark_decodes_every_template_type(kind: str, tmp_path: Path) -> None:
    state = ExportState(templates=Refresh(packets=4), options=Refresh(packets=6))
    p = plan(kind=kind, rate=10)
    flows = list(SAMPLE) + numbered(60) + numbered(20, v6=True)
    datagrams = encode_v9(records(flows), now=NOW, boot=BOOT, state=state, plan=p, max_size=700)
    datagrams += encode_v9(records(SAMPLE), now=NOW + 1, boot=BOOT, state=state, plan=p, max_size=700)
    shown = tshark_check(tmp_path, datagrams)
    ours = [r for m in decode_all(datagrams) for r in m.ordered]
    compared = 0
    for mine, theirs in zip(ours, shown, strict=True):
        for field, name in TSHARK_FIELDS.items():
            if name in mine:
                assert theirs[field] == str(mine[name]), (field, mine, theirs)
                compared += 1
        if "samplingInterval" in mine:
            assert theirs["cflow.sampling_interval"] == "10"
    assert compared > 0


@pytest.mark.integration
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tshark_reports_a_broken_sequence(tmp_path: Path) -> None:
    """The no-problem check can fail: a skipped sequence number is an expert warning."""
    state = ExportState()
    datagrams = encode_v9(records(numbered(40)), now=NOW, boot=BOOT, state=state, plan=plan())
    broken = datagrams[1][:12] + (7).to_bytes(4, "big") + datagrams[1][16:]
    pcap = tmp_path / "broken.pcap"
    write_udp_pcap(pcap, [datagrams[0], broken], dport=PORT)
    assert tshark_problems(pcap, [PORT]) != ""


# -- a real collector --------------------------------------------------------------------------------------

def nfdump_view(flow: Flow, *, rate: int = 1) -> dict[str, Any]:
    """What collectors.read_flows should report for a flow exported with sampling 1-in-rate."""
    return {"src": flow.src, "dst": flow.dst, "sport": flow.sport, "dport": flow.dport, "proto": flow.proto,
            "tos": flow.tos, "tcp_flags": flow.flags, "packets": flow.packets * rate, "bytes": flow.octets * rate,
            "first_ms": BOOT_MS + flow.first_ms, "last_ms": BOOT_MS + flow.last_ms, "input": flow.ifindex,
            "output": 0, "sampled": rate > 1}


def collect(tmp_path: Path, host: str, datagrams: Sequence[bytes]) -> tuple[list[dict[str, Any]], dict[str, int]]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with start_nfcapd(tmp_path, host=host) as collector, socket.socket(family, socket.SOCK_DGRAM) as sock:
        for datagram in datagrams:
            sock.sendto(datagram, (host, collector.port))
        collector.wait_idle()
    summary = collector.summary()
    assert summary is not None
    return collector.flows(), summary


def comparable(flows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("src", "dst", "sport", "dport", "proto", "tos", "tcp_flags", "packets", "bytes", "first_ms",
            "last_ms", "input", "output", "sampled")
    return sorted(({k: f[k] for k in keys} for f in flows), key=lambda f: (f["src"], f["sport"], f["first_ms"]))


@pytest.mark.integration
@pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")
@pytest.mark.parametrize("family, host, rate", [("inet", "127.0.0.1", 1), ("inet6", "::1", 1),
                                                ("inet", "127.0.0.1", 10), ("inet6", "127.0.0.1", 7)])
def test_nfcapd_stores_every_flow(family: str, host: str, rate: int, tmp_path: Path) -> None:
    v6 = family == "inet6"
    flows = [f for f in SAMPLE if (":" in f.src) == v6] + numbered(150, v6=v6)
    state = ExportState(templates=Refresh(packets=5))
    p = plan(family, rate=rate)
    datagrams = encode_v9(records(flows[:100]), now=NOW, boot=BOOT, state=state, plan=p)
    datagrams += encode_v9(records(flows[100:]), now=NOW + 61, boot=BOOT, state=state, plan=p)
    got, summary = collect(tmp_path, host, datagrams)
    assert comparable(got) == comparable([nfdump_view(f, rate=rate) for f in flows])
    assert (summary["flows"], summary["sequence_errors"], summary["bad_packets"]) == (len(flows), 0, 0)
