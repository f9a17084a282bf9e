"""cflowd / NetFlow version 5 export datagrams: finished IPv4 flows → a list of UDP payloads.

Layout: Cisco's "NetFlow Export Datagram Format" (version 5) and Juniper's "Flow Monitoring Version 5
Format Output Fields": a 24-byte header followed by at most 30 fixed 48-byte flow records, all
big-endian. Version 5 carries IPv4 only; IPv6 rows of the input are skipped here (the caller counts
them as not exportable until v9/IPFIX carry them).

Header fields, as flowd fills them:

* ``sys_uptime``: milliseconds from ``boot`` to ``now`` (the exporter's time base), modulo 2**32.
* ``unix_secs`` / ``unix_nsecs``: ``now`` in whole milliseconds, as seconds since the epoch and the
  residual nanoseconds (a multiple of 10**6).

  All of these, and each record's ``First`` / ``Last``, are differences of whole epoch milliseconds
  (flowd.export.timebase): the boot time a collector derives from the header, ``unix_secs * 1000 +
  unix_nsecs / 10**6 - sys_uptime``, is exactly ``boot`` in whole ms, so boot + First gives the
  flow's first packet to the millisecond (a fractional boot would put it 1 ms off half the time).
* ``flow_sequence``: the number of flows this exporter sent before this datagram (Cisco: "sequence
  counter of total flows seen"; Juniper: "sequence number of total flows received"). It is per
  datagram, not per record, so a collector detects loss as ``seq(next) - seq(this) != count(this)``.
* ``engine_type`` / ``engine_id``: the configured ``engine-type`` / ``engine-id`` (8 bits each).
* ``sampling_interval`` (bytes 22-23): Juniper's v5 header table calls these two bytes "Reserved";
  Cisco defines them as a 2-bit sampling mode above a 14-bit interval, and that is how collectors
  read them: nfcapd 1.7 takes mode 01 with interval N as 1-in-N packet-interval sampling and scales
  the counts by N (tests/flowd/test_udp_export.py checks this), Wireshark shows "SamplingMode" and
  "SampleRate", goflow2 masks the mode off, SolarWinds NTA treats mode 0 as unsampled. flowd
  therefore writes mode 01 ("packet interval", i.e. deterministic 1-in-N; 10 would be random) with
  N in the low 14 bits when the configured ``rate`` is above 1, capped at 0x3FFF (16383, the largest
  the field holds; ipt_NETFLOW limits its sampler to the same value for v5), and 0 when every packet
  is accounted. A collector that needs an exact rate above 16383 gets it from v9/IPFIX option data.

Record fields: source/destination address and ports, IP protocol and ToS come from the flow key
(ICMP type*256 + code is already in the destination port, as Juniper documents for v5); next hop,
input and output ifIndex, source/destination AS and prefix lengths come from the route columns
(``FlowRecords.routes``, flowd.routing; without a route source: the key's interface index as
input and 0 for the rest). An AS above 65535 is sent as AS_TRANS (23456, RFC 6793), an interface
index above 65535 as 0; the AS is the origin or the peer AS per ``autonomous-system-type``. ``dPkts`` / ``dOctets`` are 32-bit: a flow whose counts
exceed 2**32 - 1 is sent with 2**32 - 1 (saturated), never wrapped, so a collector sees "at least
this much" rather than a small wrong number; it happens only when one flow moves more than 4 GiB
(or 2**32 packets) within one active timeout. ``First`` / ``Last`` are sysUptime (ms) at the flow's first and last packet, clamped at 0
for a flow that began before ``boot``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.export.limits import U32_MAX
from flowd.export.timebase import instant_ms, sysuptime_ms
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import DPORT, PROTO, SPORT, TOS, is_ipv4, u16_column
from flowd.model.record import Frozen

VERSION: Final = 5
V5_HEADER: Final = struct.Struct("!HHIIIIBBH")
#   H version (5)   H count (1..30)   I sys_uptime (ms)   I unix_secs   I unix_nsecs
#   I flow_sequence   B engine_type   B engine_id   H sampling_interval (mode << 14 | interval)
_SEQUENCE_AT: Final = 16  # offset of flow_sequence in the header

V5_RECORD: Final = struct.Struct("!4s4s4sHHIIIIHHxBBBHHBBxx")
#   4s srcaddr   4s dstaddr   4s nexthop   H input   H output   I dPkts   I dOctets
#   I First (sysUptime ms)   I Last (sysUptime ms)   H srcport   H dstport
#   x  pad1, byte 36
#   B tcp_flags   B prot   B tos   H src_as   H dst_as   B src_mask   B dst_mask
#   x  pad2, byte 46
#   x  pad2, byte 47

# The same 48 bytes as a numpy record, so a whole batch is built with column assignments.
V5_RECORD_DTYPE: Final = np.dtype([
    ("srcaddr", np.uint8, (4,)),
    ("dstaddr", np.uint8, (4,)),
    ("nexthop", np.uint8, (4,)),
    ("input", ">u2"),
    ("output", ">u2"),
    ("dpkts", ">u4"),
    ("doctets", ">u4"),
    ("first", ">u4"),
    ("last", ">u4"),
    ("srcport", ">u2"),
    ("dstport", ">u2"),
    ("pad1", np.uint8),  # byte 36
    ("tcp_flags", np.uint8),
    ("prot", np.uint8),
    ("tos", np.uint8),
    ("src_as", ">u2"),
    ("dst_as", ">u2"),
    ("src_mask", np.uint8),
    ("dst_mask", np.uint8),
    ("pad2", np.uint8, (2,)),  # bytes 46-47
])

MAX_RECORDS: Final = 30  # records per datagram: 24 + 30 * 48 = 1464 bytes, below a 1500-byte MTU
SAMPLING_INTERVAL_MAX: Final = 0x3FFF  # low 14 bits of the header's sampling field
AS_TRANS: Final = 23456  # RFC 6793: a 4-byte AS number in a 2-byte field


class SamplingMode(IntEnum):
    """Top two bits of the v5 header's sampling field (Cisco)."""

    NONE = 0
    PACKET_INTERVAL = 1  # deterministic 1-in-N
    RANDOM = 2


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class V5Header(Frozen):
    """The per-exporter header values of every datagram."""

    engine_type: int = 0
    engine_id: int = 0
    sampling_interval: int = 0  # the 1-in-N rate; 0 or 1 = every packet accounted

    def __post_init__(self) -> None:
        for name in ("engine_type", "engine_id"):
            value = getattr(self, name)
            if not 0 <= value <= 255:
                raise ValueError(f"v5 {name.replace('_', '-')}: expected 0..255, got {value}")
        if self.sampling_interval < 0:
            raise ValueError(f"v5 sampling interval: expected >= 0, got {self.sampling_interval}")

    @property
    def sampling_field(self) -> int:
        """The 16-bit header value: mode 01 and the interval (capped at 16383), or 0 when unsampled."""
        if self.sampling_interval <= 1:
            return 0
        return (SamplingMode.PACKET_INTERVAL << 14) | min(self.sampling_interval, SAMPLING_INTERVAL_MAX)


