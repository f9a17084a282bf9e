"""The information elements flowd exports: one row per IANA IPFIX IE (name, id, abstract type, length).

Source: the IANA "IPFIX Information Elements" registry (RFC 7012 data types, RFC 7011 encodings).
NetFlow v9 (RFC 3954) uses the same numbers for its field types 1..127 and collectors (Wireshark,
nfdump, goflow2, pmacct) accept the IPFIX numbers above 127 in v9 templates too, so v9 and IPFIX
share this one table; there is no second v9 field-type list.

``length`` is the length flowd sends by default. Where it differs from the IANA natural size the
row says why:

* ``tcpControlBits`` (6) is unsigned16 in IANA (RFC 7125 / RFC 9565: the NS/ECE/CWR bits live in the
  high octet), but flowd sends it in one octet, in v9 and IPFIX alike (reduced-size encoding, RFC
  7011 §6.2), as Junos's templates do: NetFlow v9 defines TCP_FLAGS as one octet (RFC 3954 §8), and
  collectors that read the element at a fixed size (pmacct's nfacctd) see every flag as 0 in a
  2-octet field. FlowRecords keeps the 8 classic flag bits, so nothing is lost.
* ``mplsTopLabelStackSection`` / ``mplsLabelStackSection2`` / ``3`` (70-72) are octetArrays of one
  label stack entry: 3 octets, label (20 bits) | EXP/TC (3) | bottom-of-stack (1), as RFC 3954
  defines MPLS_LABEL_1..3.
* Counters (1, 2) are 8 octets: a flow never saturates them, unlike v5's 32-bit fields.

v9 Options Template scope fields are not IEs: RFC 3954 §6.1 numbers them separately
(``V9ScopeType``); flowd's options templates name the IPFIX scope (``observationDomainId``) and the
v9 encoder maps it to the System scope.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np


@dataclass(frozen=True, slots=True)
class IE:
    """One IANA information element."""

    name: str
    id: int
    type: str  # IANA abstract data type
    length: int  # octets flowd sends unless a template asks for a reduced size


IES: Final = (
    IE("octetDeltaCount", 1, "unsigned64", 8),
    IE("packetDeltaCount", 2, "unsigned64", 8),
    IE("protocolIdentifier", 4, "unsigned8", 1),
    IE("ipClassOfService", 5, "unsigned8", 1),
    IE("tcpControlBits", 6, "unsigned16", 1),  # reduced size, v9 and IPFIX (see module docstring)
    IE("sourceTransportPort", 7, "unsigned16", 2),
    IE("sourceIPv4Address", 8, "ipv4Address", 4),
    IE("sourceIPv4PrefixLength", 9, "unsigned8", 1),
    IE("ingressInterface", 10, "unsigned32", 4),
    IE("destinationTransportPort", 11, "unsigned16", 2),
    IE("destinationIPv4Address", 12, "ipv4Address", 4),
    IE("destinationIPv4PrefixLength", 13, "unsigned8", 1),
    IE("egressInterface", 14, "unsigned32", 4),
    IE("ipNextHopIPv4Address", 15, "ipv4Address", 4),
    IE("bgpSourceAsNumber", 16, "unsigned32", 4),
    IE("bgpDestinationAsNumber", 17, "unsigned32", 4),
    IE("bgpNextHopIPv4Address", 18, "ipv4Address", 4),
    IE("flowEndSysUpTime", 21, "unsigned32", 4),  # v9 LAST_SWITCHED: ms of sysUptime
    IE("flowStartSysUpTime", 22, "unsigned32", 4),  # v9 FIRST_SWITCHED
    IE("sourceIPv6Address", 27, "ipv6Address", 16),
    IE("destinationIPv6Address", 28, "ipv6Address", 16),
    IE("sourceIPv6PrefixLength", 29, "unsigned8", 1),
    IE("destinationIPv6PrefixLength", 30, "unsigned8", 1),
    IE("icmpTypeCodeIPv4", 32, "unsigned16", 2),  # type * 256 + code
    IE("samplingInterval", 34, "unsigned32", 4),
    IE("samplingAlgorithm", 35, "unsigned8", 1),  # 1 deterministic, 2 random
    IE("flowActiveTimeout", 36, "unsigned16", 2),  # seconds
    IE("flowInactiveTimeout", 37, "unsigned16", 2),  # seconds
    IE("mplsTopLabelIPv4Address", 47, "ipv4Address", 4),
    IE("minimumTTL", 52, "unsigned8", 1),
    IE("maximumTTL", 53, "unsigned8", 1),
    IE("fragmentIdentification", 54, "unsigned32", 4),
    IE("sourceMacAddress", 56, "macAddress", 6),
    IE("vlanId", 58, "unsigned16", 2),
    IE("ipVersion", 60, "unsigned8", 1),
    IE("flowDirection", 61, "unsigned8", 1),  # 0 ingress, 1 egress
    IE("ipNextHopIPv6Address", 62, "ipv6Address", 16),
    IE("bgpNextHopIPv6Address", 63, "ipv6Address", 16),
    IE("ipv6ExtensionHeaders", 64, "unsigned32", 4),
    IE("mplsTopLabelStackSection", 70, "octetArray", 3),
    IE("mplsLabelStackSection2", 71, "octetArray", 3),
    IE("mplsLabelStackSection3", 72, "octetArray", 3),
    IE("destinationMacAddress", 80, "macAddress", 6),
    IE("bgpNextAdjacentAsNumber", 128, "unsigned32", 4),  # peer-as-billing "destination peer AS"
    IE("exporterIPv4Address", 130, "ipv4Address", 4),
    IE("exporterIPv6Address", 131, "ipv6Address", 16),
    IE("flowEndReason", 136, "unsigned8", 1),  # flowd.model.expiry.ExpiryReason values
    IE("icmpTypeCodeIPv6", 139, "unsigned16", 2),
    IE("observationDomainId", 149, "unsigned32", 4),
    IE("flowStartMilliseconds", 152, "dateTimeMilliseconds", 8),
    IE("flowEndMilliseconds", 153, "dateTimeMilliseconds", 8),
    IE("systemInitTimeMilliseconds", 160, "dateTimeMilliseconds", 8),
    IE("dot1qVlanId", 243, "unsigned16", 2),
    IE("dot1qCustomerVlanId", 245, "unsigned16", 2),
    IE("ethernetType", 256, "unsigned16", 2),
    IE("samplingPacketInterval", 305, "unsigned32", 4),  # RFC 5477: packets selected in a row (1)
    IE("samplingPacketSpace", 306, "unsigned32", 4),  # RFC 5477: packets skipped after them (N - 1)
)

BY_NAME: Final = {ie.name: ie for ie in IES}
BY_ID: Final = {ie.id: ie for ie in IES}

# Which encoded lengths each abstract type allows (RFC 7011 §6.1; unsigned types may be reduced).
UNSIGNED_SIZES: Final = {"unsigned8": (1,), "unsigned16": (1, 2), "unsigned32": (1, 2, 4),
                         "unsigned64": (1, 2, 4, 8)}
BYTES_SIZES: Final = {"ipv4Address": 4, "ipv6Address": 16, "macAddress": 6}
_UNSIGNED_DTYPES: Final[dict[int, np.dtype[np.generic]]] = {
    1: np.dtype("u1"), 2: np.dtype(">u2"), 4: np.dtype(">u4"), 8: np.dtype(">u8")}
_OCTET: Final[np.dtype[np.generic]] = np.dtype("u1")


class V9ScopeType(IntEnum):
    """NetFlow v9 Options Template scope field types (RFC 3954 §6.1)."""

    SYSTEM = 1
    INTERFACE = 2
    LINE_CARD = 3
    CACHE = 4
    TEMPLATE = 5


class UnknownElement(KeyError):
    """A template names an information element that is not in ``IES``."""

    def __str__(self) -> str:
        return f"unknown information element {self.args[0]!r}"


def lookup(name: str) -> IE:
    """The IE called ``name``; `UnknownElement` if flowd does not know it."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UnknownElement(name) from None


