"""Finished flows → export datagrams → every flow server of the flow's family.

The encoding is pure (flowd.export.*); this module owns the per-family sequence numbers, the
sockets, and the counts `show services accounting flow | errors` print.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flowd.batch import FlowRecords
from flowd.config import Config, FamilyOutput
from flowd.export.udp import Destination, DestinationStats, UdpSender
from flowd.export.v5 import V5Header, encode_v5
from flowd.flowkey import is_ipv4


@dataclass(slots=True)
class ExportCounters:
    flows_exported: int = 0  # flow records handed to at least one flow server
    flow_packets_exported: int = 0  # packets in those records
    datagrams: int = 0  # export datagrams built (each goes to every server of its family)
    not_exportable: int = 0  # flows no configured export version can carry (IPv6 to v5 only)


@dataclass(slots=True)
class FamilyExport:
    output: FamilyOutput
    sender: UdpSender | None
    v5_sequence: int = 0


@dataclass(slots=True)
class Exporter:
    """Synchronous exporter used by batch mode and, through the event loop, by the daemon."""

    cfg: Config
    boot: float  # time base origin for sysUptime (first packet in file mode, start in the daemon)
    sender_factory: Callable[[Sequence[Destination]], UdpSender] = UdpSender
    counters: ExportCounters = field(default_factory=ExportCounters)
    families: dict[str, FamilyExport] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.reconfigure(self.cfg)

    def reconfigure(self, cfg: Config) -> None:
        """Open sockets for the flow servers of a (re)loaded configuration, keeping sequence numbers.

        All new sockets are opened before anything changes: when one fails, the running export stays.
        """
        opened: list[UdpSender] = []
        plan: dict[str, FamilyExport] = {}
        try:
            for family, out in cfg.families.items():
                prev = self.families.get(family)
                dests = destinations(out)
                if prev is not None and prev.sender is not None and prev.sender.destinations == tuple(dests):
                    sender: UdpSender | None = prev.sender
                else:
                    sender = self.sender_factory(dests) if dests else None
                    if sender is not None:
                        opened.append(sender)
                plan[family] = FamilyExport(out, sender, prev.v5_sequence if prev else 0)
        except BaseException:
            for sender in opened:
                sender.close()
            raise
        kept = {id(f.sender) for f in plan.values()}
        for fam in self.families.values():
            if fam.sender is not None and id(fam.sender) not in kept:
                fam.sender.close()
        self.families = plan
        self.cfg = cfg

    def export(self, family: str, records: FlowRecords, now: float) -> None:
        """Encode and send finished flows of one family."""
        fam = self.families.get(family)
        if fam is None or not len(records):
            return
        v5_servers = [s for s in fam.output.flow_servers if s.version == "5"]
        if not v5_servers or fam.sender is None:
            self.counters.not_exportable += len(records)
            return
        v4 = is_ipv4(records.key)
        carried = records if v4.all() else records.take(v4)
        self.counters.not_exportable += len(records) - len(carried)
        if not len(carried):
            return
        iface = fam.output.interface
        header = V5Header(engine_type=iface.engine_type if iface else 0,
                          engine_id=iface.engine_id if iface else 0,
                          sampling_interval=fam.output.input.rate)
        datagrams = encode_v5(carried, now=now, boot=self.boot, sequence=fam.v5_sequence, header=header)
        fam.v5_sequence = (fam.v5_sequence + len(carried)) & 0xFFFFFFFF
        fam.sender.send(datagrams)
        self.counters.datagrams += len(datagrams)
        self.counters.flows_exported += len(carried)
        self.counters.flow_packets_exported += int(carried.packets.sum())

    def server_stats(self) -> list[dict[str, object]]:
        """Per flow server: datagrams and bytes sent, failures (for `errors` and the batch summary)."""
        out: list[dict[str, object]] = []
        for fam in self.families.values():
            if fam.sender is not None:
                out.extend(fam.sender.stats_rows())
        return out

    def clear_server_stats(self) -> None:
        for fam in self.families.values():
            if fam.sender is not None:
                fam.sender.stats = tuple(DestinationStats() for _ in fam.sender.destinations)

    def close(self) -> None:
        for fam in self.families.values():
            if fam.sender is not None:
                fam.sender.close()


def destinations(out: FamilyOutput) -> list[Destination]:
    """Where a family's records go: each flow server, from its own or the service interface's source."""
    source = out.interface.source_address if out.interface else None
    return [Destination(s.address, s.port, s.source_address or source, s.dscp) for s in out.flow_servers]
