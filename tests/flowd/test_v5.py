"""flowd.export.v5: golden bytes, dpkt and tshark as independent decoders, datagram splitting, edges."""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import dpkt  # type: ignore[import-untyped]
import numpy as np
import pytest
from test_messages import random_flows

from flowd.export.v5 import (
    MAX_RECORDS,
    V5_HEADER,
    V5_RECORD,
    V5_RECORD_DTYPE,
    V5Header,
    encode_v5,
)
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import KEY_BYTES, FlowKey

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "export" / "v5_three_flows.bin"

BOOT = 1_700_000_000.0
NOW = BOOT + 12.345678  # sysUptime 12345 ms; unix 1700000012 s + 345000000 ns (whole ms)
U32 = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class Flow:
    """One finished flow written the way a person reads it; times in ms after BOOT."""

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


THREE_FLOWS = (
    # a TCP connection: SYN, PSH, ACK and FIN seen (0x1b), 12 packets
    Flow("10.0.0.1", "192.0.2.80", 51514, 443, 6, 0x00, 3, 12, 6_240, 1_250, 3_500, 0x1B),
    # one DNS query marked DSCP EF (ToS 0xb8)
    Flow("10.0.0.2", "198.51.100.53", 40000, 53, 17, 0xB8, 3, 1, 74, 2_000, 2_000),
    # four ICMP echo requests: type 8 code 0 in the destination port
    Flow("10.0.0.3", "203.0.113.9", 0, 0x0800, 1, 0x00, 4, 4, 336, 5_001, 8_004),
)
GOLDEN_HEADER = V5Header(engine_type=1, engine_id=7, sampling_interval=0)
GOLDEN_NOTE = """\
v5_three_flows.bin: one cflowd/NetFlow v5 datagram (24 + 3 * 48 = 168 bytes) written by
tests/flowd/test_v5.py (`pytest tests/flowd/test_v5.py --update-golden`); never edit by hand.
Header: version 5, count 3, sysUptime 12345 ms, unix_secs 1700000012, unix_nsecs 345000000,
flow_sequence 0, engine_type 1, engine_id 7, sampling_interval 0 (unsampled).
Flows (input ifIndex, src -> dst, proto, ToS, packets/bytes, First/Last ms):
  1. if 3  10.0.0.1:51514 -> 192.0.2.80:443   TCP, ToS 0, flags 0x1b (FIN SYN PSH ACK)
        12 packets, 6240 bytes, First 1250, Last 3500
  2. if 3  10.0.0.2:40000 -> 198.51.100.53:53  UDP, ToS 0xb8 (DSCP EF)
        1 packet, 74 bytes, First 2000, Last 2000
  3. if 4  10.0.0.3 -> 203.0.113.9  ICMP echo request (dport 0x0800 = type 8 code 0), ToS 0
        4 packets, 336 bytes, First 5001, Last 8004
"""


def records(flows: list[Flow] | tuple[Flow, ...], *, boot: float = BOOT) -> FlowRecords:
    """FlowRecords holding these flows, in order."""
    n = len(flows)
    keys = b"".join(FlowKey(ipaddress.ip_address(f.src), ipaddress.ip_address(f.dst), f.sport,
                            f.dport, f.proto, f.tos, f.ifindex).pack() for f in flows)
    return FlowRecords(
        key=np.frombuffer(keys, np.uint8).reshape(n, KEY_BYTES).copy(),
        packets=np.array([f.packets for f in flows], np.uint64),
        bytes=np.array([f.octets for f in flows], np.uint64),
        first=np.array([boot + f.first_ms / 1000 for f in flows], np.float64),
        last=np.array([boot + f.last_ms / 1000 for f in flows], np.float64),
        tcp_flags=np.array([f.flags for f in flows], np.uint8),
        ttl_min=np.full(n, 64, np.uint8), ttl_max=np.full(n, 64, np.uint8),
        vlan=np.zeros(n, np.uint16), inner_vlan=np.zeros(n, np.uint16),
        mpls=np.zeros((n, 3), np.uint32), end_reason=np.ones(n, np.uint8),
    )


