"""docs/config.md, generated from the schema's field metadata (`python -m flowd.config.docs`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, Final

from flowd.config.diagnosis import MAX_ERRORS, check_config_main
from flowd.config.schema import (
    MAX_TEMPLATES,
    BgpNeighbor,
    PrefixFileConfig,
    RoutingConfig,
    CaptureConfig,
    ControlConfig,
    FamilyOutput,
    FlowServer,
    FlowTableConfig,
    MetricsConfig,
    NetconfConfig,
    RefreshRate,
    SamplingInput,
    ServiceInterface,
    TemplateConfig,
    Term,
    TermMatch,
)

# --- docs/config.md -----------------------------------------------------------------------------------

_KIND_TEXT: Final = {
    "integer": "integer", "duration": "duration (s)", "address": "IP address", "name": "name", "flag": "flag",
    "choice": "choice", "block": "block", "socket": "path", "path": "path", "group": "group name", "prefixes": "prefix list",
    "protocols": "protocol list", "ports": "port list", "integers": "integer list", "text": "text",
}


@dataclass(frozen=True, slots=True)
class _DocRow:
    syntax: str
    kind: str
    range: str
    default: str
    help: str


def _rows(cls: type) -> list[_DocRow]:
    rows = []
    for f in fields(cls):
        meta = f.metadata
        if not meta.get("syntax"):
            continue
        rng = meta["range"]
        rows.append(_DocRow(meta["syntax"], _KIND_TEXT[meta["kind"]], f"{rng[0]}..{rng[1]}" if rng else "",
                            meta["shown"] or shown_default(f), meta["help"]))
    return rows


def shown_default(f: Field[Any]) -> str:
    if f.default is MISSING:
        return "required"
    if f.default is None:
        return "none"
    if isinstance(f.default, bool):
        return "on" if f.default else "off"
    if isinstance(f.default, float) and f.default.is_integer():
        return str(int(f.default))
    return str(f.default)


_INTERFACE_ROWS: Final = (
    _DocRow("filter input NAME", "name", "", "none",
            "Run the packets arriving on this unit through `firewall family F filter NAME`; terms with "
            "`then sample` feed the sampler. The filter must exist in the same family."),
    _DocRow("filter output NAME", "name", "", "none", "The same for packets leaving the unit (Config.outputs)."),
    _DocRow("sampling { input; output; }", "flag", "", "off",
            "Sample every packet of this unit (no filter). Give either this or `filter` for one direction."),
    _DocRow("address PREFIX { destination ADDRESS; }", "interface address", "", "none",
            "Accepted and checked so router configurations load unchanged; flowd does not assign addresses."),
    _DocRow("description TEXT", "text", "", "none", "Accepted (also at interface and unit level); not used."),
)

_MAP_ROWS: Final = (
    _DocRow("JUNOS-NAME LINUX-NAME", "name", "", "none",
            "Capture the Junos interface (e.g. ge-2/3/0) on this Linux interface (e.g. eth0)."),
)

_DOC_SECTIONS: Final[tuple[tuple[str, str, Sequence[_DocRow]], ...]] = (
    ("forwarding-options sampling input", "The sampling instance's input: which packets of the bound interfaces "
     "are sampled.", _rows(SamplingInput)),
    ("forwarding-options sampling family (inet | inet6)", "Per family: an optional input override and the output "
     "(flow cache timeouts, collectors, services interface). The seed's placement "
     "`forwarding-options family inet { output { ... } }` (outside `sampling`) is read the same way; a family "
     "may be configured in only one of the two places.", _rows(FamilyOutput)),
    ("... output flow-server ADDRESS", "One collector. Flow servers are keyed by address (as in Junos), so one "
     "address takes one port.", _rows(FlowServer)),
    ("... output interface NAME", "The services PIC (sp-, ms-, mo-) that builds the flows on a router; flowd "
     "reports its name as the `Service Accounting interface` and puts its engine values in v5 headers.",
     _rows(ServiceInterface)),
    ("interfaces IF unit N family (inet | inet6)", "Binds sampling to an interface. IF is the router's name as "
     "written (see `flowd interface-map`); N is 0..16385.", _INTERFACE_ROWS),
    ("firewall family (inet | inet6) filter NAME term NAME from", "Match conditions. Prefix lists take "
     "`PREFIX;` entries (curly) or a list (YAML); `except` entries are not supported. Filter names must be "
     "unique across families.", _rows(TermMatch)),
    ("firewall family (inet | inet6) filter NAME term NAME then", "Actions. The one-line forms "
     "`then accept;` / `then discard;` / `then sample;` are accepted.", _rows(Term)),
    ("services flow-monitoring (version9 | version-ipfix) template NAME", f"Version 9 / IPFIX templates, at "
     f"most {MAX_TEMPLATES} per version; names must be unique across both. A flow server exports with the "
     "one its `version9 { template NAME; }` / `version-ipfix { template NAME; }` names, and with the "
     "family's built-in template when it names none.", _rows(TemplateConfig)),
    ("... template-refresh-rate / option-refresh-rate", "Resend the (options) template after `packets` export "
     "packets or `seconds` seconds, whichever comes first.", _rows(RefreshRate)),
    ("flowd interface-map", "flowd's own statement: router interface names to Linux interfaces.", _MAP_ROWS),
    ("flowd flow-table", "flowd's own statement: the flow cache.", _rows(FlowTableConfig)),
    ("flowd control", "flowd's own statement: the control socket for flowcli.", _rows(ControlConfig)),
    ("flowd routing", "flowd's own statement (no Junos equivalent: a router has its routing tables): where the "
     "route lookups at export get AS numbers, prefix lengths, next hops, BGP next hops and output interfaces. "
     "Any combination of sources; each is reloaded by SIGHUP (prefix files are read again, BGP sessions "
     "whose settings changed are restarted). Per address the longest matching prefix of any source wins; "
     "`precedence` breaks ties between sources. See docs/routing.md.", _rows(RoutingConfig)),
    ("flowd routing bgp neighbor ADDRESS", "One BGP session to the router flowd watches, run by ExaBGP as a "
     "supervised child process (Debian `exabgp` or PyPI `exabgp`). IPv4 and IPv6 unicast; origin AS is the "
     "last AS of the path, peer AS the first; the session's routes are flushed when it goes down.",
     _rows(BgpNeighbor)),
    ("flowd routing prefix-file PATH", "A route file, read at start and on SIGHUP; a malformed line is an error "
     "naming the file and line, and the routes already loaded stay.", _rows(PrefixFileConfig)),
    ("flowd capture", "flowd's own statement: how the daemon reads the Linux interfaces that feed sampling "
     "(AF_PACKET TPACKET_V3 rings, needing CAP_NET_RAW only). Changes take effect at the next start; a "
     "reload (SIGHUP) keeps the running rings and workers.", _rows(CaptureConfig)),
    ("flowd metrics", "flowd's own statement: the OpenMetrics endpoint for Prometheus (docs/metrics.md); off "
     "unless present (`metrics;` turns it on with the defaults). Read at start.", _rows(MetricsConfig)),
    ("flowd netconf", "flowd's own statement: NETCONF over SSH for Junos automation (PyEZ, ncclient, Ansible); "
     "off unless present. Read at start. See docs/operator-guide.md.", _rows(NetconfConfig)),
)

_DOC_INTRO: Final = """\
# flowd configuration reference

