"""Live capture: the TPACKET_V3 block walker, RTNETLINK parsing, and real rings on veth pairs.

The unit tests build ring blocks and netlink datagrams in memory (no root). The live tests (root and
``ip netns`` needed, as in CI) put a veth pair between two private namespaces, replay a synthetic
capture with ground truth into one end and capture on the other with LiveCapture, then push every
batch through the real Pipeline with ``now`` = packet time and compare the flows with the truth.

Live timestamps squeeze the capture's 300 s into well under a second, so the truth is computed with
the configured 1800 s timeouts (nothing times out) and compared by totals per flow (key, packets,
bytes, TCP flags), not by first/last times.
"""

from __future__ import annotations

import asyncio
import collections
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt
import numpy as np
import pytest
import uvloop
from netns import (
    Namespace,
    add_veth,
    namespaces,
    sender_command,
    sender_env,
    unavailable,
)

from flowd.capture.files import open_capture
from flowd.capture.layouts import LinkType
from flowd.capture.live import (
    LinkEvent,
    LiveCapture,
    LiveCaptureError,
    parse_link_messages,
)
from flowd.capture.ring import RingOptions
from flowd.capture.ring_layout import BLOCK_DESC, RingError, TpStatus
from flowd.capture.ring_walk import concat_frames, frames_of
from flowd.config.loader import parse_config
from flowd.core.decode import decode
from flowd.core.pipeline import Pipeline
from flowd.model.batch import FlowRecords, FrameBatch
from flowd.model.flowkey import IFINDEX, u16_column
from flowd.runtime.clock import SystemClock
from flowd.runtime.inputs import finish
from flowd.runtime.shard import LiveInput
from flowd.testing.synth import write_capture
from flowd.testing.truth import (
    GroundTruth,
    SynthSpec,
    TruthFlow,
    TruthPackets,
    flows_from_records,
    truth_flows,
)

TIMEOUT = 1800.0  # flow timeouts of CONFIG, and of the truth the live runs are held to
GUARD = 30.0  # seconds a live test may wait for frames or events before it fails (never slept on)
PPS = 50_000
WHOLE = 65_535  # capture snaplen: replays put whole frames on the wire (a cut one would be truncated there)
WHOLE_RING = 2048  # ring snaplen above the longest synthetic frame, where a test compares whole frames
CONFIG = f"""
forwarding-options:
  sampling:
    input: {{rate: 1}}
    family:
      inet:
        output: {{flow-active-timeout: {TIMEOUT:g}, flow-inactive-timeout: {TIMEOUT:g}}}
      inet6:
        output: {{flow-active-timeout: {TIMEOUT:g}, flow-inactive-timeout: {TIMEOUT:g}}}
"""

# tpacket3_hdr written independently of flowd.capture.ring's numpy dtype: next_offset, sec, nsec,
# snaplen, len, status, mac, net, rxhash, vlan_tci, vlan_tpid, padding (2 + 8 bytes)
TPACKET3_HDR = struct.Struct("=IIIIIIHHIIH10x")
MAC_AT = 82  # tp_mac of an Ethernet frame as the kernel places it: TPACKET_ALIGN(68 + 16) - 14


# --- the block walker (no root) ---------------------------------------------------------------------