def encode_v5(records: FlowRecords, *, now: float, boot: float, sequence: int,
              header: V5Header) -> list[bytes]:
    """Encode the IPv4 rows of ``records`` as v5 datagrams of up to 30 records each.

    Args:
        now: export time, in the same time base as ``boot`` and the records' first/last.
        boot: the exporter's start (sysUptime 0).
        sequence: flows sent before this call; the caller adds the number of IPv4 rows afterwards.
    """
    v4 = is_ipv4(records.key)
    rows = records if bool(v4.all()) else records.take(v4)
    n = len(rows)
    if n == 0:
        return []
    raw = _records(rows, boot).view(np.uint8)
    uptime = int(sysuptime_ms(np.array([now], np.float64), boot)[0])
    secs, millis = divmod(instant_ms(now), 1000)

    def head(count: int, flow_sequence: int) -> bytes:
        return V5_HEADER.pack(VERSION, count, uptime, secs & U32_MAX, millis * 1_000_000, flow_sequence & U32_MAX,
                              header.engine_type, header.engine_id, header.sampling_field)

    # Full datagrams at once: one row each, the header copied in and its flow_sequence written as a column.
    full = n // MAX_RECORDS
    width = V5_HEADER.size + MAX_RECORDS * V5_RECORD.size
    grid = np.empty((full, width), np.uint8)
    grid[:, :V5_HEADER.size] = np.frombuffer(head(MAX_RECORDS, 0), np.uint8)
    sequences = (sequence + MAX_RECORDS * np.arange(full, dtype=np.uint64)) & U32_MAX
    grid[:, _SEQUENCE_AT:_SEQUENCE_AT + 4] = sequences.astype(">u4").view(np.uint8).reshape(full, 4)
    grid[:, V5_HEADER.size:] = raw[:full * MAX_RECORDS * V5_RECORD.size].reshape(full, width - V5_HEADER.size)
    out = [datagram.tobytes() for datagram in grid]
    if n > full * MAX_RECORDS:
        start = full * MAX_RECORDS
        out.append(head(n - start, sequence + start) + raw[start * V5_RECORD.size:].tobytes())
    return out


def u16_field(values: npt.NDArray[np.integer], over: int) -> npt.NDArray[np.uint16]:
    """A 32-bit value in a 16-bit field: ``over`` when it does not fit (AS_TRANS for AS numbers)."""
    v = values.astype(np.uint64)
    return np.where(v > 0xFFFF, over, v).astype(np.uint16)


def _records(rows: FlowRecords, boot: float) -> npt.NDArray[np.void]:
    """IPv4 flow rows → a V5_RECORD_DTYPE array (zeros where flowd has nothing to say)."""
    key = rows.key
    routes = rows.route_columns()
    recs = np.zeros(len(rows), V5_RECORD_DTYPE)
    recs["srcaddr"] = key[:, 12:16]
    recs["dstaddr"] = key[:, 28:32]
    recs["nexthop"] = routes.next_hop[:, 12:16]
    recs["input"] = u16_field(routes.input_if, 0)
    recs["output"] = u16_field(routes.output_if, 0)
    recs["src_as"] = u16_field(routes.src_origin_as, AS_TRANS)
    recs["dst_as"] = u16_field(routes.dst_origin_as, AS_TRANS)
    recs["src_mask"] = routes.src_mask
    recs["dst_mask"] = routes.dst_mask
    recs["dpkts"] = np.minimum(rows.packets, U32_MAX)
    recs["doctets"] = np.minimum(rows.bytes, U32_MAX)
    recs["first"] = sysuptime_ms(rows.first, boot)
    recs["last"] = sysuptime_ms(rows.last, boot)
    recs["srcport"] = u16_column(key, SPORT)
    recs["dstport"] = u16_column(key, DPORT)
    recs["tcp_flags"] = rows.tcp_flags
    recs["prot"] = key[:, PROTO]
    recs["tos"] = key[:, TOS]
    return recs

