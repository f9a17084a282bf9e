"""tests/flowdecode.py: strict set bounds, and the same records as tshark on real exporters' captures."""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dpkt  # type: ignore[import-untyped]
import pytest
from flowdecode import (
    IPFIX_HEADER,
    SET_HEADER,
    TSHARK,
    V5_HEADER,
    V9_HEADER,
    DecodeError,
    Decoder,
    Reader,
    tshark_pdus,
    tshark_records,
)

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "pcaps" / "flow-export"

# tshark field → our IE name, compared on every record where both sides have the field.
COMPARED = {
    "cflow.srcaddr": "sourceIPv4Address", "cflow.dstaddr": "destinationIPv4Address",
    "cflow.srcaddrv6": "sourceIPv6Address", "cflow.dstaddrv6": "destinationIPv6Address",
    "cflow.protocol": "protocolIdentifier", "cflow.srcport": "sourceTransportPort",
    "cflow.dstport": "destinationTransportPort", "cflow.octets": "octetDeltaCount",
    "cflow.packets": "packetDeltaCount", "cflow.inputint": "ingressInterface",
    "cflow.outputint": "egressInterface",
}


# -- Reader: dnspython restrict_to semantics ------------------------------------------------------

def test_set_must_be_consumed_exactly() -> None:
    r = Reader(bytes(range(12)))
    with r.set(8):
        assert r.read(4) == bytes(range(4))
        assert r.remaining == 4
        r.read(4)
    assert r.remaining == 4
    with pytest.raises(DecodeError, match="2 octets left unread"), r.set(4):
        r.read(2)


def test_set_cannot_overrun_its_packet_nor_be_read_past() -> None:
    r = Reader(bytes(10))
    with pytest.raises(DecodeError, match="overruns its packet"), r.set(11):
        pass
    with pytest.raises(DecodeError, match="need 5 octets"), r.set(4):
        r.read(5)


@pytest.mark.parametrize("pad, below, message", [
    (b"\x00\x00\x00", 4, None),
    (b"", 4, None),
    (b"\x00\x00\x00\x00", 4, "neither a record nor padding"),
    (b"\x00\x01", 4, "non-zero padding"),
])
def test_padding_is_short_and_zero(pad: bytes, below: int, message: str | None) -> None:
    r = Reader(pad)
    if message is None:
        assert r.padding(below) == len(pad)
    else:
        with pytest.raises(DecodeError, match=message):
            r.padding(below)


# -- decoder: malformed packets are refused with a reason -----------------------------------------

def ipfix(*sets: bytes, length_delta: int = 0, domain: int = 0) -> bytes:
    body = b"".join(sets)
    return IPFIX_HEADER.pack(10, IPFIX_HEADER.size + len(body) + length_delta, 1, 0, domain) + body


TEMPLATE_SET = SET_HEADER.pack(2, 12) + struct.pack("!HHHH", 300, 1, 8, 4)  # template 300: one IPv4 source


@pytest.mark.parametrize("data, message", [
    (ipfix(TEMPLATE_SET, length_delta=4), "length field"),
    (ipfix(SET_HEADER.pack(2, 3)), "has length 3"),
    (ipfix(SET_HEADER.pack(2, 16) + struct.pack("!HHHH", 300, 1, 8, 4)), "overruns"),
    (ipfix(SET_HEADER.pack(2, 14) + struct.pack("!HHHHH", 300, 1, 8, 4, 7)), "non-zero padding"),
    (ipfix(SET_HEADER.pack(2, 12) + struct.pack("!HHHH", 12, 1, 8, 4)), "below 256"),
    (ipfix(SET_HEADER.pack(1, 4)), "reserved IPFIX set id 1"),
    (V5_HEADER.pack(5, 2, 0, 0, 0, 0, 0, 0, 0) + bytes(48), "v5 count 2"),
    (V9_HEADER.pack(9, 1, 0, 0, 0, 0) + SET_HEADER.pack(1, 10) + struct.pack("!HHH", 300, 3, 4), "scope length 3"),
    (b"\x00\x07" + bytes(20), "unknown export version 7"),
])
def test_malformed_packets_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        Decoder().datagram(data)


def test_templates_are_kept_per_source_and_domain() -> None:
    data_set = SET_HEADER.pack(300, 8) + ipaddress.IPv4Address("192.0.2.7").packed
    dec = Decoder()
    assert dec.datagram(ipfix(TEMPLATE_SET, data_set), "a").records == [{"sourceIPv4Address": "192.0.2.7"}]
    assert dec.datagram(ipfix(data_set), "a").records == [{"sourceIPv4Address": "192.0.2.7"}]
    other_source = dec.datagram(ipfix(data_set), "b")
    other_domain = dec.datagram(ipfix(data_set, domain=1), "a")
    assert other_source.records == other_domain.records == []
    assert other_source.unknown_sets == other_domain.unknown_sets == [300]
    withdraw = SET_HEADER.pack(2, 8) + struct.pack("!HH", 300, 0)
    assert dec.datagram(ipfix(withdraw), "a").withdrawn == [300]
    assert dec.datagram(ipfix(data_set), "a").unknown_sets == [300]


def test_variable_length_and_enterprise_fields() -> None:
    # template 301: interfaceName (82) variable length, then an enterprise element (PEN 2636, id 7, 2 octets)
    template = SET_HEADER.pack(2, 20) + struct.pack("!HHHHHHI", 301, 2, 82, 0xFFFF, 0x8007, 2, 2636)
    data = SET_HEADER.pack(301, 12) + b"\x04ge-0" + b"\x01\x02" + bytes(1)
    msg = Decoder().datagram(ipfix(template, data))
    assert msg.records == [{"interfaceName": "ge-0", "pen2636.ie7": 0x0102}]


