"""The PACKET_FANOUT program (flowd.capture.fanout), run by a classic-BPF interpreter written here from the
kernel's definition (Documentation/networking/filter.rst), on frames as packet sockets see them.

The rule under test: every packet of a flow key gets the same member, whatever its shape (VLAN tags,
QinQ, MPLS, PPPoE, IPv4 and IPv6 fragments, IPv6 extension headers), and the members are used. The
kernel runs the same program in tests/flowd/test_live.py and tests/integration/test_live_daemon.py.
"""

from __future__ import annotations

import collections
import struct
from collections.abc import Sequence
from pathlib import Path

import pytest

from flowd.capture.fanout import SKF_LL_OFF, fanout_program
from flowd.capture.files import open_capture
from flowd.capture.layouts import LinkType
from flowd.core.decode import decode_frame
from flowd.model.drops import DropReason
from flowd.testing.synth import SynthSpec, write_capture

MASK = 0xFFFF_FFFF
TPIDS = (b"\x81\x00", b"\x88\xa8", b"\x91\x00")


class Abort(Exception):
    """A load outside the packet: the kernel's program returns 0."""


def run(program: Sequence[tuple[int, int, int, int]], frame: bytes) -> int:
    """Classic BPF over ``frame`` (the link-layer header first); loads must be SKF_LL_OFF-relative."""
    a = x = 0
    mem = [0] * 16
    pc = 0

    def load(offset: int, size: int) -> int:
        offset = (offset + (1 << 31)) % (1 << 32) - (1 << 31)  # the kernel adds X + k as an int
        assert offset < 0, "the program must load relative to the link-layer header"
        at = offset - SKF_LL_OFF
        if at < 0 or at + size > len(frame):
            raise Abort
        return int.from_bytes(frame[at:at + size], "big")

    sizes = {0x00: 4, 0x08: 2, 0x10: 1}
    try:
        while True:
            code, jt, jf, k = program[pc]
            pc += 1
            cls = code & 0x07
            if cls == 0x00:  # LD
                mode = code & 0xE0
                if mode == 0x40:
                    a = load(x + k, sizes[code & 0x18])
                elif mode == 0x20:
                    a = load(k - (1 << 32) if k >> 31 else k, sizes[code & 0x18])
                elif mode == 0x60:
                    a = mem[k]
                else:
                    a = k
            elif cls == 0x01:  # LDX
                x = mem[k] if code & 0xE0 == 0x60 else k
            elif cls == 0x02:
                mem[k] = a
            elif cls == 0x04:  # ALU
                operand = x if code & 0x08 else k
                op = code & 0xF0
                ops = {0x00: int.__add__, 0x20: int.__mul__, 0x70: int.__rshift__, 0xA0: int.__xor__,
                       0x50: int.__and__}
                a = ops[op](a, operand) & MASK
            elif cls == 0x05:  # JMP
                op = code & 0xF0
                if op == 0x00:
                    pc += k
                else:
                    taken = a == k if op == 0x10 else bool(a & k) if op == 0x40 else a > k
                    pc += jt if taken else jf
            elif cls == 0x06:  # RET
                return a if code & 0x18 == 0x10 else k
            elif cls == 0x07:
                if code & 0xF8 == 0x80:
                    a = x
                else:
                    x = a
            else:
                raise AssertionError(f"unexpected instruction {code:#x}")
    except Abort:
        return 0


def as_socket_sees(frame: bytes) -> bytes:
    """The kernel takes the outer VLAN tag off before packet sockets (and the fanout) see a frame."""
    if frame[12:14] in TPIDS:
        return frame[:12] + frame[16:]
    return frame


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("fanout") / "mixed.pcap"
    write_capture(SynthSpec(packets=20_000, flows=2_000, fragment_share=0.05, qinq_share=0.05,
                            mpls_share=0.05, hop_by_hop_share=0.2, ipv6_share=0.3, seed=3), path)
    return path


def frames(path: Path) -> list[bytes]:
    out: list[bytes] = []
    with open_capture(str(path)) as reader:
        for batch in reader.batches(65536):
            out += [bytes(batch.buf[o:o + c]) for o, c in zip(batch.offset.tolist(), batch.caplen.tolist())]
    return out


def members(program: Sequence[tuple[int, int, int, int]], frame_list: list[bytes], linktype: int
            ) -> dict[bytes, set[int]]:
    """The program's value for every accountable frame, by flow key."""
    seen: dict[bytes, set[int]] = collections.defaultdict(set)
    for frame in frame_list:
        packet = decode_frame(frame, linktype)
        if isinstance(packet, DropReason):
            continue
        seen[packet.key].add(run(program, as_socket_sees(frame)))
    return seen


