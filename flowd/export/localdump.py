"""`flow-server ADDRESS { local-dump; }`: one readable line per exported record, in a size-rotated file.

Junos writes the cflowd records it is about to export to the sampling daemon's log; flowd writes them
to ``flowd routing local-dump PATH`` (default ``/var/log/flowd/cflowd-dump``). Each line is written
before the datagram carrying the record is sent:

    2026-12-03T12:00:00.123Z 127.0.0.1:2055 v5 10.0.0.1:51514 -> 192.0.2.80:443 proto 6 tos 0x00
        flags 0x1b in 3 out 4 pkts 12 bytes 6240 as 64500 -> 64510 mask 24 -> 24 nexthop 192.0.2.1
        bgp-nexthop 192.0.2.1 first 1700000001.250 last 1700000003.500
    2026-12-03T12:01:30.000Z 127.0.0.2:2056 v8 protocol-port proto 6 sport 51514 dport 443
        flows 3 pkts 40 bytes 20480 first 1700000001.250 last 1700000003.500

(each on one line). When the file would grow past ``MAX_BYTES`` it is renamed to ``PATH.0``
(``PATH.0`` to ``PATH.1``, ..., the oldest of ``KEEP`` dropped) and a new one is started. A write
error is counted and remembered, never raised: the export goes on.
"""

from __future__ import annotations

import ipaddress
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from flowd.export.v8 import KEY_FIELDS, Aggregates, Aggregation
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import DPORT, PROTO, SPORT, TOS, FlowKey, u16_column

MAX_BYTES: Final = 1 << 20
KEEP: Final = 3
METHOD_NAMES: Final = {Aggregation.AS: "autonomous-system", Aggregation.PROTOCOL_PORT: "protocol-port",
                       Aggregation.SOURCE_PREFIX: "source-prefix",
                       Aggregation.DESTINATION_PREFIX: "destination-prefix",
                       Aggregation.PREFIX: "source-destination-prefix"}


def _stamp(wall: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(wall)) + f".{int(wall * 1000) % 1000:03d}Z"


def _addr(raw: bytes, v4: bool) -> str:
    return str(ipaddress.IPv4Address(raw[12:16]) if v4 else ipaddress.IPv6Address(raw))


def record_lines(records: FlowRecords, *, server: str, version: str, wall: float) -> list[str]:
    """One line per flow record (its route columns as the server exports them)."""
    if not len(records):
        return []
    routes = records.route_columns()
    key = records.key
    sport, dport = u16_column(key, SPORT), u16_column(key, DPORT)
    head = f"{_stamp(wall)} {server} v{version}"
    out = []
    for i in range(len(records)):
        k = FlowKey.unpack(key[i])
        v4 = k.version == 4
        out.append(
            f"{head} {k.src}:{sport[i]} -> {k.dst}:{dport[i]} proto {key[i, PROTO]} tos 0x{key[i, TOS]:02x} "
            f"flags 0x{records.tcp_flags[i]:02x} in {routes.input_if[i]} out {routes.output_if[i]} "
            f"pkts {records.packets[i]} bytes {records.bytes[i]} "
            f"as {routes.src_origin_as[i]} -> {routes.dst_origin_as[i]} "
            f"mask {routes.src_mask[i]} -> {routes.dst_mask[i]} nexthop {_addr(routes.next_hop[i].tobytes(), v4)} "
            f"bgp-nexthop {_addr(routes.bgp_next_hop[i].tobytes(), v4)} "
            f"first {records.first[i]:.3f} last {records.last[i]:.3f}")
    return out


def aggregate_lines(aggs: Aggregates, *, server: str, wall: float) -> list[str]:
    """One line per v8 aggregate: the method's key fields, then flows, packets, bytes and times."""
    head = f"{_stamp(wall)} {server} v8 {METHOD_NAMES[aggs.method]}"
    out = []
    for i in range(len(aggs)):
        parts = []
        for name in KEY_FIELDS[aggs.method]:
            value = aggs.keys[name][i]
            text = str(ipaddress.IPv4Address(bytes(value))) if name.endswith("_prefix") else str(int(value))
            parts.append(f"{name.replace('_', '-')} {text}")
        out.append(f"{head} {' '.join(parts)} flows {aggs.flows[i]} pkts {aggs.packets[i]} bytes {aggs.bytes[i]} "
                   f"first {aggs.first[i]:.3f} last {aggs.last[i]:.3f}")
    return out


class DumpFile:
    """The local dump file with its size rotation."""

    def __init__(self, path: str | Path, *, max_bytes: int = MAX_BYTES, keep: int = KEEP) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.keep = keep
        self.lines = 0
        self.errors = 0
        self.last_error = ""

    def records(self, records: FlowRecords, *, server: str, version: str, wall: float) -> None:
        """Write a line per flow record (`record_lines`)."""
        self.write(record_lines(records, server=server, version=version, wall=wall))

    def aggregates(self, aggs: Aggregates, *, server: str, wall: float) -> None:
        """Write a line per v8 aggregate (`aggregate_lines`)."""
        self.write(aggregate_lines(aggs, server=server, wall=wall))

    def write(self, lines: Iterable[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode()
        if not data:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            size = self.path.stat().st_size if self.path.exists() else 0
            if size and size + len(data) > self.max_bytes:
                self._rotate()
            with open(self.path, "ab") as fh:
                fh.write(data)
            self.lines += data.count(b"\n")
        except OSError as exc:
            self.errors += 1
            self.last_error = f"{self.path}: {exc.strerror or exc}"

    def _rotate(self) -> None:
        for i in range(self.keep - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i - 1}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{i}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.0"))