def numbered(n: int, *, v6_every: int = 0) -> list[Flow]:
    """n distinct IPv4 flows (flow i from 10.1.x.y, i packets); every v6_every-th one is IPv6."""
    out = []
    for i in range(n):
        src = f"2001:db8::{i + 1:x}" if v6_every and i % v6_every == v6_every - 1 else \
            f"10.1.{i // 256}.{i % 256}"
        dst = "2001:db8:1::1" if ":" in src else "192.0.2.1"
        out.append(Flow(src, dst, 1024 + i, 80, 6, 0, 1, i + 1, 100 * (i + 1), i, i + 10, 0x18))
    return out


def decode(datagram: bytes) -> dpkt.netflow.Netflow5:
    nf = dpkt.netflow.Netflow5(datagram)
    assert len(datagram) == V5_HEADER.size + nf.count * V5_RECORD.size
    assert len(nf.data) == nf.count
    return nf


def assert_record(rec: dpkt.netflow.Netflow5.NetflowRecord, flow: Flow) -> None:
    """Every field of one decoded v5 record against the flow it came from."""
    assert rec.src_addr == int(ipaddress.IPv4Address(flow.src))
    assert rec.dst_addr == int(ipaddress.IPv4Address(flow.dst))
    assert rec.next_hop == 0
    assert rec.input_iface == flow.ifindex
    assert rec.output_iface == 0
    assert rec.pkts_sent == min(flow.packets, U32)
    assert rec.bytes_sent == min(flow.octets, U32)
    assert rec.start_time == flow.first_ms
    assert rec.end_time == flow.last_ms
    assert rec.src_port == flow.sport
    assert rec.dst_port == flow.dport
    assert rec.pad1 == 0
    assert rec.tcp_flags == flow.flags
    assert rec.ip_proto == flow.proto
    assert rec.tos == flow.tos
    assert (rec.src_as, rec.dst_as, rec.src_mask, rec.dst_mask, rec.pad2) == (0, 0, 0, 0, 0)


# -- layout --------------------------------------------------------------------------------------

def test_layout_sizes() -> None:
    assert V5_HEADER.size == 24
    assert V5_RECORD.size == 48
    assert V5_RECORD_DTYPE.itemsize == V5_RECORD.size
    assert V5_HEADER.size + MAX_RECORDS * V5_RECORD.size == 1464


def test_vectorised_records_equal_struct_packing() -> None:
    """The numpy dtype and the documented V5_RECORD struct lay out the same bytes."""
    rng = np.random.default_rng(5)
    flows = [Flow(str(ipaddress.IPv4Address(int(rng.integers(1, 2**32)))),
                  str(ipaddress.IPv4Address(int(rng.integers(1, 2**32)))),
                  int(rng.integers(0, 65536)), int(rng.integers(0, 65536)), int(rng.integers(0, 256)),
                  int(rng.integers(0, 256)), int(rng.integers(0, 65536)), int(rng.integers(1, 2**34)),
                  int(rng.integers(1, 2**34)), int(rng.integers(0, 10**6)), int(rng.integers(10**6, 10**7)),
                  int(rng.integers(0, 256)))
             for _ in range(45)]
    datagrams = encode_v5(records(flows), now=NOW, boot=BOOT, sequence=0, header=GOLDEN_HEADER)
    body = b"".join(d[V5_HEADER.size:] for d in datagrams)
    packed = b"".join(
        V5_RECORD.pack(ipaddress.IPv4Address(f.src).packed, ipaddress.IPv4Address(f.dst).packed,
                       bytes(4), f.ifindex, 0, min(f.packets, U32), min(f.octets, U32), f.first_ms,
                       f.last_ms, f.sport, f.dport, f.flags, f.proto, f.tos, 0, 0, 0, 0)
        for f in flows)
    assert body == packed


