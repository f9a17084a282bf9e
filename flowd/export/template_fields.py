"""What each export template carries, as data: information-element rows per template type and where each value comes from.

The rows name IEs of flowd.export.ie; `SOURCES` maps each row's source name to a column of the
flow records (or a value computed from them). flowd.export.templates compiles these into wire layouts.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from flowd.export.ie import V9ScopeType
from flowd.export.timebase import epoch_ms, sysuptime_ms
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import DPORT, PROTO, SPORT, TOS, is_ipv4, u16_column

if TYPE_CHECKING:
    pass


class ExportFormat(Enum):
    """The two template-based wire formats; values are the config's ``FlowServer.version``."""

    V9 = "9"
    IPFIX = "ipfix"


class Carries(Enum):
    """Which rows of a FlowRecords batch a data template describes."""

    IPV4 = "ipv4"
    IPV6 = "ipv6"
    ANY = "any"


class SamplingAlgorithm(IntEnum):
    """IANA samplingAlgorithm (IE 35)."""

    DETERMINISTIC = 1
    RANDOM = 2


Row = tuple[str, str] | tuple[str, str, int]
Column = npt.NDArray[np.generic]
Source = Callable[[FlowRecords, float], Column]

ZERO: Final = "zero"  # no value in flowd: the element is sent as zeros

SET_HEADER: Final = struct.Struct("!HH")  # set (flowset) id, length in octets incl. padding
FIELD_SPEC: Final = struct.Struct("!HH")  # element id, length
TEMPLATE_HEADER: Final = struct.Struct("!HH")  # template id, field count
IPFIX_OPTIONS_HEADER: Final = struct.Struct("!HHH")  # template id, field count, scope field count
V9_OPTIONS_HEADER: Final = struct.Struct("!HHH")  # template id, scope length, option length (octets)
MIN_TEMPLATE_ID: Final = 256  # ids below are set ids (RFC 7011 §3.3.2, RFC 3954 §5.2)

# -- the templates (IPFIX flavour) ---------------------------------------------------------------

MPLS_LABELS: Final[tuple[Row, ...]] = (
    ("mplsTopLabelStackSection", "mpls_label_1"),  # the label-position slots; see template_for()
    ("mplsLabelStackSection2", "mpls_label_2"),
    ("mplsLabelStackSection3", "mpls_label_3"),
)

# The last elements of every flow template: the counters and the flow's times.
COUNTS_AND_TIMES: Final[tuple[Row, ...]] = (
    ("octetDeltaCount", "octets"),
    ("packetDeltaCount", "packets"),
    ("flowStartMilliseconds", "start_ms"),
    ("flowEndMilliseconds", "end_ms"),
)

# What the MPLS and bridge templates carry of the flow beside their own keys.
INTERFACES_AND_END: Final[tuple[Row, ...]] = (
    ("ingressInterface", "ingress_interface"),
    ("egressInterface", "egress_interface"),
    ("flowEndReason", "end_reason"),
    ("flowDirection", ZERO),
)

IPV4_FIELDS: Final[tuple[Row, ...]] = (
    ("sourceIPv4Address", "src_ipv4"),
    ("destinationIPv4Address", "dst_ipv4"),
    ("ipClassOfService", "tos"),
    ("protocolIdentifier", "protocol"),
    ("sourceTransportPort", "src_port"),
    ("destinationTransportPort", "dst_port"),
    ("icmpTypeCodeIPv4", "icmp_type_code"),
    ("ingressInterface", "ingress_interface"),
    ("vlanId", "vlan"),
    ("sourceIPv4PrefixLength", "src_mask"),
    ("destinationIPv4PrefixLength", "dst_mask"),
    ("bgpSourceAsNumber", "src_as"),
    ("bgpDestinationAsNumber", "dst_as"),
    ("ipNextHopIPv4Address", "next_hop_ipv4"),
    ("tcpControlBits", "tcp_flags"),
    ("egressInterface", "egress_interface"),
    ("minimumTTL", "ttl_min"),
    ("maximumTTL", "ttl_max"),
    ("flowEndReason", "end_reason"),
    ("ipVersion", "ip_version"),
    ("bgpNextHopIPv4Address", "bgp_next_hop_ipv4"),
    ("flowDirection", ZERO),  # 0 = ingress
    ("dot1qVlanId", "vlan"),
    ("dot1qCustomerVlanId", "inner_vlan"),
    ("fragmentIdentification", ZERO),
    *COUNTS_AND_TIMES,
)

