"""cflowd / NetFlow version 8 aggregation: finished IPv4 flows → aggregates → v8 export datagrams.

Layout: Juniper's "Flow Monitoring Version 8 Format Output Fields" and Cisco's NetFlow v8 router-based
aggregation formats; all big-endian. Header, 28 bytes:

    H version (8)  H count  I sys_uptime (ms)  I unix_secs  I unix_nsecs  I flow_sequence
    B engine_type  B engine_id  B aggregation (method, below)  B agg_version (2)  I reserved (0)

``flow_sequence`` counts the aggregate records this exporter sent before the datagram (per
datagram, as in v5). ``engine_type`` / ``engine_id`` are the output's ``interface`` ``engine-type`` /
``engine-id`` (0 without one), ``aggregation`` the method below, ``agg_version`` 2.

The last four bytes stay 0: no decoder or vendor document defines a sampling interval (or anything
else) there, so flowd invents no layout for them. The evidence:

* Juniper, "Flow Monitoring Version 8 Format Output Fields": Reserved, "Empty field reserved for
  future usage" (https://www.juniper.net/documentation/us/en/software/junos/flow-monitoring/topics/concept/flowmonitoring-output-formats-version8-solutions.html).
* Cisco, "NetFlow Export Datagram Formats" (CNS NetFlow Collection Engine guide, versions 1, 5, 7
  and 8): engine type, engine id, aggregation, aggregation version, then reserved
  (http://www.cisco.com/en/US/docs/net_mgmt/netflow_collection_engine/4.0/installation/guide/format.html).
* Wireshark, epan/dissectors/packet-cflow.c (https://github.com/wireshark/wireshark): for versions 7
  and 8 it dissects the 4 bytes as ``cflow.reserved``; SamplingMode / SampleRate
  (``cflow.samplingmode``, ``cflow.samplerate``) exist for version 5 only. tshark 4.0 shows the same
  (tests/routing/test_v8.py).
* flow-tools, lib/ftlib.h ``struct ftpdu_v8_gen`` (https://github.com/adsr/flow-tools):
  ``u_int32 reserved`` after ``agg_version``; pmacct, src/nfacctd.h ``struct struct_header_v8``
  (https://github.com/pmacct/pmacct): ``u_int32_t reserved``. Huawei's NetStream v8 header
  documents no sampling field either.

So the aggregate counts are the sampled counts, as Junos exports them, and the 1-in-N reaches
collectors where the formats carry it: the v5 header (bytes 22-23, mode 01 and N, flowd.export.v5)
of the version 5 server that Junos allows beside a version 8 server in the same output, and the
v9/IPFIX options data (samplingInterval, IE 34) of the other outputs. docs/routing.md says the same.

Aggregation methods (``aggregation { ... }`` in a ``version 8`` flow-server) and their records; each
starts with ``I flows  I dPkts  I dOctets  I First  I Last`` (First/Last: sysUptime ms of the
earliest first packet and the latest last packet of the aggregated flows):

    1 autonomous-system   H src_as  H dst_as  H input  H output                          28 bytes, 51 per datagram
    2 protocol-port       B prot  x pad  H reserved  H srcport  H dstport                28 bytes, 51
    3 source-prefix       4s src_prefix  B src_mask  x pad  H src_as  H input  H reserved  32 bytes, 44
    4 destination-prefix  4s dst_prefix  B dst_mask  x pad  H dst_as  H output  H reserved 32 bytes, 44
    5 source-destination-prefix
                          4s src_prefix  4s dst_prefix  B dst_mask  B src_mask  H reserved
                          H src_as  H dst_as  H input  H output                          40 bytes, 35

``caida-compliant`` (source-destination-prefix only) swaps the two mask bytes to ``B src_mask
B dst_mask``, the order of CAIDA cflowd 2.1b1 (and Wireshark's dissector); without it the masks
follow the cflowd Configuration Guide of August 1999 (Cisco's order, destination first).

Aggregation keys: each method's record fields other than the counters and times; the prefixes are
the flow's addresses masked to the matched route's length (0.0.0.0/0 when no route matched). AS
numbers are origin or peer per ``autonomous-system-type``; an AS above 65535 is sent as AS_TRANS
(23456, RFC 6793), an interface index above 65535 as 0. Counters above 2**32 - 1 saturate.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from flowd.export.limits import U32_MAX
from flowd.export.timebase import instant_ms, sysuptime_ms
from flowd.export.v5 import AS_TRANS, u16_field
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import DPORT, PROTO, SPORT, is_ipv4, u16_column

VERSION: Final = 8
AGG_VERSION: Final = 2
V8_HEADER: Final = struct.Struct("!HHIIIIBBBBI")
#   H version  H count  I sys_uptime  I unix_secs  I unix_nsecs  I flow_sequence
#   B engine_type  B engine_id  B aggregation  B agg_version  I reserved


class Aggregation(IntEnum):
    """v8 aggregation methods (the header's aggregation byte)."""

    AS = 1
    PROTOCOL_PORT = 2
    SOURCE_PREFIX = 3
    DESTINATION_PREFIX = 4
    PREFIX = 5  # source-destination-prefix


CONFIG_NAMES: Final = {
    "autonomous-system": Aggregation.AS, "protocol-port": Aggregation.PROTOCOL_PORT,
    "source-prefix": Aggregation.SOURCE_PREFIX, "destination-prefix": Aggregation.DESTINATION_PREFIX,
    "source-destination-prefix": Aggregation.PREFIX,
}

_COUNTS: Final = [("flows", ">u4"), ("dpkts", ">u4"), ("doctets", ">u4"), ("first", ">u4"), ("last", ">u4")]
RECORD_DTYPES: Final = {
    Aggregation.AS: np.dtype(_COUNTS + [("src_as", ">u2"), ("dst_as", ">u2"), ("input", ">u2"),
                                        ("output", ">u2")]),
    Aggregation.PROTOCOL_PORT: np.dtype(_COUNTS + [("prot", "u1"), ("pad", "u1"), ("reserved", ">u2"),
                                                   ("srcport", ">u2"), ("dstport", ">u2")]),
    Aggregation.SOURCE_PREFIX: np.dtype(_COUNTS + [("src_prefix", "u1", (4,)), ("src_mask", "u1"), ("pad", "u1"),
                                                   ("src_as", ">u2"), ("input", ">u2"), ("reserved", ">u2")]),
    Aggregation.DESTINATION_PREFIX: np.dtype(_COUNTS + [("dst_prefix", "u1", (4,)), ("dst_mask", "u1"),
                                                        ("pad", "u1"), ("dst_as", ">u2"), ("output", ">u2"),
                                                        ("reserved", ">u2")]),
    Aggregation.PREFIX: np.dtype(_COUNTS + [("src_prefix", "u1", (4,)), ("dst_prefix", "u1", (4,)),
                                            ("dst_mask", "u1"), ("src_mask", "u1"), ("reserved", ">u2"),
                                            ("src_as", ">u2"), ("dst_as", ">u2"), ("input", ">u2"),
                                            ("output", ">u2")]),
}
CAIDA_PREFIX_DTYPE: Final = np.dtype(_COUNTS + [("src_prefix", "u1", (4,)), ("dst_prefix", "u1", (4,)),
                                                ("src_mask", "u1"), ("dst_mask", "u1"), ("reserved", ">u2"),
                                                ("src_as", ">u2"), ("dst_as", ">u2"), ("input", ">u2"),
                                                ("output", ">u2")])
MAX_RECORDS: Final = {Aggregation.AS: 51, Aggregation.PROTOCOL_PORT: 51, Aggregation.SOURCE_PREFIX: 44,
                      Aggregation.DESTINATION_PREFIX: 44, Aggregation.PREFIX: 35}
KEY_FIELDS: Final = {
    Aggregation.AS: ("src_as", "dst_as", "input", "output"),
    Aggregation.PROTOCOL_PORT: ("prot", "srcport", "dstport"),
    Aggregation.SOURCE_PREFIX: ("src_prefix", "src_mask", "src_as", "input"),
    Aggregation.DESTINATION_PREFIX: ("dst_prefix", "dst_mask", "dst_as", "output"),
    Aggregation.PREFIX: ("src_prefix", "dst_prefix", "src_mask", "dst_mask", "src_as", "dst_as", "input",
                         "output"),
}


@dataclass(frozen=True, slots=True)
class V8Header:
    """The per-exporter header values."""

    aggregation: Aggregation
    engine_type: int = 0
    engine_id: int = 0
    caida_compliant: bool = False


@dataclass(slots=True)
class Aggregates:
    """Aggregated flows of one method: a key record per row (the method's record dtype, counters
    and times unset) and the sums. Times are in the flow table's time base."""

    method: Aggregation
    keys: npt.NDArray[np.void]
    flows: npt.NDArray[np.uint64]
    packets: npt.NDArray[np.uint64]
    bytes: npt.NDArray[np.uint64]
    first: npt.NDArray[np.float64]
    last: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.flows)

    @staticmethod
    def empty(method: Aggregation) -> Aggregates:
        return Aggregates(method, np.zeros(0, RECORD_DTYPES[method]), np.zeros(0, np.uint64),
                          np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0), np.zeros(0))