Generated by `python -m flowd.config.docs --docs` from the field metadata in `flowd/config/schema.py` (the same
metadata the validator reads its ranges and defaults from); a test fails when this file is stale.

## Files and syntax

flowd reads one file, in either of two syntaxes that mean the same thing:

* **Junos curly braces** (`name value;`, `name { ... }`, `name;` flags, `[ a b ]` lists, `#` and
  `/* */` comments, `"quoted strings"`), as `show configuration` prints it. The seed's stanza,
  `etc/seed-sampling.conf`, loads unchanged. `inactive:` and other tags are rejected.
* **YAML** whose nesting mirrors the Junos statements (`etc/flowd.yaml`): `name: value`,
  `name: {...}`, flags as `name: true`, lists as YAML lists. IPv6 keys need quotes (`"::1": {...}`).

The suffix decides (`.conf` Junos, `.yaml`/`.yml` YAML); otherwise the first statement does
(`name ... {` or `name ...;` is Junos). Without `--config`, flowd uses its embedded copy of
`etc/flowd.yaml`. `flowd --check-config --config FILE` prints `configuration check succeeds` and
exits 0, or prints every error of the file (in file order, at most {MAX_ERRORS}), one line each, and
exits 78 (EX_CONFIG).

Validation is strict: unknown statements, wrong types and out-of-range values are errors, reported
on one line as `FILE:LINE: key.path: message`; with `flow-active-timeout: 5` in etc/flowd.yaml:

    etc/flowd.yaml:26: forwarding-options.sampling.family.inet.output.flow-active-timeout: expected 60..1800, got 5

Durations are seconds, written plainly (`60`) or with a unit (`30s`, `5m`, `1h`).

