"""Templates as data: which IEs each v9/IPFIX record carries and which FlowRecords column fills each.

A template is a tuple of ``(IE name, source)`` rows, optionally ``(IE name, source, length)`` for a
reduced-size encoding. ``source`` names a function in ``SOURCES`` that turns a FlowRecords batch
into one column; ``ZERO`` marks an element flowd has no value for. AS numbers, prefix lengths, next
hops, BGP next hops and the input and output interfaces come from the batch's route columns
(``FlowRecords.routes``, filled by flowd.routing at export; 0 where no route matched or no route
source is configured, and the input interface is then the capture interface of the flow key). The
AS columns hold the origin or the peer AS as the flow server's ``autonomous-system-type`` says. ``Template.compile()`` turns
the rows into one big-endian numpy structured dtype (so a whole batch is encoded with one column
assignment per element, as flowd.export.v5 does) and into the template record that describes that
same layout, so the two can never drift apart.

The IPFIX flavour of each template is written out below; the v9 flavour is the same tuple with
``V9_SUBSTITUTES`` applied: flowStart/EndMilliseconds (absolute, IE 152/153) become
flowStart/EndSysUpTime (IE 22/21, ms of sysUptime relative to the v9 header), and ICMPv6 type/code
uses v9's ICMP_TYPE field (32, see below). tcpControlBits is one octet in both (flowd.export.ie). Layouts follow reference §3: IPv4 is the MX inline order; IPv6,
MPLS, MPLS-IPv4 and bridge are the reconstructed lists; peer-as-billing (version9 only) carries
what Junos shows for it (ToS, input ifIndex, destination peer AS, BGP next hop, counts, times).

Values flowd cannot know yet are documented where they are filled:

* MAC addresses (bridge template): those of the flow's first packet (``FlowRecords.mac``; the flow
  cache keeps them only for the families a bridge template exports, flowd.core.pipeline.mac_families):
  both from an Ethernet header, the source alone from a Linux cooked capture (destination
  00:00:00:00:00:00), zeros from every other link type (docs/accuracy.md). ethernetType comes from
  the row's family (0x0800 / 0x86DD).
* ICMP: the flow key keeps type * 256 + code in the destination port (v5 style). The records carry
  it in icmpTypeCodeIPv4/IPv6 and also, as v5 and Junos do, in destinationTransportPort (source port
  0), because collectors that read only the ports (pmacct's nfacctd) would otherwise show 0. In v9
  the IPv6 template uses field 32 too: RFC 3954 defines ICMP_TYPE
  (32) for any ICMP and no separate IPv6 field, and nfcapd 1.7's v9 decoder ignores 139 (it would
  lose ICMPv6 type and code).
* flowDirection is 0 (ingress): FlowRecords does not say whether a flow was sampled on output.
* MPLS label positions above 3 are sent as zero: FlowRecords keeps the top three stack entries.

Default template IDs (when the template configures no ``template-id`` / ``options-template-id``),
chosen by flowd below the configurable range 1024..65535 so they never collide with a configured ID:

    type              data  options
    ipv4               256      512
    ipv6               257      513
    mpls               258      514
    mpls-ipv4          259      515
    bridge             260      516
    peer-as-billing    261      517   (version9 only)

Default Source ID (v9) / Observation Domain ID (IPFIX), when the template configures no `source-id` /
`observation-domain-id` (or there is no template): 1 for family inet, 2 for inet6. The families are
exported from separate sockets with separate sequence counters, so they must not share a domain:
collectors that track sequences per exporter address and domain (nfacctd) would report losses.
0 is avoided too: RFC 7011 §3.1 reserves it for messages that belong to no particular domain.

The options template (scope: the observation domain, i.e. v9's System scope carrying the Source ID)
reports what collectors need to interpret the data: samplingInterval (34) and samplingAlgorithm
(35, deterministic), flowActiveTimeout / flowInactiveTimeout (36/37, seconds),
systemInitTimeMilliseconds (160, the epoch ms of sysUptime 0), when sampling is on (N > 1) the
same 1-in-N again in RFC 5477 form (samplingPacketInterval 305 = 1, samplingPacketSpace
306 = N - 1), and the exporter's address (130 or 131) when it is known. The rate goes out in both
forms because collectors read different ones: nfcapd 1.7 ignores 34/35 without a sampler id but
scales counts by 305/306 (tests/flowd/test_v9.py and test_ipfix.py check it), while many
collectors read only 34. 305/306 are left out when every packet is accounted, since nfcapd marks
flows "sampled" whenever they are present.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

import numpy as np
import numpy.typing as npt

from flowd.export.ie import IE, field_dtype, lookup
from flowd.export.limits import U32_MAX
from flowd.export.template_fields import (
    DEFAULT_DOMAIN,
    DEFAULT_KIND,
    EXPORTER_ADDRESS_FIELD,
    FIELD_SPEC,
    IPFIX_OPTIONS_HEADER,
    MIN_TEMPLATE_ID,
    OPTIONS_FIELDS,
    SAMPLED_FIELDS,
    SET_HEADER,
    SOURCES,
    SPECS,
    TEMPLATE_HEADER,
    V9_OPTIONS_HEADER,
    V9_SCOPES,
    V9_SUBSTITUTES,
    ZERO,
    Carries,
    Column,
    ExportFormat,
    Row,
    SamplingAlgorithm,
)
from flowd.export.timebase import boot_ms
from flowd.model.batch import FlowRecords
from flowd.model.flowkey import is_ipv4

if TYPE_CHECKING:
    from flowd.config.schema import TemplateConfig


# -- compiled templates --------------------------------------------------------------------------

FILL_ROWS: Final = 4096  # records written at a time by RowBlock.fill (a few hundred KiB)


@dataclass(frozen=True, slots=True)
class Element:
    """One field of a compiled template."""

    ie: IE
    source: str
    length: int


@dataclass(frozen=True, slots=True)
class Template:
    """A template: id, rows, which FlowRecords rows it carries, how many leading rows are scope."""

    template_id: int
    rows: tuple[Row, ...]
    carries: Carries = Carries.ANY
    scope: int = 0  # options templates: number of leading scope rows

    def compile(self) -> CompiledTemplate:
        """Resolve IE names, check sources, scope fields and sizes; build the record dtype."""
        if not MIN_TEMPLATE_ID <= self.template_id <= 0xFFFF:
            raise ValueError(f"template id {self.template_id}: expected {MIN_TEMPLATE_ID}..65535")
        if not self.rows:
            raise ValueError(f"template {self.template_id} has no fields")
        elements: list[Element] = []
        for i, row in enumerate(self.rows):
            ie = lookup(row[0])
            length = row[2] if len(row) == 3 else ie.length
            if i < self.scope and ie.name not in V9_SCOPES:
                raise ValueError(f"template {self.template_id}: {ie.name} cannot be a scope field")
            if not self.scope and row[1] != ZERO and row[1] not in SOURCES:
                raise ValueError(f"template {self.template_id}: {ie.name} has no source {row[1]!r}")
            elements.append(Element(ie, row[1], length))
        names = [e.ie.name for e in elements]
        if len(set(names)) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            raise ValueError(f"template {self.template_id} lists {dup} twice")
        dtype = np.dtype([(e.ie.name, *field_dtype(e.ie, e.length)) for e in elements])
        return CompiledTemplate(self, tuple(elements), dtype)


@dataclass(frozen=True, slots=True)
class CompiledTemplate:
    """A template ready to encode: the numpy record layout and the records that announce it."""

    template: Template
    elements: tuple[Element, ...]
    dtype: np.dtype[np.void]

    @property
    def template_id(self) -> int:
        return self.template.template_id

    @property
    def record_size(self) -> int:
        return int(self.dtype.itemsize)

    def template_record(self, fmt: ExportFormat) -> bytes:
        """The (options) template record for ``fmt``; identical for v9 and IPFIX unless options."""
        specs = [(V9_SCOPES[e.ie.name] if fmt is ExportFormat.V9 and i < self.template.scope else e.ie.id,
                  e.length) for i, e in enumerate(self.elements)]
        body = b"".join(FIELD_SPEC.pack(ident, length) for ident, length in specs)
        if not self.template.scope:
            return TEMPLATE_HEADER.pack(self.template_id, len(specs)) + body
        if fmt is ExportFormat.IPFIX:
            return IPFIX_OPTIONS_HEADER.pack(self.template_id, len(specs), self.template.scope) + body
        scope_len = FIELD_SPEC.size * self.template.scope
        return V9_OPTIONS_HEADER.pack(self.template_id, scope_len, len(body) - scope_len) + body

    def encode(self, records: FlowRecords, boot: float) -> bytes:
        """Data records for every row of ``records``."""
        return self.rows(records, boot).encode(0, len(records))

    def rows(self, records: FlowRecords, boot: float) -> RowBlock:
        """Every row of ``records`` as the element columns that encode it (each computed once for the batch)."""
        if records.routes is None:  # "no route" columns, computed once for every element that reads them
            records = records.with_routes(records.route_columns())
        columns = tuple((e.ie.name, SOURCES[e.source](records, boot)) for e in self.elements if e.source != ZERO)
        return RowBlock(self, columns, len(records))

    def encode_values(self, values: Mapping[str, int | bytes]) -> bytes:
        """One data record from named values (options data)."""
        out = np.zeros(1, self.dtype)
        for e in self.elements:
            if e.source != ZERO:
                value = values[e.source]
                out[e.ie.name] = np.frombuffer(value, np.uint8) if isinstance(value, bytes) else value
        return out.tobytes()

    def carries_mask(self, records: FlowRecords) -> npt.NDArray[np.bool_] | None:
        """Which rows this template describes; None when it describes all of them."""
        if self.template.carries is Carries.ANY:
            return None
        v4 = is_ipv4(records.key)
        return v4 if self.template.carries is Carries.IPV4 else np.logical_not(v4)


def template_for(kind: str, fmt: ExportFormat, *, template_id: int | None = None,
                 label_positions: Sequence[int] = (1, 2, 3)) -> Template:
    """The data template of one type in one format's flavour.

    ``label_positions`` (mpls and mpls-ipv4 only) picks which label stack entries fill the MPLS
    fields: the k-th position fills the k-th of mplsTopLabelStackSection / 2 / 3, and only as many
    fields as positions are sent.
    """
    spec = SPECS.get(kind)
    if spec is None:
        raise ValueError(f"unknown template type {kind!r} (expected one of {', '.join(SPECS)})")
    if fmt not in spec.formats:
        raise ValueError(f"{kind}-template is not available in {_format_name(fmt)}")
    if not 1 <= len(label_positions) <= 3 or not all(1 <= p <= 8 for p in label_positions):
        raise ValueError(f"label positions {list(label_positions)}: expected 1 to 3 values in 1..8")
    slots = {f"mpls_label_{k}": f"mpls_label_{p}" for k, p in enumerate(label_positions, start=1)}
    rows: list[Row] = []
    for row in spec.rows:
        if row[1].startswith("mpls_label_"):
            if row[1] not in slots:
                continue
            row = (row[0], slots[row[1]])
        if fmt is ExportFormat.V9:
            row = V9_SUBSTITUTES.get(row[0], row)
        rows.append(row)
    return Template(spec.template_id if template_id is None else template_id, tuple(rows), spec.carries)


def options_template(template_id: int, exporter_version: int | None, *, sampled: bool) -> Template:
    """The options template: RFC 5477 sampling only when sampled, the exporter address when known."""
    rows = (OPTIONS_FIELDS + (SAMPLED_FIELDS if sampled else ())
            + ((EXPORTER_ADDRESS_FIELD[exporter_version],) if exporter_version else ()))
    return Template(template_id, rows, Carries.ANY, scope=1)


def _format_name(fmt: ExportFormat) -> str:
    return "version9" if fmt is ExportFormat.V9 else "version-ipfix"


# -- the per-flow-server plan --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RowBlock:
    """``count`` rows for one template, as the columns of its elements (encoded on demand)."""

    template: CompiledTemplate
    columns: tuple[tuple[str, Column], ...]  # (IE name, one value per row) for every element with a source
    count: int

    def encode(self, start: int, stop: int) -> bytes:
        """The data records of rows ``start`` to ``stop``."""
        out = np.zeros(stop - start, self.template.dtype)
        self.fill(out, start)
        return out.tobytes()

    def fill(self, out: npt.NDArray[np.void], start: int) -> None:
        """Write the rows from ``start`` on into ``out`` (records of this template, row-major: an (m, k)
        array takes m * k rows), ``FILL_ROWS`` records at a time so they stay in the cache while every
        element is written; the elements without a source are left as they are (zeros)."""
        per = int(np.prod(out.shape[1:], dtype=np.int64))
        step = max(1, FILL_ROWS // per)
        for first in range(0, out.shape[0], step):
            part = out[first:first + step]
            lo = start + first * per
            hi = lo + part.shape[0] * per
            for name, column in self.columns:
                part[name] = column[lo:hi].reshape(part.shape + column.shape[1:])


@dataclass(frozen=True, slots=True)
class ExportPlan:
    """Everything fixed about one flow server's v9/IPFIX export: templates, options, domain."""

    format: ExportFormat
    data: tuple[CompiledTemplate, ...]
    options: CompiledTemplate
    domain_id: int = 0  # v9 Source ID / IPFIX Observation Domain ID
    sampling_interval: int = 1
    sampling_algorithm: SamplingAlgorithm = SamplingAlgorithm.DETERMINISTIC
    active_timeout: int = 1800  # seconds
    inactive_timeout: int = 60
    exporter_address: str | None = None
    _packed_address: bytes = field(default=b"", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [t.template_id for t in self.data] + [self.options.template_id]
        if len(set(ids)) != len(ids):
            raise ValueError(f"template ids must differ, got {ids}")
        if not 0 <= self.domain_id <= U32_MAX:
            raise ValueError(f"domain id {self.domain_id}: expected 0..{U32_MAX}")
        if not 1 <= self.sampling_interval <= U32_MAX:
            raise ValueError(f"sampling interval {self.sampling_interval}: expected 1..{U32_MAX}")
        for name in ("active_timeout", "inactive_timeout"):
            if not 0 <= getattr(self, name) <= 0xFFFF:
                raise ValueError(f"{name.replace('_', ' ')} {getattr(self, name)}: expected 0..65535 s")
        packed = b""
        if self.exporter_address is not None:
            packed = ipaddress.ip_address(self.exporter_address).packed
        wanted = {e.ie.name for e in self.options.elements}
        if bool(packed) != ("exporterIPv4Address" in wanted or "exporterIPv6Address" in wanted):
            raise ValueError("the options template and the exporter address disagree")
        object.__setattr__(self, "_packed_address", packed)

    def option_values(self, boot: float) -> dict[str, int | bytes]:
        """The options data values; systemInitTimeMilliseconds is ``boot`` in epoch ms."""
        return {"domain_id": self.domain_id, "sampling_interval": self.sampling_interval,
                "sampling_algorithm": int(self.sampling_algorithm), "active_timeout": self.active_timeout,
                "inactive_timeout": self.inactive_timeout,
                "system_init_ms": boot_ms(boot),
                "packet_interval": 1, "packet_space": self.sampling_interval - 1,
                "exporter_address": self._packed_address}

    def options_record(self, boot: float) -> bytes:
        return self.options.encode_values(self.option_values(boot))

    def encode_rows(self, records: FlowRecords, boot: float) -> tuple[list[RowBlock], int]:
        """Encode each row with the first data template that carries it; return blocks and the
        number of rows no template carries (e.g. IPv6 flows to an IPv4-only template)."""
        blocks: list[RowBlock] = []
        left: npt.NDArray[np.bool_] | None = None  # rows not yet taken; None = all
        for tmpl in self.data:
            mask = tmpl.carries_mask(records)
            if left is not None:
                mask = left if mask is None else (mask & left)
            rows = records if mask is None or bool(mask.all()) else records.take(mask)
            if len(rows):
                blocks.append(tmpl.rows(rows, boot))
            taken = np.ones(len(records), np.bool_) if mask is None else mask
            left = ~taken if left is None else (left & ~taken)
            if not left.any():
                return blocks, 0
        return blocks, len(records) if left is None else int(left.sum())

    def record_sizes(self) -> dict[int, int]:
        """Data record size per template id (options included), for counting records in a set."""
        return {t.template_id: t.record_size for t in (*self.data, self.options)}


def plan_for(fmt: ExportFormat | str, family: str, template: TemplateConfig | None = None, *,
             sampling_rate: int = 1, active_timeout: float = 1800.0, inactive_timeout: float = 60.0,
             exporter_address: str | None = None) -> ExportPlan:
    """The plan of one flow server of ``family`` ("inet" / "inet6").

    Args:
        template: the server's `services flow-monitoring` template, or None for the family's built-in
            template (ipv4 / ipv6) with flowd's default ids and the family's default domain.
        sampling_rate: the family's `input rate` (the 1-in-N reported in the options data).
        active_timeout, inactive_timeout: the timeouts the flow table really uses for this family.
        exporter_address: the export source address, when configured (sent as exporterIPv4/6Address).
    """
    fmt = ExportFormat(fmt)
    if template is not None and ExportFormat(template.format) is not fmt:
        raise ValueError(f"template {template.name} is a {_format_name(ExportFormat(template.format))} "
                         f"template, the flow server exports {_format_name(fmt)}")
    kind = template.template_type if template is not None else DEFAULT_KIND.get(family)
    if kind is None:
        raise ValueError(f"family {family!r}: expected inet or inet6")
    data = template_for(kind, fmt, template_id=template.template_id if template else None,
                        label_positions=template.label_positions if template else (1, 2, 3))
    want = Carries.IPV4 if family == "inet" else Carries.IPV6
    if data.carries not in (want, Carries.ANY):
        raise ValueError(f"{kind}-template cannot carry family {family} flows")
    options_id = (template.options_template_id if template and template.options_template_id is not None
                  else SPECS[kind].options_template_id)
    version = ipaddress.ip_address(exporter_address).version if exporter_address else None
    return ExportPlan(
        format=fmt, data=(data.compile(),),
        options=options_template(options_id, version, sampled=sampling_rate > 1).compile(),
        domain_id=default_domain(family, template), sampling_interval=max(1, sampling_rate),
        active_timeout=round(active_timeout), inactive_timeout=round(inactive_timeout),
        exporter_address=exporter_address,
    )


def default_domain(family: str, template: TemplateConfig | None) -> int:
    """The Source ID / Observation Domain ID: the template's, else the family's default."""
    configured = template.domain_id if template is not None else None
    return configured if configured is not None else DEFAULT_DOMAIN[family]


# -- sets ----------------------------------------------------------------------------------------


def padding(length: int) -> bytes:
    """Zero octets that bring ``length`` to a multiple of 4 (RFC 7011 §3.3.1, RFC 3954 §5.3)."""
    return bytes(-length % 4)


def make_set(set_id: int, records: Sequence[bytes], *, pad: bool = True) -> bytes:
    """One set: header, records, padding to 4 octets unless ``pad`` is False (it is shorter than any record)."""
    body = b"".join(records)
    fill = padding(SET_HEADER.size + len(body)) if pad else b""
    return SET_HEADER.pack(set_id, SET_HEADER.size + len(body) + len(fill)) + body + fill


def template_sets(plan: ExportPlan, template_set_id: int, options_set_id: int) -> tuple[bytes, bytes]:
    """The template set and the options template set of a plan.

    IPFIX (options) template sets are never padded: RFC 7011 §3.3.1 makes padding optional, and
    readers that parse template records until the set ends (python-ipfix) take the padding for a
    truncated record and lose the rest of the message. v9 pads them, as RFC 3954 §6.1 recommends.
    """
    fmt = plan.format
    pad = fmt is ExportFormat.V9
    return (make_set(template_set_id, [t.template_record(fmt) for t in plan.data], pad=pad),
            make_set(options_set_id, [plan.options.template_record(fmt)], pad=pad))
