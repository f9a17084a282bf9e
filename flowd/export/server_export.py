"""One v9 or IPFIX flow server: its template plan, its sequence and refresh state, its outbox and socket.

Each such server exports on its own (flowd.export.exporter holds one per server): UDP, or TCP for IPFIX
with a bounded backlog and reconnects. The exporter imports this module when a configuration has such a
server, and this module imports the TCP sender when a server uses TCP: a v5 export needs neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowd.config.schema import FlowServer, TemplateConfig
from flowd.export.ipfix import IPFIX_HEADER, MAX_MESSAGE, IpfixFraming, encode_ipfix
from flowd.export.limits import DATAGRAM_SIZE
from flowd.export.messages import records_per_packet
from flowd.export.outbox import Outbox
from flowd.export.sequence import ExportState
from flowd.export.templates import ExportPlan, plan_for
from flowd.export.udp import Destination, DestinationStats, UdpSender
from flowd.export.v9 import MAX_SIZE as V9_MAX
from flowd.export.v9 import V9_HEADER, encode_v9
from flowd.model.batch import FlowRecords

if TYPE_CHECKING:  # imported where a TCP flow server is opened
    from flowd.export.tcp import TcpSender


@dataclass(slots=True)
class ServerExport:
    """One v9 or IPFIX flow server: its plan, its sequence and refresh state, its socket."""

    server: FlowServer
    signature: tuple[object, ...]  # what the plan was built from; a change rebuilds the server
    plan: ExportPlan
    state: ExportState
    sender: UdpSender | TcpSender
    outbox: Outbox

    @classmethod
    def open(cls, server: FlowServer, signature: tuple[object, ...], family: str, template: TemplateConfig | None,
             *, dest: Destination, rate: int, active_timeout: float, inactive_timeout: float, boot: float,
             wall: float, udp_factory: Callable[[Sequence[Destination]], UdpSender]) -> ServerExport:
        """Plan the server's templates and open its socket (``rate``: the family's 1-in-N sampling)."""
        plan = plan_for(server.version, family, template, sampling_rate=rate, active_timeout=active_timeout,
                        inactive_timeout=inactive_timeout, exporter_address=dest.source_address)
        tcp = server.transport == "tcp"
        state = ExportState.for_template(template, stream=tcp)
        sender: UdpSender | TcpSender
        if tcp:
            from flowd.export.tcp import BacklogLimit, Backoff, TcpSender

            sender = TcpSender(dest, IpfixFraming(plan, boot), limit=BacklogLimit(), backoff=Backoff())
            sender.poll(wall)
        else:
            sender = udp_factory([dest])
        srv = cls(server, signature, plan, state, sender, Outbox(1))
        srv.outbox = Outbox(srv.per_packet())  # UDP: paced by the exporter (its family's rate)
        return srv

    @property
    def max_size(self) -> int:
        if self.server.version == "9":
            return V9_MAX
        return DATAGRAM_SIZE if isinstance(self.sender, UdpSender) else MAX_MESSAGE

    def per_packet(self) -> int:
        """Flow records one data-only export packet holds."""
        header = V9_HEADER.size if self.server.version == "9" else IPFIX_HEADER.size
        return records_per_packet(self.max_size - header, max(t.record_size for t in self.plan.data))

    def encode(self, records: FlowRecords, now: float, boot: float) -> list[bytes]:
        if self.server.version == "9":
            return encode_v9(records, now=now, boot=boot, state=self.state, plan=self.plan)
        return encode_ipfix(records, now=now, boot=boot, state=self.state, plan=self.plan, max_size=self.max_size)

    def send(self, messages: Sequence[bytes], wall: float) -> None:
        if isinstance(self.sender, UdpSender):
            self.sender.send(messages)
        else:
            self.sender.send(messages, wall)

    def start_uptime(self, boot: float) -> None:
        """sysUptime counts from ``boot`` (batch mode: the first packet's time): a TCP stream's framing too."""
        if not isinstance(self.sender, UdpSender):
            self.sender.framing = IpfixFraming(self.plan, boot)

    def poll(self, wall: float) -> None:
        """A TCP server's connection work: connect, reconnect, send the backlog."""
        if not isinstance(self.sender, UdpSender):
            self.sender.poll(wall)

    def clear_stats(self) -> None:
        if isinstance(self.sender, UdpSender):
            self.sender.stats = tuple(DestinationStats() for _ in self.sender.destinations)
        else:
            self.sender.stats = self.sender.stats.cleared()

    def close(self, wall: float, drain: float) -> None:
        """Close the socket; a TCP collector first gets up to ``drain`` seconds to take the backlog."""
        if isinstance(self.sender, UdpSender):
            self.sender.close()
        else:
            self.sender.close(wall, timeout=drain)
