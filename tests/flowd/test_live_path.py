"""The compiled live path (flowd.core.live_path, flowd/native/_live.c) against its statement, on the same ring blocks.

The statement is PacketRing.read_python of one block at a time, each block's frames restamped and run
through Pipeline.process. Rings here are anonymous mappings laid out as the kernel lays a TPACKET_V3 ring
out (blocks built from a generated capture: VLAN, QinQ and MPLS stacks, IPv4 and IPv6 fragments and
extension headers, damaged frames, snaplen cuts; the outer VLAN tag of tagged frames moved into the
packet header as the kernel does), read in several calls with blocks wrapping around the ring. Both
paths must end the same flows (timeouts inside the traffic, FIN/RST, a full table), keep the same
statistics and leave the samplers at the same place. The kernel's own ring is read in test_live.py and
tests/integration/test_live_daemon.py, which run the daemon, and so this path, on a veth pair.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator
from dataclasses import fields

import numpy as np
import pytest
from test_live import MAC_AT, TPACKET3_HDR

from flowd.capture.files import open_capture
from flowd.capture.layouts import LinkType
from flowd.capture.ring import PacketRing, RingOptions
from flowd.capture.ring_layout import BLOCK_DESC, RingError, TpStatus
from flowd.config.loader import parse_config
from flowd.core.live_path import ingest_ring
from flowd.core.pipeline import Pipeline
from flowd.model.batch import FlowRecords, FrameBatch
from flowd.model.expiry import ExpiryReason
from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

BLOCK = 1 << 16
BLOCKS = 8
IFINDEX = 7
SHIFT = -1_000_000.0  # kernel time -> the daemon clock
SPEC = SynthSpec(packets=6000, flows=500, seed=11, ipv6_share=0.3, snaplen=160)

CONFIG = """
forwarding-options:
  sampling:
    input: {{rate: {rate}, run-length: {run}}}
    family:
      inet: {{output: {{flow-active-timeout: 60, flow-inactive-timeout: 15}}}}
      inet6: {{output: {{flow-active-timeout: 60, flow-inactive-timeout: 15}}}}
{extra}
interfaces:
  eth1: {{unit: {{0: {{family: {{{families}}}}}}}}}
flowd:
  flow-table: {{max-flows: {max_flows}}}
