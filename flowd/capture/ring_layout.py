"""TPACKET_V3 ring layouts: the kernel constants, structs (native byte order) and errors of AF_PACKET capture."""

from __future__ import annotations

import struct
from enum import IntEnum, IntFlag
from typing import Final

import numpy as np

from flowd.capture.layouts import LinkType

# --- kernel constants -----------------------------------------------------------------------------

SOL_PACKET: Final = 263
ETH_P_ALL: Final = 0x0003
TPACKET_V3: Final = 2
TPACKET_ALIGNMENT: Final = 16
SO_ATTACH_FILTER: Final = 26
BPF_RET_K: Final = 0x06  # BPF_RET | BPF_K: accept the first k bytes of the packet (0 drops it)
PACKET_MR_PROMISC: Final = 1
VLAN_TAG_LEN: Final = 4
MAC_ADDRESSES_LEN: Final = 12  # destination + source MAC: a VLAN tag goes right after them
MAX_FANOUT_GROUP: Final = 0xFFFF


class PacketOption(IntEnum):
    """SOL_PACKET socket options (linux/if_packet.h)."""

    ADD_MEMBERSHIP = 1
    RX_RING = 5
    STATISTICS = 6
    VERSION = 10
    FANOUT = 18
    FANOUT_DATA = 22
    IGNORE_OUTGOING = 23


class TpStatus(IntFlag):
    """Block and packet status bits (linux/if_packet.h TP_STATUS_*)."""

    KERNEL = 0
    USER = 1 << 0
    COPY = 1 << 1
    LOSING = 1 << 2
    CSUMNOTREADY = 1 << 3
    VLAN_VALID = 1 << 4
    BLK_TMO = 1 << 5
    VLAN_TPID_VALID = 1 << 6
    CSUM_VALID = 1 << 7


class FanoutMode(IntEnum):
    """PACKET_FANOUT type and flag bits (the argument's upper 16 bits)."""

    HASH = 0
    CBPF = 6  # the group's classic-BPF program returns the member (modulo the member count)
    FLAG_DEFRAG = 0x8000


class Arphrd(IntEnum):
    """ARPHRD_* device types flowd can capture on (linux/if_arp.h)."""

    ETHER = 1
    PPP = 512
    RAWIP = 519
    TUNNEL = 768  # ipip
    TUNNEL6 = 769  # ip6tnl
    LOOPBACK = 772
    SIT = 776
    NONE = 0xFFFE  # tun, WireGuard: no link-layer header


# What a SOCK_RAW packet socket's frames start with, by the device's ARPHRD type.
LINKTYPE_OF_ARPHRD: Final[dict[int, int]] = {
    Arphrd.ETHER: LinkType.ETHERNET,
    Arphrd.LOOPBACK: LinkType.ETHERNET,  # lo carries all-zero Ethernet headers
    Arphrd.PPP: LinkType.RAW,
    Arphrd.RAWIP: LinkType.RAW,
    Arphrd.TUNNEL: LinkType.RAW,
    Arphrd.TUNNEL6: LinkType.RAW,
    Arphrd.SIT: LinkType.RAW,
    Arphrd.NONE: LinkType.RAW,
}

# --- wire layouts (native byte order: these are kernel structs, not wire formats) -----------------

# tpacket_req3: block size, block count, frame size, frame count, retire timeout (ms), sizeof_priv,
# feature request word
TPACKET_REQ3: Final = struct.Struct("=7I")
# tpacket_block_desc: version, offset_to_priv, then tpacket_hdr_v1: block_status, num_pkts,
# offset_to_first_pkt, blk_len, seq_num (u64), ts_first_pkt, ts_last_pkt (u32 sec + u32 nsec each)
BLOCK_DESC: Final = struct.Struct("=IIIIIIQIIII")
BLOCK_DESC_LEN: Final = 48
BLOCK_HEAD: Final = struct.Struct("=8xIIII")  # block_status, num_pkts, offset_to_first_pkt, blk_len
BLOCK_STATUS: Final = struct.Struct("=I")
BLOCK_STATUS_AT: Final = 8
BLOCK_RELEASED: Final = BLOCK_STATUS.pack(TpStatus.KERNEL)
HEADER_ALIGNMENT: Final = 8  # V3_ALIGNMENT: where the kernel puts each tpacket3_hdr in a block
TPACKET3_HDR_LEN: Final = 48  # 40 bytes of fields, 8 of padding
SOCKADDR_LL_LEN: Final = 20
TPACKET3_HDRLEN: Final = (TPACKET3_HDR_LEN + TPACKET_ALIGNMENT - 1) // TPACKET_ALIGNMENT * TPACKET_ALIGNMENT \
    + SOCKADDR_LL_LEN  # the kernel's tp_hdrlen: aligned header + the sockaddr_ll it stores after it
TPACKET3_HDR: Final = np.dtype({
    "names": ["next", "sec", "nsec", "snaplen", "len", "status", "mac", "net", "rxhash", "vlan_tci",
              "vlan_tpid"],
    "formats": [np.uint32, np.uint32, np.uint32, np.uint32, np.uint32, np.uint32, np.uint16, np.uint16,
                np.uint32, np.uint32, np.uint16],
    "offsets": [0, 4, 8, 12, 16, 20, 24, 26, 28, 32, 36],
    "itemsize": 40,
})
TPACKET_STATS_V3: Final = struct.Struct("=III")  # tp_packets (drops included), tp_drops, tp_freeze_q_cnt
# sockaddr_ll: family, protocol (network order), ifindex, hatype, pkttype, halen, address
SOCKADDR_LL: Final = struct.Struct("=H2siHBB8s")
PACKET_MREQ: Final = struct.Struct("=iHH8s")  # ifindex, type, address length, address
FANOUT_ARG: Final = struct.Struct("=I")  # group id | type and flags << 16


# --- errors ---------------------------------------------------------------------------------------

class LiveCaptureError(Exception):
    """A live capture cannot be opened (no capability, no such interface, the kernel refused a step)."""


class RingError(Exception):
    """A ring block is not laid out as the kernel lays blocks out (a bug, never traffic)."""


def permission_message(interface: str) -> str:
    """The one-line error for a missing CAP_NET_RAW, with the two ways to grant it."""
    return (f"{interface}: capturing needs CAP_NET_RAW; grant it with AmbientCapabilities=CAP_NET_RAW "
            f"in the systemd unit, or start flowd with `sudo setpriv --reuid=USER --regid=GROUP "
            f"--init-groups --inh-caps=+net_raw --ambient-caps=+net_raw flowd ...` "
            f"(setcap on a virtualenv's python does not carry over to it)")
