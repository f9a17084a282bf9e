"""The flow key: which packet fields make a flow, laid out as a fixed 40-byte row.

Junos keys a flow by input interface, source and destination address, protocol, ports and ToS.
flowd packs those into 40 bytes so a whole batch of keys is one (n, 40) uint8 array:

    offset  size  field
         0    16  source address (IPv4 as the IPv4-mapped IPv6 address ::ffff:a.b.c.d)
        16    16  destination address (same rule)
        32     2  source port, big-endian
        34     2  destination port, big-endian
        36     1  IP protocol (IPv6: the upper-layer protocol after extension headers)
        37     1  ToS byte / IPv6 traffic class
        38     2  input interface SNMP index, big-endian

Port normalisation, as cflowd v5 does it:
- TCP, UDP, SCTP, UDP-Lite: the transport ports.
- ICMP and ICMPv6: source port 0, destination port type*256 + code.
- Non-first IPv4 fragments, IPv6 fragments with a non-zero offset, and every other protocol: 0 and 0.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.model.record import Frozen

KEY_BYTES: Final = 40
SRC: Final = slice(0, 16)
DST: Final = slice(16, 32)
SPORT: Final = slice(32, 34)
DPORT: Final = slice(34, 36)
PROTO: Final = 36
TOS: Final = 37
IFINDEX: Final = slice(38, 40)

V4_MAPPED_PREFIX: Final = bytes(10) + b"\xff\xff"


def is_ipv4(keys: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """Which rows of an (n, 40) key array hold IPv4 addresses (both addresses IPv4-mapped)."""
    keys = np.ascontiguousarray(keys)
    words = keys.view(np.uint64)  # (n, 5): bytes 0-7 of the source, 16-23 of the destination are words 0, 2
    halves = keys.view(np.uint32)  # (n, 10): bytes 8-11 and 24-27 are halves 2 and 6
    marker = np.frombuffer(b"\0\0\xff\xff", np.uint32)[0]
    out: npt.NDArray[np.bool_] = ((words[:, 0] == 0) & (words[:, 2] == 0)
                                  & (halves[:, 2] == marker) & (halves[:, 6] == marker))
    return out


def u16_column(keys: npt.NDArray[np.uint8], field: slice) -> npt.NDArray[np.uint16]:
    """A big-endian 16-bit key field as a uint16 column."""
    high = keys[:, field.start].astype(np.uint16) << np.uint16(8)
    return high | keys[:, field.start + 1].astype(np.uint16)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FlowKey(Frozen):
    """One key in readable form (for shows, tests and slow paths)."""

    src: ipaddress.IPv4Address | ipaddress.IPv6Address
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address
    sport: int
    dport: int
    proto: int
    tos: int
    ifindex: int

    @property
    def version(self) -> int:
        return self.src.version

    def pack(self) -> bytes:
        """The 40-byte key row."""
        return (_addr16(self.src) + _addr16(self.dst) + self.sport.to_bytes(2, "big")
                + self.dport.to_bytes(2, "big") + bytes((self.proto, self.tos))
                + self.ifindex.to_bytes(2, "big"))

    @classmethod
    def unpack(cls, row: bytes | npt.NDArray[np.uint8]) -> FlowKey:
        raw = bytes(row)
        return cls(
            src=_addr(raw[SRC]), dst=_addr(raw[DST]),
            sport=int.from_bytes(raw[SPORT], "big"), dport=int.from_bytes(raw[DPORT], "big"),
            proto=raw[PROTO], tos=raw[TOS], ifindex=int.from_bytes(raw[IFINDEX], "big"),
        )


def _addr16(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    return V4_MAPPED_PREFIX + addr.packed if addr.version == 4 else addr.packed


def _addr(raw: bytes) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if raw[:12] == V4_MAPPED_PREFIX:
        return ipaddress.IPv4Address(raw[12:])
    return ipaddress.IPv6Address(raw)