"""
BOTH = "inet: {sampling: {input: true}}, inet6: {sampling: {input: true}}"

pytestmark = pytest.mark.skipif(ingest_ring(Pipeline(parse_config(CONFIG.format(
    rate=1, run=0, extra="", families=BOTH, max_flows=10), source="t", syntax="yaml")),
    (mmap.mmap(-1, BLOCK), 0, BLOCK, 1, LinkType.ETHERNET, IFINDEX), 0.0, 0.0, "eth1") is None,
    reason="flowd.native._flowtable is not built (or FLOWD_NO_FASTPATH=1); "
    "tests/flowd/test_paths_exercised.py fails in CI when it is not built")


def config(*, rate: int = 1, run: int = 0, families: str = BOTH, max_flows: int = 1_000_000, extra: str = "") -> str:
    return CONFIG.format(rate=rate, run=run, families=families, max_flows=max_flows, extra=extra)


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> FrameBatch:
    path = tmp_path_factory.mktemp("synth") / "synth.pcap"
    write_capture(SPEC, path)
    with open_capture(str(path)) as reader:
        (batch,) = list(reader.batches(1 << 20))
    return batch


def packet(frame: bytes, wirelen: int, ts: float) -> bytes:
    """A tpacket3_hdr and its frame, padded to the next header; an outer 802.1Q/802.1ad tag is taken off."""
    status, tci, tpid = TpStatus.USER, 0, 0
    if len(frame) >= 18 and frame[12:14] in (b"\x81\x00", b"\x88\xa8"):
        status |= TpStatus.VLAN_VALID | TpStatus.VLAN_TPID_VALID
        tpid, tci = struct.unpack("!HH", frame[12:16])
        frame, wirelen = frame[:12] + frame[16:], wirelen - 4
    sec = int(ts)
    size = (MAC_AT + len(frame) + 15) // 16 * 16
    head = TPACKET3_HDR.pack(size, sec, int(round((ts - sec) * 1e9)), len(frame), wirelen, status, MAC_AT,
                             MAC_AT + 14, 0, tci, tpid)
    return (head + bytes(MAC_AT - len(head)) + frame).ljust(size, b"\0")


def blocks_of(batch: FrameBatch) -> Iterator[bytes]:
    """Retired blocks holding the frames of ``batch`` in order, each as full as it goes."""
    buf = bytes(batch.buf)
    body: list[bytes] = []
    used = BLOCK_DESC.size
    for off, cap, wire, ts in zip(batch.offset.tolist(), batch.caplen.tolist(), batch.wirelen.tolist(),
                                  batch.ts.tolist(), strict=True):
        one = packet(buf[off:off + cap], wire, ts)
        if used + len(one) > BLOCK:
            yield block(body)
            body, used = [], BLOCK_DESC.size
        body.append(one)
        used += len(one)
    if body:
        yield block(body)


def block(packets: list[bytes]) -> bytes:
    last = packets[-1]
    packets[-1] = struct.pack("=I", 0) + last[4:]  # tp_next_offset 0: the last packet
    body = b"".join(packets)
    first = BLOCK_DESC.size
    return BLOCK_DESC.pack(1, 0, TpStatus.USER, len(packets), first, first + len(body), 7, 0, 0, 0, 0) + body


def ring() -> PacketRing:
    """A PacketRing over an empty mapping: nothing retired yet."""
    r = object.__new__(PacketRing)
    r.interface, r.ifindex, r.linktype = "test0", IFINDEX, LinkType.ETHERNET
    r.options = RingOptions(ring_blocks=BLOCKS, block_size=BLOCK)
    r._map = mmap.mmap(-1, BLOCK * BLOCKS)
    r._next = 0
    r._read_ring = None
    return r


def retire(r: PacketRing, index: int, data: bytes) -> None:
    assert r._map is not None
    r._map[index * BLOCK:(index + 1) * BLOCK] = data.ljust(BLOCK, b"\0")


def run_both(cfg: str, batch: FrameBatch, *, calls: list[int]) -> tuple[list[FlowRecords], list[FlowRecords],
                                                                        Pipeline, Pipeline]:
    """Feed the same blocks to both paths, ``calls[i]`` blocks retired before read i; (compiled ended flows,
    statement's ended flows, compiled pipeline, statement's pipeline), each family's flows flushed at the end."""
    fast, slow = (Pipeline(parse_config(cfg, source="t.yaml", syntax="yaml")) for _ in range(2))
    fast_ring, slow_ring = ring(), ring()
    got: list[FlowRecords] = []
    want: list[FlowRecords] = []
    pending = list(blocks_of(batch))
    at = 0
    now = 0.0

    def account(mm: mmap.mmap, first: int, size: int, count: int, linktype: int, ifindex: int
                ) -> tuple[int, int, int] | None:
        done = ingest_ring(fast, (mm, first, size, count, linktype, ifindex), now, SHIFT, "eth1")
        assert done is not None
        got.extend(done.ended[f] for f in ("inet", "inet6") if f in done.ended)
        return done.status, done.next, done.blocks

    for want_blocks in calls:
        taken, pending = pending[:want_blocks], pending[want_blocks:]
        now = float(batch.ts.max()) + SHIFT  # every read happens after the last frame's time
        for i, data in enumerate(taken):
            retire(fast_ring, (at + i) % BLOCKS, data)
        assert fast_ring.take(account) is None
        for data in taken:  # the statement: one block per batch
            retire(slow_ring, at % BLOCKS, data)
            at += 1
            one = slow_ring.read_python()
            assert one is not None
            ended = slow.process(one.slice(0, len(one), one.ts + SHIFT), now, "eth1")
            want.extend(ended[f] for f in ("inet", "inet6") if f in ended and len(ended[f]))
    assert not pending
    assert fast_ring._next == slow_ring._next
    for pipeline, out in ((fast, got), (slow, want)):
        flushed = pipeline.flush(now + 1, ExpiryReason.FORCED_END)
        out.extend(flushed[f] for f in ("inet", "inet6") if f in flushed)
    return got, want, fast, slow


def rows(records: list[FlowRecords]) -> list[tuple[object, ...]]:
    """Every ended flow as a sortable row of all its columns."""
    out: list[tuple[object, ...]] = []
    for r in records:
        for i in range(len(r)):
            out.append((bytes(r.key[i]), int(r.packets[i]), int(r.bytes[i]), float(r.first[i]), float(r.last[i]),
                        int(r.tcp_flags[i]), int(r.ttl_min[i]), int(r.ttl_max[i]), int(r.vlan[i]),
                        int(r.inner_vlan[i]), tuple(r.mpls[i].tolist()), int(r.end_reason[i]),
                        None if r.mac is None else bytes(r.mac[i])))
    return sorted(out)


def assert_same(fast: Pipeline, slow: Pipeline) -> None:
    for f in fields(fast.stats):
        mine, theirs = getattr(fast.stats, f.name), getattr(slow.stats, f.name)
        if isinstance(mine, np.ndarray):
            assert mine.tolist() == theirs.tolist(), f.name
        else:
            assert mine == theirs, f.name
    for family, path in fast.paths.items():
        other = slow.paths[family]
        assert path.table.counters == other.table.counters, family
        assert path.sampler.position == other.sampler.position, family


