"""An independent decoder of NetFlow v5 / v9 and IPFIX (UDP datagrams and TCP streams), for tests.

It shares nothing with flowd.export: its own element table (``ELEMENTS``, written from the IANA
registry and RFC 3954, not imported from flowd.export.ie), its own header layouts and its own
template cache, so a mistake in the encoder cannot hide behind the same mistake here.

Strictness follows dnspython's ``restrict_to``: ``Reader.set(length)`` fails unless the set is
consumed exactly, padding included, and padding must be zero octets shorter than one record.
Templates are cached per (source, domain): ``source`` is whatever the caller uses to tell
transport sessions apart (Wireshark keys its cache by addresses, ports and domain; the tests pass
"addr:port>addr:port", one name per TCP connection, ...).

Decoded records are dicts of IE name → value: unsigned integers and times (ms, s) as int,
addresses as str, MAC addresses as "aa:bb:...", strings as str, other octet arrays as bytes; an
element a template lists more than once (outer and inner headers) maps to the list of its values.
Unknown elements are named ``ie<ID>`` (``pen<PEN>.ie<ID>`` for enterprise ones); RFC 5103 reverse
elements (PEN 29305) are named ``reverse<Name>``.

The end of the file has the helpers the export tests share for the tshark cross-checks: writing
datagrams or a TCP stream into a pcap, and reading tshark's view of the flow records back.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import struct
import subprocess
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import dpkt  # type: ignore[import-untyped]


class DecodeError(ValueError):
    """The bytes are not a well-formed export packet."""


# (name, kind): kind is how the value is shown. u = unsigned int, ms/s = time as an int,
# ipv4/ipv6/mac = addresses as text, str = UTF-8 text, bytes = raw octets.
ELEMENTS: Final[dict[int, tuple[str, str]]] = {
    1: ("octetDeltaCount", "u"), 2: ("packetDeltaCount", "u"), 3: ("deltaFlowCount", "u"),
    4: ("protocolIdentifier", "u"), 5: ("ipClassOfService", "u"), 6: ("tcpControlBits", "u"),
    7: ("sourceTransportPort", "u"), 8: ("sourceIPv4Address", "ipv4"), 9: ("sourceIPv4PrefixLength", "u"),
    10: ("ingressInterface", "u"), 11: ("destinationTransportPort", "u"),
    12: ("destinationIPv4Address", "ipv4"), 13: ("destinationIPv4PrefixLength", "u"),
    14: ("egressInterface", "u"), 15: ("ipNextHopIPv4Address", "ipv4"), 16: ("bgpSourceAsNumber", "u"),
    17: ("bgpDestinationAsNumber", "u"), 18: ("bgpNextHopIPv4Address", "ipv4"),
    19: ("postMCastPacketDeltaCount", "u"), 20: ("postMCastOctetDeltaCount", "u"),
    21: ("flowEndSysUpTime", "u"), 22: ("flowStartSysUpTime", "u"), 23: ("postOctetDeltaCount", "u"),
    24: ("postPacketDeltaCount", "u"), 25: ("minimumIpTotalLength", "u"), 26: ("maximumIpTotalLength", "u"),
    27: ("sourceIPv6Address", "ipv6"), 28: ("destinationIPv6Address", "ipv6"),
    29: ("sourceIPv6PrefixLength", "u"), 30: ("destinationIPv6PrefixLength", "u"), 31: ("flowLabelIPv6", "u"),
    32: ("icmpTypeCodeIPv4", "u"), 33: ("igmpType", "u"), 34: ("samplingInterval", "u"),
    35: ("samplingAlgorithm", "u"), 36: ("flowActiveTimeout", "u"), 37: ("flowInactiveTimeout", "u"),
    38: ("engineType", "u"), 39: ("engineId", "u"), 40: ("exportedOctetTotalCount", "u"),
    41: ("exportedMessageTotalCount", "u"), 42: ("exportedFlowRecordTotalCount", "u"),
    44: ("sourceIPv4Prefix", "ipv4"), 45: ("destinationIPv4Prefix", "ipv4"), 46: ("mplsTopLabelType", "u"),
    47: ("mplsTopLabelIPv4Address", "ipv4"), 48: ("samplerId", "u"), 49: ("samplerMode", "u"),
    50: ("samplerRandomInterval", "u"), 52: ("minimumTTL", "u"), 53: ("maximumTTL", "u"),
    54: ("fragmentIdentification", "u"), 55: ("postIpClassOfService", "u"), 56: ("sourceMacAddress", "mac"),
    57: ("postDestinationMacAddress", "mac"), 58: ("vlanId", "u"), 59: ("postVlanId", "u"),
    60: ("ipVersion", "u"), 61: ("flowDirection", "u"), 62: ("ipNextHopIPv6Address", "ipv6"),
    63: ("bgpNextHopIPv6Address", "ipv6"), 64: ("ipv6ExtensionHeaders", "u"),
    70: ("mplsTopLabelStackSection", "bytes"), 71: ("mplsLabelStackSection2", "bytes"),
    72: ("mplsLabelStackSection3", "bytes"), 73: ("mplsLabelStackSection4", "bytes"),
    74: ("mplsLabelStackSection5", "bytes"), 75: ("mplsLabelStackSection6", "bytes"),
    76: ("mplsLabelStackSection7", "bytes"), 77: ("mplsLabelStackSection8", "bytes"),
    78: ("mplsLabelStackSection9", "bytes"), 79: ("mplsLabelStackSection10", "bytes"),
    80: ("destinationMacAddress", "mac"), 81: ("postSourceMacAddress", "mac"), 82: ("interfaceName", "str"),
    83: ("interfaceDescription", "str"), 85: ("octetTotalCount", "u"), 86: ("packetTotalCount", "u"),
    88: ("fragmentOffset", "u"), 89: ("forwardingStatus", "u"), 90: ("mplsVpnRouteDistinguisher", "bytes"),
    95: ("applicationId", "bytes"), 96: ("applicationName", "str"), 128: ("bgpNextAdjacentAsNumber", "u"),
    129: ("bgpPrevAdjacentAsNumber", "u"), 130: ("exporterIPv4Address", "ipv4"),
    131: ("exporterIPv6Address", "ipv6"), 136: ("flowEndReason", "u"), 137: ("commonPropertiesId", "u"),
    138: ("observationPointId", "u"), 139: ("icmpTypeCodeIPv6", "u"), 144: ("exportingProcessId", "u"),
    148: ("flowId", "u"), 149: ("observationDomainId", "u"), 150: ("flowStartSeconds", "s"),
    151: ("flowEndSeconds", "s"), 152: ("flowStartMilliseconds", "ms"), 153: ("flowEndMilliseconds", "ms"),
    154: ("flowStartMicroseconds", "u"), 155: ("flowEndMicroseconds", "u"),
    156: ("flowStartNanoseconds", "u"), 157: ("flowEndNanoseconds", "u"),
    158: ("flowStartDeltaMicroseconds", "u"), 159: ("flowEndDeltaMicroseconds", "u"),
    160: ("systemInitTimeMilliseconds", "ms"), 161: ("flowDurationMilliseconds", "u"),
    176: ("icmpTypeIPv4", "u"), 177: ("icmpCodeIPv4", "u"), 178: ("icmpTypeIPv6", "u"),
    179: ("icmpCodeIPv6", "u"), 180: ("udpSourcePort", "u"), 181: ("udpDestinationPort", "u"),
    182: ("tcpSourcePort", "u"), 183: ("tcpDestinationPort", "u"), 192: ("ipTTL", "u"),
    225: ("postNATSourceIPv4Address", "ipv4"), 226: ("postNATDestinationIPv4Address", "ipv4"),
    227: ("postNAPTSourceTransportPort", "u"), 228: ("postNAPTDestinationTransportPort", "u"),
    234: ("ingressVRFID", "u"), 235: ("egressVRFID", "u"), 243: ("dot1qVlanId", "u"),
    245: ("dot1qCustomerVlanId", "u"), 252: ("ingressPhysicalInterface", "u"),
    253: ("egressPhysicalInterface", "u"), 256: ("ethernetType", "u"), 302: ("selectorId", "u"),
    304: ("selectorAlgorithm", "u"), 305: ("samplingPacketInterval", "u"), 306: ("samplingPacketSpace", "u"),
    312: ("dataLinkFrameSize", "u"), 315: ("dataLinkFrameSection", "bytes"),
    323: ("observationTimeMilliseconds", "ms"),
}
V9_SCOPES: Final = {1: "scopeSystem", 2: "scopeInterface", 3: "scopeLineCard", 4: "scopeCache",
                    5: "scopeTemplate"}
VARIABLE: Final = 0xFFFF  # IPFIX variable-length field (RFC 7011 §7)
REVERSE_PEN: Final = 29305  # RFC 5103: the reverse direction of the IANA element with the same id

# Header layouts (RFC 3954 §5.1, RFC 7011 §3.1, Cisco v5).
V5_HEADER: Final = struct.Struct("!HHIIIIBBH")
V5_RECORD: Final = struct.Struct("!4s4s4sHHIIIIHHxBBBHHBBxx")
V9_HEADER: Final = struct.Struct("!HHIIII")
IPFIX_HEADER: Final = struct.Struct("!HHIII")
SET_HEADER: Final = struct.Struct("!HH")
V5_NAMES: Final = ("sourceIPv4Address", "destinationIPv4Address", "ipNextHopIPv4Address", "ingressInterface",
                   "egressInterface", "packetDeltaCount", "octetDeltaCount", "flowStartSysUpTime",
                   "flowEndSysUpTime", "sourceTransportPort", "destinationTransportPort", "tcpControlBits",
                   "protocolIdentifier", "ipClassOfService", "bgpSourceAsNumber", "bgpDestinationAsNumber",
                   "sourceIPv4PrefixLength", "destinationIPv4PrefixLength")


class Reader:
    """Bounds-checked big-endian reads; ``set(length)`` confines reads to a set and checks its end."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.end = len(self.data)

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def read(self, n: int) -> bytes:
        if n < 0 or n > self.remaining:
            raise DecodeError(f"need {n} octets at offset {self.pos}, only {self.remaining} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        return st.unpack(self.read(st.size))

    def uint(self, n: int) -> int:
        return int.from_bytes(self.read(n), "big")

    @contextmanager
    def set(self, length: int) -> Iterator[None]:
        """Confine reads to the next ``length`` octets; fail unless all of them are consumed."""
        if length > self.remaining:
            raise DecodeError(f"set of {length} octets at offset {self.pos} overruns its packet "
                              f"({self.remaining} octets left)")
        outer, self.end = self.end, self.pos + length
        yield
        if self.pos != self.end:
            raise DecodeError(f"{self.end - self.pos} octets left unread at the end of a set ending at {self.end}")
        self.end = outer

    def padding(self, below: int) -> int:
        """Consume the rest of the set as padding: fewer than ``below`` octets, all zero."""
        n = self.remaining
        if n >= below:
            raise DecodeError(f"{n} octets at offset {self.pos} are neither a record nor padding "
                              f"(padding must be shorter than {below})")
        if any(self.read(n)):
            raise DecodeError(f"non-zero padding at offset {self.pos - n}")
        return n


@dataclass(frozen=True, slots=True)
class FieldSpec:
    id: int
    length: int
    pen: int = 0

    @property
    def name(self) -> str:
        if self.pen == REVERSE_PEN and self.id in ELEMENTS:  # RFC 5103 biflow reverse elements
            base = ELEMENTS[self.id][0]
            return f"reverse{base[0].upper()}{base[1:]}"
        if self.pen:
            return f"pen{self.pen}.ie{self.id}"
        return ELEMENTS.get(self.id, (f"ie{self.id}", "u"))[0]

    @property
    def kind(self) -> str:
        if self.pen and self.pen != REVERSE_PEN:
            return "u"
        return ELEMENTS.get(self.id, ("", "u"))[1]


@dataclass(frozen=True, slots=True)
class TemplateDef:
    template_id: int
    fields: tuple[FieldSpec, ...]
    scope: int = 0  # options templates: leading scope fields
    options: bool = False
    v9_scope: bool = False  # v9 options template: scope fields use RFC 3954 scope types

    @property
    def min_length(self) -> int:
        return sum(1 if f.length == VARIABLE else f.length for f in self.fields)


@dataclass(slots=True)
class Message:
    """One decoded export packet."""

    version: int
    header: dict[str, int]
    sets: list[tuple[int, int]] = field(default_factory=list)  # (set id, length)
    templates: list[TemplateDef] = field(default_factory=list)  # (options) templates announced here
    records: list[dict[str, Any]] = field(default_factory=list)  # flow data records
    options: list[dict[str, Any]] = field(default_factory=list)  # options data records
    ordered: list[dict[str, Any]] = field(default_factory=list)  # every data record, in packet order
    unknown_sets: list[int] = field(default_factory=list)  # data set ids with no template yet
    withdrawn: list[int] = field(default_factory=list)

    @property
    def data_records(self) -> int:
        return len(self.records) + len(self.options)

    @property
    def record_count(self) -> int:
        """Template, options template and data records (what a v9 header counts)."""
        return len(self.templates) + self.data_records


class Decoder:
    """Decodes packets in arrival order, keeping templates per (source, domain).

    ``unpadded_templates``: IPFIX template and options template sets must end with their last
    record, as python-ipfix reads them (template records until the set ends: padding there is taken
    for a truncated record and the rest of the message is lost). RFC 7011 §3.3.1 allows the
    padding; flowd never sends it, and its tests decode with this set.
    """

    def __init__(self, *, unpadded_templates: bool = False) -> None:
        self.templates: dict[tuple[str, int], dict[int, TemplateDef]] = {}
        self.unpadded_templates = unpadded_templates

    def datagram(self, data: bytes, source: str = "") -> Message:
        """One UDP payload: NetFlow v5, v9 or IPFIX."""
        if len(data) < 2:
            raise DecodeError(f"{len(data)} octets cannot hold a version number")
        version = int.from_bytes(data[:2], "big")
        reader = Reader(data)
        if version == 5:
            msg = self._v5(reader)
        elif version == 9:
            msg = self._v9(reader, source)
        elif version == 10:
            msg = self._ipfix(reader, source)
        else:
            raise DecodeError(f"unknown export version {version}")
        if reader.remaining:
            raise DecodeError(f"{reader.remaining} octets after the end of a version {version} packet")
        return msg

    def stream(self, data: bytes, source: str = "") -> list[Message]:
        """An IPFIX-over-TCP byte stream: whole messages back to back, nothing left over."""
        out: list[Message] = []
        pos = 0
        while pos < len(data):
            if len(data) - pos < IPFIX_HEADER.size:
                raise DecodeError(f"stream ends inside a message header at offset {pos}")
            version, length = struct.unpack_from("!HH", data, pos)
            if version != 10 or length < IPFIX_HEADER.size:
                raise DecodeError(f"no IPFIX message header at stream offset {pos} (version {version}, "
                                  f"length {length})")
            if pos + length > len(data):
                raise DecodeError(f"stream ends inside a {length}-octet message at offset {pos}")
            out.append(self._ipfix(Reader(data[pos:pos + length]), source))
            pos += length
        return out

    # -- versions ---------------------------------------------------------------------------------

    def _v5(self, r: Reader) -> Message:
        head = r.unpack(V5_HEADER)
        names = ("version", "count", "sys_uptime", "unix_secs", "unix_nsecs", "sequence", "engine_type",
                 "engine_id", "sampling")
        msg = Message(5, dict(zip(names, head, strict=True)))
        if r.remaining != msg.header["count"] * V5_RECORD.size:
            raise DecodeError(f"v5 count {msg.header['count']} does not match {r.remaining} octets of records")
        for _ in range(msg.header["count"]):
            values = list(r.unpack(V5_RECORD))
            for i in range(3):
                values[i] = str(ipaddress.IPv4Address(values[i]))
            msg.records.append(dict(zip(V5_NAMES, values, strict=True)))
        msg.ordered.extend(msg.records)
        return msg

    def _v9(self, r: Reader, source: str) -> Message:
        names = ("version", "count", "sys_uptime", "unix_secs", "sequence", "source_id")
        msg = Message(9, dict(zip(names, r.unpack(V9_HEADER), strict=True)))
        cache = self.templates.setdefault((source, msg.header["source_id"]), {})
        while r.remaining:
            if r.remaining < SET_HEADER.size:
                r.padding(SET_HEADER.size)  # trailing packet padding some exporters add
                break
            set_id, length = r.unpack(SET_HEADER)
            if length < SET_HEADER.size:
                raise DecodeError(f"v9 flowset {set_id} has length {length}")
            msg.sets.append((set_id, length))
            with r.set(length - SET_HEADER.size):
                if set_id == 0:
                    self._templates(r, msg, cache, ipfix=False)
                elif set_id == 1:
                    self._v9_options_templates(r, msg, cache)
                elif set_id >= 256:
                    self._data(r, msg, cache, set_id)
                else:
                    raise DecodeError(f"reserved v9 flowset id {set_id}")
        return msg

    def _ipfix(self, r: Reader, source: str) -> Message:
        names = ("version", "length", "export_time", "sequence", "domain")
        msg = Message(10, dict(zip(names, r.unpack(IPFIX_HEADER), strict=True)))
        if msg.header["length"] != len(r.data):
            raise DecodeError(f"IPFIX length field {msg.header['length']} but the message has {len(r.data)} octets")
        cache = self.templates.setdefault((source, msg.header["domain"]), {})
        while r.remaining:
            set_id, length = r.unpack(SET_HEADER)
            if length < SET_HEADER.size:
                raise DecodeError(f"IPFIX set {set_id} has length {length}")
            msg.sets.append((set_id, length))
            with r.set(length - SET_HEADER.size):
                if set_id == 2:
                    self._templates(r, msg, cache, ipfix=True)
                elif set_id == 3:
                    self._ipfix_options_templates(r, msg, cache)
                elif set_id >= 256:
                    self._data(r, msg, cache, set_id)
                else:
                    raise DecodeError(f"reserved IPFIX set id {set_id}")
        return msg

    # -- sets ---------------------------------------------------------------------------------------

    @staticmethod
    def _field(r: Reader, ipfix: bool) -> FieldSpec:
        ident, length = r.unpack(SET_HEADER)
        if ipfix and ident & 0x8000:
            return FieldSpec(ident & 0x7FFF, length, r.uint(4))
        return FieldSpec(ident, length)

    def _templates(self, r: Reader, msg: Message, cache: dict[int, TemplateDef], *, ipfix: bool) -> None:
        while r.remaining >= 4:
            tid, count = r.unpack(SET_HEADER)
            if tid < 256:
                raise DecodeError(f"template id {tid} is below 256")
            if count == 0 and ipfix:  # template withdrawal (RFC 7011 §8.1)
                cache.pop(tid, None)
                msg.withdrawn.append(tid)
                continue
            tmpl = TemplateDef(tid, tuple(self._field(r, ipfix) for _ in range(count)))
            cache[tid] = tmpl
            msg.templates.append(tmpl)
        r.padding(1 if ipfix and self.unpadded_templates else 4)

    def _ipfix_options_templates(self, r: Reader, msg: Message, cache: dict[int, TemplateDef]) -> None:
        while r.remaining >= 6:
            tid, count, scope = r.unpack(struct.Struct("!HHH"))
            if tid < 256 or not 0 < scope <= count:
                raise DecodeError(f"options template {tid}: {count} fields, {scope} scope fields")
            tmpl = TemplateDef(tid, tuple(self._field(r, True) for _ in range(count)), scope, options=True)
            cache[tid] = tmpl
            msg.templates.append(tmpl)
        r.padding(1 if self.unpadded_templates else 6)

    def _v9_options_templates(self, r: Reader, msg: Message, cache: dict[int, TemplateDef]) -> None:
        while r.remaining >= 6:
            tid, scope_len, option_len = r.unpack(struct.Struct("!HHH"))
            if tid < 256 or scope_len % 4 or option_len % 4:
                raise DecodeError(f"v9 options template {tid}: scope length {scope_len}, option length {option_len}")
            fields = tuple(self._field(r, False) for _ in range((scope_len + option_len) // 4))
            tmpl = TemplateDef(tid, fields, scope_len // 4, options=True, v9_scope=True)
            cache[tid] = tmpl
            msg.templates.append(tmpl)
        r.padding(6)

    def _data(self, r: Reader, msg: Message, cache: dict[int, TemplateDef], set_id: int) -> None:
        tmpl = cache.get(set_id)
        if tmpl is None:
            msg.unknown_sets.append(set_id)
            r.read(r.remaining)
            return
        least = max(tmpl.min_length, 1)
        while r.remaining >= least:
            record: dict[str, Any] = {}
            for i, spec in enumerate(tmpl.fields):
                length = spec.length
                if length == VARIABLE:
                    length = r.uint(1)
                    if length == 255:
                        length = r.uint(2)
                value: Any
                if tmpl.v9_scope and i < tmpl.scope:
                    name = V9_SCOPES.get(spec.id, f"scope{spec.id}")
                    value = r.uint(length) if length <= 8 else r.read(length)
                else:
                    name, value = spec.name, _value(spec, r.read(length))
                if name in record:  # an element repeated in one template: keep every value, in order
                    previous = record[name]
                    record[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
                else:
                    record[name] = value
            (msg.options if tmpl.options else msg.records).append(record)
            msg.ordered.append(record)
        r.padding(least)


def _value(spec: FieldSpec, raw: bytes) -> Any:
    kind = spec.kind
    if kind in ("u", "ms", "s"):
        return int.from_bytes(raw, "big") if len(raw) <= 8 else raw
    if kind == "ipv4" and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if kind == "ipv6" and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    if kind == "mac" and len(raw) == 6:
        return ":".join(f"{b:02x}" for b in raw)
    if kind == "str":
        return raw.rstrip(b"\0").decode("utf-8", "replace")
    return raw


# -- tshark cross-checks ---------------------------------------------------------------------------

TSHARK: Final = shutil.which("tshark")
MAC_A: Final = b"\x02\x00\x00\x00\x00\x01"
MAC_B: Final = b"\x02\x00\x00\x00\x00\x02"


def _ip(src: str, dst: str, proto: int, payload: Any) -> Any:
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if a.version == 4:
        ip = dpkt.ip.IP(src=a.packed, dst=b.packed, p=proto, ttl=64, data=payload)
        ip.len = len(ip)
        return dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    ip6 = dpkt.ip6.IP6(src=a.packed, dst=b.packed, nxt=proto, hlim=64, data=payload)
    ip6.plen = len(payload)
    return dpkt.ethernet.Ethernet(src=MAC_A, dst=MAC_B, type=dpkt.ethernet.ETH_TYPE_IP6, data=ip6)


def write_udp_pcap(path: Path, datagrams: Sequence[bytes], *, src: str = "127.0.0.1", dst: str = "127.0.0.1",
                   sport: int = 50000, dport: int = 4739, ts: float = 1_700_000_000.0) -> None:
    """Each datagram as one Ethernet/IP/UDP frame from src:sport to dst:dport."""
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for i, datagram in enumerate(datagrams):
            udp = dpkt.udp.UDP(sport=sport, dport=dport, data=datagram)
            udp.ulen = len(udp)
            writer.writepkt(bytes(_ip(src, dst, dpkt.ip.IP_PROTO_UDP, udp)), ts=ts + i * 0.001)


def write_tcp_pcap(path: Path, stream: bytes, *, src: str = "127.0.0.1", dst: str = "127.0.0.1",
                   sport: int = 50000, dport: int = 4739, mss: int = 1448, ts: float = 1_700_000_000.0) -> None:
    """One TCP connection carrying ``stream``: handshake, MSS-sized segments each ACKed, FIN exchange.

    Segments cut messages anywhere, so tshark has to reassemble them as it would on a real capture.
    """
    frames: list[tuple[str, str, int, int, int, int, int, bytes]] = []
    cseq, sseq = 1000, 5000
    frames.append((src, dst, sport, dport, cseq, 0, dpkt.tcp.TH_SYN, b""))
    frames.append((dst, src, dport, sport, sseq, cseq + 1, dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, b""))
    cseq, sseq = cseq + 1, sseq + 1
    frames.append((src, dst, sport, dport, cseq, sseq, dpkt.tcp.TH_ACK, b""))
    for off in range(0, len(stream), mss):
        chunk = stream[off:off + mss]
        frames.append((src, dst, sport, dport, cseq, sseq, dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH, chunk))
        cseq += len(chunk)
        frames.append((dst, src, dport, sport, sseq, cseq, dpkt.tcp.TH_ACK, b""))
    frames.append((src, dst, sport, dport, cseq, sseq, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, b""))
    frames.append((dst, src, dport, sport, sseq, cseq + 1, dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, b""))
    frames.append((src, dst, sport, dport, cseq + 1, sseq + 1, dpkt.tcp.TH_ACK, b""))
    with path.open("wb") as f:
        writer = dpkt.pcap.Writer(f, linktype=dpkt.pcap.DLT_EN10MB)
        for i, (a, b, pa, pb, seq, ack, flags, data) in enumerate(frames):
            tcp = dpkt.tcp.TCP(sport=pa, dport=pb, seq=seq, ack=ack, flags=flags, win=65535, data=data)
            writer.writepkt(bytes(_ip(a, b, dpkt.ip.IP_PROTO_TCP, tcp)), ts=ts + i * 0.0001)


def tshark(*args: str) -> str:
    if TSHARK is None:
        raise RuntimeError("tshark is not installed")
    done = subprocess.run([TSHARK, "-n", *args], capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tshark failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return done.stdout


def decode_as(ports: Iterable[int], transport: str = "udp") -> list[str]:
    """tshark options that decode these ports as NetFlow/IPFIX."""
    return [a for port in sorted(set(ports)) for a in ("-d", f"{transport}.port=={port},cflow")]


def tshark_problems(pcap: Path, ports: Iterable[int], transport: str = "udp") -> str:
    """tshark's lines for frames with a malformed-packet mark or an expert note of warning or worse."""
    return tshark("-r", str(pcap), *decode_as(ports, transport), "-Y",
                  "_ws.malformed || _ws.expert.severity >= warning").strip()


def tshark_pdus(pcap: Path, ports: Iterable[int], transport: str = "udp") -> list[list[dict[str, Any]]]:
    """tshark's cflow layers, per frame (a TCP segment may complete several messages, or none)."""
    out = tshark("-r", str(pcap), *decode_as(ports, transport), "-T", "json", "--no-duplicate-keys")
    frames: list[list[dict[str, Any]]] = []
    for packet in json.loads(out or "[]"):
        layer = packet["_source"]["layers"].get("cflow", [])
        frames.append(layer if isinstance(layer, list) else [layer])
    return frames


def tshark_records(pdu: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    """The records tshark decoded in one PDU (v5 "pdu i/N", v9/IPFIX "Flow i" in data sets), and
    how many data sets it could not decode for lack of a template."""
    records: list[dict[str, Any]] = []
    missing = 0
    for key, value in pdu.items():
        if key.startswith("pdu "):
            records.append(value)
        elif key.startswith(("FlowSet ", "Set ")) and isinstance(value, dict):
            for inner, item in value.items():
                if inner.startswith("Flow "):
                    records.append(item)
                elif "no template found" in inner:
                    missing += 1
    return records, missing
