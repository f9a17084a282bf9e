"""Finished flows → export datagrams → every flow server of the flow's family.

The encoding is pure (flowd.export.*); this module owns the sockets, the per-server sequence and
template-refresh state, and the counts `show services accounting flow | errors` print.

- v5 servers of a family share one encoding (and one flow sequence): every one receives the same datagrams.
- Each v9 or IPFIX server has its own template plan, sequence numbers and refresh schedule, and its own
  socket (UDP, or TCP for IPFIX with a bounded backlog and reconnects).

Two clocks meet here: ``now`` passed to ``export`` is the flow cache's time (packet time in batch mode)
and stamps the records; ``wall`` (a callable) times TCP reconnects and drains, which must follow the
real clock even when a capture file is read faster than it was recorded.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from flowd.config.schema import Config, FamilyOutput, FlowServer
from flowd.export.aggregation import V8Export
from flowd.export.ipfix import MAX_MESSAGE, IpfixFraming, encode_ipfix
from flowd.export.localdump import DumpFile, aggregate_lines, record_lines
from flowd.export.sequence import ExportState
from flowd.export.tcp import BacklogLimit, Backoff, TcpSender
from flowd.export.templates import ExportPlan, plan_for
from flowd.export.udp import Destination, DestinationStats, UdpSender
from flowd.export.v5 import V5Header, encode_v5
from flowd.export.v9 import encode_v9
from flowd.model.batch import FlowRecords

UDP_MAX = 1400  # bytes per v9/IPFIX datagram: fits any path MTU a collector sits behind
DRAIN_TIMEOUT = 5.0  # seconds a TCP collector gets, at shutdown, to take the backlog


@dataclass(slots=True)
class ExportCounters:
    flows_exported: int = 0  # flow records sent to at least one flow server
    flow_packets_exported: int = 0  # packets in those records
    datagrams: int = 0  # export datagrams/messages built
    not_exportable: int = 0  # flows no configured server of their family can carry


@dataclass(slots=True)
class ServerExport:
    """One v9 or IPFIX flow server: its plan, its sequence and refresh state, its socket."""

    server: FlowServer
    signature: tuple[object, ...]  # what the plan was built from; a change rebuilds the server
    plan: ExportPlan
    state: ExportState
    sender: UdpSender | TcpSender

    def encode(self, records: FlowRecords, now: float, boot: float) -> list[bytes]:
        if self.server.version == "9":
            return encode_v9(records, now=now, boot=boot, state=self.state, plan=self.plan)
        size = MAX_MESSAGE if isinstance(self.sender, TcpSender) else UDP_MAX
        return encode_ipfix(records, now=now, boot=boot, state=self.state, plan=self.plan, max_size=size)

    def send(self, messages: Sequence[bytes], wall: float) -> None:
        if isinstance(self.sender, TcpSender):
            self.sender.send(messages, wall)
        else:
            self.sender.send(messages)


@dataclass(slots=True)
class FamilyExport:
    output: FamilyOutput
    v5: UdpSender | None = None  # every v5 server of the family
    v5_sequence: int = 0
    servers: list[ServerExport] = field(default_factory=list)
    v8: V8Export | None = None  # every v8 server of the family

    def senders(self) -> list[UdpSender | TcpSender]:
        return ([self.v5] if self.v5 is not None else []) + [s.sender for s in self.servers] + (
            [self.v8.sender] if self.v8 is not None else [])

    def v5_servers(self) -> list[FlowServer]:
        return [s for s in self.output.flow_servers if s.version == "5"]


@dataclass(slots=True)
class Exporter:
    """Used by batch mode directly and by the daemon from its event loop (all sockets are non-blocking)."""

    cfg: Config
    boot: float  # time-base origin for sysUptime (first packet in file mode, start in the daemon)
    udp_factory: Callable[[Sequence[Destination]], UdpSender] = UdpSender
    wall: Callable[[], float] = time.time
    counters: ExportCounters = field(default_factory=ExportCounters)
    families: dict[str, FamilyExport] = field(default_factory=dict)
    dump: DumpFile | None = None  # `local-dump` lines, when a server asks for them

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
                    fam.v5 = prev.v5
                elif dests:
                    fam.v5 = self.udp_factory(dests)
                    opened.append(fam.v5)
                v8_dests = [destination(out, s) for s in out.flow_servers if s.version == "8"]
                if v8_dests:
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
                plan[family] = fam
        except BaseException:
            for sender in opened:
                sender.close()
            raise
        kept_ids = {id(s) for f in plan.values() for s in f.senders()}
        for fam in self.families.values():
            for sender in fam.senders():
                if id(sender) not in kept_ids:
                    sender.close()
        self.families = plan
        self.cfg = cfg
        dumping = any(s.local_dump for out in cfg.families.values() for s in out.flow_servers)
        if not dumping:
            self.dump = None
        elif self.dump is None or str(self.dump.path) != cfg.routing.local_dump:
            self.dump = DumpFile(cfg.routing.local_dump)

    @staticmethod
    def _signature(cfg: Config, out: FamilyOutput, server: FlowServer) -> tuple[object, ...]:
        template = cfg.templates.get(server.template) if server.template else None
        return (server, destination(out, server), template, out.input.rate, out.active_timeout,
                out.inactive_timeout)

    def _open(self, cfg: Config, family: str, out: FamilyOutput, server: FlowServer,
              sig: tuple[object, ...]) -> ServerExport:
        template = cfg.templates.get(server.template) if server.template else None
        dest = destination(out, server)
        plan = plan_for(server.version, family, template, sampling_rate=out.input.rate,
                        active_timeout=out.active_timeout, inactive_timeout=out.inactive_timeout,
                        exporter_address=dest.source_address)
        tcp = server.transport == "tcp"
        state = ExportState.for_template(template, stream=tcp)
        sender: UdpSender | TcpSender
        if tcp:
            sender = TcpSender(dest, IpfixFraming(plan, self.boot), limit=BacklogLimit(), backoff=Backoff())
            sender.poll(self.wall())
        else:
            sender = self.udp_factory([dest])
        return ServerExport(server, sig, plan, state, sender)

    def start_uptime(self, boot: float) -> None:
        """Set the time sysUptime counts from (batch mode: the first packet's time)."""
        self.boot = boot
        for fam in self.families.values():
            for srv in fam.servers:
                if isinstance(srv.sender, TcpSender):
                    srv.sender.framing = IpfixFraming(srv.plan, boot)

    # -- exporting -----------------------------------------------------------------------------

    def export(self, family: str, records: FlowRecords, now: float) -> None:
        """Encode and send finished flows of one family to each of its flow servers."""
        fam = self.families.get(family)
        if fam is None or not len(records):
            return
        carried = 0
        if fam.v5 is not None:  # v5 serves family inet only (the configuration checks it): all IPv4
            iface = fam.output.interface
            header = V5Header(engine_type=iface.engine_type if iface else 0,
                              engine_id=iface.engine_id if iface else 0,
                              sampling_interval=fam.output.input.rate)
            first = fam.v5_servers()[0]
            rows = _as_type(records, first)
            datagrams = encode_v5(rows, now=now, boot=self.boot, sequence=fam.v5_sequence, header=header)
            self._dump(rows, [s for s in fam.v5_servers() if s.local_dump])
            fam.v5_sequence = (fam.v5_sequence + len(records)) & 0xFFFFFFFF
            fam.v5.send(datagrams)
            self.counters.datagrams += len(datagrams)
            carried = len(records)
        wall = self.wall()
        if fam.v8 is not None:
            fam.v8.add(records, now)
            carried = len(records)
        for srv in fam.servers:
            before = srv.state.not_carried
            rows = _as_type(records, srv.server)
            if srv.server.local_dump:
                self._dump(rows, [srv.server])
            messages = srv.encode(rows, now, self.boot)
            srv.send(messages, wall)
            self.counters.datagrams += len(messages)
            carried = max(carried, len(records) - (srv.state.not_carried - before))
        # A family's records are all of one IP version, and a server's template carries that version
        # (the configuration checks it): so a server carries all of them or none.
        if carried:
            self.counters.flows_exported += len(records)
            self.counters.flow_packets_exported += int(records.packets.sum())
        else:
            self.counters.not_exportable += len(records)

    def tick(self, now: float) -> None:
        """Periodic work: v8 aggregate export, template/options refresh by time, TCP reconnects and backlog."""
        self.tick_aggregates(now)
        wall = self.wall()
        for fam in self.families.values():
            for srv in fam.servers:
                if now >= srv.state.next_deadline():
                    srv.send(srv.encode(FlowRecords.empty(), now, self.boot), wall)
                if isinstance(srv.sender, TcpSender):
                    srv.sender.poll(wall)

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
                    self.dump.write(aggregate_lines(aggs, server=f"{server.address}:{server.port}", wall=wall))
            v8.sender.send(datagrams)
            self.counters.datagrams += len(datagrams)

    def _dump(self, records: FlowRecords, servers: Sequence[FlowServer]) -> None:
        if self.dump is None or not servers:
            return
        wall = self.wall()
        for server in servers:
            self.dump.write(record_lines(records, server=f"{server.address}:{server.port}",
                                         version=server.version, wall=wall))

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
                if isinstance(srv.sender, UdpSender):
                    srv.sender.stats = tuple(DestinationStats() for _ in srv.sender.destinations)

    def close(self, drain: float = DRAIN_TIMEOUT) -> None:
        """Close every socket; a TCP collector first gets up to ``drain`` seconds to take its backlog."""
        for fam in self.families.values():
            if fam.v5 is not None:
                fam.v5.close()
            if fam.v8 is not None:
                fam.v8.sender.close()
            for srv in fam.servers:
                if isinstance(srv.sender, TcpSender):
                    srv.sender.close(self.wall(), timeout=drain)
                else:
                    srv.sender.close()


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