def test_stream_splits_messages_and_refuses_a_torn_one() -> None:
    data_set = SET_HEADER.pack(300, 8) + bytes(4)
    stream = ipfix(TEMPLATE_SET) + ipfix(data_set) + ipfix(data_set)
    messages = Decoder().stream(stream, "tcp")
    assert [len(m.records) for m in messages] == [0, 1, 1]
    with pytest.raises(DecodeError, match="stream ends inside"):
        Decoder().stream(stream[:-3], "tcp")


# -- the shared captures, against tshark ------------------------------------------------------------

def _frames(path: Path) -> Iterator[tuple[float, bytes, int]]:
    with path.open("rb") as f:
        reader = dpkt.pcap.Reader(f)
        for ts, buf in reader:
            yield ts, buf, reader.datalink()


def _udp(buf: bytes, linktype: int) -> tuple[str, int, str, int, bytes] | None:
    """(src, sport, dst, dport, payload) of a UDP frame, else None."""
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        ip = dpkt.sll.SLL(buf).data
    else:
        ip = dpkt.ethernet.Ethernet(buf).data
    while isinstance(ip, dpkt.ethernet.VLANtag8021Q):  # pragma: no cover - not in the captures
        ip = ip.data
    if not isinstance(ip, dpkt.ip.IP | dpkt.ip6.IP6) or not isinstance(ip.data, dpkt.udp.UDP):
        return None
    udp = ip.data
    src = str(ipaddress.ip_address(ip.src))
    dst = str(ipaddress.ip_address(ip.dst))
    return src, udp.sport, dst, udp.dport, bytes(udp.data)


def _is_flow_export(payload: bytes) -> bool:
    """NetFlow v5/v9 or IPFIX (sFlow starts with a 32-bit version, so 0x0000 here: skipped)."""
    if len(payload) < 4:
        return False
    version = int.from_bytes(payload[:2], "big")
    if version == 5:
        return len(payload) == V5_HEADER.size + int.from_bytes(payload[2:4], "big") * 48
    return version in (9, 10)


def _captures() -> list[list[Path]]:
    """Each capture alone, except akvorado's template/data halves, which are decoded in sequence."""
    if not SHARED.is_dir():
        return []
    groups: dict[str, list[Path]] = {}
    for path in sorted(SHARED.rglob("*.pcap")):
        key = str(path)
        if path.parent.name == "testdata":
            stem = path.stem.replace("-templates", "").replace("-template", "").replace("-data", "")
            stem = stem.replace("-options", "")
            key = str(path.with_name(stem))
        groups.setdefault(key, []).append(path)
    for paths in groups.values():  # templates before data, options templates before options data
        paths.sort(key=lambda p: (("template" not in p.stem), ("options" not in p.stem), p.name))
    return list(groups.values())


def _merged_flow_frames(paths: list[Path], out: Path) -> list[tuple[str, bytes, set[int]]]:
    """Write the flow-export UDP frames of ``paths`` into ``out``; return (source key, payload, ports)."""
    kept: list[tuple[str, bytes, set[int]]] = []
    with out.open("wb") as f:
        writer: Any = None
        first_linktype = -1
        for path in paths:
            for ts, buf, linktype in _frames(path):
                udp = _udp(buf, linktype)
                if udp is None or not _is_flow_export(udp[4]):
                    continue
                if writer is None:
                    writer, first_linktype = dpkt.pcap.Writer(f, linktype=linktype), linktype
                if linktype != first_linktype:
                    continue
                writer.writepkt(buf, ts=ts)
                src, sport, dst, dport, payload = udp
                kept.append((f"{src}:{sport}>{dst}:{dport}", payload, {dport}))
    return kept


CAPTURES = _captures()


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.skipif(not CAPTURES, reason="../shared/pcaps/flow-export is absent")
@pytest.mark.parametrize("paths", CAPTURES, ids=lambda ps: "+".join(str(p.relative_to(SHARED)) for p in ps))
def test_decodes_real_exports_like_tshark(paths: list[Path], tmp_path: Path) -> None:
    merged = tmp_path / "flows.pcap"
    frames = _merged_flow_frames(paths, merged)
    if not frames:
        pytest.skip("no NetFlow/IPFIX datagrams (sFlow or other traffic)")
    ports = set().union(*(p for _, _, p in frames))
    theirs = tshark_pdus(merged, ports)
    assert len(theirs) == len(frames)
    decoder = Decoder()
    compared = 0
    decoded = []
    for (source, payload, _), pdus in zip(frames, theirs, strict=True):
        msg = decoder.datagram(payload, source)
        decoded.append(msg)
        assert len(pdus) == 1
        records, missing = tshark_records(pdus[0])
        ours = msg.ordered
        assert len(ours) == len(records), f"{source}: {len(ours)} records decoded, tshark shows {len(records)}"
        assert len(msg.unknown_sets) == missing
        for mine, shown in zip(ours, records, strict=True):
            for field, name in COMPARED.items():
                if field in shown and name in mine and not isinstance(mine[name], bytes):
                    # tshark lists an RFC 5103 reverse element under its forward field, after it
                    reverse = f"reverse{name[0].upper()}{name[1:]}"
                    values = _listed(mine[name]) + (_listed(mine[reverse]) if reverse in mine else [])
                    assert values == _listed(shown[field]), (source, field, mine, shown)
                    compared += 1
    if any(m.records for m in decoded):
        assert compared > 0  # the comparison really ran


def _listed(value: Any) -> list[str]:
    """Our value or tshark's text (one or several occurrences) as a list of plain strings."""
    values = value if isinstance(value, list) else [value]
    return [str(int(str(v), 16)) if str(v).startswith("0x") else str(v) for v in values]
