"""The version 8 aggregation cache of one family: flows that ended → aggregates → export every interval.

Every finished IPv4 flow of the family is aggregated, per configured method, as it ends; every
``aggregate-export-interval`` seconds (on the flow cache's clock, from the first flow after start or
the previous export) the aggregates of each method are encoded (flowd.export.v8) and sent to every
version 8 server of the family, then the cache starts empty. The final flush sends what is pending.
`show services accounting aggregation` reads the pending aggregates (``current``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from flowd.config.schema import FamilyOutput, FlowServer
from flowd.export.udp import UdpSender
from flowd.export.v8 import CONFIG_NAMES, Aggregates, Aggregation, V8Header, aggregate, encode_v8, merge
from flowd.model.batch import FlowRecords

U32_MAX = 0xFFFFFFFF


@dataclass(slots=True)
class V8Export:
    """The version 8 servers of one family (they share the aggregation, the sender and the sequence)."""

    servers: tuple[FlowServer, ...]
    sender: UdpSender
    interval: float
    engine_type: int = 0
    engine_id: int = 0
    sequence: int = 0
    next_export: float | None = None
    pending: dict[Aggregation, list[Aggregates]] = field(default_factory=dict)
    exported: int = 0  # aggregate records sent

    @property
    def methods(self) -> tuple[Aggregation, ...]:
        return tuple(CONFIG_NAMES[name] for name in self.servers[0].aggregation)

    @property
    def peer_as(self) -> bool:
        return self.servers[0].autonomous_system_type == "peer"

    def signature(self) -> tuple[object, ...]:
        return (self.servers, self.sender.destinations, self.interval, self.engine_type, self.engine_id)

    @staticmethod
    def for_output(out: FamilyOutput, sender: UdpSender) -> V8Export:
        servers = tuple(s for s in out.flow_servers if s.version == "8")
        iface = out.interface
        return V8Export(servers, sender, out.aggregate_export_interval,
                        engine_type=iface.engine_type if iface else 0, engine_id=iface.engine_id if iface else 0)

    def add(self, records: FlowRecords, now: float) -> None:
        """Aggregate flows that just ended."""
        if self.next_export is None:
            self.next_export = now + self.interval
        for method in self.methods:
            part = aggregate(records, method, peer_as=self.peer_as)
            if len(part):
                parts = self.pending.setdefault(method, [])
                parts.append(part)
                if len(parts) > 64:  # keep the cache compact between exports
                    parts[:] = [merge(parts, method)]

    def current(self, method: Aggregation) -> Aggregates:
        """The aggregates of the current interval (not yet exported)."""
        merged = merge(self.pending.get(method, []), method)
        self.pending[method] = [merged] if len(merged) else []
        return merged

    def due(self, now: float) -> bool:
        return self.next_export is not None and now >= self.next_export

    def take(self, now: float, boot: float) -> list[tuple[Aggregates, list[bytes]]]:
        """Encode and clear the pending aggregates: (aggregates, datagrams) per method."""
        out = []
        caida = self.servers[0].caida_compliant
        for method in self.methods:
            aggs = self.current(method)
            if not len(aggs):
                continue
            header = V8Header(method, self.engine_type, self.engine_id, caida_compliant=caida)
            out.append((aggs, encode_v8(aggs, now=now, boot=boot, sequence=self.sequence, header=header)))
            self.sequence = (self.sequence + len(aggs)) & U32_MAX
            self.exported += len(aggs)
        self.pending = {}
        if self.next_export is not None:
            while self.next_export <= now:
                self.next_export += self.interval
        return out
