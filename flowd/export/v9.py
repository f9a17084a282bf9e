"""NetFlow version 9 export packets (RFC 3954): finished flows → a list of UDP payloads.

Layout: a 20-byte header, then FlowSets (id, length, contents, zero padding to 4 octets):
FlowSet 0 carries template records, FlowSet 1 the options template, FlowSets numbered by a
template id (>= 256) carry data records. Everything is big-endian.

Header fields, as flowd fills them:

* ``count``: every record in the packet: template records, options template records and data
  records (flow and options data), as RFC 3954 §5.1 defines it.
* ``unix_secs`` and ``sys_uptime`` describe the same instant: the first whole second at or after
  ``now`` (``unix_secs``), and the milliseconds from ``boot`` to it (``sys_uptime``, modulo 2**32).
  A collector's boot estimate ``unix_secs * 1000 - sys_uptime`` is then exactly
  systemInitTimeMilliseconds (also sent in the options data), so the flow records'
  flowStartSysUpTime / flowEndSysUpTime (FIRST/LAST_SWITCHED, whole epoch ms minus boot's) map to
  the same epoch ms IPFIX would send. Truncating ``now`` instead would shift every flow by up to a
  second at the collector; rounding up keeps every flow's end at or before the header instant, so
  ``sys_uptime - LAST`` never goes negative for collectors doing unsigned 32-bit arithmetic.
* ``sequence``: export packets sent to this flow server before this one (RFC 3954: "incremental
  sequence counter of all Export Packets"), modulo 2**32, kept in the flow server's ExportState.
* ``source_id``: the template's `source-id` (ExportPlan.domain_id).

Templates and the options template (+ its data) are included when the ExportState's refresh
schedules say so (flowd.export.sequence): in the first packet, then by packet count and by time.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final

import numpy as np

from flowd.export.limits import DATAGRAM_SIZE, U32_MAX
from flowd.export.sequence import ExportState
from flowd.export.template_fields import ExportFormat
from flowd.export.messages import Header, Packet, encode_messages
from flowd.export.templates import ExportPlan
from flowd.export.timebase import sysuptime_ms
from flowd.model.batch import FlowRecords

VERSION: Final = 9
V9_HEADER: Final = struct.Struct("!HHIIII")
#   H version (9)   H count (records in this packet)   I sys_uptime (ms)   I unix_secs
#   I sequence (export packets before this one)   I source_id
_SEQUENCE_AT: Final = 12  # offset of the sequence number in the header
MAX_SIZE: Final = DATAGRAM_SIZE  # default over UDP
MAX_UDP: Final = 65507  # the largest UDP payload over IPv4


class FlowSetId(IntEnum):
    """FlowSet ids below 256 (RFC 3954 §5.2, §6.1); data FlowSets use their template id."""

    TEMPLATE = 0
    OPTIONS_TEMPLATE = 1


def encode_v9(records: FlowRecords, *, now: float, boot: float, state: ExportState, plan: ExportPlan,
              max_size: int = MAX_SIZE) -> list[bytes]:
    """Encode ``records`` as v9 export packets of at most ``max_size`` octets for one flow server.

    Rows the plan's template cannot carry are counted in ``state.not_carried``. With no records the
    result is one templates-only packet when a refresh is due, else empty; calling this on a timer
    (``state.next_deadline()``) keeps templates fresh while no flow expires.
    """
    if plan.format is not ExportFormat.V9:
        raise ValueError("encode_v9 needs a version9 export plan")
    if not V9_HEADER.size < max_size <= MAX_UDP:
        raise ValueError(f"v9 packet size {max_size}: expected {V9_HEADER.size + 1}..{MAX_UDP}")
    secs = -(-round(now * 1e6) // 1_000_000)  # the first whole second at or after now
    uptime = int(sysuptime_ms(np.array([float(secs)], np.float64), boot)[0])

    def pack(packet: Packet, sequence: int) -> bytes:
        return V9_HEADER.pack(VERSION, packet.records, uptime, secs & U32_MAX, sequence, plan.domain_id)

    header = Header(V9_HEADER.size, _SEQUENCE_AT, pack, lambda packet: 1)  # RFC 3954: one per export packet
    return encode_messages(records, now=now, boot=boot, state=state, plan=plan, max_size=max_size, header=header,
                           template_set_id=FlowSetId.TEMPLATE, options_set_id=FlowSetId.OPTIONS_TEMPLATE)