# -- golden and the dpkt oracle ------------------------------------------------------------------

def test_golden_three_flows(update_golden: bool) -> None:
    datagrams = encode_v5(records(THREE_FLOWS), now=NOW, boot=BOOT, sequence=0, header=GOLDEN_HEADER)
    assert len(datagrams) == 1
    if update_golden:
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_bytes(datagrams[0])
        GOLDEN.with_suffix(".txt").write_text(GOLDEN_NOTE)
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run pytest {__file__} --update-golden"
    assert datagrams[0] == GOLDEN.read_bytes()


def test_dpkt_decodes_every_field() -> None:
    (datagram,) = encode_v5(records(THREE_FLOWS), now=NOW, boot=BOOT, sequence=4242,
                            header=V5Header(engine_type=1, engine_id=7, sampling_interval=0))
    nf = decode(datagram)
    assert (nf.version, nf.count) == (5, 3)
    assert nf.sys_uptime == 12_345
    assert (nf.unix_sec, nf.unix_nsec) == (1_700_000_012, 345_000_000)
    assert nf.flow_sequence == 4242
    assert (nf.engine_type, nf.engine_id, nf.reserved) == (1, 7, 0)
    for rec, flow in zip(nf.data, THREE_FLOWS, strict=True):
        assert_record(rec, flow)


# -- splitting and sequence numbers --------------------------------------------------------------

@pytest.mark.parametrize("n, counts", [
    (0, []), (1, [1]), (29, [29]), (30, [30]), (31, [30, 1]), (60, [30, 30]), (61, [30, 30, 1]),
    (95, [30, 30, 30, 5]),
])
def test_split_into_datagrams_of_30(n: int, counts: list[int]) -> None:
    flows = numbered(n)
    datagrams = encode_v5(records(flows), now=NOW, boot=BOOT, sequence=1000, header=GOLDEN_HEADER)
    decoded = [decode(d) for d in datagrams]
    assert [nf.count for nf in decoded] == counts
    assert [nf.flow_sequence for nf in decoded] == [1000 + 30 * i for i in range(len(counts))]
    for rec, flow in zip([r for nf in decoded for r in nf.data], flows, strict=True):
        assert_record(rec, flow)


@pytest.mark.parametrize("n, sequence", [(0, 0), (29, 5), (30, 2**32 - 30), (31, 2**32 - 1), (301, 7),
                                         (1000, 2**32 - 450)])
def test_datagrams_built_at_once_equal_one_record_at_a_time(n: int, sequence: int) -> None:
    """Full datagrams are built as one array; each must equal the records encoded one by one, headed by
    the header a single datagram gets, with its count and flow sequence."""
    flows = random_flows(n, n)
    header = V5Header(engine_type=3, engine_id=250, sampling_interval=20000)
    got = encode_v5(flows, now=NOW, boot=BOOT, sequence=sequence, header=header)
    singles = [d for i in range(n)
               for d in encode_v5(flows.take(np.array([i])), now=NOW, boot=BOOT, sequence=0, header=header)]
    want = []
    for start in range(0, len(singles), MAX_RECORDS):
        part = singles[start:start + MAX_RECORDS]
        head = bytearray(part[0][:V5_HEADER.size])
        head[2:4] = len(part).to_bytes(2, "big")
        head[16:20] = ((sequence + start) & 0xFFFFFFFF).to_bytes(4, "big")
        want.append(bytes(head) + b"".join(d[V5_HEADER.size:] for d in part))
    assert got == want
    assert sum(len(d) for d in got) == V5_HEADER.size * len(got) + V5_RECORD.size * len(singles)


def test_sequence_wraps_at_2_32() -> None:
    datagrams = encode_v5(records(numbered(31)), now=NOW, boot=BOOT, sequence=2**32 - 10,
                          header=GOLDEN_HEADER)
    assert [decode(d).flow_sequence for d in datagrams] == [2**32 - 10, 20]


