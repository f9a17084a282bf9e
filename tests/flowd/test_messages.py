"""flowd.export.messages: v9 and IPFIX packets built in bulk equal a straightforward reference.

The reference encodes one record at a time (``struct`` per element, its value read from the
template's declared source for that one row) and lays packets out one at a time, as RFC 3954 and
RFC 7011 describe them; the encoders build runs of data-only packets as one numpy array. Random
flows with edge values (0, 2**32 - 1 and above, IPv6, ICMP, labels, routes) go through every
template type in both formats, with refresh schedules that split the runs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
import pytest
from test_ie_templates import KINDS

from flowd.config.schema import TemplateConfig
from flowd.export.ipfix import IPFIX_HEADER, encode_ipfix
from flowd.export.messages import fit, records_per_packet
from flowd.export.sequence import ExportState, Refresh
from flowd.export.template_fields import SOURCES, ZERO, ExportFormat
from flowd.export.templates import CompiledTemplate, ExportPlan, make_set, plan_for, template_for, template_sets
from flowd.export.v9 import V9_HEADER, encode_v9
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import KEY_BYTES
from flowd.model.routes import FlowRoutes

BOOT = 1_700_000_000.25
NOW = BOOT + 3600.5
U32 = 0xFFFFFFFF
_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}


def _pick(rng: np.random.Generator, n: int, edges: list[int], high: int, dtype: type) -> np.ndarray:
    """Random values below ``high``, a third of them taken from ``edges``."""
    values = rng.integers(0, high, n, dtype=np.uint64, endpoint=True)
    edge = rng.random(n) < 1 / 3
    values[edge] = rng.choice(np.array(edges, np.uint64), int(edge.sum()))
    return values.astype(dtype)


def random_flows(n: int, seed: int, *, v6: float = 0.3) -> FlowRecords:
    """Flows with edge values everywhere: 0, 2**32 - 1 and more in counters, IPv4 and IPv6, ICMP, routes."""
    rng = np.random.default_rng(seed)
    key = rng.integers(0, 256, (n, KEY_BYTES), dtype=np.uint8)
    four = rng.random(n) >= v6
    key[four, 0:10] = 0
    key[four, 10:12] = 0xFF
    key[four, 16:26] = 0
    key[four, 26:28] = 0xFF
    key[:, 32] = rng.choice(np.array([0, 1, 6, 17, 58, 255], np.uint8), n)
    key[rng.random(n) < 0.1, 33:40] = 0
    counts = [0, 1, U32 - 1, U32, U32 + 1, 2**64 - 1]
    first = BOOT + rng.choice(np.array([-5.0, 0.0, 0.0004, 1.9995, 3000.0]), n) + rng.random(n) * 100
    routes = FlowRoutes(*(
        [_pick(rng, n, [0, 1, 65535, 65536, U32], U32, np.uint32) for _ in range(4)]
        + [_pick(rng, n, [0, 32, 128], 128, np.uint8) for _ in range(2)]
        + [rng.integers(0, 256, (n, 16), dtype=np.uint8) for _ in range(2)]
        + [_pick(rng, n, [0, 65535, 65536, U32], U32, np.uint32) for _ in range(2)]))
    return FlowRecords(
        key=key, packets=_pick(rng, n, counts, 2**64 - 1, np.uint64),
        bytes=_pick(rng, n, counts, 2**64 - 1, np.uint64), first=first, last=first + rng.random(n) * 50,
        tcp_flags=rng.integers(0, 256, n, dtype=np.uint8), ttl_min=rng.integers(0, 256, n, dtype=np.uint8),
        ttl_max=rng.integers(0, 256, n, dtype=np.uint8), vlan=_pick(rng, n, [0, 4095], 4095, np.uint16),
        inner_vlan=_pick(rng, n, [0, 4095], 4095, np.uint16),
        mpls=_pick(rng, 3 * n, [0, 0xFFFFFF], 0xFFFFFF, np.uint32).reshape(n, 3),
        end_reason=rng.integers(1, 6, n, dtype=np.uint8), routes=routes if rng.random() < 0.8 else None)


# -- the reference -----------------------------------------------------------------------------------


def reference_record(template: CompiledTemplate, row: FlowRecords, boot: float) -> bytes:
    """One record: each element's value for this one row, packed with ``struct``."""
    out = b""
    for e in template.elements:
        if e.ie.type.startswith(("unsigned", "dateTime")):
            value = 0 if e.source == ZERO else int(SOURCES[e.source](row, boot)[0])
            out += struct.pack("!" + _CODES[e.length], value & ((1 << 8 * e.length) - 1))
        else:
            out += bytes(e.length) if e.source == ZERO else bytes(SOURCES[e.source](row, boot)[0])
    return out


