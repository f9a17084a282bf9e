"""IPFIX messages (RFC 7011): finished flows → a list of messages (UDP payloads or TCP stream chunks).

Layout: a 16-byte message header, then Sets (id, length, records; data sets end with zero padding
to 4 octets, always shorter than a record, §3.3.1; template and options template sets are never padded): Set 2 carries template records, Set 3 options template records,
Sets numbered by a template id (>= 256) carry data records. Everything is big-endian.

Header fields, as flowd fills them (§3.1):

* ``length``: the whole message in octets (at most ``max_size``, never above 65535).
* ``export_time``: ``now`` in whole seconds since the epoch. Flow times are absolute
  flowStart/EndMilliseconds (IE 152/153): collectors mis-read relative sysUpTime times in IPFIX
  (reference: peers.md §3, theme 1), so flowd never sends them in IPFIX.
* ``sequence``: Data Records (flow records and options data records) sent to this flow server in
  this Observation Domain before this message, modulo 2**32; template records do not count.
  tshark's sequence analysis counts the same way. nfcapd 1.7 advances its expectation by flow
  records only, so it reports one "sequence error" per options data record (one per option
  refresh: every 60 s or 4800 packets by default) although nothing was lost; flowd keeps to the RFC
  (tests/flowd/test_ipfix.py pins nfcapd's count exactly).
* ``observation_domain_id``: the template's `observation-domain-id`, else the family's default
  (ExportPlan.domain_id, flowd.export.templates).

Over UDP, templates and the options template (+ its data) are repeated on the ExportState's
schedule. Over TCP (an ExportState with ``stream=True``) each new connection starts with
``greeting()``: every template, the options template and the options data, before any data
(§8); the stream itself then carries only data sets (and the options data on its refresh schedule).
Each TCP connection is its own transport session: the greeting has sequence number 0 and the TCP
sender renumbers the messages it writes after it (``IpfixFraming.renumber``), so the sequence the
encoder kept only matters over UDP. ``IpfixFraming`` gives flowd.export.tcp what it needs to know
about the messages it carries.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

from flowd.export.limits import DATAGRAM_SIZE, U32_MAX
from flowd.export.sequence import U32_MODULUS, ExportState
from flowd.export.template_fields import SET_HEADER, ExportFormat
from flowd.export.messages import Header, Packet, encode_messages
from flowd.export.templates import ExportPlan, make_set, template_sets
from flowd.model.batch import FlowRecords

VERSION: Final = 10
IPFIX_HEADER: Final = struct.Struct("!HHIII")
#   H version (10)   H length (octets, whole message)   I export_time (s)
#   I sequence (data records before this message)   I observation_domain_id
_SEQUENCE: Final = struct.Struct("!I")
_SEQUENCE_AT: Final = 8  # offset of the sequence number in the header
MAX_SIZE: Final = DATAGRAM_SIZE  # default over UDP
MAX_MESSAGE: Final = 0xFFFF  # the length field's limit; a sensible max_size over TCP


class SetId(IntEnum):
    """Set ids below 256 (RFC 7011 §3.3.2); data Sets use their template id."""

    TEMPLATE = 2
    OPTIONS_TEMPLATE = 3


class MalformedMessage(ValueError):
    """Bytes handed to IpfixFraming are not one whole IPFIX message built from its plan."""


def _export_time(now: float) -> int:
    return int(round(now * 1e6) // 1_000_000) & U32_MAX


def encode_ipfix(records: FlowRecords, *, now: float, boot: float, state: ExportState, plan: ExportPlan,
                 max_size: int = MAX_SIZE) -> list[bytes]:
    """Encode ``records`` as IPFIX messages of at most ``max_size`` octets for one flow server.

    Rows the plan's template cannot carry are counted in ``state.not_carried``. With no records the
    result is one message when a refresh is due, else empty (call it on ``state.next_deadline()``
    to keep templates fresh while no flow expires).
    """
    if plan.format is not ExportFormat.IPFIX:
        raise ValueError("encode_ipfix needs a version-ipfix export plan")
    if not IPFIX_HEADER.size < max_size <= MAX_MESSAGE:
        raise ValueError(f"IPFIX message size {max_size}: expected {IPFIX_HEADER.size + 1}..{MAX_MESSAGE}")
    export_time = _export_time(now)

    def pack(packet: Packet, sequence: int) -> bytes:
        return IPFIX_HEADER.pack(VERSION, IPFIX_HEADER.size + len(packet.body), export_time, sequence,
                                 plan.domain_id)

    header = Header(IPFIX_HEADER.size, _SEQUENCE_AT, pack, lambda packet: packet.data_records)
    return encode_messages(records, now=now, boot=boot, state=state, plan=plan, max_size=max_size, header=header,
                           template_set_id=SetId.TEMPLATE, options_set_id=SetId.OPTIONS_TEMPLATE)


def greeting(plan: ExportPlan, *, now: float, boot: float) -> bytes:
    """The message a new TCP connection starts with: all templates, the options template and data.

    Its sequence number is 0: nothing was sent before it in this transport session (§3.1, §10.4).
    """
    templates, options = template_sets(plan, SetId.TEMPLATE, SetId.OPTIONS_TEMPLATE)
    body = templates + options + make_set(plan.options.template_id, [plan.options_record(boot)])
    return IPFIX_HEADER.pack(VERSION, IPFIX_HEADER.size + len(body), _export_time(now), 0,
                             plan.domain_id) + body


@dataclass(frozen=True, slots=True)
class IpfixFraming:
    """What the TCP sender needs to know about one flow server's messages (flowd.export.tcp.Framing)."""

    plan: ExportPlan
    boot: float

    def greeting(self, *, export_time: int) -> bytes:
        return greeting(self.plan, now=export_time, boot=self.boot)

    def sequence(self, message: bytes) -> int:
        """The header's sequence number."""
        return int(IPFIX_HEADER.unpack_from(message)[3])

    def export_time(self, message: bytes) -> int:
        """The header's export time (seconds since the epoch)."""
        return int(IPFIX_HEADER.unpack_from(message)[2])

    def renumber(self, message: bytes, sequence: int) -> bytes:
        """The same message with header sequence number ``sequence``."""
        if self.sequence(message) == sequence:
            return message
        return message[:_SEQUENCE_AT] + _SEQUENCE.pack(sequence % U32_MODULUS) + message[_SEQUENCE_AT + 4:]

    def data_records(self, message: bytes) -> int:
        """Data records (flow and options data): how far the message advances the sequence."""
        return sum(self._counts(message))

    def flow_records(self, message: bytes) -> int:
        """Flow data records only (what a lost message costs the collector)."""
        return self._counts(message)[0]

    def _counts(self, message: bytes) -> tuple[int, int]:
        """(flow records, options data records) in a message built from this plan."""
        if len(message) < IPFIX_HEADER.size:
            raise MalformedMessage(f"IPFIX message of {len(message)} octets is shorter than its header")
        version, length, _, _, _ = IPFIX_HEADER.unpack_from(message)
        if version != VERSION or length != len(message):
            raise MalformedMessage(f"not one IPFIX message (version {version}, length {length}, "
                                   f"{len(message)} octets given)")
        sizes = self.plan.record_sizes()
        flows = options = 0
        pos = IPFIX_HEADER.size
        while pos < length:
            set_id, set_length = SET_HEADER.unpack_from(message, pos)
            if set_length < SET_HEADER.size or pos + set_length > length:
                raise MalformedMessage(f"set {set_id} at offset {pos} has a bad length {set_length}")
            if set_id in sizes:
                n = (set_length - SET_HEADER.size) // sizes[set_id]
                if set_id == self.plan.options.template_id:
                    options += n
                else:
                    flows += n
            pos += set_length
        return flows, options
