"""Which finished flows leave now: full datagrams at once, the rest after a short delay, at a paced rate.

Pure: nothing here reads a clock. Two times meet, as in flowd.export.exporter: ``now`` is the flow
cache's time (packet time in batch mode) and decides how long records wait to fill a datagram;
``real`` is the monotonic clock and paces the datagrams, because a collector drains its socket in
real time.

Gathering (what a router does): a flow server's records wait in its ``Outbox`` until they fill
whole export datagrams (v5: 30 records; v9/IPFIX: as many as the datagram size holds), which go at
once; what does not fill one goes when its oldest record has waited ``GATHER_DELAY`` (1 s of
flow-cache time), and everything goes at shutdown or when the exporter is flushed (``drain``).

Pacing (Junos `flow-export-rate`, in thousands of export packets per second; flowd.config.schema
has the default and the reasons for it): a token bucket per UDP flow server, refilled at the rate, holding at most
``BURST`` datagrams, so a collector with Linux's default 208 KiB receive buffer is never handed
more than about 46 KiB at once. Records that are due wait in the outbox (as columns, never as
encoded datagrams) until tokens allow them. TCP flow servers are not paced: TCP's own flow control
keeps a slow collector from being overrun.

At shutdown ``finish_by`` raises the rate just enough that what is left leaves within
``STOP_LIMIT`` seconds; systemd's TimeoutStopSec (systemd/flowd.service) leaves room for it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Final

from flowd.model.batch import FlowRecords
from flowd.model.record import Record

GATHER_DELAY: Final = 1.0  # seconds of flow-cache time a record waits for others to fill its datagram
BURST: Final = 32  # datagrams a flow server may get back to back (about 46 KiB of 1464-octet v5)
STOP_LIMIT: Final = 20.0  # seconds the final export at shutdown may take, paced
_EPSILON: Final = 1e-6  # of a token: rounding in refills never leaves a waiter one float short


@dataclass(slots=True, eq=False, repr=False)
class Pacer(Record):
    """A token bucket: ``rate`` datagrams per second, at most ``burst`` in a row (real time)."""

    rate: float
    burst: float = BURST
    tokens: float = BURST
    stamp: float | None = None  # real time of the last refill

    def __post_init__(self) -> None:
        if not self.rate > 0 or not self.burst >= 1:
            raise ValueError(f"pacer: need rate > 0 and burst >= 1, got {self.rate} and {self.burst}")
        self.tokens = min(self.tokens, self.burst)

    def refill(self, real: float) -> None:
        if self.stamp is not None and real > self.stamp:
            self.tokens = min(self.burst, self.tokens + (real - self.stamp) * self.rate)
        if self.stamp is None or real > self.stamp:
            self.stamp = real

    def available(self, real: float) -> int:
        """Whole datagrams that may go now."""
        self.refill(real)
        return max(0, math.floor(self.tokens + _EPSILON))  # 0.9999999 after waiting `wait()` is one

    def spend(self, datagrams: int, real: float) -> None:
        """Datagrams sent (may exceed what was available: templates ride along; the debt is repaid)."""
        self.refill(real)
        self.tokens -= datagrams

    def wait(self, real: float) -> float:
        """Real seconds until one whole datagram may go."""
        self.refill(real)
        return max(0.0, (1 - self.tokens) / self.rate)


@dataclass(slots=True, eq=False, repr=False)
class Outbox(Record):
    """One flow server's finished flows that have not left yet, oldest first."""

    per_datagram: int  # records that fill one export datagram
    pacer: Pacer | None = None  # None: not paced (TCP)
    delay: float = GATHER_DELAY
    chunks: deque[tuple[float, FlowRecords]] = field(default_factory=deque)  # (added at, records)
    count: int = 0
    draining: bool = False  # everything is due, whatever its age (flush, shutdown)

    def __post_init__(self) -> None:
        if self.per_datagram < 1:
            raise ValueError(f"outbox: a datagram must hold at least one record, got {self.per_datagram}")

    def add(self, records: FlowRecords, now: float) -> None:
        if len(records):
            self.chunks.append((now, records))
            self.count += len(records)

    def due(self, now: float) -> int:
        """Records that may leave now, pacing aside: whole datagrams, or all once the oldest waited enough."""
        if not self.count:
            return 0
        if self.draining or now - self.chunks[0][0] >= self.delay or now < self.chunks[0][0]:
            return self.count
        return self.count - self.count % self.per_datagram

    def take(self, now: float, real: float) -> FlowRecords | None:
        """Remove and return the records that leave now (due and paced), or None."""
        n = self.due(now)
        if self.pacer is not None:
            n = min(n, self.pacer.available(real) * self.per_datagram)
        if n <= 0:
            return None
        parts: list[FlowRecords] = []
        left = n
        while left:
            added, records = self.chunks[0]
            if len(records) <= left:
                parts.append(records)
                self.chunks.popleft()
                left -= len(records)
            else:
                parts.append(records.take(slice(0, left)))  # views: the split copies nothing
                self.chunks[0] = (added, records.take(slice(left, None)))
                left = 0
        self.count -= n
        if not self.count:
            self.draining = False
        return parts[0] if len(parts) == 1 else FlowRecords.concat(parts)

    def sent(self, datagrams: int, real: float) -> None:
        if self.pacer is not None and datagrams:
            self.pacer.spend(datagrams, real)

    def deadline(self) -> float | None:
        """Flow-cache time at which what is held becomes due by age (None when nothing waits for age)."""
        if not self.count or self.draining:
            return None
        return self.chunks[0][0] + self.delay

    def paced_wait(self, now: float, real: float) -> float | None:
        """Real seconds until pacing lets more of what is due leave; None when nothing due is held back."""
        if self.pacer is None or not self.due(now):
            return None
        return self.pacer.wait(real)

    def datagrams_left(self) -> int:
        return -(-self.count // self.per_datagram)

    def finish_by(self, seconds: float) -> None:
        """Everything is due, and the rate rises if needed so it can all leave within ``seconds``."""
        self.draining = bool(self.count)
        if self.pacer is not None and self.count:
            needed = (self.datagrams_left() - self.pacer.burst) / max(seconds, 1e-3)
            self.pacer.rate = max(self.pacer.rate, needed)

