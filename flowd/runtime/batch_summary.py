"""What `flowd --read` prints when the file is done: packets, drops (in the shell's words), flows, each flow server.

Each flow server gets one line per family it serves, naming its format and transport, with
"datagrams" for UDP and "messages" for TCP; a server to which every export failed is named as such,
and batch mode exits EX_UNAVAILABLE (flowd/runtime/exit_status.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from flowd.control.words import EXPORT_FORMATS, drop_words
from flowd.model.record import Frozen


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ServerLine(Frozen):
    """One flow server of one family, as the exporter's `server_stats` row describes it."""

    family: str
    server: str
    format: str
    transport: str
    sent: int
    failed: int
    last_error: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> ServerLine:
        tcp = row.get("transport") == "tcp"
        sent = row["messages_sent"] if tcp else row["datagrams_sent"]
        error = row.get("last_error")
        return cls(str(row["family"]), str(row["flow_server"]), str(row["format"]), str(row["transport"]),
                   int(sent), int(row["failures"]), str(error) if error else None)  # type: ignore[call-overload]

    @property
    def unit(self) -> str:
        return "messages" if self.transport == "tcp" else "datagrams"

    @property
    def all_failed(self) -> bool:
        """Nothing reached the server: a UDP datagram counts as sent and as failed when ICMP refuses it."""
        return self.failed > 0 and self.failed >= self.sent

    def line(self) -> str:
        what = f"{EXPORT_FORMATS.get(self.format, self.format)} over {self.transport.upper()}, family {self.family}"
        counts = f"{self.sent} {self.unit} sent, {self.failed} failed"
        if self.all_failed:
            return f"Flow server {self.server} ({what}): every export failed: {counts}" + (
                f" (last error: {self.last_error})" if self.last_error else "")
        return f"Flow server {self.server} ({what}): {counts}"


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Summary(Frozen):
    frames: int
    packets_sampled: int
    drops: dict[str, int]  # drop counter name (DropReason value) -> packets
    discarded: int
    not_sampled: int
    flows_created: int
    flows_exported: int
    not_exportable: int
    servers: Sequence[ServerLine]
    elapsed: float
    error: str | None  # the capture error that ended the file early, if any

    @property
    def failed_servers(self) -> list[ServerLine]:
        """The flow servers to which every export failed."""
        return [s for s in self.servers if s.all_failed]

    def lines(self) -> list[str]:
        pps = self.frames / self.elapsed if self.elapsed > 0 else 0.0
        dropped = ", ".join(f"{drop_words(k)} {v}" for k, v in self.drops.items() if v) or "none"
        return [
            f"Packets read: {self.frames}, decoded and sampled: {self.packets_sampled}",
            f"Packets dropped: {dropped}",
            f"Packets discarded by filter: {self.discarded}, not sampled: {self.not_sampled}",
            f"Flows created: {self.flows_created}, exported: {self.flows_exported}"
            + (f", not exportable in v5 (IPv6): {self.not_exportable}" if self.not_exportable else ""),
            *(s.line() for s in self.servers),
            f"Elapsed: {self.elapsed:.3f} s, {pps:,.0f} packets/s",
        ]
