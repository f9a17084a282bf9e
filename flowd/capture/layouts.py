"""Capture-file wire layouts: pcap and pcapng headers, block types, link types, and the errors a reader raises.

Formats: pcap as in draft-ietf-opsawg-pcap (§4 file header, §5 packet record) and pcapng as in
draft-ietf-opsawg-pcapng (§4.1 SHB, §4.2 IDB, §4.3 EPB, §4.4 SPB, Appendix A obsolete PB).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Final

from flowd.model.record import Frozen

MAX_CAPLEN: Final = 256 * 1024  # libpcap's MAXIMUM_SNAPLEN: a longer pcap record is damage
MAX_BLOCK: Final = 16 * 1024 * 1024  # a longer pcapng block is damage (bounds memory per block)

STDIN_PATH: Final = "-"
STDIN_NAME: Final = "<stdin>"


class CaptureError(Exception):
    """A capture file is missing, unreadable, of unknown format, damaged or truncated."""

    def __init__(self, offset: int, message: str) -> None:
        super().__init__(message)
        self.offset = offset  # byte offset of the damage in the (decompressed) stream
        self.message = message  # one line, starting with the file name

    def __str__(self) -> str:
        return self.message


class CaptureUnreadable(CaptureError):
    """The capture file cannot be opened or read at all (missing, no permission, no standard input)."""


class CaptureFormat(Enum):
    PCAP = "pcap"
    PCAPNG = "pcapng"


class LinkType(IntEnum):
    """LINKTYPE_* numbers flowd's decoder knows; the reader passes every number through as is."""

    NULL = 0  # BSD loopback: 4-byte address family in host byte order
    ETHERNET = 1
    RAW_DLT12 = 12  # DLT_RAW on most systems; written into some files as if it were a LINKTYPE
    RAW_DLT14 = 14  # DLT_RAW on OpenBSD
    RAW = 101  # raw IPv4 or IPv6, version nibble decides
    LOOP = 108  # OpenBSD loopback: 4-byte address family in network byte order
    LINUX_SLL = 113
    IPV4 = 228
    IPV6 = 229
    LINUX_SLL2 = 276


# --- wire layouts -----------------------------------------------------------------------------

GZIP_MAGIC: Final = b"\x1f\x8b"
PCAPNG_SHB_TYPE: Final = 0x0A0D0D0A  # byte-order independent (a palindrome)
PCAPNG_MAGIC: Final = b"\x0a\x0d\x0d\x0a"
PCAPNG_BOM: Final = 0x1A2B3C4D
PCAPNG_BOM_SWAPPED: Final = 0x4D3C2B1A  # the byte-order magic read in the wrong byte order

# pcap magic bytes as they appear in the file -> (byte order, timestamp fraction units per second)
PCAP_MAGICS: Final = {
    b"\xd4\xc3\xb2\xa1": ("<", 1_000_000),
    b"\xa1\xb2\xc3\xd4": (">", 1_000_000),
    b"\x4d\x3c\xb2\xa1": ("<", 1_000_000_000),
    b"\xa1\xb2\x3c\x4d": (">", 1_000_000_000),
}
PCAP_FILE_HEADER_LEN: Final = 24
PCAP_RECORD_HEADER_LEN: Final = 16
# after the magic: version major, minor, thiszone, sigfigs, snaplen, link-type word
PCAP_FILE_HEADER: Final = {order: struct.Struct(order + "4xHHiIII") for order in "<>"}
PCAP_VERSIONS_OK: Final = ((2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (543, 0))  # as libpcap
LINKTYPE_MASK: Final = 0x0000FFFF  # the link-type word: FCS length in bits 28-31, F bit 26
LINKTYPE_RESERVED: Final = 0x03FF0000  # must be zero (libpcap rejects the file otherwise)
PCAPNG_VERSIONS_OK: Final = ((1, 0), (1, 2))  # as libpcap


class BlockType(IntEnum):
    """pcapng block types this reader interprets; every other block is skipped."""

    IDB = 1
    PB = 2  # obsolete Packet Block
    SPB = 3
    EPB = 6
    SHB = PCAPNG_SHB_TYPE


class IdbOption(IntEnum):
    END = 0
    IF_TSRESOL = 9
    IF_TSOFFSET = 14


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class PcapngLayout(Frozen):
    """The struct layouts of one pcapng byte order (each section picks one)."""

    order: str  # "<" or ">"
    u32: struct.Struct
    block_head: struct.Struct  # type, total length
    shb: struct.Struct  # byte-order magic, major, minor, section length
    idb: struct.Struct  # link type, reserved, snaplen
    epb: struct.Struct  # interface id, ts high, ts low, captured length, original length
    pb: struct.Struct  # interface id (u16), drops (u16), ts high, ts low, captured, original
    option: struct.Struct  # code, length
    tsoffset: struct.Struct

    @staticmethod
    def of(order: str) -> PcapngLayout:
        return PcapngLayout(
            order=order, u32=struct.Struct(order + "I"), block_head=struct.Struct(order + "II"),
            shb=struct.Struct(order + "IHHq"), idb=struct.Struct(order + "HHI"),
            epb=struct.Struct(order + "IIIII"), pb=struct.Struct(order + "HHIIII"),
            option=struct.Struct(order + "HH"), tsoffset=struct.Struct(order + "q"),
        )


PCAPNG_LAYOUTS: Final = {"<": PcapngLayout.of("<"), ">": PcapngLayout.of(">")}
SHB_MIN_LEN: Final = 28  # type, length, BOM, major, minor, section length, trailer
IDB_MIN_LEN: Final = 20  # type, length, link type, reserved, snaplen, trailer
EPB_MIN_LEN: Final = 32  # type, length, 5 x u32 fields, trailer
SPB_MIN_LEN: Final = 16  # type, length, original length, trailer
EPB_RUN_MIN: Final = 8  # shorter runs of EPBs are parsed one by one

Buffer = bytes | mmap.mmap