def test_ipv6_rows_are_skipped_and_not_counted_in_sequence() -> None:
    flows = numbered(40, v6_every=4)  # every 4th flow is IPv6: 30 IPv4 flows remain
    v4 = [f for f in flows if ":" not in f.src]
    datagrams = encode_v5(records(flows), now=NOW, boot=BOOT, sequence=7, header=GOLDEN_HEADER)
    decoded = [decode(d) for d in datagrams]
    assert [nf.count for nf in decoded] == [30]
    for rec, flow in zip(decoded[0].data, v4, strict=True):
        assert_record(rec, flow)
    ipv6_only = [f for f in flows if ":" in f.src]
    assert encode_v5(records(ipv6_only), now=NOW, boot=BOOT, sequence=0, header=GOLDEN_HEADER) == []


# -- saturation, times, the sampling field -------------------------------------------------------

def test_counters_saturate_instead_of_wrapping() -> None:
    big = [Flow("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, packets, octets, 0, 1)
           for packets, octets in ((U32, U32), (2**32, 2**40), (2**64 - 1, 2**63), (2**32 + 5, 7))]
    (datagram,) = encode_v5(records(big), now=NOW, boot=BOOT, sequence=0, header=GOLDEN_HEADER)
    got = [(r.pkts_sent, r.bytes_sent) for r in decode(datagram).data]
    assert got == [(U32, U32), (U32, U32), (U32, U32), (U32, 7)]


def test_times_clamp_before_boot_and_wrap_like_sysuptime() -> None:
    early = Flow("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 1, 1, -5_000, 0)
    (datagram,) = encode_v5(records([early]), now=NOW, boot=BOOT, sequence=0, header=GOLDEN_HEADER)
    rec = decode(datagram).data[0]
    assert (rec.start_time, rec.end_time) == (0, 0)
    # An exporter up for 2**32 ms + 1.5 s reports sysUptime 1500 and flow times modulo 2**32 as well.
    boot = NOW - (2**32 / 1000 + 1.5)
    late = Flow("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 1, 1, 2**32 + 250, 2**32 + 1_000)
    (datagram,) = encode_v5(records([late], boot=boot), now=NOW, boot=boot, sequence=0,
                            header=GOLDEN_HEADER)
    nf = decode(datagram)
    assert nf.sys_uptime == 1_500
    assert (nf.data[0].start_time, nf.data[0].end_time) == (250, 1_000)


def test_first_and_last_agree_with_the_header_to_the_millisecond() -> None:
    """A collector's boot time (unix_secs/unix_nsecs minus sysUptime) plus First/Last is the packet time.

    With a boot time that is not a whole millisecond, per-field truncation used to put the
    collector's times 1 ms early for about half of the flows.
    """
    rng = np.random.default_rng(12)
    for _ in range(200):
        boot = 1_700_000_000 + float(rng.integers(0, 10**6)) / 1e6  # µs resolution, as captures are
        first = boot + float(rng.integers(0, 10**7)) / 1e6
        last = first + float(rng.integers(0, 10**7)) / 1e6
        now = last + float(rng.integers(0, 10**6)) / 1e6
        flow = records([Flow("10.0.0.1", "10.0.0.2", 1, 2, 17, 0, 1, 1, 1, 0, 0)])
        flow.first[:], flow.last[:] = first, last
        nf = decode(encode_v5(flow, now=now, boot=boot, sequence=0, header=GOLDEN_HEADER)[0])
        assert nf.unix_nsec % 1_000_000 == 0
        boot_ms = nf.unix_sec * 1000 + nf.unix_nsec // 1_000_000 - nf.sys_uptime
        assert boot_ms == int(round(boot * 1e6)) // 1000
        rec = nf.data[0]
        assert (boot_ms + rec.start_time, boot_ms + rec.end_time) == \
            (int(round(first * 1e6)) // 1000, int(round(last * 1e6)) // 1000)


@pytest.mark.parametrize("interval, field", [
    (0, 0), (1, 0), (2, 0x4002), (100, 0x4064), (1000, 0x43E8), (16383, 0x7FFF), (16384, 0x7FFF),
    (16_000_000, 0x7FFF),
])
def test_sampling_interval_field(interval: int, field: int) -> None:
    header = V5Header(engine_type=0, engine_id=0, sampling_interval=interval)
    assert header.sampling_field == field
    (datagram,) = encode_v5(records(THREE_FLOWS), now=NOW, boot=BOOT, sequence=0, header=header)
    nf = decode(datagram)
    assert nf.reserved == field
    assert nf.reserved >> 14 == (1 if interval > 1 else 0)  # mode 01: deterministic 1-in-N


@pytest.mark.parametrize("kwargs, message", [
    ({"engine_type": 256}, "v5 engine-type: expected 0..255, got 256"),
    ({"engine_id": -1}, "v5 engine-id: expected 0..255, got -1"),
    ({"sampling_interval": -3}, "v5 sampling interval: expected >= 0, got -3"),
])
def test_header_rejects_out_of_range_values(kwargs: dict[str, int], message: str) -> None:
    with pytest.raises(ValueError) as err:
        V5Header(**kwargs)
    assert str(err.value) == message


def test_200k_flows_encode() -> None:
    """200k records at once (their speed: benchmarks/component_rates.py)."""
    n = 200_000
    rng = np.random.default_rng(1)
    base = records(numbered(1))
    recs = FlowRecords(
        key=np.repeat(base.key, n, axis=0), packets=rng.integers(1, 2**40, n).astype(np.uint64),
        bytes=rng.integers(1, 2**40, n).astype(np.uint64), first=BOOT + rng.random(n) * 10,
        last=BOOT + 10 + rng.random(n), tcp_flags=rng.integers(0, 256, n).astype(np.uint8),
        ttl_min=np.zeros(n, np.uint8), ttl_max=np.zeros(n, np.uint8), vlan=np.zeros(n, np.uint16),
        inner_vlan=np.zeros(n, np.uint16), mpls=np.zeros((n, 3), np.uint32),
        end_reason=np.zeros(n, np.uint8))
    datagrams = encode_v5(recs, now=NOW, boot=BOOT, sequence=0, header=GOLDEN_HEADER)
    assert len(datagrams) == -(-n // MAX_RECORDS)


# -- tshark as a second, independent decoder -----------------------------------------------------

TSHARK_PORT = 2055
TSHARK_HEADER_FIELDS = ("cflow.version", "cflow.count", "cflow.sysuptime", "cflow.unix_secs",
                        "cflow.unix_nsecs", "cflow.sequence", "cflow.engine_type", "cflow.engine_id",
                        "cflow.samplingmode", "cflow.samplerate")
TSHARK_RECORD_FIELDS = ("cflow.srcaddr", "cflow.dstaddr", "cflow.nexthop", "cflow.inputint",
                        "cflow.outputint", "cflow.packets", "cflow.octets", "cflow.timestart",
                        "cflow.timeend", "cflow.srcport", "cflow.dstport", "cflow.tcpflags",
                        "cflow.protocol", "cflow.tos", "cflow.srcas", "cflow.dstas", "cflow.srcmask",
                        "cflow.dstmask")


def write_pcap(path: Path, datagrams: list[bytes], *, udp_length_extra: int = 0) -> None:
    """Wrap each datagram in Ethernet/IPv4/UDP from 127.0.0.1:50000 to 127.0.0.1:2055."""
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f)
        for i, datagram in enumerate(datagrams):
            udp = dpkt.udp.UDP(sport=50000, dport=TSHARK_PORT, data=datagram)
            udp.ulen = len(udp) + udp_length_extra
            ip = dpkt.ip.IP(src=bytes((127, 0, 0, 1)), dst=bytes((127, 0, 0, 1)), p=dpkt.ip.IP_PROTO_UDP,
                            ttl=64, data=udp)
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(src=b"\x02\x00\x00\x00\x00\x01", dst=b"\x02\x00\x00\x00\x00\x02",
                                         type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
            writer.writepkt(bytes(eth), ts=NOW + i)


def tshark(*args: str) -> str:
    done = subprocess.run(["tshark", "-n", "-d", f"udp.port=={TSHARK_PORT},cflow", *args],
                          capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def tshark_problems(pcap: Path) -> str:
    return tshark("-r", str(pcap), "-Y", "_ws.malformed || _ws.expert.severity >= warning").strip()


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_decodes_the_same_values(tmp_path: Path) -> None:
    flows = list(THREE_FLOWS) + numbered(30)  # 33 flows: two datagrams, 30 + 3
    header = V5Header(engine_type=2, engine_id=9, sampling_interval=100)
    datagrams = encode_v5(records(flows), now=NOW, boot=BOOT, sequence=77, header=header)
    pcap = tmp_path / "v5.pcap"
    write_pcap(pcap, datagrams)
    assert tshark_problems(pcap) == ""

    fields = [a for name in TSHARK_HEADER_FIELDS + TSHARK_RECORD_FIELDS for a in ("-e", name)]
    out = tshark("-r", str(pcap), "-T", "fields", "-E", "separator=/t", "-E", "occurrence=a",
                 "-E", "aggregator=;", *fields)
    lines = out.splitlines()
    assert len(lines) == 2
    got_records: list[dict[str, str]] = []
    for i, line in enumerate(lines):
        values = line.split("\t")
        head = dict(zip(TSHARK_HEADER_FIELDS, values[:len(TSHARK_HEADER_FIELDS)], strict=True))
        count = 30 if i == 0 else 3
        assert head == {
            "cflow.version": "5", "cflow.count": str(count), "cflow.sysuptime": "12.345000000",
            "cflow.unix_secs": "1700000012", "cflow.unix_nsecs": "345000000",
            "cflow.sequence": str(77 + 30 * i), "cflow.engine_type": "2", "cflow.engine_id": "9",
            "cflow.samplingmode": "1", "cflow.samplerate": "100",
        }
        columns = [v.split(";") for v in values[len(TSHARK_HEADER_FIELDS):]]
        got_records.extend(dict(zip(TSHARK_RECORD_FIELDS, row, strict=True))
                           for row in zip(*columns, strict=True))
    expected = [{
        "cflow.srcaddr": f.src, "cflow.dstaddr": f.dst, "cflow.nexthop": "0.0.0.0",
        "cflow.inputint": str(f.ifindex), "cflow.outputint": "0", "cflow.packets": str(f.packets),
        "cflow.octets": str(f.octets), "cflow.timestart": f"{f.first_ms / 1000:.9f}",
        "cflow.timeend": f"{f.last_ms / 1000:.9f}", "cflow.srcport": str(f.sport),
        "cflow.dstport": str(f.dport), "cflow.tcpflags": f"0x{f.flags:02x}",
        "cflow.protocol": str(f.proto), "cflow.tos": f"0x{f.tos:02x}", "cflow.srcas": "0",
        "cflow.dstas": "0", "cflow.srcmask": "0", "cflow.dstmask": "0",
    } for f in flows]
    assert got_records == expected


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_problem_filter_does_report_a_broken_packet(tmp_path: Path) -> None:
    """The no-problems check above can fail: a UDP length past the end of the packet is reported."""
    pcap = tmp_path / "broken.pcap"
    write_pcap(pcap, encode_v5(records(THREE_FLOWS), now=NOW, boot=BOOT, sequence=0,
                               header=GOLDEN_HEADER), udp_length_extra=40)
    assert tshark_problems(pcap) != ""
