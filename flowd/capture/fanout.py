"""The classic-BPF PACKET_FANOUT program that sends every packet of a flow key to the same capture worker.

Kernel references: Documentation/networking/filter.rst (classic BPF, SKF_LL_OFF), net/packet/af_packet.c
(fanout_demux_bpf: the program's return value modulo the number of group members picks the socket),
include/uapi/linux/filter.h.

Why a program of our own
------------------------
The kernel's PACKET_FANOUT_HASH hashes the flow dissector's key, which has ports for a first IPv4
fragment and none for the others, so a fragmented datagram would be split between workers; the
PACKET_FANOUT_FLAG_DEFRAG cure reassembles the datagram into one packet, which then counts once where
file mode, Junos and the ground truth count every fragment. This program hashes what every packet of
a flow key shares whatever its shape: the source and destination address, and for IPv4 the protocol
(an IPv6 packet's protocol is found only at the end of its extension headers, so it is left out; a
hash of part of the key is still a function of the key). Fragments are never reassembled.

What it walks (the frame as packet sockets see it: the kernel has already taken the outer VLAN tag
off): on Ethernet, up to ``MAX_TAGS`` VLAN tags (TPID 0x8100, 0x88a8, 0x9100), then IPv4, IPv6, an MPLS
stack of up to ``MAX_LABELS`` labels (the first nibble after the bottom label: 4 IPv4, 6 IPv6) or a
PPPoE session (PPP protocol 0x0021 IPv4, 0x0057 IPv6); on raw-IP devices the version nibble decides.
Anything else (ARP, deeper stacks, a frame too short for the loads) returns 0, so it goes to the first
worker: such frames are dropped or counted by whichever worker gets them, and the counts are summed.

Loads are relative to the link-layer header (SKF_LL_OFF), so the program reads the same bytes whether
the kernel runs it with the data pointer at the link or at the network header.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from flowd.capture.layouts import LinkType

SKF_LL_OFF: Final = -0x200000  # load offsets relative to the link-layer (MAC) header
MAX_TAGS: Final = 8  # VLAN tags walked
MAX_LABELS: Final = 8  # MPLS labels walked
GOLDEN: Final = 0x9E3779B1  # multiplier of the final mix (2^32 / golden ratio, odd)

# instruction classes, sizes, modes, operations (linux/bpf_common.h)
LD, LDX, ST, ALU, JMP, RET, MISC = 0x00, 0x01, 0x02, 0x04, 0x05, 0x06, 0x07
W, H, B = 0x00, 0x08, 0x10
IMM, IND, MEM = 0x00, 0x40, 0x60
ADD, MUL, RSH, XOR = 0x00, 0x20, 0x70, 0xA0
JA, JEQ, JSET = 0x00, 0x10, 0x40
SRC_K, SRC_X, RET_A = 0x00, 0x08, 0x10
TAX, TXA = 0x00, 0x80

TPIDS: Final = (0x8100, 0x88A8, 0x9100)
ETH_IPV4, ETH_IPV6, ETH_MPLS, ETH_MPLS_MULTICAST, ETH_PPPOE = 0x0800, 0x86DD, 0x8847, 0x8848, 0x8864
PPP_IPV4, PPP_IPV6 = 0x0021, 0x0057
ETHERTYPE_AT: Final = 12
PPPOE_LEN: Final = 6  # version/type, code, session id, length; the PPP protocol follows
MPLS_ENTRY: Final = 4


@dataclass(frozen=True, slots=True)
class Insn:
    """One instruction; a jump names its targets by label (None: the next instruction)."""

    code: int
    k: int = 0
    jt: str | None = None
    jf: str | None = None


Line = Insn | str  # a str is a label for the instruction that follows it


def _assemble(lines: Sequence[Line]) -> list[tuple[int, int, int, int]]:
    labels: dict[str, int] = {}
    insns: list[Insn] = []
    for line in lines:
        if isinstance(line, str):
            labels[line] = len(insns)
        else:
            insns.append(line)
    out: list[tuple[int, int, int, int]] = []
    for at, insn in enumerate(insns):
        def rel(label: str | None) -> int:
            if label is None:
                return 0
            offset = labels[label] - at - 1
            if not 0 <= offset <= (0xFF if insn.code != JMP | JA else 0xFFFF_FFFF):
                raise ValueError(f"jump to {label} out of reach ({offset})")
            return offset
        if insn.code == JMP | JA:
            out.append((insn.code, 0, 0, rel(insn.jt)))
        else:
            out.append((insn.code, rel(insn.jt), rel(insn.jf), insn.k & 0xFFFF_FFFF))
    return out


def _ll(offset: int) -> int:
    return SKF_LL_OFF + offset


def _advance(n: int) -> list[Line]:
    """X += n."""
    return [Insn(MISC | TXA), Insn(ALU | ADD | SRC_K, n), Insn(MISC | TAX)]


def _hash(base: int) -> list[Line]:
    """The IPv4 and IPv6 blocks: the IP header starts at X + base; hash, mix and return."""
    v4 = [(12, W), (16, W), (9, B)]  # source, destination, protocol
    v6 = [(8 + 4 * i, W) for i in range(8)]  # source and destination, four words each
    lines: list[Line] = []
    for label, fields in (("ipv4", v4), ("ipv6", v6)):
        lines.append(label)
        for cell, (offset, size) in enumerate(fields):
            lines += [Insn(LD | size | IND, _ll(base + offset)), Insn(ST, cell)]
        lines.append(Insn(LD | W | MEM, 0))
        for cell in range(1, len(fields)):
            lines += [Insn(LDX | W | MEM, cell), Insn(ALU | XOR | SRC_X)]
        lines.append(Insn(JMP | JA, jt="mix"))
    lines += ["mix", Insn(MISC | TAX), Insn(ALU | RSH | SRC_K, 16), Insn(ALU | XOR | SRC_X),
              Insn(ALU | MUL | SRC_K, GOLDEN), Insn(ALU | RSH | SRC_K, 16), Insn(RET | RET_A)]
    return lines


def _ethernet() -> list[Line]:
    """X walks the ethertype field: the payload of the header it ends starts at X + 2."""
    lines: list[Line] = [Insn(LDX | W | IMM, ETHERTYPE_AT)]
    for i in range(MAX_TAGS):
        lines.append(Insn(LD | H | IND, _ll(0)))
        for tpid in TPIDS[:-1]:
            lines.append(Insn(JMP | JEQ | SRC_K, tpid, jt=f"tag{i}"))
        lines += [Insn(JMP | JEQ | SRC_K, TPIDS[-1], jt=f"tag{i}", jf="type"), f"tag{i}", *_advance(4)]
    lines += [Insn(LD | H | IND, _ll(0)),  # after MAX_TAGS tags: a further tag is "other"
              "type",
              Insn(JMP | JEQ | SRC_K, ETH_IPV4, jt="ipv4"),
              Insn(JMP | JEQ | SRC_K, ETH_IPV6, jt="ipv6"),
              Insn(JMP | JEQ | SRC_K, ETH_MPLS, jt="mpls"),
              Insn(JMP | JEQ | SRC_K, ETH_MPLS_MULTICAST, jt="mpls"),
              Insn(JMP | JEQ | SRC_K, ETH_PPPOE, jt="pppoe", jf="other"),
              "pppoe", Insn(LD | H | IND, _ll(2 + PPPOE_LEN)),
              Insn(JMP | JEQ | SRC_K, PPP_IPV4, jt="pppoe4"),
              Insn(JMP | JEQ | SRC_K, PPP_IPV6, jt="pppoe6", jf="other"),
              "pppoe4", *_advance(PPPOE_LEN + 2), Insn(JMP | JA, jt="ipv4"),
              "pppoe6", *_advance(PPPOE_LEN + 2), Insn(JMP | JA, jt="ipv6"),
              "mpls"]
    for _ in range(MAX_LABELS):  # the bottom-of-stack bit is the low bit of an entry's third byte
        lines += [Insn(LD | B | IND, _ll(2 + 2)), Insn(JMP | JSET | SRC_K, 1, jt="bottom"), *_advance(MPLS_ENTRY)]
    lines += [Insn(RET, 0),
              "bottom", *_advance(MPLS_ENTRY),
              Insn(LD | B | IND, _ll(2)), Insn(ALU | RSH | SRC_K, 4),
              Insn(JMP | JEQ | SRC_K, 4, jt="ipv4"),
              Insn(JMP | JEQ | SRC_K, 6, jt="ipv6", jf="other"),
              "other", Insn(RET, 0),
              *_hash(2)]
    return lines


def _raw() -> list[Line]:
    """A raw-IP device: the IP header is the frame's first byte."""
    return [Insn(LDX | W | IMM, 0), Insn(LD | B | IND, _ll(0)), Insn(ALU | RSH | SRC_K, 4),
            Insn(JMP | JEQ | SRC_K, 4, jt="ipv4"),
            Insn(JMP | JEQ | SRC_K, 6, jt="ipv6"),
            Insn(RET, 0), *_hash(0)]


def fanout_program(linktype: int) -> list[tuple[int, int, int, int]]:
    """The program for a device whose frames have this link type: (code, jt, jf, k) per instruction."""
    if linktype == LinkType.ETHERNET:
        return _assemble(_ethernet())
    if linktype == LinkType.RAW:
        return _assemble(_raw())
    raise ValueError(f"no fanout program for link type {linktype}")