Rows = tuple[list[tuple[CompiledTemplate, bytes]], int]


def reference_rows(records: FlowRecords, plan: ExportPlan, boot: float) -> Rows:
    """Each row encoded by the first template that carries it, in template order; and the rows none carries."""
    rows: list[tuple[CompiledTemplate, bytes]] = []
    left = np.ones(len(records), np.bool_)
    for tmpl in plan.data:
        mask = tmpl.carries_mask(records)
        take = left if mask is None else left & mask
        rows += [(tmpl, reference_record(tmpl, records.take(np.array([i])), boot)) for i in np.flatnonzero(take)]
        left &= ~take
    return rows, int(left.sum())


def reference(encoded: Rows, plan: ExportPlan, state: ExportState, *, now: float, boot: float,
              max_size: int, pack: Callable[[bytes, int, int, int], bytes], step: Callable[[int, int], int],
              header_size: int, set_ids: tuple[int, int]) -> list[bytes]:
    """Packets one at a time: due templates and options first, then records while one more fits."""
    rows = list(encoded[0])
    state.not_carried += encoded[1]
    template_set, options_template_set = template_sets(plan, *set_ids)
    option_data = make_set(plan.options.template_id, [plan.options_record(boot)])
    out: list[bytes] = []
    while True:
        body, count, data, flows = b"", 0, 0, 0
        if state.templates_due(now):
            body, count = template_set, len(plan.data)
            state.templates.sent(now)
        if state.options_due(now):
            body += option_data if state.stream else options_template_set + option_data
            count, data = count + (1 if state.stream else 2), data + 1
            state.options.sent(now)
        while rows:
            tmpl, records_in_set = rows[0][0], []
            while rows and rows[0][0] is tmpl:
                length = 4 + (len(records_in_set) + 1) * tmpl.record_size
                if header_size + len(body) + length + -length % 4 > max_size:
                    break
                records_in_set.append(rows.pop(0)[1])
            if not records_in_set:
                break
            body += make_set(tmpl.template_id, records_in_set)
            count, data, flows = count + len(records_in_set), data + len(records_in_set), flows + len(records_in_set)
        if not body:
            return out
        out.append(pack(body, count, data, state.sequence) + body)
        state.packet_built(sequence_step=step(count, data), flow_records=flows)
        if not rows:
            return out


