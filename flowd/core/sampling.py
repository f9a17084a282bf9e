"""Which packets reach the flow cache: firewall filter terms, then 1-in-N / run-length / pps sampling.

Filter semantics follow Junos: terms are tried in order; the first term whose ``from`` conditions all
match decides. ``then sample`` sends the packet to the sampler, ``count NAME`` counts it, and the
term's terminating action is ``accept`` (also the default when only modifiers are given) or
``discard``. A packet no term matches is discarded (the implicit final term). In a probe nothing is
forwarded, so ``accept`` and ``discard`` differ only in what is counted.

Sampling is deterministic, as on a Junos services PIC: with ``rate N`` the first packet of every run
of N is sampled, with ``run-length R`` the R packets after it too. ``max-packets-per-second M`` then
keeps at most M sampled packets in each second of packet time (wall-clock seconds for a live capture);
several capture workers share one budget per second through ``Sampler.budget``. Exported packet and byte counts are
the sampled counts; the v5 header and the v9/IPFIX options carry N so collectors can scale them.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from flowd.config.schema import Filter, SamplingInput, Term
from flowd.model.batch import PacketBatch
from flowd.model.flowkey import DPORT, DST, PROTO, SPORT, SRC, u16_column
from flowd.model.record import Record

Mask = npt.NDArray[np.bool_]
_V4_MAPPED: Final = ipaddress.IPv6Network("::ffff:0:0/96")


def _address_words(keys: npt.NDArray[np.uint8], part: slice) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """A 16-byte key address as two big-endian 64-bit columns (high, low)."""
    raw = np.ascontiguousarray(keys[:, part])
    words = raw.view(">u8").reshape(-1, 2).astype(np.uint64)
    return words[:, 0], words[:, 1]


def _prefix_masks(prefix: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int, int, int]:
    """(net_hi, net_lo, mask_hi, mask_lo) of a prefix in the key's 128-bit address space."""
    if prefix.version == 4:
        net = int(_V4_MAPPED.network_address) | int(prefix.network_address)
        length = 96 + prefix.prefixlen
    else:
        net, length = int(prefix.network_address), prefix.prefixlen
    mask = ((1 << 128) - 1) ^ ((1 << (128 - length)) - 1)
    full = (1 << 64) - 1
    return (net >> 64) & full, net & full, (mask >> 64) & full, mask & full


