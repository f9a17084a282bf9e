"""What generated traffic is made of: protocols and their shares, ports, addresses, header layouts, file constants."""

from __future__ import annotations

import struct
from typing import Final

import numpy as np
import numpy.typing as npt

I32 = npt.NDArray[np.int32]
Bools = npt.NDArray[np.bool_]

TCP: Final = 6
UDP: Final = 17
ICMP: Final = 1
ICMPV6: Final = 58
FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
FIN_OR_RST: Final = FIN | RST

PROTOCOL_MIX: Final = ((TCP, 0.70), (UDP, 0.25), (ICMP, 0.05))
PARETO_SHAPE: Final = 1.1
MAX_FLOW_SHARE: Final = 0.03  # no conversation carries more than this share of the packets
FIN_SHARE_OF_ENDINGS: Final = 0.8  # the rest of the closing TCP conversations end with RST
MTU: Final = 1500
MIN_FRAME: Final = 60  # Ethernet minimum without FCS: shorter frames are zero-padded
FRAGMENT_PAYLOAD: Final = 1480  # IP payload of a first fragment (total length 1500, IHL 5)
FRAGMENT_PAYLOAD_V6: Final = 1440  # fragmentable part of an IPv6 first fragment (a multiple of 8)
# Longest header stack written: Ethernet 14 + QinQ 8 + 3 MPLS labels 12 + IPv4 with 40 bytes of
# options 60 + TCP 20. A snap length below this would cut accountable packets inside a header.
MAX_HEADER: Final = 114
MAX_WIRE: Final = 14 + 8 + 12 + MTU

ETH_DST: Final = bytes.fromhex("00005e005301")  # RFC 7042 documentation MAC addresses
ETH_SRC: Final = bytes.fromhex("00005e005302")
ETHERTYPE_IPV4: Final = 0x0800
ETHERTYPE_ARP: Final = 0x0806
ETHERTYPE_VLAN: Final = 0x8100
ETHERTYPE_QINQ: Final = 0x88A8
ETHERTYPE_IPV6: Final = 0x86DD
ETHERTYPE_MPLS: Final = 0x8847
IPV4_DF: Final = 0x4000
IPV4_MF: Final = 0x2000
ROUTER_ALERT: Final = bytes((0x94, 0x04, 0x00, 0x00))  # IPv4 option, RFC 2113
IPV4_NOP: Final = 0x01
HOP_BY_HOP: Final = 0
IPV6_FRAGMENT: Final = 44  # the fragment extension header (8 bytes: next header, 0, offset|M, identification)
HOP_BY_HOP_BODY: Final = bytes((0, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00))  # len 0, Router Alert, PadN

V4_SRC_BASE: Final = 0xC6120000  # 198.18.0.0/16
V4_DST_BASE: Final = 0xC6130000  # 198.19.0.0/16
V6_SRC_PREFIX: Final = bytes.fromhex("20010db80000")  # 2001:db8:0::/48
V6_DST_PREFIX: Final = bytes.fromhex("20010db80001")  # 2001:db8:1::/48

TCP_PORTS: Final = ((443, 0.45), (80, 0.25), (22, 0.05), (25, 0.05), (8080, 0.05), (993, 0.05),
                    (3306, 0.05), (5432, 0.05))
UDP_PORTS: Final = ((53, 0.40), (443, 0.25), (123, 0.10), (514, 0.05), (161, 0.05), (4789, 0.05),
                    (5060, 0.10))
ICMP_TYPES: Final = (((8, 0), 0.6), ((0, 0), 0.3), ((3, 3), 0.05), ((11, 0), 0.05))
ICMPV6_TYPES: Final = (((128, 0), 0.6), ((129, 0), 0.3), ((1, 4), 0.05), ((3, 0), 0.05))
TOS_MIX: Final = ((0x00, 0.85), (0x10, 0.04), (0x28, 0.04), (0x48, 0.03), (0xB8, 0.03), (0x02, 0.01))

PCAP_HEADER: Final = struct.Struct("<IHHiIII")  # magic, major, minor, thiszone, sigfigs, snaplen, linktype
PCAP_MAGIC_USEC: Final = 0xA1B2C3D4
LINKTYPE_ETHERNET: Final = 1
CHUNK_BYTES: Final = 32 * 1024 * 1024  # frame matrix size per assembly step
SIDECAR_FORMAT: Final = "flowd-synth-truth/2"  # 2: the counts include truncated frames
SIDECAR_SUFFIX: Final = ".truth.npz"