@pytest.mark.parametrize(("rate", "run", "calls"), [(1, 0, [1] * 40), (3, 1, [3, 5, 2, 7, 1, 8, 8, 8, 8, 8]),
                                                    (1, 0, [8] * 5)])
def test_the_compiled_path_ends_the_same_flows_with_the_same_statistics(
        frames: FrameBatch, rate: int, run: int, calls: list[int]) -> None:
    got, want, fast, slow = run_both(config(rate=rate, run=run), frames, calls=calls)
    assert fast.stats.frames == len(frames)
    assert rows(got) == rows(want) and len(rows(want)) > 400
    reasons = {int(x) for r in want for x in r.end_reason.tolist()}
    assert {int(ExpiryReason.IDLE_TIMEOUT), int(ExpiryReason.END_OF_FLOW), int(ExpiryReason.FORCED_END)} <= reasons
    assert sum(fast.stats.drops.values()) > 0 and fast.stats.sampled > 0
    assert any(row[8] for row in rows(want))  # outer VLAN ids: tags the kernel took off were put back
    assert_same(fast, slow)


BRIDGE = """
services:
  flow-monitoring:
    version9:
      template:
        l2: {bridge-template: true}
"""


def test_flows_of_a_family_a_bridge_template_exports_keep_their_mac_addresses(frames: FrameBatch) -> None:
    text = config(extra=BRIDGE).replace(
        "inet6: {output: {flow-active-timeout: 60, flow-inactive-timeout: 15}}",
        "inet6: {output: {flow-active-timeout: 60, flow-inactive-timeout: 15, "
        "flow-server: {'::1': {port: 9, version9: {template: l2}}}}}")
    got, want, fast, slow = run_both(text, frames, calls=[4] * 10)
    assert fast.macs == {"inet6"}
    assert rows(got) == rows(want)
    assert any(row[-1] not in (None, bytes(12)) for row in rows(want))  # the inet6 flows carry their MACs
    assert_same(fast, slow)


def test_a_full_table_and_an_unbound_family_count_alike(frames: FrameBatch) -> None:
    got, want, fast, slow = run_both(config(families="inet: {sampling: {input: true}}", max_flows=40), frames,
                                     calls=[2] * 20)
    assert rows(got) == rows(want)
    assert fast.paths["inet"].table.counters.refused_flows > 0
    assert_same(fast, slow)


FILTER = """
firewall:
  family:
    inet:
      filter:
        count_udp:
          term:
            udp: {from: {protocol: udp}, then: {sample: true, count: udp}}
            rest: {then: {sample: true}}
"""


@pytest.mark.parametrize(("families", "extra", "rate_cap"), [
    ("inet: {filter: {input: count_udp}}", FILTER, False),
    (BOTH, "", True),
])
def test_a_filter_or_a_packets_per_second_cap_leaves_the_blocks_to_the_frame_path(
        families: str, extra: str, rate_cap: bool) -> None:
    text = config(families=families, extra=extra)
    if rate_cap:
        text = text.replace("input: {rate: 1, run-length: 0}", "input: {rate: 1, run-length: 0, max-packets-per-second: 100}")
    pipeline = Pipeline(parse_config(text, source="t.yaml", syntax="yaml"))
    r = ring()
    assert ingest_ring(pipeline, (r._map, 0, BLOCK, BLOCKS, LinkType.ETHERNET, IFINDEX), 0.0, 0.0, "eth1") is None


def test_a_damaged_block_raises_after_the_blocks_before_it(frames: FrameBatch) -> None:
    pipeline = Pipeline(parse_config(config(), source="t.yaml", syntax="yaml"))
    good, second = list(blocks_of(frames))[:2]
    damaged = bytearray(second)
    struct.pack_into("=I", damaged, 20, BLOCK * 2)  # blk_len past the block
    r = ring()
    retire(r, 0, good)
    retire(r, 1, bytes(damaged))

    def account(mm: mmap.mmap, first: int, size: int, count: int, linktype: int, ifindex: int
                ) -> tuple[int, int, int] | None:
        done = ingest_ring(pipeline, (mm, first, size, count, linktype, ifindex), 1.0, 0.0, "eth1")
        assert done is not None
        return done.status, done.next, done.blocks

    with pytest.raises(RingError, match="test0: ring block 1: block length or first packet out of bounds"):
        r.take(account)
    assert r._next == 1 and 0 < pipeline.stats.frames < len(frames)
    assert r._map is not None and struct.unpack_from("=I", r._map, 8)[0] == 0  # the good block went back