def match_prefixes(keys: npt.NDArray[np.uint8], part: slice,
                   prefixes: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> Mask:
    """Rows whose address (SRC or DST) lies in any of the prefixes."""
    hi, lo = _address_words(keys, part)
    out = np.zeros(keys.shape[0], np.bool_)
    for prefix in prefixes:
        nh, nl, mh, ml = _prefix_masks(prefix)
        out |= ((hi & np.uint64(mh)) == np.uint64(nh)) & ((lo & np.uint64(ml)) == np.uint64(nl))
    return out


def _match_ports(column: npt.NDArray[np.uint16], ranges: Sequence[tuple[int, int]]) -> Mask:
    out = np.zeros(column.shape[0], np.bool_)
    for lo, hi in ranges:
        out |= (column >= lo) & (column <= hi)
    return out


def term_matches(term: Term, keys: npt.NDArray[np.uint8]) -> Mask:
    """Rows that satisfy every ``from`` condition of a term (an empty condition matches all)."""
    m = term.match
    ok = np.ones(keys.shape[0], np.bool_)
    if m.source_address:
        ok &= match_prefixes(keys, SRC, m.source_address)
    if m.destination_address:
        ok &= match_prefixes(keys, DST, m.destination_address)
    if m.address:
        ok &= match_prefixes(keys, SRC, m.address) | match_prefixes(keys, DST, m.address)
    if m.protocol:
        ok &= np.isin(keys[:, PROTO], np.array(m.protocol, np.uint8))
    if m.source_port or m.destination_port or m.port:
        sport, dport = u16_column(keys, SPORT), u16_column(keys, DPORT)
        if m.source_port:
            ok &= _match_ports(sport, m.source_port)
        if m.destination_port:
            ok &= _match_ports(dport, m.destination_port)
        if m.port:
            ok &= _match_ports(sport, m.port) | _match_ports(dport, m.port)
    return ok


@dataclass(slots=True, eq=False, repr=False)
class FilterResult(Record):
    sample: Mask  # rows a term sent to the sampler
    discarded: int  # rows a `discard` term (or no term) took
    counters: dict[str, int]  # `count NAME` hits in this batch
    counted_bytes: dict[str, int] = field(default_factory=dict)  # their IP lengths summed, when lengths were given


def apply_filter(flt: Filter, keys: npt.NDArray[np.uint8], lengths: npt.NDArray[np.uint32] | None = None
                 ) -> FilterResult:
    """Run a firewall filter over a batch of keys (Junos first-match semantics); ``lengths`` feed byte counters."""
    n = keys.shape[0]
    undecided = np.ones(n, np.bool_)
    sample = np.zeros(n, np.bool_)
    discarded = 0
    counters: dict[str, int] = {}
    counted_bytes: dict[str, int] = {}
    for term in flt.terms:
        hit = undecided & term_matches(term, keys)
        hits = int(hit.sum())
        if term.count:
            counters[term.count] = counters.get(term.count, 0) + hits
            if lengths is not None:
                counted_bytes[term.count] = counted_bytes.get(term.count, 0) + int(lengths[hit].sum(dtype=np.int64))
        if term.action == "discard":
            discarded += hits
        elif term.sample:
            sample |= hit
        undecided &= ~hit
    discarded += int(undecided.sum())
    return FilterResult(sample=sample, discarded=discarded, counters=counters, counted_bytes=counted_bytes)


@dataclass(slots=True, eq=False, repr=False)
class Sampler(Record):
    """Deterministic 1-in-N sampling with run-length and a packets-per-second cap; keeps state across batches."""

    rate: int = 1
    run_length: int = 0
    max_packets_per_second: int | None = None
    position: int = 0  # packets offered so far
    second: float = float("-inf")  # the packet-time second the pps cap is counting
    in_second: int = 0  # packets sampled in that second
    pps_limited: int = 0  # packets the cap refused (PPS overload)
    # Shared cap: (second, packets wanted in it) -> packets granted, for a budget other samplers draw on
    # too (capture workers); None keeps the count in this sampler.
    budget: Callable[[float, int], int] | None = None

    @classmethod
    def from_config(cls, cfg: SamplingInput) -> Sampler:
        return cls(rate=cfg.rate, run_length=cfg.run_length,
                   max_packets_per_second=cfg.max_packets_per_second)

    def configure(self, cfg: SamplingInput) -> None:
        """Take a new configuration (SIGHUP) without restarting the packet count."""
        self.rate, self.run_length = cfg.rate, cfg.run_length
        self.max_packets_per_second = cfg.max_packets_per_second

    def select(self, ts: npt.NDArray[np.float64]) -> Mask:
        """Which of these packets (in arrival order) are sampled."""
        n = ts.shape[0]
        phase = (self.position + np.arange(n, dtype=np.int64)) % self.rate
        keep = phase <= self.run_length
        self.position += n
        if self.max_packets_per_second is None or not keep.any():
            return keep
        idx = np.flatnonzero(keep)
        sec = np.floor(ts[idx])
        # rank of each sampled packet within its second (arrival order), carrying the open second over
        starts = np.ones(idx.shape[0], np.bool_)
        starts[1:] = sec[1:] != sec[:-1]
        run_start = np.maximum.accumulate(np.where(starts, np.arange(idx.shape[0]), 0))
        rank = np.arange(idx.shape[0]) - run_start
        if self.budget is not None:
            bounds = np.append(np.flatnonzero(starts), idx.shape[0]).tolist()
            granted = np.empty(idx.shape[0], np.int64)
            for lo, hi in itertools.pairwise(bounds):  # one claim per run of a second (one or two a batch)
                granted[lo:hi] = self.budget(float(sec[lo]), hi - lo)
            allowed = rank < granted
            self.pps_limited += int((~allowed).sum())
            keep[idx[~allowed]] = False
            return keep
        rank = np.where(sec == self.second, rank + self.in_second, rank)
        allowed = rank < self.max_packets_per_second
        self.pps_limited += int((~allowed).sum())
        keep[idx[~allowed]] = False
        last = sec[-1]
        in_last = int(np.count_nonzero(allowed & (sec == last)))
        self.in_second = in_last + (self.in_second if last == self.second else 0)
        self.second = float(last)
        return keep


@dataclass(slots=True, eq=False, repr=False)
class Selection(Record):
    """Outcome of filter + sampler for one batch of one family."""

    packets: PacketBatch
    discarded: int = 0
    not_sampled: int = 0
    counters: dict[str, int] = field(default_factory=dict)
    counted_bytes: dict[str, int] = field(default_factory=dict)


def select(batch: PacketBatch, flt: Filter | None, sampler: Sampler) -> Selection:
    """Filter then sample a batch; without a filter every packet goes to the sampler."""
    if flt is None:
        offered, discarded, counters, counted_bytes = batch, 0, {}, {}
    else:
        res = apply_filter(flt, batch.key, batch.length)
        offered = batch if res.sample.all() else batch.take(res.sample)
        discarded, counters, counted_bytes = res.discarded, res.counters, res.counted_bytes
    keep = sampler.select(offered.ts)
    chosen = offered if keep.all() else offered.take(keep)
    return Selection(packets=chosen, discarded=discarded,
                     not_sampled=len(offered) - len(chosen), counters=counters, counted_bytes=counted_bytes)


def merge_counters(total: dict[str, int], more: Mapping[str, int], prefix: str = "") -> None:
    for name, value in more.items():
        total[prefix + name] = total.get(prefix + name, 0) + value
