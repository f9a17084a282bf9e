"""Per-flow-server export bookkeeping: sequence numbers and when to (re)send templates and options.

Pure: nothing here reads a clock; every decision takes ``now`` (the exporter's time base, seconds).
Each flow server owns one ``ExportState`` so each collector sees its own consistent sequence and
its own refresh schedule.

Refresh rules (Junos `template-refresh-rate` / `option-refresh-rate { packets N; seconds S; }`,
reference §2.3, defaults 4800 packets / 60 s): a template (or the options template with its data)
goes out

* in the first export packet (nothing was ever sent: "send at start"),
* again in the packet after N - 1 packets without it, i.e. in one export packet out of N,
* or in the first packet built S seconds or more after it last went out,
* and at once after ``restart()`` (new template configuration) or when ``now`` runs backwards
  (a replay restarted): resending is always safe, missing templates are not.

Both counts run over every export packet built for this flow server, whatever it carries.

Sequence numbers (the encoders advance ``sequence``):

* NetFlow v9 (RFC 3954 §5.1): export packets sent before this one.
* IPFIX (RFC 7011 §3.1): Data Records (flow and options data) sent before this message in this
  Observation Domain; template records do not count.

Over TCP (``stream=True``) templates are announced once per connection by the transport's
greeting (flowd.export.tcp), so the encoders never put template sets in the stream; the options
*data* record still follows the option refresh schedule so a long-lived connection keeps
reporting the sampling rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from flowd.config.schema import RefreshRate, TemplateConfig

DEFAULT_PACKETS: Final = 4800
DEFAULT_SECONDS: Final = 60.0
U32_MODULUS: Final = 1 << 32


@dataclass(slots=True)
class Refresh:
    """One refresh schedule: by export packet count and by time, whichever comes first."""

    packets: int = DEFAULT_PACKETS
    seconds: float = DEFAULT_SECONDS
    last_sent: float | None = None  # None: never sent, so due now
    since: int = 0  # export packets built since (and including) the last one that carried it
    sends: int = 0

    def __post_init__(self) -> None:
        if self.packets < 1:
            raise ValueError(f"refresh packets: expected >= 1, got {self.packets}")
        if not self.seconds > 0:
            raise ValueError(f"refresh seconds: expected > 0, got {self.seconds}")

    @classmethod
    def from_config(cls, rate: RefreshRate) -> Refresh:
        return cls(rate.packets, rate.seconds)

    def due(self, now: float) -> bool:
        """Whether the next export packet built at ``now`` must carry it."""
        last = self.last_sent
        return last is None or self.since >= self.packets or now - last >= self.seconds or now < last

    def sent(self, now: float) -> None:
        """The packet being built carries it."""
        self.last_sent = now
        self.since = 0
        self.sends += 1

    def count_packet(self, count: int = 1) -> None:
        """``count`` more export packets were built."""
        self.since += count

    def not_due_for(self, now: float) -> int:
        """How many export packets built at ``now`` in a row may go without it (0: the next one carries it)."""
        return 0 if self.due(now) else self.packets - self.since

    def force(self) -> None:
        """Make it due at once."""
        self.last_sent = None

    def deadline(self) -> float:
        """When it becomes due by time (-inf when it is due already because it was never sent)."""
        return -math.inf if self.last_sent is None else self.last_sent + self.seconds


@dataclass(slots=True)
class ExportState:
    """Mutable per-flow-server state shared by the v9 and IPFIX encoders."""

    templates: Refresh = field(default_factory=Refresh)
    options: Refresh = field(default_factory=Refresh)
    stream: bool = False  # TCP: templates travel in the connection greeting, never in the stream
    sequence: int = 0  # the next header sequence number (see the module docstring)
    messages: int = 0  # export packets / messages built
    flow_records: int = 0  # flow data records encoded
    not_carried: int = 0  # flows the template cannot carry (e.g. IPv6 rows to an IPv4 template)

    @classmethod
    def for_template(cls, template: TemplateConfig | None = None, *, stream: bool = False) -> ExportState:
        """State following a `services flow-monitoring` template's refresh rates (defaults without one)."""
        if template is None:
            return cls(stream=stream)
        return cls(Refresh.from_config(template.template_refresh), Refresh.from_config(template.option_refresh),
                   stream=stream)

    def templates_due(self, now: float) -> bool:
        return not self.stream and self.templates.due(now)

    def options_due(self, now: float) -> bool:
        return self.options.due(now)

    def packet_built(self, *, sequence_step: int, flow_records: int, count: int = 1) -> None:
        """Account ``count`` export packets (``sequence_step`` and ``flow_records`` are their sums):
        advance the sequence and both refresh counts."""
        self.sequence = (self.sequence + sequence_step) % U32_MODULUS
        self.messages += count
        self.flow_records += flow_records
        self.templates.count_packet(count)
        self.options.count_packet(count)

    def data_only(self, now: float) -> int:
        """How many export packets built at ``now`` in a row carry neither templates nor options."""
        options = self.options.not_due_for(now)
        return options if self.stream else min(options, self.templates.not_due_for(now))

    def restart(self) -> None:
        """Send templates and options in the next packet (new template configuration)."""
        self.templates.force()
        self.options.force()

    def next_deadline(self) -> float:
        """When an encode call with no records would next produce a packet (templates or options)."""
        options = self.options.deadline()
        return options if self.stream else min(self.templates.deadline(), options)