def udp_frame(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x" * 20) -> bytes:
    ip = dpkt.ip.IP(src=bytes(map(int, src.split("."))), dst=bytes(map(int, dst.split("."))), p=17,
                    data=dpkt.udp.UDP(sport=sport, dport=dport, data=payload))
    ip.len = len(bytes(ip))
    return bytes(dpkt.ethernet.Ethernet(dst=bytes.fromhex("00005e005301"), src=bytes.fromhex("00005e005302"),
                                        type=dpkt.ethernet.ETH_TYPE_IP, data=ip))


def ring_block(packets: list[tuple[bytes, int, int, int, int, int]], *, sec: int = 1_700_000_000) -> bytes:
    """One retired block: (frame, wirelen, status, vlan_tci, vlan_tpid, nsec) per packet."""
    body = b""
    first = BLOCK_DESC.size
    for i, (frame, wirelen, status, tci, tpid, nsec) in enumerate(packets):
        size = (MAC_AT + len(frame) + 15) // 16 * 16
        nxt = 0 if i == len(packets) - 1 else size
        head = TPACKET3_HDR.pack(nxt, sec, nsec, len(frame), wirelen, status, MAC_AT, MAC_AT + 14, 0, tci, tpid)
        body += (head + bytes(MAC_AT - len(head)) + frame).ljust(size, b"\0")
    desc = BLOCK_DESC.pack(1, 0, TpStatus.USER, len(packets), first, first + len(body), 7, sec, 0, sec, 0)
    return desc + body


def frame_bytes(batch: FrameBatch) -> list[bytes]:
    buf = bytes(batch.buf)
    return [buf[o:o + c] for o, c in zip(batch.offset.tolist(), batch.caplen.tolist())]


def test_block_walker_reads_frames_and_puts_vlan_tags_back() -> None:
    plain = udp_frame("198.18.0.1", "198.19.0.1", 1000, 53)
    outer = udp_frame("198.18.0.2", "198.19.0.2", 1001, 53)  # arrived with an 802.1ad tag, vid 5
    dot1q = udp_frame("198.18.0.3", "198.19.0.3", 1002, 53)  # arrived with an 802.1Q tag, vid 0x123
    full = udp_frame("198.18.0.4", "198.19.0.4", 1003, 53, b"y" * 400)
    cut = full[:64]  # snaplen 64 of a longer frame
    vlan = TpStatus.USER | TpStatus.VLAN_VALID
    first = ring_block([(plain, len(plain), TpStatus.USER, 0, 0, 0),
                        (outer, len(outer), vlan | TpStatus.VLAN_TPID_VALID, 0x2005, 0x88A8, 500_000_000),
                        (dot1q, len(dot1q), vlan, 0x0123, 0, 999_999_999)])
    second = ring_block([(cut, len(full), TpStatus.USER | TpStatus.LOSING, 0, 0, 1)], sec=1_700_000_001)
    batch = frames_of(first + second, [0, len(first)], linktype=LinkType.ETHERNET, ifindex=12)

    assert frame_bytes(batch) == [plain, outer[:12] + b"\x88\xa8\x20\x05" + outer[12:],
                                  dot1q[:12] + b"\x81\x00\x01\x23" + dot1q[12:], cut]
    assert batch.wirelen.tolist() == [len(plain), len(outer) + 4, len(dot1q) + 4, len(full)]
    assert batch.ts.tolist() == pytest.approx([1_700_000_000.0, 1_700_000_000.5, 1_700_000_000.999999999,
                                               1_700_000_001.000000001], abs=1e-6)
    assert batch.ifindex.tolist() == [12] * 4 and batch.linktype.tolist() == [1] * 4
    packets = decode(batch).packets
    assert packets.vlan.tolist() == [0, 5, 0x123, 0]
    assert u16_column(packets.key, IFINDEX).tolist() == [12] * 4

    # A raw-IP device has no MAC addresses to put a tag after: the frames stay as they are.
    raw = frames_of(first, [0], linktype=LinkType.RAW, ifindex=3)
    assert frame_bytes(raw) == [plain, outer, dot1q]

    merged = concat_frames([raw, batch])
    assert frame_bytes(merged) == frame_bytes(raw) + frame_bytes(batch)
    assert merged.ifindex.tolist() == [3] * 3 + [12] * 4


def test_block_walker_rejects_a_packet_outside_its_block() -> None:
    frame = udp_frame("198.18.0.1", "198.19.0.1", 1000, 53)
    block = bytearray(ring_block([(frame, len(frame), TpStatus.USER, 0, 0, 0)] * 2))
    struct.pack_into("=I", block, BLOCK_DESC.size, 1 << 20)  # first packet's tp_next_offset
    with pytest.raises(RingError, match="runs past the block end"):
        frames_of(bytes(block), [0], linktype=LinkType.ETHERNET, ifindex=1)
    with pytest.raises(RingError, match="out of bounds"):
        frames_of(bytes(block[:200]), [0], linktype=LinkType.ETHERNET, ifindex=1)


def nlmsg(mtype: int, body: bytes) -> bytes:
    msg = struct.pack("=IHHII", 16 + len(body), mtype, 0, 0, 0) + body
    return msg + bytes(-len(msg) % 4)


def link_message(mtype: int, ifindex: int, name: str, flags: int) -> bytes:
    attrs = struct.pack("=HHI", 8, 4, 1500)  # IFLA_MTU first, so the walk must step over it
    raw = name.encode() + b"\0"
    attrs += (struct.pack("=HH", 4 + len(raw), 3) + raw).ljust((4 + len(raw) + 3) // 4 * 4, b"\0")
    return nlmsg(mtype, struct.pack("=BxHiII", 0, 1, ifindex, flags, 0xFFFFFFFF) + attrs)


def test_parse_link_messages() -> None:
    data = (link_message(16, 7, "eth1", 0x1043) + nlmsg(20, bytes(8)) + link_message(16, 7, "eth1", 0x1002)
            + link_message(17, 7, "renamed0", 0x0) + struct.pack("=IHHII", 400, 16, 0, 0, 0))
    assert parse_link_messages(data) == [LinkEvent(False, 7, "eth1", True), LinkEvent(False, 7, "eth1", False),
                                         LinkEvent(True, 7, "renamed0", False)]


@pytest.mark.parametrize("options, message", [
    ({"block_size": 5000}, "block_size must be a positive multiple of the page size"),
    ({"ring_blocks": 0}, "ring_blocks must be within 1..65536, got 0"),
    ({"block_timeout_ms": 0}, "block_timeout_ms must be within 1..60000, got 0"),
    ({"direction": "out"}, "direction must be 'in' or 'both', got 'out'"),
    ({"fanout_group": 70000}, "fanout_group must be within 0..65535, got 70000"),
    ({"snaplen": 32}, "snaplen must be within 64..65535"),
])
def test_bad_options_are_one_line_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        RingOptions(**options)  # type: ignore[arg-type]


def test_bad_or_missing_interface_names() -> None:
    with pytest.raises(LiveCaptureError, match=r"^'eth0/1': not a valid interface name$"):
        LiveCapture("eth0/1")
    with pytest.raises(LiveCaptureError, match=r"^flowd-absent9: no such network interface$"):
        LiveCapture("flowd-absent9")  # the netlink look-up comes first: no root needed


# --- live rings on veth pairs (root) ----------------------------------------------------------------

def live(test: Callable[..., None]) -> Callable[..., None]:
    """Mark a test that needs root and network namespaces (skipped without them)."""
    skip = pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")
    return pytest.mark.integration(skip(test))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("live") / "synth.pcap"
    return path, write_capture(SynthSpec(packets=20_000, flows=2_000, damaged_share=0, snaplen=WHOLE), path)


@pytest.fixture(scope="module")
def fragmented(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    """Whole frames (no snaplen cut), 5% of them IPv4 fragments, for fanout (test_fanout_workers_split_flows_not_packets)."""
    path = tmp_path_factory.mktemp("live") / "synth-frag.pcap"
    spec = SynthSpec(packets=20_000, flows=2_000, damaged_share=0, fragment_share=0.05, qinq_share=0.05,
                     mpls_share=0.05, snaplen=WHOLE, seed=2)
    return path, write_capture(spec, path)


@pytest.fixture
def veth() -> Iterator[tuple[Namespace, Namespace]]:
    """Namespaces a (sender, link end ``va``) and b (capture, link end ``vb``)."""
    with namespaces(2) as (a, b):
        add_veth(a, "va", b, "vb")
        yield a, b


Totals = collections.Counter[tuple[str, str, int, int, int, int, int, int, int]]


def totals(flows: list[TruthFlow]) -> Totals:
    return collections.Counter((f.src, f.dst, f.sport, f.dport, f.proto, f.tos, f.packets, f.bytes, f.tcp_flags)
                               for f in flows)


def differences(got: Totals, want: Totals) -> str:
    missing, extra = want - got, got - want
    return f"{sum(missing.values())} flows missing, e.g. {list(missing)[:3]}; " \
           f"{sum(extra.values())} unexpected, e.g. {list(extra)[:3]}"


def file_frames(path: Path) -> list[bytes]:
    with open_capture(str(path)) as reader:
        return [f for batch in reader.batches(65536) for f in frame_bytes(batch)]


class Collector:
    """Drains one LiveCapture into a Pipeline (now = packet time), keeping every finished flow."""

    def __init__(self, cap: LiveCapture, progress: asyncio.Condition, *, keep_frames: bool = False) -> None:
        self.cap = cap
        self.progress = progress
        self.pipeline = Pipeline(parse_config(CONFIG, source="test", syntax="yaml"))
        self.records: list[FlowRecords] = []
        self.frames = 0
        self.kept: list[FrameBatch] | None = [] if keep_frames else None
        self.last = 0.0

    async def run(self) -> None:
        async for batch in self.cap.batches():
            self.last = max(self.last, float(batch.ts.max()))
            self.records.extend(self.pipeline.process(batch, self.last).values())
            self.frames += len(batch)
            if self.kept is not None:
                self.kept.append(batch)
            async with self.progress:
                self.progress.notify_all()

    def flows(self) -> FlowRecords:
        self.records.extend(self.pipeline.flush(self.last).values())
        return FlowRecords.concat(self.records)


async def wait_until(progress: asyncio.Condition, done: Callable[[], bool]) -> None:
    async with asyncio.timeout(GUARD), progress:
        await progress.wait_for(done)


async def replay(a: Namespace, path: Path, *, start: int = 0, stop: int | None = None) -> None:
    proc = await asyncio.create_subprocess_exec(
        *sender_command(a, "va", path, start=start, stop=stop, pps=PPS), env=sender_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert int(out) == (stop if stop is not None else len(file_frames(path))) - start


async def stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task


@live
def test_capture_matches_ground_truth_under_uvloop(veth: tuple[Namespace, Namespace],
                                                   capture: tuple[Path, GroundTruth]) -> None:
    a, b = veth
    path, truth = capture

    async def run() -> tuple[Collector, float, float]:
        progress = asyncio.Condition()
        collector = Collector(cap, progress, keep_frames=True)
        task = asyncio.create_task(collector.run())
        began = time.time()
        await replay(a, path)
        await wait_until(progress, lambda: collector.frames >= truth.frames)
        ended = time.time()
        await stop(task)
        return collector, began, ended

    with b.inside(), LiveCapture("vb", ring_blocks=16, snaplen=WHOLE_RING) as cap:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            collector, began, ended = runner.run(run())
        assert cap.stats() == (truth.frames, 0)
        ifindex = cap.ifindex

    assert collector.kept is not None
    batch = concat_frames(collector.kept)
    assert frame_bytes(batch) == file_frames(path)  # every frame, in order, VLAN tags back in place
    assert (batch.caplen == batch.wirelen).all()
    assert set(batch.ifindex.tolist()) == {ifindex} and set(batch.linktype.tolist()) == {LinkType.ETHERNET}
    assert (np.diff(batch.ts) >= 0).all() and began - 1 <= batch.ts[0] and batch.ts[-1] <= ended + 1

    records = collector.flows()
    assert set(u16_column(records.key, IFINDEX).tolist()) == {ifindex}
    got, want = totals(flows_from_records(records)), totals(truth.flows_for(active=TIMEOUT, inactive=TIMEOUT))
    assert got == want, differences(got, want)


@live
def test_stop_reads_the_open_block_and_waits_only_when_it_holds_frames(veth: tuple[Namespace, Namespace],
                                                                         capture: tuple[Path, GroundTruth]) -> None:
    """A few frames stay in the block the kernel is filling until its retire timer fires: filling() says
    so, and a stop (inputs.finish) waits for that block and hands back every frame, also those of a replay
    that a read never saw. An idle ring's stop does not wait: with a 60 s block timeout it would
    otherwise take up to two minutes (GUARD fails it first)."""
    a, b = veth
    path, _truth = capture
    sent = 300  # frames, far below one block
    long, short_ms = 60_000, 300  # block timeouts
    got: list[FrameBatch] = []

    def handle(frames: FrameBatch, _now: float, _interface: str) -> None:
        got.append(frames)

    async def run() -> None:
        await replay(a, path, stop=sent)
        assert held.filling() and held.read_blocks() is None  # not handed over: the timer is 60 s away
        async with asyncio.timeout(GUARD):
            await finish(idle, LiveInput("lo", "lo"), SystemClock(), handle, long)
        assert not got
        await replay(a, path, stop=sent)
        async with asyncio.timeout(GUARD):
            await finish(short, LiveInput("vb", "vb"), SystemClock(), handle, short_ms)

    with b.inside():
        held = LiveCapture("vb", ring_blocks=4, block_timeout_ms=long, snaplen=WHOLE_RING)
        short = LiveCapture("vb", ring_blocks=4, block_timeout_ms=short_ms, snaplen=WHOLE_RING)
        idle = LiveCapture("lo", ring_blocks=4, block_timeout_ms=long)
    try:
        asyncio.run(run())
        assert held.filling() and not short.filling()  # finish() closed short: it fills nothing
        assert frame_bytes(concat_frames(got)) == file_frames(path)[:sent] * 2  # both replays, none lost
    finally:
        for cap in (held, short, idle):
            cap.close()


@live
def test_snaplen_and_direction(veth: tuple[Namespace, Namespace], capture: tuple[Path, GroundTruth]) -> None:
    """snaplen cuts in the kernel (a put-back VLAN tag comes on top); direction "in" skips sent frames."""
    a, b = veth
    path, truth = capture

    async def run() -> list[Collector]:
        progress = asyncio.Condition()
        collectors = [Collector(c, progress, keep_frames=True) for c in (snap, sent_in, sent_both)]
        tasks = [asyncio.create_task(c.run()) for c in collectors]
        await replay(a, path)
        await wait_until(progress, lambda: min(collectors[0].frames, collectors[2].frames) >= truth.frames)
        await stop(*tasks)
        return collectors

    with a.inside():  # the sender's end of the link
        sent_in = LiveCapture("va", ring_blocks=8)
        sent_both = LiveCapture("va", ring_blocks=8, direction="both", snaplen=WHOLE_RING)
    try:
        with b.inside(), LiveCapture("vb", ring_blocks=8, snaplen=64) as snap:
            collectors = asyncio.run(run())
            assert snap.stats() == (truth.frames, 0)
        assert sent_in.stats() == (0, 0) and collectors[1].frames == 0
        assert sent_both.stats() == (truth.frames, 0)
    finally:
        sent_in.close()
        sent_both.close()

    wire = file_frames(path)
    assert collectors[0].kept and collectors[2].kept
    snapped = concat_frames(collectors[0].kept)
    tagged = [f[12:14] in (b"\x81\x00", b"\x88\xa8") for f in wire]  # the tags the kernel takes off
    assert frame_bytes(snapped) == [f[:64 + 4 * t] for f, t in zip(wire, tagged)]
    assert snapped.wirelen.tolist() == [len(f) for f in wire]
    assert frame_bytes(concat_frames(collectors[2].kept)) == wire


@live
def test_fanout_workers_split_flows_not_packets(veth: tuple[Namespace, Namespace],
                                                fragmented: tuple[Path, GroundTruth]) -> None:
    """Two workers in one PACKET_FANOUT group, beside a capture that sees everything.

    Every fragment counts as a packet, as in file mode: the group's program (flowd.capture.fanout)
    sends the fragments of a datagram to the worker of their addresses, and nothing reassembles them.
    """
    a, b = veth
    path, truth = fragmented

    async def run() -> tuple[Collector, Collector, Collector]:
        progress = asyncio.Condition()
        solo, one, two = (Collector(c, progress) for c in caps)
        tasks = [asyncio.create_task(c.run()) for c in (solo, one, two)]
        await replay(a, path)
        await wait_until(progress, lambda: solo.frames >= truth.frames and one.frames + two.frames >= truth.frames)
        # Re-created at once, the link finds the group still held by the workers' old rings for a
        # moment: each worker must retry until it gets in.
        changed = asyncio.Event()
        for cap in caps:
            cap.on_event = lambda _t, _message: changed.set()
        b.ip("link", "del", "vb")
        add_veth(a, "va", b, "vb")
        async with asyncio.timeout(GUARD):
            while not all(c.state == "up" and c.ifindex not in (None, before) for c in caps):
                await changed.wait()
                changed.clear()
        await stop(*tasks)
        return solo, one, two

    with b.inside():
        caps = [LiveCapture("vb", ring_blocks=8), LiveCapture("vb", ring_blocks=8, fanout_group=7),
                LiveCapture("vb", ring_blocks=8, fanout_group=7)]
        try:
            before = caps[0].ifindex
            solo, one, two = asyncio.run(run())
            stats = [c.stats() for c in caps]
        finally:
            for c in caps:
                c.close()

    assert solo.frames == one.frames + two.frames == truth.frames
    assert one.frames > 0 and two.frames > 0
    assert stats[0] == (truth.frames, 0) and stats[1][1] == stats[2][1] == 0
    assert stats[1][0] + stats[2][0] == truth.frames
    flows = [flows_from_records(c.flows()) for c in (solo, one, two)]
    keys = [{(f.src, f.dst, f.sport, f.dport, f.proto, f.tos) for f in fl} for fl in flows[1:]]
    assert not keys[0] & keys[1], "a flow was split across the workers"
    want = totals(truth.flows_for(active=TIMEOUT, inactive=TIMEOUT))
    assert totals(flows[0]) == want, differences(totals(flows[0]), want)
    merged = totals(flows[1] + flows[2])
    assert merged == want, differences(merged, want)


def part(packets: TruthPackets, first: int, stop: int) -> TruthPackets:
    mask = (packets.frame >= first) & (packets.frame < stop)
    return TruthPackets(ts=packets.ts[mask], key=packets.key[mask], length=packets.length[mask],
                        tcp_flags=packets.tcp_flags[mask], frame=packets.frame[mask], keys=packets.keys)


@live
def test_interface_churn_is_followed(veth: tuple[Namespace, Namespace], capture: tuple[Path, GroundTruth]) -> None:
    """Down/up, delete and re-create, rename away and back: the capture follows the name throughout."""
    a, b = veth
    path, truth = capture
    half = truth.frames // 2

    async def run() -> tuple[Collector, int, int]:
        progress = asyncio.Condition()
        events: asyncio.Queue[str] = asyncio.Queue()
        cap.on_event = lambda _t, message: events.put_nowait(message)
        collector = Collector(cap, progress)
        task = asyncio.create_task(collector.run())

        async def expect(test: Callable[[str], bool]) -> str:
            async with asyncio.timeout(GUARD):
                while not test(message := await events.get()):
                    pass
            return message

        before = cap.ifindex
        assert before is not None
        await replay(a, path, stop=half)
        await wait_until(progress, lambda: collector.frames >= half)
        b.ip("link", "set", "vb", "down")
        await expect(lambda m: m == "link down")
        b.ip("link", "set", "vb", "up")
        await expect(lambda m: m == "link up")
        b.ip("link", "del", "vb")
        await expect(lambda m: m == "detached: interface deleted")
        assert cap.state == "detached: interface deleted" and cap.ifindex is None
        add_veth(a, "va", b, "vb")
        message = await expect(lambda m: m.startswith("re-attached"))
        after = cap.ifindex
        assert after is not None and after != before and message.startswith(f"re-attached, ifindex {after}")
        if cap.state != "up":
            await expect(lambda m: m == "link up")
        await replay(a, path, start=half)
        await wait_until(progress, lambda: collector.frames >= truth.frames)
        b.ip("link", "set", "vb", "down")
        b.ip("link", "set", "vb", "name", "vz")
        await expect(lambda m: m == "detached: renamed to vz")
        b.ip("link", "set", "vz", "name", "vb")
        b.ip("link", "set", "vb", "up")
        await expect(lambda m: m == f"re-attached, ifindex {after}, link down")
        await expect(lambda m: m == "link up")
        await stop(task)
        return collector, before, after

    with b.inside(), LiveCapture("vb", ring_blocks=16) as cap:
        collector, before, after = asyncio.run(run())
        assert cap.state == "up"
        assert cap.stats() == (truth.frames, 0)

    assert collector.frames == truth.frames
    records = collector.flows()
    ifindex = u16_column(records.key, IFINDEX)
    assert set(ifindex.tolist()) == {before, after}
    for index, first, stop_ in ((before, 0, half), (after, half, truth.frames)):
        got = totals(flows_from_records(records.take(ifindex == index)))
        want = totals(truth_flows(part(truth.packets, first, stop_), active=TIMEOUT, inactive=TIMEOUT))
        assert got == want, differences(got, want)
    messages = [m for _, m in cap.events]
    assert messages[0] == f"attached, ifindex {before}"
    assert not [m for m in messages if "failed" in m]


@live
def test_missing_cap_net_raw_is_one_line_with_both_remedies() -> None:
    code = ("from flowd.capture.live import LiveCapture, LiveCaptureError\n"
            "try:\n    LiveCapture('lo')\nexcept LiveCaptureError as exc:\n    print(exc)\n")
    done = subprocess.run(["setpriv", "--bounding-set=-net_raw", sys.executable, "-c", code],
                          capture_output=True, text=True, env=sender_env(), check=False)
    assert done.returncode == 0 and not done.stderr, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("lo: capturing needs CAP_NET_RAW; ")
    assert "AmbientCapabilities=CAP_NET_RAW" in lines[0]
    assert "setpriv" in lines[0] and "--ambient-caps=+net_raw" in lines[0]
