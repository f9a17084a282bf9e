"""Encoded rows → v9 / IPFIX export packets: templates and options when due, then data sets filling each packet.

Both formats lay their packets out the same way and differ only in the message header, which the
encoder describes with a ``Header``. A packet that carries templates, options or the last records of
one template's block is built on its own (``Packet``, then its header). Most packets carry nothing but
as many data records of one template as fit, and the number that fit is fixed by the record size; a
run of such packets is built in bulk: one numpy array with a row per packet (header, set header,
records, padding), the header's sequence numbers written as a column. Both ways give the same bytes
(tests/flowd/test_messages.py holds the bulk layout to packets built one at a time).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from flowd.export.sequence import U32_MODULUS, ExportState
from flowd.export.template_fields import SET_HEADER
from flowd.export.templates import ExportPlan, RowBlock, make_set, template_sets
from flowd.model.batch import FlowRecords


@dataclass(frozen=True, slots=True)
class Packet:
    """The sets of one export packet, before its header."""

    body: bytes
    records: int  # template, options template and data records (the v9 header count)
    data_records: int  # flow and options data records (the IPFIX sequence step)
    flow_records: int


@dataclass(frozen=True, slots=True)
class Header:
    """What an encoder tells the layout about its message header."""

    size: int  # octets
    sequence_at: int  # offset of the 32-bit big-endian sequence number
    pack: Callable[[Packet, int], bytes]  # the header of a packet, given its sequence number
    step: Callable[[Packet], int]  # how far a packet advances the sequence


def fit(budget: int, record_size: int) -> int:
    """Data records of ``record_size`` octets one data set holds within ``budget`` octets (set header,
    records and padding to 4 octets); 0 when not even one fits."""
    n = max(0, (budget - SET_HEADER.size) // record_size)
    while n > 0 and SET_HEADER.size + n * record_size + (-(SET_HEADER.size + n * record_size)) % 4 > budget:
        n -= 1
    return n


def records_per_packet(budget: int, record_size: int) -> int:
    """Data records one data-only export packet holds within ``budget`` octets of sets, and at least one."""
    return max(1, fit(budget, record_size))


class RowCursor:
    """Hands out encoded rows in data sets that fit a byte budget, template block by block."""

    def __init__(self, blocks: Sequence[RowBlock]) -> None:
        self._blocks = [b for b in blocks if b.count]
        self._block = 0
        self._row = 0

    @property
    def done(self) -> bool:
        return self._block >= len(self._blocks)

    def take(self, budget: int) -> tuple[list[bytes], int]:
        """Data sets holding as many of the remaining rows as ``budget`` octets allow; and their count."""
        sets: list[bytes] = []
        taken = 0
        while not self.done:
            block = self._blocks[self._block]
            n = min(fit(budget, block.template.record_size), block.count - self._row)
            if n <= 0:
                break
            sets.append(make_set(block.template.template_id, [block.encode(self._row, self._row + n)]))
            budget -= len(sets[-1])
            taken += n
            self._advance(n)
        return sets, taken

    def full_packets(self, budget: int, limit: int) -> tuple[RowBlock, int, int, int] | None:
        """The next run of up to ``limit`` packets that ``take(budget)`` would fill with rows of the
        current block alone: (block, first row, rows per packet, packets); None when there is none."""
        if self.done or limit < 1:
            return None
        block = self._blocks[self._block]
        per = fit(budget, block.template.record_size)
        left = block.count - self._row
        count = left // per if per else 0
        if count and left % per == 0 and self._block + 1 < len(self._blocks):
            count -= 1  # that packet ends the block: rows of the next block may share it
        count = min(count, limit)
        return (block, self._row, per, count) if count else None

    def skip(self, rows: int) -> None:
        """The next ``rows`` rows of the current block were laid out elsewhere."""
        self._advance(rows)

    def _advance(self, rows: int) -> None:
        self._row += rows
        if self._row == self._blocks[self._block].count:
            self._block += 1
            self._row = 0


def encode_messages(records: FlowRecords, *, now: float, boot: float, state: ExportState, plan: ExportPlan,
                    max_size: int, header: Header, template_set_id: int, options_set_id: int) -> list[bytes]:
    """Lay ``records`` out into export packets of at most ``max_size`` octets, headers included.

    Each packet starts with the template set and the options template + options data sets when
    ``state`` says they are due, then as many data records as fit. With no records, a packet is
    produced only when something is due. ``state`` is advanced for every packet.
    """
    budget = max_size - header.size
    blocks, skipped = plan.encode_rows(records, boot)
    state.not_carried += skipped
    cursor = RowCursor(blocks)
    template_set, options_template_set = template_sets(plan, template_set_id, options_set_id)
    option_data = make_set(plan.options.template_id, [plan.options_record(boot)])
    options_sets = options_template_set + option_data
    biggest = max(t.record_size for t in plan.data)
    need = len(template_set) + len(options_sets) + len(make_set(0, [bytes(biggest)]))
    if budget < need:
        raise ValueError(f"export packets of {budget} octets of sets cannot hold the templates, "
                         f"the options and a {biggest}-octet record ({need} octets)")
    out: list[bytes] = []
    while True:
        run = cursor.full_packets(budget, state.data_only(now))
        if run is not None:
            block, row, per, count = run
            out.extend(_bulk(block, row, per, count, header, state))
            cursor.skip(per * count)
            if cursor.done:
                return out
            continue
        parts: list[bytes] = []
        count = data = 0
        if state.templates_due(now):
            parts.append(template_set)
            count += len(plan.data)
            state.templates.sent(now)
        if state.options_due(now):
            if state.stream:  # the greeting announced the options template
                parts.append(option_data)
                count += 1
            else:
                parts.append(options_sets)
                count += 2
            data += 1
            state.options.sent(now)
        sets, flows = cursor.take(budget - sum(len(p) for p in parts))
        if not parts and not sets:
            return out
        packet = Packet(b"".join(parts + sets), count + flows, data + flows, flows)
        out.append(header.pack(packet, state.sequence) + packet.body)
        state.packet_built(sequence_step=header.step(packet), flow_records=flows)
        if cursor.done:
            return out


def _bulk(block: RowBlock, row: int, per: int, count: int, header: Header, state: ExportState) -> list[bytes]:
    """``count`` packets of ``per`` data records each, from ``row`` of ``block`` on."""
    data = per * block.template.record_size
    length = SET_HEADER.size + data + (-(SET_HEADER.size + data)) % 4
    width = header.size + length
    layout = np.dtype({"names": ["header", "set", "records"],
                       "formats": [(np.uint8, (header.size,)), (np.uint8, (SET_HEADER.size,)),
                                   (block.template.dtype, (per,))],
                       "offsets": [0, header.size, header.size + SET_HEADER.size], "itemsize": width})
    grid = np.zeros(count, layout)  # padding and elements without a source stay zero
    grid["set"] = np.frombuffer(SET_HEADER.pack(block.template.template_id, length), np.uint8)
    block.fill(grid["records"], row)
    octets = grid.view(np.uint8).reshape(count, width)
    model = Packet(octets[0, header.size:].tobytes(), per, per, per)
    step = header.step(model)
    grid["header"] = np.frombuffer(header.pack(model, 0), np.uint8)
    sequences = (state.sequence + step * np.arange(count, dtype=np.uint64)) % U32_MODULUS
    octets[:, header.sequence_at:header.sequence_at + 4] = sequences.astype(">u4").view(np.uint8).reshape(count, 4)
    state.packet_built(sequence_step=step * count, flow_records=per * count, count=count)
    return [packet.tobytes() for packet in octets]
