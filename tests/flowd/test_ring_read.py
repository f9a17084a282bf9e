"""PacketRing.read through flowd.native._ring against read_python (the numpy statement), on the same blocks.

A ring here is an anonymous shared mapping laid out as the kernel lays a TPACKET_V3 ring out, with some
blocks retired (TP_STATUS_USER) and the next one still the kernel's: both reads must return the same
frames (VLAN tags put back), hand back the same blocks, stop at the same place, and reject the same
damage. The kernel's own ring is read in tests/flowd/test_live.py.
"""

from __future__ import annotations

import mmap
import struct

import pytest
from test_live import frame_bytes, ring_block, udp_frame

from flowd.capture.layouts import LinkType
from flowd.capture.ring import BLOCK_DESC, BLOCK_STATUS_AT, PacketRing, RingError, RingOptions, TpStatus
from flowd.native import compiled

BLOCK = 8192
BLOCKS = 4

pytestmark = pytest.mark.skipif(compiled("read_ring", module="flowd.native._ring") is None,
                                reason="flowd.native._ring is not built (or FLOWD_NO_FASTPATH=1); "
                                "tests/flowd/test_paths_exercised.py fails in CI when it is not built")


def fake_ring(blocks: dict[int, bytes], *, start: int, linktype: int = LinkType.ETHERNET) -> PacketRing:
    """A PacketRing over a mapping holding ``blocks`` (index -> retired block), reading from ``start``."""
    ring = object.__new__(PacketRing)
    ring.interface, ring.ifindex, ring.linktype = "test0", 9, linktype
    ring.options = RingOptions(ring_blocks=BLOCKS, block_size=BLOCK)
    ring._map = mmap.mmap(-1, BLOCK * BLOCKS)
    ring._next = start
    ring._read_ring = compiled("read_ring", module="flowd.native._ring")
    for index, block in blocks.items():
        ring._map[index * BLOCK:index * BLOCK + len(block)] = block
    return ring


def sample_blocks() -> dict[int, bytes]:
    frames = [udp_frame("198.18.0.1", "198.19.0.1", 1000 + i, 53, b"z" * (i * 37 % 300)) for i in range(12)]
    vlan = TpStatus.USER | TpStatus.VLAN_VALID
    return {
        2: ring_block([(f, len(f), TpStatus.USER, 0, 0, i) for i, f in enumerate(frames[:4])]),
        3: ring_block([(frames[4], len(frames[4]), vlan | TpStatus.VLAN_TPID_VALID, 0x2005, 0x88A8, 7),
                       (frames[5][:64], len(frames[5]), vlan, 0x0123, 0, 999_999_999)], sec=1_700_000_001),
        0: ring_block([(f, len(f) + 100, TpStatus.USER, 0, 0, 5) for f in frames[6:]]),  # wrapped around
        # block 1 is still the kernel's: the read stops before it
    }


@pytest.mark.parametrize("linktype", [LinkType.ETHERNET, LinkType.RAW])
def test_compiled_read_equals_the_numpy_read(linktype: int) -> None:
    fast, slow = fake_ring(sample_blocks(), start=2, linktype=linktype), fake_ring(sample_blocks(), start=2,
                                                                                   linktype=linktype)
    got, want = fast.read(), slow.read_python()
    assert got is not None and want is not None
    assert frame_bytes(got) == frame_bytes(want) and len(got) == 12
    for column in ("caplen", "wirelen", "ts", "linktype", "ifindex"):
        assert getattr(got, column).tolist() == getattr(want, column).tolist(), column
    assert fast._next == slow._next == 1
    assert fast._map is not None and slow._map is not None
    assert fast._map[:] == slow._map[:]  # the same blocks handed back
    assert [struct.unpack_from("=I", fast._map, i * BLOCK + BLOCK_STATUS_AT)[0] for i in range(BLOCKS)] == [0] * 4
    assert fast.read() is None and slow.read_python() is None
    got.ts[0] = 0.0  # the columns are the caller's to change, as numpy's are


def test_compiled_read_rejects_what_the_numpy_read_rejects() -> None:
    frame = udp_frame("198.18.0.1", "198.19.0.1", 1000, 53)
    block = bytearray(ring_block([(frame, len(frame), TpStatus.USER, 0, 0, 0)] * 2))
    struct.pack_into("=I", block, BLOCK_DESC.size, 1 << 20)  # the first packet's tp_next_offset
    for damaged in (bytes(block), bytes(block[:20]) + struct.pack("=I", BLOCK * 2) + bytes(block[24:])):
        with pytest.raises(RingError):
            fake_ring({0: damaged}, start=0).read_python()
        with pytest.raises(RingError, match="test0: ring block 0: "):
            fake_ring({0: damaged}, start=0).read()
