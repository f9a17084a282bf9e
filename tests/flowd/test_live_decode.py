"""Live capture decodes as file mode does: truncated frames, PPPoE (behind VLAN tags) and the rest.

A pcap of the decode table's Ethernet frames (test_decode.CASES: truncated on the wire, ending inside
the TCP header, PPPoE behind VLAN and QinQ tags, damaged, not IP, ...) is replayed over a veth pair
between two private namespaces and captured on the other end with LiveCapture. The kernel takes the
outer VLAN tag off before the ring sees the frame and flowd puts it back (wire length included), so
the live batches must decode exactly like the file's: the same rows, the same drops by reason.
"""

from __future__ import annotations

import asyncio
import struct
from collections import Counter
from pathlib import Path

import uvloop
from netns import Namespace
from test_decode import CASES, ETHER, Snapped, rows
from test_live import Collector, file_frames, live, replay, stop, veth, wait_until

from flowd.capture.files import open_capture
from flowd.capture.live import LiveCapture
from flowd.capture.ring_walk import concat_frames
from flowd.core.decode import decode
from flowd.core.frame_rules import Decoded, Packet
from flowd.model.batch import FrameBatch
from flowd.model.drops import DropReason

__all__ = ["veth"]  # the fixture, from test_live

MIN_SEND = 14  # AF_PACKET refuses to send less than the Ethernet header
KERNEL_TPIDS = (b"\x81\x00", b"\x88\xa8")  # tags the receiving kernel takes off (skb_vlan_untag)
REPEAT = 5


def sendable(frame: bytes) -> bool:
    """Whether a frame reaches the peer's packet sockets: the kernel drops a tag it cannot pull whole."""
    return len(frame) >= MIN_SEND and not (frame[12:14] in KERNEL_TPIDS and len(frame) < MIN_SEND + 4)


def write_pcap(path: Path, frames: list[bytes]) -> None:
    with open(path, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, frame in enumerate(frames):
            out.write(struct.pack("<IIII", 1_700_000_000, i, len(frame), len(frame)) + frame)


def table_frames() -> list[bytes]:
    """The table's whole Ethernet frames (a snapped frame's missing bytes never reach a wire)."""
    return [bytes(frame) for _, frame, linktype, _ in CASES
            if linktype == ETHER and not isinstance(frame, Snapped) and sendable(frame)] * REPEAT


def file_batch(path: Path) -> FrameBatch:
    with open_capture(str(path)) as reader:
        return concat_frames(list(reader.batches()))


def same(got: Decoded, want: Decoded) -> None:
    assert got.drops == want.drops
    assert rows(got.packets) == rows(want.packets)


@live
def test_live_capture_decodes_like_the_file(veth: tuple[Namespace, Namespace], tmp_path: Path) -> None:
    a, b = veth
    path = tmp_path / "table.pcap"
    frames = table_frames()
    write_pcap(path, frames)
    assert file_frames(path) == frames

    async def run(cap: LiveCapture) -> Collector:
        progress = asyncio.Condition()
        collector = Collector(cap, progress, keep_frames=True)
        task = asyncio.create_task(collector.run())
        await replay(a, path)
        await wait_until(progress, lambda: collector.frames >= len(frames))
        await stop(task)
        return collector

    with b.inside(), LiveCapture("vb", ring_blocks=4) as cap:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            collector = runner.run(run(cap))
        ifindex = cap.ifindex
    assert collector.kept is not None and ifindex is not None
    live_batch = concat_frames(collector.kept)
    recorded = file_batch(path)
    recorded.ifindex[:] = ifindex
    live_decoded, file_decoded = decode(live_batch), decode(recorded)
    same(live_decoded, file_decoded)
    expected = [r for _, frame, linktype, r in CASES
                if linktype == ETHER and not isinstance(frame, Snapped) and sendable(frame)] * REPEAT
    assert live_decoded.drops == dict(Counter(r for r in expected if isinstance(r, DropReason)))
    assert live_decoded.drops[DropReason.TRUNCATED] >= 10 * REPEAT
    pppoe = [p for p in rows(live_decoded.packets) if p.vlan == 300]  # vlan-pppoe-ipv4
    assert len(pppoe) == REPEAT and all(isinstance(p, Packet) for p in pppoe)
    # the pipeline saw the same: truncated frames counted under their reason, never as flows
    assert collector.pipeline.stats.drops[DropReason.TRUNCATED] == live_decoded.drops[DropReason.TRUNCATED]