def _prefix(addr: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    value = np.ascontiguousarray(addr).view(">u4").ravel().astype(np.uint64)
    host = (np.uint64(1) << (32 - mask.astype(np.uint64))) - np.uint64(1)
    return (value & ~host).astype(">u4").view(np.uint8).reshape(len(value), 4)


def aggregate(records: FlowRecords, method: Aggregation, *, peer_as: bool = False) -> Aggregates:
    """Aggregate the IPv4 rows of a batch of finished flows (and their route columns) by ``method``'s key."""
    v4 = is_ipv4(records.key)
    if not bool(v4.all()):
        records = records.take(v4)
    routes = records.route_columns().as_type(peer_as)
    n = len(records)
    keys = np.zeros(n, RECORD_DTYPES[method])
    names = set(KEY_FIELDS[method])
    key = records.key
    columns: dict[str, Callable[[], npt.NDArray[Any]]] = {
        "src_as": lambda: u16_field(routes.src_origin_as, AS_TRANS),
        "dst_as": lambda: u16_field(routes.dst_origin_as, AS_TRANS),
        "input": lambda: u16_field(routes.input_if, 0),
        "output": lambda: u16_field(routes.output_if, 0),
        "prot": lambda: key[:, PROTO],
        "srcport": lambda: u16_column(key, SPORT),
        "dstport": lambda: u16_column(key, DPORT),
        "src_mask": lambda: routes.src_mask,
        "dst_mask": lambda: routes.dst_mask,
        "src_prefix": lambda: _prefix(key[:, 12:16], routes.src_mask),
        "dst_prefix": lambda: _prefix(key[:, 28:32], routes.dst_mask),
    }
    for name in names:
        keys[name] = columns[name]()
    if n == 0:
        return Aggregates.empty(method)
    unique, inverse = np.unique(keys.view(f"V{keys.dtype.itemsize}"), return_inverse=True)
    inverse = inverse.ravel()
    m = len(unique)
    first = np.full(m, np.inf)
    last = np.full(m, -np.inf)
    np.minimum.at(first, inverse, records.first)
    np.maximum.at(last, inverse, records.last)
    return Aggregates(method, unique.view(RECORD_DTYPES[method]).copy(),
                      np.bincount(inverse, minlength=m).astype(np.uint64),
                      _sum(inverse, records.packets, m), _sum(inverse, records.bytes, m), first, last)


def _sum(inverse: npt.NDArray[np.intp], values: npt.NDArray[np.uint64], m: int) -> npt.NDArray[np.uint64]:
    out = np.zeros(m, np.uint64)
    np.add.at(out, inverse, values)
    return out


def merge(parts: list[Aggregates], method: Aggregation) -> Aggregates:
    """Aggregates of several batches merged into one set (same key → counters added)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Aggregates.empty(method)
    if len(parts) == 1:
        return parts[0]
    size = RECORD_DTYPES[method].itemsize  # concatenating as void keeps the big-endian bytes as they are
    keys = np.concatenate([p.keys.view(f"V{size}") for p in parts])
    unique, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.ravel()
    m = len(unique)
    first = np.full(m, np.inf)
    last = np.full(m, -np.inf)
    np.minimum.at(first, inverse, np.concatenate([p.first for p in parts]))
    np.maximum.at(last, inverse, np.concatenate([p.last for p in parts]))
    flows, packets, octets = (_sum(inverse, np.concatenate([getattr(p, f) for p in parts]), m)
                              for f in ("flows", "packets", "bytes"))
    return Aggregates(method, unique.view(RECORD_DTYPES[method]).copy(), flows, packets, octets, first, last)


def encode_v8(aggs: Aggregates, *, now: float, boot: float, sequence: int, header: V8Header) -> list[bytes]:
    """Encode aggregates as v8 datagrams (see the module docstring for the layouts).

    Args:
        sequence: aggregate records sent before this call; the caller adds ``len(aggs)`` afterwards.
    """
    if aggs.method is not header.aggregation:
        raise ValueError(f"aggregates of method {aggs.method.name} for a {header.aggregation.name} server")
    n = len(aggs)
    if n == 0:
        return []
    recs = aggs.keys.copy()
    recs["flows"] = np.minimum(aggs.flows, U32_MAX)
    recs["dpkts"] = np.minimum(aggs.packets, U32_MAX)
    recs["doctets"] = np.minimum(aggs.bytes, U32_MAX)
    recs["first"] = sysuptime_ms(aggs.first, boot)
    recs["last"] = sysuptime_ms(aggs.last, boot)
    if header.caida_compliant and aggs.method is Aggregation.PREFIX:
        caida = np.zeros(n, CAIDA_PREFIX_DTYPE)
        for name in CAIDA_PREFIX_DTYPE.names or ():
            caida[name] = recs[name]
        recs = caida
    raw = recs.tobytes()
    size = recs.dtype.itemsize
    uptime = int(sysuptime_ms(np.array([now], np.float64), boot)[0])
    secs, millis = divmod(instant_ms(now), 1000)  # whole ms, as v5 (flowd.export.timebase)
    per = MAX_RECORDS[aggs.method]
    out: list[bytes] = []
    for start in range(0, n, per):
        count = min(per, n - start)
        head = V8_HEADER.pack(VERSION, count, uptime, secs & U32_MAX, millis * 1_000_000, (sequence + start) & U32_MAX,
                              header.engine_type, header.engine_id, int(header.aggregation), AGG_VERSION, 0)
        out.append(head + raw[start * size:(start + count) * size])
    return out
