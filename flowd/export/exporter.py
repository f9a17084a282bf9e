"""Finished flows → export datagrams → every flow server of the flow's family.

The encoding is pure (flowd.export.*); this module owns the sockets, the per-server sequence and
template-refresh state, and the counts `show services accounting flow | errors` print.

- v5 servers of a family share one encoding (and one flow sequence): every one receives the same datagrams.
- Each v9 or IPFIX server has its own template plan, sequence numbers and refresh schedule, and its own
  socket (UDP, or TCP for IPFIX with a bounded backlog and reconnects).

Records do not leave at once: each v5, v9 and IPFIX flow server has an ``Outbox``
(flowd.export.outbox) that gathers them into full datagrams within a short delay and paces UDP
datagrams at the family's `flow-export-rate` (where none is configured: ``default_rate``, 10 kpps in the
daemon; batch mode passes None and sends as fast as it encodes). ``export`` and ``tick`` send what is due; ``pump``
sends what pacing lets go and says how long until more may; ``drain`` makes everything due
(shutdown, end of a capture file), finishing within a bound; ``flush`` does it blocking, for batch
mode. (v8 aggregates have their own export interval, flowd.export.aggregation.)

Three clocks meet here: ``now`` passed to ``export`` is the flow cache's time (packet time in batch
mode), stamps the records and times the gathering delay; ``wall`` (a callable) times TCP reconnects
and drains, and ``clock`` (monotonic) paces datagrams: both must follow the real clock even when a
capture file is read faster than it was recorded.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from flowd.config.schema import Config, FamilyOutput, FlowServer
from flowd.export.outbox import STOP_LIMIT, Outbox, Pacer
from flowd.export.udp import Destination, DestinationStats, UdpSender
from flowd.export.v5 import MAX_RECORDS, V5Header, encode_v5
from flowd.model.batch import FlowRecords
from flowd.model.record import Record

if TYPE_CHECKING:  # imported where a configuration has v8, v9/IPFIX (TCP) servers or a local dump
    from flowd.export.aggregation import V8Export
    from flowd.export.localdump import DumpFile
    from flowd.export.server_export import ServerExport
    from flowd.export.tcp import TcpSender

DRAIN_TIMEOUT = 5.0  # seconds a TCP collector gets, at shutdown, to take the backlog
DAEMON_EXPORT_RATE: Final = 10  # kpps: the daemon's pace when no flow-export-rate is configured


@dataclass(slots=True, eq=False, repr=False)
class ExportCounters(Record):
    flows_exported: int = 0  # flow records sent to at least one flow server
    flow_packets_exported: int = 0  # packets in those records
    datagrams: int = 0  # export datagrams/messages built
    not_exportable: int = 0  # flows no configured server of their family can carry


@dataclass(slots=True, eq=False, repr=False)
class FamilyExport(Record):
    output: FamilyOutput
    v5: UdpSender | None = None  # every v5 server of the family
    v5_sequence: int = 0
    v5_outbox: Outbox | None = None
    servers: list[ServerExport] = field(default_factory=list)
    v8: V8Export | None = None  # every v8 server of the family

    def channels(self) -> list[tuple[UdpSender | TcpSender, Outbox]]:
        """Each v5, v9 and IPFIX socket of the family with the outbox feeding it."""
        v5 = [(self.v5, self.v5_outbox)] if self.v5 is not None and self.v5_outbox is not None else []
        return v5 + [(s.sender, s.outbox) for s in self.servers]

    def senders(self) -> list[UdpSender | TcpSender]:
        return [sender for sender, _ in self.channels()] + ([self.v8.sender] if self.v8 is not None else [])

    def outboxes(self) -> list[Outbox]:
        return [box for _, box in self.channels()]

    def pace(self, default_rate: int | None) -> None:
        """Every UDP outbox of the family at the family's flow-export-rate, else at ``default_rate``
        (kpps; None: not paced)."""
        kpps = self.output.export_rate if self.output.export_rate is not None else default_rate
        for sender, box in self.channels():
            if not isinstance(sender, UdpSender):  # TCP: flow control paces it
                continue
            if kpps is None:
                box.pacer = None
            elif box.pacer is None:
                box.pacer = Pacer(kpps * 1000.0)
            else:
                box.pacer.rate = kpps * 1000.0

    def v5_servers(self) -> list[FlowServer]:
        return [s for s in self.output.flow_servers if s.version == "5"]


@dataclass(slots=True, eq=False, repr=False)
class Exporter(Record):
    """Used by batch mode directly and by the daemon from its event loop (all sockets are non-blocking)."""

    cfg: Config
    boot: float  # time-base origin for sysUptime (first packet in file mode, start in the daemon)
    udp_factory: Callable[[Sequence[Destination]], UdpSender] = UdpSender
    wall: Callable[[], float] = time.time
    clock: Callable[[], float] = time.monotonic  # paces datagrams
    counters: ExportCounters = field(default_factory=ExportCounters)
    families: dict[str, FamilyExport] = field(default_factory=dict)
    dump: DumpFile | None = None  # `local-dump` lines, when a server asks for them
    default_rate: int | None = DAEMON_EXPORT_RATE  # kpps where no flow-export-rate is configured; None: unpaced
    last_now: float = 0.0  # the latest flow-cache time seen

    def __post_init__(self) -> None:
        self.reconfigure(self.cfg)

    # -- configuration -------------------------------------------------------------------------

    def reconfigure(self, cfg: Config) -> None:
        """Open what a (re)loaded configuration needs, keeping sockets and sequences that did not change.

        Everything new is opened before anything changes: when one socket fails, the running export stays.
        """
        opened: list[UdpSender | TcpSender] = []
        plan: dict[str, FamilyExport] = {}
        try:
            for family, out in cfg.families.items():
                prev = self.families.get(family, FamilyExport(out))
                fam = FamilyExport(out, v5_sequence=prev.v5_sequence)
                dests = [destination(out, s) for s in out.flow_servers if s.version == "5"]
                if prev.v5 is not None and prev.v5.destinations == tuple(dests):
                    fam.v5, fam.v5_outbox = prev.v5, prev.v5_outbox
                elif dests:
                    fam.v5 = self.udp_factory(dests)
                    fam.v5_outbox = Outbox(MAX_RECORDS)  # paced by fam.pace
                    opened.append(fam.v5)
                v8_dests = [destination(out, s) for s in out.flow_servers if s.version == "8"]
                if v8_dests:
                    from flowd.export.aggregation import V8Export  # v8 aggregation only when configured

                    if prev.v8 is not None and prev.v8.sender.destinations == tuple(v8_dests):
                        fam.v8 = V8Export.for_output(out, prev.v8.sender)
                        if fam.v8.signature() == prev.v8.signature():
                            fam.v8 = prev.v8  # same servers: keep the cache and the sequence
                        else:
                            fam.v8.sequence = prev.v8.sequence
                    else:
                        fam.v8 = V8Export.for_output(out, self.udp_factory(v8_dests))
                        opened.append(fam.v8.sender)
                old = {s.signature: s for s in prev.servers}
                for server in out.flow_servers:
                    if server.version in ("5", "8"):
                        continue
                    sig = self._signature(cfg, out, server)
                    kept = old.get(sig)
                    if kept is None:
                        kept = self._open(cfg, family, out, server, sig)
                        opened.append(kept.sender)
                    fam.servers.append(kept)
                fam.pace(self.default_rate)
                plan[family] = fam
        except BaseException:
            for sender in opened:
                sender.close()
            raise
        kept_ids = {id(s) for f in plan.values() for s in f.senders()}
        for fam in self.families.values():
            gone = [(sender, box) for sender, box in fam.channels() if id(sender) not in kept_ids]
            for _, box in gone:  # what a removed flow server still holds leaves now
                box.pacer = None
                box.finish_by(0.0)
            self._send(fam, self.last_now, lambda sender: id(sender) not in kept_ids)
            for sender in fam.senders():
                if id(sender) not in kept_ids:
                    sender.close()
        self.families = plan
        self.cfg = cfg
        dumping = any(s.local_dump for out in cfg.families.values() for s in out.flow_servers)
        if not dumping:
            self.dump = None
        elif self.dump is None or str(self.dump.path) != cfg.routing.local_dump:
            from flowd.export.localdump import DumpFile  # only when a flow server dumps its records

            self.dump = DumpFile(cfg.routing.local_dump)

    @staticmethod
    def _signature(cfg: Config, out: FamilyOutput, server: FlowServer) -> tuple[object, ...]:
        template = cfg.templates.get(server.template) if server.template else None
        return (server, destination(out, server), template, out.input.rate, out.active_timeout,
                out.inactive_timeout)

    def _open(self, cfg: Config, family: str, out: FamilyOutput, server: FlowServer,
              sig: tuple[object, ...]) -> ServerExport:
        from flowd.export.server_export import ServerExport  # the v9/IPFIX encoders only when configured

        return ServerExport.open(server, sig, family, cfg.templates.get(server.template) if server.template else None,
                                 dest=destination(out, server), rate=out.input.rate,
                                 active_timeout=out.active_timeout, inactive_timeout=out.inactive_timeout,
                                 boot=self.boot, wall=self.wall(), udp_factory=self.udp_factory)

    def start_uptime(self, boot: float) -> None:
        """Set the time sysUptime counts from (batch mode: the first packet's time)."""
        self.boot = boot
        for fam in self.families.values():
            for srv in fam.servers:
                srv.start_uptime(boot)

    # -- exporting -----------------------------------------------------------------------------

    def export(self, family: str, records: FlowRecords, now: float) -> None:
        """Hand finished flows of one family to each of its flow servers; send what is due."""
        fam = self.families.get(family)
        self.last_now = max(self.last_now, now)
        if fam is None or not len(records):
            return
        # A family's records are all of one IP version, and each of its servers carries that version
        # (the configuration checks it): so they are exported when the family has a flow server.
        if not fam.outboxes() and fam.v8 is None:
            self.counters.not_exportable += len(records)
            return
        self.counters.flows_exported += len(records)
        self.counters.flow_packets_exported += int(records.packets.sum())
        if fam.v8 is not None:
            fam.v8.add(records, now)
        for box in fam.outboxes():
            box.add(records, now)
        self._send(fam, now)

    def _send(self, fam: FamilyExport, now: float,
              which: Callable[[UdpSender | TcpSender], bool] = lambda sender: True) -> None:
        """Encode and send what each outbox lets go now (due, and paced)."""
        real, wall = self.clock(), self.wall()
        if fam.v5 is not None and fam.v5_outbox is not None and which(fam.v5):
            records = fam.v5_outbox.take(now, real)
            if records is not None:  # v5 serves family inet only (the configuration checks it)
                iface = fam.output.interface
                header = V5Header(engine_type=iface.engine_type if iface else 0,
                                  engine_id=iface.engine_id if iface else 0,
                                  sampling_interval=fam.output.input.rate)
                rows = _as_type(records, fam.v5_servers()[0])
                datagrams = encode_v5(rows, now=now, boot=self.boot, sequence=fam.v5_sequence, header=header)
                self._dump(rows, [s for s in fam.v5_servers() if s.local_dump])
                fam.v5_sequence = (fam.v5_sequence + len(records)) & 0xFFFFFFFF
                fam.v5.send(datagrams)
                fam.v5_outbox.sent(len(datagrams), real)
                self.counters.datagrams += len(datagrams)
        for srv in fam.servers:
            records = srv.outbox.take(now, real) if which(srv.sender) else None
            if records is not None:
                rows = _as_type(records, srv.server)
                if srv.server.local_dump:
                    self._dump(rows, [srv.server])
                messages = srv.encode(rows, now, self.boot)
                srv.send(messages, wall)
                srv.outbox.sent(len(messages), real)
                self.counters.datagrams += len(messages)

    def tick(self, now: float) -> None:
        """Periodic work: what waited long enough, v8 aggregates, template/options refresh by time, TCP."""
        self.last_now = max(self.last_now, now)
        self.tick_aggregates(now)
        wall = self.wall()
        for fam in self.families.values():
            self._send(fam, now)
            for srv in fam.servers:
                if now >= srv.state.next_deadline():
                    srv.send(srv.encode(FlowRecords.empty(), now, self.boot), wall)
                srv.poll(wall)

    def _outboxes(self) -> Iterator[Outbox]:
        for fam in self.families.values():
            yield from fam.outboxes()

    def next_deadline(self) -> float | None:
        """Flow-cache time at which held records become due by age (None: nothing waits for age)."""
        deadlines = [d for box in self._outboxes() if (d := box.deadline()) is not None]
        return min(deadlines, default=None)

    def pump(self, now: float | None = None) -> float | None:
        """Send what pacing lets go; return real seconds until more may go, or None when nothing due waits."""
        now = self.last_now if now is None else now
        for fam in self.families.values():
            self._send(fam, now)
        real = self.clock()
        waits = [w for box in self._outboxes() if (w := box.paced_wait(now, real)) is not None]
        return min(waits, default=None)

    def drain(self, within: float = STOP_LIMIT) -> float | None:
        """Make every held record due, paced so that all of it can leave within ``within`` seconds; send
        what may go now. Returns as ``pump`` does: call ``pump`` again after that many seconds."""
        for box in self._outboxes():
            box.finish_by(within)
        return self.pump()

    def flush(self, sleep: Callable[[float], None] = time.sleep, within: float | None = None) -> None:
        """Send everything held, paced, blocking (batch mode); ``within`` bounds it as ``drain`` does."""
        wait = self.drain(float("inf") if within is None else within)
        while wait is not None:
            sleep(wait)
            wait = self.pump()

    def wait_below(self, held: int, sleep: Callable[[float], None] = time.sleep) -> None:
        """Send what pacing lets go, blocking, until at most ``held`` records wait (batch mode: what a
        paced export holds stays bounded while the flush hands it more)."""
        while self.held() > held:
            wait = self.pump()
            if wait is None:
                return
            sleep(wait)

    def held(self) -> int:
        """Flow records waiting in the outboxes (each flow server counts its own)."""
        return sum(box.count for box in self._outboxes())

    def tick_aggregates(self, now: float) -> None:
        """Send the v8 aggregates whose `aggregate-export-interval` has passed."""
        for fam in self.families.values():
            if fam.v8 is not None and fam.v8.due(now):
                self._send_v8(fam.v8, now)

    def flush_aggregates(self, now: float) -> None:
        """Send every pending v8 aggregate now (the final flush)."""
        for fam in self.families.values():
            if fam.v8 is not None:
                self._send_v8(fam.v8, now)

    def _send_v8(self, v8: V8Export, now: float) -> None:
        for aggs, datagrams in v8.take(now, self.boot):
            dumping = [s for s in v8.servers if s.local_dump]
            if dumping and self.dump is not None:
                wall = self.wall()
                for server in dumping:
                    self.dump.aggregates(aggs, server=f"{server.address}:{server.port}", wall=wall)
            v8.sender.send(datagrams)
            self.counters.datagrams += len(datagrams)

    def _dump(self, records: FlowRecords, servers: Sequence[FlowServer]) -> None:
        if self.dump is None or not servers:
            return
        wall = self.wall()
        for server in servers:
            self.dump.records(records, server=f"{server.address}:{server.port}", version=server.version, wall=wall)

    # -- reporting and teardown ----------------------------------------------------------------

    def server_stats(self) -> list[dict[str, object]]:
        """Per flow server and family: its format ("5", "9", "ipfix") and transport, what was sent and what failed
        (for `errors`, `status` and the batch summary)."""
        rows: list[dict[str, object]] = []
        for family, fam in self.families.items():
            if fam.v5 is not None:
                rows.extend({"family": family, "format": "5", "transport": "udp", **row}
                            for row in fam.v5.stats_rows())
            if fam.v8 is not None:
                rows.extend({"family": family, "format": "8", "transport": "udp", **row}
                            for row in fam.v8.sender.stats_rows())
            for srv in fam.servers:
                rows.extend({"family": family, "format": srv.server.version, "transport": srv.server.transport, **row}
                            for row in srv.sender.stats_rows())
        return rows

    def clear_server_stats(self) -> None:
        for fam in self.families.values():
            for udp in ([fam.v5] if fam.v5 is not None else []) + ([fam.v8.sender] if fam.v8 is not None else []):
                udp.stats = tuple(DestinationStats() for _ in udp.destinations)
            for srv in fam.servers:
                srv.clear_stats()

    def close(self, drain: float = DRAIN_TIMEOUT) -> None:
        """Send what is still held, unpaced; close every socket; a TCP collector first gets up to
        ``drain`` seconds to take its backlog."""
        for box in self._outboxes():
            box.pacer = None
            box.finish_by(0.0)
        for fam in self.families.values():
            self._send(fam, self.last_now)
        for fam in self.families.values():
            if fam.v5 is not None:
                fam.v5.close()
            if fam.v8 is not None:
                fam.v8.sender.close()
            for srv in fam.servers:
                srv.close(self.wall(), drain)


def _as_type(records: FlowRecords, server: FlowServer) -> FlowRecords:
    """The records with the AS numbers this server exports (`autonomous-system-type`)."""
    if records.routes is None or server.autonomous_system_type != "peer":
        return records
    return records.with_routes(records.routes.as_type(True))


def destination(out: FamilyOutput, server: FlowServer) -> Destination:
    """Where one server's records go, from its own source address, else the service interface's when that is
    of the server's address family, else one the kernel picks."""
    source = server.source_address
    if source is None and out.interface is not None and out.interface.source_address is not None:
        iface = out.interface.source_address
        same = ipaddress.ip_address(iface).version == ipaddress.ip_address(server.address).version
        source = iface if same else None
    return Destination(server.address, server.port, source, server.dscp)