def v9_reference(records: Rows, plan: ExportPlan, state: ExportState, max_size: int) -> list[bytes]:
    secs = -(-round(NOW * 1e6) // 1_000_000)
    uptime = (secs * 1000 - int(round(BOOT * 1e6)) // 1000) & U32
    return reference(records, plan, state, now=NOW, boot=BOOT, max_size=max_size, header_size=V9_HEADER.size,
                     pack=lambda body, count, data, seq: V9_HEADER.pack(9, count, uptime, secs & U32, seq,
                                                                      plan.domain_id),
                     step=lambda count, data: 1, set_ids=(0, 1))


def ipfix_reference(records: Rows, plan: ExportPlan, state: ExportState, max_size: int) -> list[bytes]:
    return reference(records, plan, state, now=NOW, boot=BOOT, max_size=max_size, header_size=IPFIX_HEADER.size,
                     pack=lambda body, count, data, seq: IPFIX_HEADER.pack(10, IPFIX_HEADER.size + len(body),
                                                                          int(NOW), seq, plan.domain_id),
                     step=lambda count, data: data, set_ids=(2, 3))


# -- the tests -----------------------------------------------------------------------------------------


def _states(stream: bool) -> list[tuple[ExportState, ExportState]]:
    """Pairs of equal states: default refresh, a refresh every few packets, one part-way through its count."""
    pairs = []
    for packets, since, sequence in ((4800, 0, 0), (5, 0, U32 - 3), (7, 4, 123)):
        pair = []
        for _ in range(2):
            state = ExportState(Refresh(packets), Refresh(packets + 2), stream=stream, sequence=sequence)
            if since:  # as if packets had been sent before
                state.templates.sent(NOW)
                state.options.sent(NOW)
                state.templates.since = state.options.since = since
            pair.append(state)
        pairs.append((pair[0], pair[1]))
    return pairs


@pytest.mark.parametrize("kind, fmt", KINDS)
def test_bulk_packets_equal_the_reference(kind: str, fmt: ExportFormat) -> None:
    family = "inet" if kind in ("ipv4", "mpls-ipv4", "peer-as-billing") else "inet6"
    plan = plan_for(fmt, family, TemplateConfig("t", fmt.value, kind, domain_id=U32, label_positions=(3, 1, 8)),
                    sampling_rate=100, exporter_address="192.0.2.7")
    for seed, n in ((1, 0), (2, 1), (3, 57), (4, 2311)):
        flows = random_flows(n, seed)
        rows = reference_rows(flows, plan, BOOT)
        sizes = (1400, 700, 65535) if fmt is ExportFormat.IPFIX else (1400, 700, 9000)
        for size in sizes:
            for stream in (False, True) if fmt is ExportFormat.IPFIX else (False,):
                for mine, theirs in _states(stream):
                    if fmt is ExportFormat.V9:
                        got = encode_v9(flows, now=NOW, boot=BOOT, state=mine, plan=plan, max_size=size)
                        want = v9_reference(rows, plan, theirs, size)
                    else:
                        got = encode_ipfix(flows, now=NOW, boot=BOOT, state=mine, plan=plan, max_size=size)
                        want = ipfix_reference(rows, plan, theirs, size)
                    assert got == want, (seed, size, stream)
                    assert (mine.sequence, mine.messages, mine.flow_records, mine.not_carried) == \
                        (theirs.sequence, theirs.messages, theirs.flow_records, theirs.not_carried)
                    assert (mine.templates.since, mine.options.since) == (theirs.templates.since, theirs.options.since)


def _set_ids(message: bytes) -> list[int]:
    ids, at = [], IPFIX_HEADER.size
    while at < len(message):
        set_id, length = struct.unpack_from("!HH", message, at)
        ids.append(set_id)
        at += length
    return ids


def test_two_templates_share_a_packet_where_one_block_ends() -> None:
    """IPv4 rows to the ipv4 template, the rest to the smaller mpls one: the packet that ends the IPv4 block
    also takes mpls rows when the IPv4 rows fill it exactly."""
    inet = plan_for("ipfix", "inet")
    both = ExportPlan(inet.format, (inet.data[0], template_for("mpls", ExportFormat.IPFIX, template_id=300).compile()),
                      inet.options)
    size = IPFIX_HEADER.size + 4 + 10 * both.data[0].record_size + 60  # 10 IPv4 records, then room for one mpls
    assert records_per_packet(size - IPFIX_HEADER.size, both.data[0].record_size) == 10
    for n4 in (29, 30, 31):
        flows = FlowRecords.concat([random_flows(n4, n4, v6=0.0), random_flows(40, 5, v6=1.0)])
        state, want_state = ExportState(stream=True), ExportState(stream=True)  # no templates in the stream
        state.options.sent(NOW)
        want_state.options.sent(NOW)
        got = encode_ipfix(flows, now=NOW, boot=BOOT, state=state, plan=both, max_size=size)
        assert got == ipfix_reference(reference_rows(flows, both, BOOT), both, want_state, size)
        assert _set_ids(got[2]) == ([256, 300] if n4 <= 30 else [256])


@pytest.mark.parametrize("budget, size, count", [(3, 4, 0), (8, 4, 1), (1384, 90, 15), (1380, 90, 15),
                                                 (1379, 90, 15), (1354, 90, 14), (1384, 3, 460)])
def test_fit_counts_records_with_the_set_header_and_padding(budget: int, size: int, count: int) -> None:
    assert fit(budget, size) == count
    if count:
        assert len(make_set(256, [bytes(size)] * count)) <= budget < len(make_set(256, [bytes(size)] * (count + 1)))