def test_every_packet_of_a_flow_key_gets_one_member(mixed: Path) -> None:
    program = fanout_program(LinkType.ETHERNET)
    seen = members(program, frames(mixed), LinkType.ETHERNET)
    assert len(seen) > 1000
    split = {k: v for k, v in seen.items() if len(v) > 1}
    assert not split, f"{len(split)} flow keys get several values, e.g. {list(split.items())[:2]}"
    values = [next(iter(v)) for v in seen.values()]
    for members_count in (2, 3, 4):
        shares = collections.Counter(v % members_count for v in values)
        assert len(shares) == members_count and min(shares.values()) > len(values) / members_count / 2, shares


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, offset: int = 0, more: bool = False) -> bytes:
    flags = (0x2000 if more else 0) | offset
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 7, flags, 64, proto, 0, src, dst) + payload


def ipv6(src: bytes, dst: bytes, nxt: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), nxt, 64, src, dst) + payload


ETH = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"


def shapes(ip: bytes, version: int) -> list[bytes]:
    """One IP packet behind every link-layer shape the program walks."""
    etype = b"\x08\x00" if version == 4 else b"\x86\xdd"
    ppp = b"\x00\x21" if version == 4 else b"\x00\x57"
    pppoe = b"\x88\x64" + struct.pack("!BBHH", 0x11, 0, 0x1234, len(ip) + 2) + ppp + ip
    tags = [b"\x81\x00\x00\x0a", b"\x88\xa8\x00\x0b\x81\x00\x00\x0c", b"\x91\x00\x00\x01" * 3]
    mpls = [struct.pack("!I", 100 << 12 | 1 << 8 | 64), struct.pack("!II", 100 << 12 | 64, 200 << 12 | 1 << 8 | 64)]
    out = [ETH + etype + ip, ETH + pppoe]
    out += [ETH + tag + etype + ip for tag in tags] + [ETH + tag + pppoe for tag in tags]
    out += [ETH + b"\x88\x47" + stack + ip for stack in mpls] + [ETH + tags[0] + b"\x88\x48" + mpls[1] + ip]
    return out


def test_fragments_and_encapsulations_of_one_key_agree() -> None:
    program = fanout_program(LinkType.ETHERNET)
    raw = fanout_program(LinkType.RAW)
    for n in range(64):  # several address pairs, so a constant program would fail the spread check
        s4, d4 = bytes([198, 18, n, 1]), bytes([198, 19, 0, n])
        s6, d6 = bytes([0x20, 0x01, 0x0d, 0xb8]) + bytes(11) + bytes([n]), bytes([0x20, 0x01, 0x0d, 0xb8]) + bytes(12)
        udp = struct.pack("!HHHH", 1000 + n, 53, 16, 0) + bytes(8)
        first = ipv4(s4, d4, 17, udp, more=True)
        later = ipv4(s4, d4, 17, bytes(16), offset=2)
        frag6 = struct.pack("!BBHI", 17, 0, 0x0001, 9) + udp  # fragment header, offset 0, more
        frag6_later = struct.pack("!BBHI", 17, 0, 0x0010, 9) + bytes(16)
        hop = struct.pack("!BB6x", 17, 0) + udp
        v4 = {run(program, as_socket_sees(f)) for ip in (first, later) for f in shapes(ip, 4)}
        v4 |= {run(raw, ip) for ip in (first, later)}
        v6 = {run(program, as_socket_sees(f)) for ip in (ipv6(s6, d6, 44, frag6), ipv6(s6, d6, 44, frag6_later),
                                                          ipv6(s6, d6, 0, hop), ipv6(s6, d6, 17, udp))
              for f in shapes(ip, 6)}
        v6 |= {run(raw, ipv6(s6, d6, 17, udp))}
        assert len(v4) == 1 and len(v6) == 1, (n, v4, v6)


def test_frames_it_cannot_place_go_to_the_first_member() -> None:
    program = fanout_program(LinkType.ETHERNET)
    arp = ETH + b"\x08\x06" + bytes(28)
    deep = ETH + b"\x81\x00\x00\x01" * 10 + b"\x08\x00" + ipv4(bytes(4), bytes(4), 6, bytes(20))
    short = ETH + b"\x08\x00" + bytes(10)
    assert [run(program, as_socket_sees(f)) for f in (arp, deep, short)] == [0, 0, 0]