Top-level statements: `interfaces`, `forwarding-options`, `firewall`, `services`, and `flowd`
(flowd's own settings, with no Junos equivalent).

## Router interface names on Linux

A router configuration names interfaces the host lacks (`ge-2/3/0`). `flowd interface-map` maps
each Junos name to a Linux interface:

    flowd:
      interface-map: {ge-2/3/0: eth0}

    flowd { interface-map { ge-2/3/0 eth0; } }

Bindings (`Config.inputs`, `Config.outputs`) keep the Junos name as written and `Config.interface_map`
holds the map; the capture side looks names up there. Unmapped names are kept as written (a capture
file needs no interface at all), so a Linux name can also be used directly
(`interfaces { eth0 { unit 0 { family inet { sampling { input; } } } } }`). A unit number is kept
in the binding; the map works on interface names.

## Rules checked across statements

* A filter named by `interfaces ... filter input NAME` must exist in the same family (the error points
  at the interface's line).
* A flow server needs `port`; at most 8 flow servers per family; version 5/8 and version 9/IPFIX
  servers cannot be mixed in one output; versions 5 and 8 cannot serve family inet6; a flow server's
  `source-address` must be of the server's address family. The output interface's `source-address` is used by the flow
  servers of its address family only; the others use one the kernel picks.
* A version 8 server needs `aggregation`, and `aggregation` needs version 8; every version 8 server of
  an output uses the same aggregation; version 5 servers of an output use the same
  `autonomous-system-type` (they share one export).
* A file with no statements at all (empty, or only comments) is refused, at start and on reload
  (SIGHUP keeps the running configuration): it is most likely a file emptied by mistake.
* `version9 { template NAME; }` / `version-ipfix { template NAME; }` must name a template defined under
  the same version, of a type the family can export. `version9;` alone (a flowd extension, also what
  a command-line version override writes) means the family's built-in template.
* Template IDs and options template IDs are unique; exactly one template type per template.
* Command-line overrides (`--flow-server`, `--export-version`, `--transport`, `--source-address`,
  `--active-timeout`, `--inactive-timeout`, `--sampling-rate`) replace the values of every configured
  family (creating `family inet output` when none exists) and pass the same checks.
  `--export-version 9` or `ipfix` on a configuration without an inet6 output adds one with inet's flow
  servers and timeouts (and the built-in IPv6 template), so IPv6 is exported too; with version 5 IPv6
  packets are counted (`not IPv4`) but not exported. `--source-address` may be given once per address
  family: each flow server takes the one of its own family. `--interface NAME` (repeatable)
  replaces the input bindings: each NAME (a Linux interface, or a name from `flowd interface-map`)
  samples every packet, without a filter, in every configured family.
* `flowd capture block-size` is a multiple of 4096 and at least `snaplen` + 256.

## Which interfaces the daemon captures

The daemon captures live every interface that has an input binding (`filter input NAME` or
`sampling input` on some unit and family), on the Linux interface `flowd interface-map` gives for it,
when it is started with `--config FILE` and without `--replay`; `--interface NAME` chooses the
interfaces on the command line instead (with or without `--config`). A capture file given with
`--replay` stands for the input interfaces, and the embedded example configuration (no `--config`)
captures nothing. Each interface's packets go through the filter bound to it for their family; a
family with no binding on that interface is not sampled there (counted as `not IPv4` / `not IPv6`).
The interface's ifindex is the flows' input SNMP index. An interface that goes down, is deleted or
renamed, and comes back is re-attached without a restart (`show services accounting status` lists
what happened). The set of captured interfaces and `flowd capture` are read at start: a reload
(SIGHUP) applies new filters, sampling and outputs to every worker but opens or closes no capture.

With several capture workers, each caches only its share of the flows, so `flowd flow-table
max-flows` is divided between them, and `max-packets-per-second` is one budget per second that all
workers draw on.
"""


def render_docs() -> str:
    """The configuration reference as Markdown (docs/config.md)."""
    out = [_DOC_INTRO.replace("{MAX_ERRORS}", str(MAX_ERRORS))]
    for title, text, rows in _DOC_SECTIONS:
        out.append(f"## {title}\n\n{text}\n")
        out.append("| Statement | Type | Range | Default | Description |")
        out.append("|---|---|---|---|---|")
        for row in rows:
            cells = (f"`{row.syntax}`", row.kind, row.range, row.default, row.help)
            out.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """``python -m flowd.config.docs --docs`` or ``--check [FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m flowd.config.docs", description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--docs", action="store_true", help="print the configuration reference (docs/config.md)")
    group.add_argument("--check", metavar="FILE", nargs="?", const="", help="check FILE (default: the embedded one)")
    args = parser.parse_args(argv)
    if args.docs:
        sys.stdout.write(render_docs())
        return 0
    return check_config_main(args.check or None)


if __name__ == "__main__":
    sys.exit(main())