def field_dtype(ie: IE, length: int) -> tuple[np.dtype[np.generic], tuple[int, ...]]:
    """The numpy (dtype, shape) that holds ``ie`` encoded in ``length`` octets, big-endian.

    Unsigned integers (and dateTimeMilliseconds, an unsigned64 count of ms) become scalar big-endian
    columns; addresses and octet arrays become ``length`` raw bytes.
    """
    if ie.type in UNSIGNED_SIZES:
        if length not in UNSIGNED_SIZES[ie.type]:
            raise ValueError(f"{ie.name}: {ie.type} cannot be encoded in {length} octets")
        return _UNSIGNED_DTYPES[length], ()
    if ie.type == "dateTimeMilliseconds":
        if length != 8:
            raise ValueError(f"{ie.name}: dateTimeMilliseconds takes 8 octets, not {length}")
        return _UNSIGNED_DTYPES[8], ()
    if ie.type in BYTES_SIZES:
        if length != BYTES_SIZES[ie.type]:
            raise ValueError(f"{ie.name}: {ie.type} takes {BYTES_SIZES[ie.type]} octets, not {length}")
        return _OCTET, (length,)
    if ie.type == "octetArray":
        if not 1 <= length < 0xFFFF:
            raise ValueError(f"{ie.name}: octetArray length must be 1..65534, not {length}")
        return _OCTET, (length,)
    raise ValueError(f"{ie.name}: abstract type {ie.type} is not supported by the encoder")