IPV6_FIELDS: Final[tuple[Row, ...]] = (
    ("sourceIPv6Address", "src_ipv6"),
    ("destinationIPv6Address", "dst_ipv6"),
    ("ipClassOfService", "tos"),
    ("protocolIdentifier", "protocol"),
    ("sourceTransportPort", "src_port"),
    ("destinationTransportPort", "dst_port"),
    ("icmpTypeCodeIPv6", "icmp_type_code"),
    ("ingressInterface", "ingress_interface"),
    ("vlanId", "vlan"),
    ("sourceIPv6PrefixLength", "src_mask"),
    ("destinationIPv6PrefixLength", "dst_mask"),
    ("bgpSourceAsNumber", "src_as"),
    ("bgpDestinationAsNumber", "dst_as"),
    ("ipNextHopIPv6Address", "next_hop_ipv6"),
    ("tcpControlBits", "tcp_flags"),
    ("egressInterface", "egress_interface"),
    ("minimumTTL", "ttl_min"),
    ("maximumTTL", "ttl_max"),
    ("flowEndReason", "end_reason"),
    ("ipVersion", "ip_version"),
    ("bgpNextHopIPv6Address", "bgp_next_hop_ipv6"),
    ("flowDirection", ZERO),
    ("ipv6ExtensionHeaders", ZERO),  # the flow key does not keep the extension chain
    ("dot1qVlanId", "vlan"),
    ("dot1qCustomerVlanId", "inner_vlan"),
    *COUNTS_AND_TIMES,
)

MPLS_FIELDS: Final[tuple[Row, ...]] = (*MPLS_LABELS, *INTERFACES_AND_END, *COUNTS_AND_TIMES)

MPLS_IPV4_FIELDS: Final[tuple[Row, ...]] = (
    *MPLS_LABELS,
    *IPV4_FIELDS,
    ("mplsTopLabelIPv4Address", ZERO),
)

BRIDGE_FIELDS: Final[tuple[Row, ...]] = (
    ("destinationMacAddress", "dst_mac"),  # the flow's first packet's (flowd.core.frame_rules.frame_macs)
    ("sourceMacAddress", "src_mac"),
    ("ethernetType", "ethernet_type"),
    ("vlanId", "vlan"),
    ("dot1qVlanId", "vlan"),
    *INTERFACES_AND_END,
    *COUNTS_AND_TIMES,
)

PEER_AS_BILLING_FIELDS: Final[tuple[Row, ...]] = (
    ("ipClassOfService", "tos"),
    ("ingressInterface", "ingress_interface"),
    ("bgpNextAdjacentAsNumber", "dst_peer_as"),  # destination peer AS
    ("bgpNextHopIPv4Address", "bgp_next_hop_ipv4"),
    *COUNTS_AND_TIMES,
)

# The v9 flavour: the same rows with these replaced (keyed by IE name).
V9_SUBSTITUTES: Final[Mapping[str, Row]] = {
    "icmpTypeCodeIPv6": ("icmpTypeCodeIPv4", "icmp_type_code"),  # v9 ICMP_TYPE (32) is for both families
    "flowStartMilliseconds": ("flowStartSysUpTime", "start_uptime"),
    "flowEndMilliseconds": ("flowEndSysUpTime", "end_uptime"),
}

# Options template rows; sources name `OptionValues` fields. The first row is the scope.
OPTIONS_FIELDS: Final[tuple[Row, ...]] = (
    ("observationDomainId", "domain_id"),  # v9: System scope, the Source ID
    ("samplingInterval", "sampling_interval"),
    ("samplingAlgorithm", "sampling_algorithm"),
    ("flowActiveTimeout", "active_timeout"),
    ("flowInactiveTimeout", "inactive_timeout"),
    ("systemInitTimeMilliseconds", "system_init_ms"),
)
SAMPLED_FIELDS: Final[tuple[Row, ...]] = (  # only when 1-in-N with N > 1 (see the module docstring)
    ("samplingPacketInterval", "packet_interval"),  # RFC 5477 form of the same 1-in-N
    ("samplingPacketSpace", "packet_space"),
)
EXPORTER_ADDRESS_FIELD: Final = {4: ("exporterIPv4Address", "exporter_address"),
                                 6: ("exporterIPv6Address", "exporter_address")}
V9_SCOPES: Final[Mapping[str, V9ScopeType]] = {"observationDomainId": V9ScopeType.SYSTEM}


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """One template type: its rows (IPFIX flavour), the rows it carries and flowd's default ids."""

    kind: str  # the config's template_type
    rows: tuple[Row, ...]
    carries: Carries
    template_id: int
    options_template_id: int
    formats: frozenset[ExportFormat] = frozenset(ExportFormat)


