"""Why a frame was not accounted: one named counter each, printed by `show services accounting errors`."""

from __future__ import annotations

from enum import Enum


class DropReason(str, Enum):
    """Counter names; the value is the name used in control-socket replies."""

    NOT_IP = "not-ip"  # link layer carries something other than IPv4/IPv6 (ARP, LLDP, ...)
    NOT_IPV4 = "not-ipv4"  # IPv6 packet while only family inet is sampled
    NOT_IPV6 = "not-ipv6"  # IPv4 packet while only family inet6 is sampled
    HEADER_TOO_SMALL = "header-too-small"  # frame ends inside a link, IP or transport header
    BAD_IP_HEADER = "bad-ip-header"  # IP version/IHL/total length inconsistent
    # the IP length (IPv6: payload length + 40) claims more bytes than the frame carried on the wire, or
    # the IP packet ends inside its transport header (Linux ip_rcv InTruncatedPkts; RFC 1812 §5.2.2)
    TRUNCATED = "truncated"
    UNSUPPORTED_LINK_TYPE = "unsupported-link-type"  # capture link type flowd cannot decode
    NO_MEMORY = "no-memory"  # flow table full: packet of a new flow not accounted
    DISCARDED = "filter-discard"  # a firewall filter term said `discard`, or no term matched
