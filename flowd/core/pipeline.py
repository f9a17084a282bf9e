"""Frames in, finished flows out: decode → family → filter → sampler → flow cache, one batch at a time.

Pure (no I/O, no clock): batch mode and the daemon both drive it, with ``now`` taken from packet
time in the first and from the system clock in the second.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from flowd.config.schema import Config, Filter
from flowd.core.compiled_table import FlowCache, new_flow_table
from flowd.core.decode import decode
from flowd.core.frame_rules import Decoded
from flowd.core.sampling import Sampler, merge_counters, select
from flowd.core.stats import IngestStats
from flowd.model.batch import FlowRecords, FrameBatch, PacketBatch
from flowd.model.drops import DropReason
from flowd.model.expiry import ExpiryReason
from flowd.model.flowkey import is_ipv4
from flowd.model.record import Record

FAMILY_VERSION = {"inet": 4, "inet6": 6}


@dataclass(slots=True, eq=False, repr=False)
class FamilyPath(Record):
    """Everything one address family's packets pass through."""

    family: str
    filter: Filter | None
    sampler: Sampler
    table: FlowCache


class Pipeline:
    """The sans-IO packet path for one configuration (see the module docstring)."""

    def __init__(self, cfg: Config) -> None:
        self.stats = IngestStats()
        self.paths: dict[str, FamilyPath] = {}
        self.cfg = cfg
        self.macs = mac_families(cfg)
        self._bindings: dict[tuple[str, str], Filter | None] = {}
        self._build(cfg)

    def _build(self, cfg: Config) -> None:
        self.macs = mac_families(cfg)
        for family, out in cfg.families.items():
            old = self.paths.get(family)
            if old is None:
                table = new_flow_table(cfg.flow_table.max_flows, out.active_timeout, out.inactive_timeout,
                                       family in self.macs)
                sampler = Sampler.from_config(out.input)
            else:
                table, sampler = old.table, old.sampler
                table.max_flows = cfg.flow_table.max_flows
                table.active_timeout, table.inactive_timeout = out.active_timeout, out.inactive_timeout
                if table.macs != (family in self.macs):
                    table.macs = family in self.macs
                sampler.configure(out.input)
            self.paths[family] = FamilyPath(family, input_filter(cfg, family), sampler, table)
        self._bindings = {}
        for binding in cfg.inputs:  # the first binding of an interface and family decides, as in input_filter
            self._bindings.setdefault((binding.interface, binding.family),
                                      cfg.filters[binding.filter] if binding.filter else None)

    def reconfigure(self, cfg: Config) -> None:
        """Apply a reloaded configuration, keeping the cache of every family that stays."""
        for family in [f for f in self.paths if f not in cfg.families]:
            del self.paths[family]
        self.cfg = cfg
        self._build(cfg)

    def process(self, frames: FrameBatch, now: float, interface: str | None = None) -> dict[str, FlowRecords]:
        """Account one batch of frames; return, per family, the flows their packets ended.

        ``interface`` names the input binding the frames arrived on (a live capture): its filter applies,
        and a family it has no binding for is not sampled. Without it (capture files) the first binding
        of each family stands for the input. Flows that timed out without a new packet are the business
        of ``expire``.
        """
        return self.account(decode(frames, bool(self.macs)), len(frames), now, interface)

    def account(self, decoded: Decoded, frames: int, now: float, interface: str | None = None
                ) -> dict[str, FlowRecords]:
        """``process`` for frames decoded elsewhere (batch mode decodes in a second thread)."""
        st = self.stats
        st.frames += frames
        for reason, n in decoded.drops.items():
            st.drops[reason] += n
        packets = decoded.packets
        v4 = is_ipv4(packets.key)
        count = int(np.count_nonzero(v4))
        grouped = bool(v4[:count].all())  # IPv4 rows first (batch mode's shards get them so): views, no copy
        out: dict[str, FlowRecords] = {}
        for family, mask, rows in (("inet", v4, slice(0, count)), ("inet6", ~v4, slice(count, len(packets)))):
            if rows.start == rows.stop:
                continue
            path, flt = self.input_path(family, interface)
            if path is None:
                st.drops[DropReason.NOT_IPV4 if family == "inet6" else DropReason.NOT_IPV6] += rows.stop - rows.start
                continue
            part = packets.rows(rows) if grouped else packets.take(mask)
            out[family] = self._account(path, part, now, flt)
        return out

    def input_path(self, family: str, interface: str | None) -> tuple[FamilyPath | None, Filter | None]:
        """The path a family's packets take from an input (None: not sampled there), and the filter on the way.

        ``interface`` names a live input binding; without it (capture files) the first binding of the
        family stands for the input.
        """
        path = self.paths.get(family)
        if path is None:
            return None, None
        if interface is None:
            return path, path.filter
        if (interface, family) not in self._bindings:
            return None, None
        return path, self._bindings[interface, family]

    def _account(self, path: FamilyPath, packets: PacketBatch, now: float, flt: Filter | None) -> FlowRecords:
        st = self.stats
        chosen = select(packets, flt, path.sampler)
        st.drops[DropReason.DISCARDED] += chosen.discarded
        st.not_sampled += chosen.not_sampled
        if flt is not None:  # counters are per filter, as `show firewall` lists them: "FILTER/COUNTER"
            merge_counters(st.filter_counters, chosen.counters, f"{flt.name}/")
            merge_counters(st.filter_bytes, chosen.counted_bytes, f"{flt.name}/")
        if not len(chosen.packets):
            return FlowRecords.empty()
        st.sampled += len(chosen.packets)
        st.count_sizes(chosen.packets.length)
        before = path.table.counters.dropped_no_memory
        ended = path.table.add(chosen.packets, now)
        st.drops[DropReason.NO_MEMORY] += path.table.counters.dropped_no_memory - before
        return ended

    def expire(self, now: float) -> dict[str, FlowRecords]:
        return {f: r for f, p in self.paths.items() if len(r := p.table.expire(now))}

    def flush(self, now: float, reason: ExpiryReason = ExpiryReason.FORCED_END) -> dict[str, FlowRecords]:
        return {f: r for f, p in self.paths.items() if len(r := p.table.flush(now, reason))}

    def flush_chunks(self, now: float, size: int, reason: ExpiryReason = ExpiryReason.FORCED_END
                     ) -> Iterator[tuple[str, FlowRecords]]:
        """``flush`` in pieces of at most ``size`` flows, so a large cache is never copied out whole."""
        for family, path in self.paths.items():
            while len(records := path.table.flush(now, reason, size)):
                yield family, records

    def next_deadline(self) -> float | None:
        deadlines = [d for p in self.paths.values() if (d := p.table.next_deadline()) is not None]
        return min(deadlines) if deadlines else None


def mac_families(cfg: Config) -> frozenset[str]:
    """The families whose flows keep their MAC addresses: a flow server of theirs exports a bridge template.

    Only then do the decoder read and the flow cache keep them (12 bytes a flow), so a probe without a
    bridge template pays nothing for them.
    """
    return frozenset(family for family, out in cfg.families.items()
                     if any(s.template is not None and cfg.templates[s.template].template_type == "bridge"
                            for s in out.flow_servers))


def input_filter(cfg: Config, family: str) -> Filter | None:
    """The filter that feeds sampling for a family: the first input binding of that family.

    A capture file or replay stands for the sampled input interface; a binding without a filter
    (``family inet sampling input``) samples every packet.
    """
    for binding in cfg.inputs:
        if binding.family == family:
            return cfg.filters[binding.filter] if binding.filter else None
    return None