SPECS: Final[Mapping[str, TemplateSpec]] = {spec.kind: spec for spec in (
    TemplateSpec("ipv4", IPV4_FIELDS, Carries.IPV4, 256, 512),
    TemplateSpec("ipv6", IPV6_FIELDS, Carries.IPV6, 257, 513),
    TemplateSpec("mpls", MPLS_FIELDS, Carries.ANY, 258, 514),
    TemplateSpec("mpls-ipv4", MPLS_IPV4_FIELDS, Carries.IPV4, 259, 515),
    TemplateSpec("bridge", BRIDGE_FIELDS, Carries.ANY, 260, 516),
    TemplateSpec("peer-as-billing", PEER_AS_BILLING_FIELDS, Carries.IPV4, 261, 517,
                 frozenset({ExportFormat.V9})),
)}
DEFAULT_KIND: Final = {"inet": "ipv4", "inet6": "ipv6"}  # `version9;` without a template
DEFAULT_DOMAIN: Final = {"inet": 1, "inet6": 2}  # Source ID / Observation Domain ID (module docstring)

# -- sources: FlowRecords -> one column per element -----------------------------------------------


def _icmp(r: FlowRecords) -> npt.NDArray[np.bool_]:
    proto = r.key[:, PROTO]
    icmp: npt.NDArray[np.bool_] = (proto == 1) | (proto == 58)
    return icmp


def _label(column: npt.NDArray[np.uint32]) -> Column:
    """Label stack entries (label << 4 | exp << 1 | s) → 3 big-endian octets each."""
    entry = column.astype(np.uint32)
    return np.stack([(entry >> 16) & 0xFF, (entry >> 8) & 0xFF, entry & 0xFF], axis=1).astype(np.uint8)


def _label_source(position: int) -> Source:
    if position <= 3:
        return lambda r, boot: _label(r.mpls[:, position - 1])
    return lambda r, boot: np.zeros((len(r), 3), np.uint8)  # FlowRecords keeps the top three


SOURCES: Final[Mapping[str, Source]] = {
    "src_ipv4": lambda r, boot: r.key[:, 12:16],
    "dst_ipv4": lambda r, boot: r.key[:, 28:32],
    "src_ipv6": lambda r, boot: r.key[:, 0:16],
    "dst_ipv6": lambda r, boot: r.key[:, 16:32],
    "tos": lambda r, boot: r.key[:, TOS],
    "protocol": lambda r, boot: r.key[:, PROTO],
    "src_port": lambda r, boot: np.where(_icmp(r), 0, u16_column(r.key, SPORT)),
    "dst_port": lambda r, boot: u16_column(r.key, DPORT),  # ICMP: type * 256 + code, as in v5
    "icmp_type_code": lambda r, boot: np.where(_icmp(r), u16_column(r.key, DPORT), 0),
    "ingress_interface": lambda r, boot: r.route_columns().input_if,
    "egress_interface": lambda r, boot: r.route_columns().output_if,
    "src_mask": lambda r, boot: r.route_columns().src_mask,
    "dst_mask": lambda r, boot: r.route_columns().dst_mask,
    "src_as": lambda r, boot: r.route_columns().src_origin_as,  # the server's AS type (FlowRoutes.as_type)
    "dst_as": lambda r, boot: r.route_columns().dst_origin_as,
    "dst_peer_as": lambda r, boot: r.route_columns().dst_peer_as,
    "next_hop_ipv4": lambda r, boot: r.route_columns().next_hop[:, 12:16],
    "next_hop_ipv6": lambda r, boot: r.route_columns().next_hop,
    "bgp_next_hop_ipv4": lambda r, boot: r.route_columns().bgp_next_hop[:, 12:16],
    "bgp_next_hop_ipv6": lambda r, boot: r.route_columns().bgp_next_hop,
    "tcp_flags": lambda r, boot: r.tcp_flags,
    "ttl_min": lambda r, boot: r.ttl_min,
    "ttl_max": lambda r, boot: r.ttl_max,
    "end_reason": lambda r, boot: r.end_reason,
    "ip_version": lambda r, boot: np.where(is_ipv4(r.key), np.uint8(4), np.uint8(6)),
    "vlan": lambda r, boot: r.vlan,
    "inner_vlan": lambda r, boot: r.inner_vlan,
    "octets": lambda r, boot: r.bytes,
    "packets": lambda r, boot: r.packets,
    "start_ms": lambda r, boot: epoch_ms(r.first),
    "end_ms": lambda r, boot: epoch_ms(r.last),
    "start_uptime": lambda r, boot: sysuptime_ms(r.first, boot),
    "end_uptime": lambda r, boot: sysuptime_ms(r.last, boot),
    "ethernet_type": lambda r, boot: np.where(is_ipv4(r.key), np.uint16(0x0800), np.uint16(0x86DD)),
    "dst_mac": lambda r, boot: r.mac_columns()[:, :6],
    "src_mac": lambda r, boot: r.mac_columns()[:, 6:],
    **{f"mpls_label_{p}": _label_source(p) for p in range(1, 9)},
}
