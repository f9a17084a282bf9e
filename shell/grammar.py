"""Every command the shell knows; nothing else declares a keyword (parsing, completion, `?`, dispatch, docs).

`python -m shell.grammar --docs` prints docs/commands.md from these tables.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Final

from flowd.control.rpcs import (
    AGGREGATION_FILTERS,
    RPCS,
    Kind,
    Param,
    aggregation_method,
)
from flowd.syntax import names
from shell.commands import Command, Level, Local, Opt, Option, Pipe, Statement
from shell.parser import Parser
from shell.tokens import Choice, Filename, IntRange, Name, Prefix, Regex, ValueType

# Help for path keywords, shared by every command that passes through them (FRR's SHOW_STR).
# Keys are keyword paths; a command's own last keyword takes the command's help.
KEYWORD_HELP: Final = {
    "show": "Show system information",
    "show services": "Show services information",
    "show services accounting": "Show service accounting information",
    "show services accounting aggregation": "Show flow aggregation information",
    "show passive-monitoring": "Show information about passive monitoring",
    "show system": "Show system information",
    "clear": "Clear information in the system",
    "clear services": "Clear services information",
    "clear services accounting": "Clear service accounting information",
    "clear firewall": "Clear firewall counters",
    "set": "Set CLI properties",
    "show cli": "Show command-line interface settings",
    "show firewall": "Show firewall information",
}

CHOICE_HELP: Final = {"bytes": "Highest byte count first", "packets": "Highest packet count first"}
NAME_VALUES: Final = (("*", "All accounting services"), ("all", "All accounting services"))


def _value(param: Param, placeholder: str) -> ValueType:
    """The shell's value type for a parameter of a method's contract."""
    if param.kind is Kind.INTEGER:
        return IntRange(param.low, param.high, placeholder)
    if param.kind is Kind.PREFIX:
        return Prefix(placeholder)
    if param.kind is Kind.CHOICE:
        return Choice(tuple((c, CHOICE_HELP[c]) for c in param.choices))
    return Name(placeholder, NAME_VALUES if param.name == "name" else ())


def options(method: str, placeholders: Mapping[str, str] | None = None,
            sources: Mapping[str, tuple[tuple[str, ...], str]] | None = None) -> tuple[Opt, ...]:
    """A command option for every parameter of ``method``'s contract (flowd.control.rpcs), in its order;
    ``sources`` gives the parameters whose values are names the configuration defines (Tab and `?` list them)."""
    given, named = placeholders or {}, sources or {}
    return tuple(Opt(p.keyword, _value(p, given.get(p.name, f"<{p.keyword}>")), p.help, required=p.required,
                     configured=named.get(p.name, ((), ""))[0], named=named.get(p.name, ((), ""))[1])
                 for p in RPCS[method].params)


FLOW_DETAIL_LEVEL: Final = Level((("detail", "Display detailed output"),
                                  ("extensive", "Display extensive output"),
                                  ("terse", "Display terse output")), default="terse")
INDEX_AS: Final = {"input_snmp_interface_index": "<index>", "output_snmp_interface_index": "<index>",
                   "source_as": "<as>", "destination_as": "<as>"}
INDEX_SOURCES: Final = {f"{way}_snmp_interface_index": (names.SNMP_INDEXES, "SNMP index of {at}")
                        for way in ("input", "output")}
NAME: Final = options("accounting.flow")[0]
FLOW_DETAIL_OPTIONS: Final[tuple[Option, ...]] = (FLOW_DETAIL_LEVEL,
                                                  *options("accounting.flow_detail", INDEX_AS, INDEX_SOURCES))
TEMPLATE_NAME, *TEMPLATE_REST = options("accounting.aggregation_template",
                                       sources={"template_name": (names.TEMPLATES, "Configured template")})
AGGREGATION_TEMPLATE_OPTIONS: Final[tuple[Option, ...]] = (TEMPLATE_NAME, FLOW_DETAIL_LEVEL, *TEMPLATE_REST)

AGGREGATION_HELP: Final = {
    "as": "Show autonomous system aggregation",
    "protocol-port": "Show protocol and port aggregation",
    "source-prefix": "Show source prefix aggregation",
    "destination-prefix": "Show destination prefix aggregation",
    "source-destination-prefix": "Show source and destination prefix aggregation",
}


AGGREGATION_NOTE: Final = (
    "Version 8 aggregates (IPv4). When a `version 8` flow server aggregates by this type, the entries are its "
    "aggregates of the current `aggregate-export-interval` (what its next export sends); otherwise they are "
    "the flows in the cache now, aggregated the same way with their route lookups (`flowd routing`). Entries "
    "print largest first (`order bytes`, the default, or `packets`); filters keep the entries whose key "
    "matches (a prefix filter keeps the prefixes inside it); `limit` keeps the first N. One block of "
    "`Label: value` lines per aggregate, blocks separated by a blank line: the key lines (terse), then "
    "AS numbers and SNMP interface indexes (detail; for as and protocol-port they are key lines), then "
    "Start time/End time in sysUptime ms (extensive), and always Flow count, Packet count, Byte count. "
    "XML/JSON: `flow-aggregate-TYPE-detail` {`aggregation-source` (export-interval or flow-cache), "
    "`detail-entry` ...} with leaves named after the labels.")
ROUTING_NOTE: Final = (
    "A flowd extension: one block per route source of `flowd routing`, in precedence order: `Source: NAME, "
    "Type: bgp | kernel | prefix-file, State: ...` (BGP: Idle, Connect, Active, Established; kernel: "
    "Established once the table is dumped; prefix files: Loaded), `IPv4 prefixes: N, IPv6 prefixes: N`, "
    "`Announced: N, Withdrawn: N, Flushed: N` (flushed: routes dropped when a BGP session went down or its "
    "speaker exited), `Errors: N, Last update: TIME` and, when there was one, `Last error: TEXT`. XML/JSON: "
    "`route-source-information` {`source-name`, `source-type`, `source-state`, `ipv4-prefixes`, "
    "`ipv6-prefixes`, `announced`, `withdrawn`, `flushed`, `errors`, `last-update`, `last-error`}.")
SIZE_RANGES_NOTE: Final = ("Only ranges that hold packets are printed. flowd's fixed ranges of IP packet length "
                           "in bytes (both ends inclusive): 0-63, 64-96, 97-128, 129-256, 257-512, 513-1024, "
                           "1025-1518, 1519-9192, 9193-65535.")
ERRORS_NOTE: Final = ("After the seed's lines, flowd prints its other drop counters (`other_drops`, as "
                      "`Packets dropped (bad IP header): N`), then one `Export packet failures (SERVER): N` per "
                      "flow server; two pairs to a line; then, for live capture, one `Kernel capture "
                      "INTERFACE, worker N: P packets, D drops` line per captured interface and capture worker "
                      "(the kernel's PACKET_STATISTICS: packets offered to the ring, drops included). PPS "
                      "overload is Yes when, in the last 10 s, max-packets-per-second refused a packet or a "
                      "kernel ring dropped one; BPS overload stays No (flowd has no byte-rate limit, and its "
                      "receive cost is per packet). Counters are totals over every capture worker. XML/JSON: "
                      "`error-other-drop` {`drop-reason`, `drop-count`}, `error-export-failure` {`flow-server`, "
                      "`export-packet-failures`} and `error-kernel-capture` {`capture-interface`, "
                      "`capture-linux-interface`, `capture-worker`, `kernel-packets`, `kernel-drops`}.")
FLOW_DETAIL_NOTE: Final = (
    "Output levels: `terse` (default) prints the seed's table (Protocol, Source Address, Source Port, Destination "
    "Address, Destination Port, Packet count, Byte count); `detail` adds TOS, Input interface and Output "
    "interface columns; `extensive` prints one block of `Label: value` lines per flow (protocol, TOS, TCP "
    "flags, addresses with prefix lengths, ports, interfaces with SNMP indexes, AS numbers, start/end time in "
    "sysUptime ms, counts, last active timeout, and the first packet's Source/Destination MAC address when the "
    "flow's family exports a bridge template), blocks separated by a blank line. Protocols print as "
    "`tcp(6)`, `udp(17)`, `ip(0)` (common names), else as the number; an interface without a name prints as `-`. "
    "Flows print in the order the daemon sends them (`order` is applied there). Without `limit`, every cached "
    "flow is printed (through the pager).")
FLOW_NOTE: Final = (
    "Where the values come from: Flow packets/bytes are the sampled packets accounted into flows; the 10-second "
    "rates are their increase over the last 10 s; Active flows are cached now, Total flows were ever created; "
    "Flows exported counts records sent; inactive/active timed out count flows ended by "
    "flow-inactive-timeout / flow-active-timeout (FIN/RST and `clear` endings are in neither).")
MEMORY_NOTE: Final = (
    "Linux analogues: an allocation is a flow created in the cache, a free a flow ended; Maximum allocated is "
    "the peak number of cached flows; the per-second figures are averaged over the last 10 s. Total memory used "
    "is the flow cache's real allocation (numpy columns and hash index); Total memory free is what the "
    "configured `flowd flow-table max-flows` still allows.")
STATUS_NOTE: Final = (
    "Linux analogues: Interface state is `Monitoring` while an input feeds the probe, `Idle` after a replay "
    "ended; Export interval is the smallest flow-active-timeout; Export format, Protocol, Engine type and "
    "Engine ID come from the configuration; with `flowd routing` configured, Route record count is the number "
    "of prefixes in every route source's tables (both families) and AS count the number of distinct origin AS "
    "numbers among them; without it, Route record count is the number of routes in the kernel's IPv4 and IPv6 "
    "tables (/proc/net/route, /proc/net/ipv6_route) and AS count the number of distinct AS numbers among "
    "cached flows (every flow is AS 0, so 1 while flows are cached); IFL to SNMP index count is the number of "
    "`flowd routing snmp-index` entries, else of interfaces with an ifindex; the `set` flags say whether each "
    "of those is known. "
    "After the seed's lines, each captured interface gets `Capture interface: ge-2/3/0 (eth1), State: up, SNMP "
    "index: 12` (the state is up, down or detached: REASON; the SNMP index is the Linux ifindex its flows "
    "carry), one `Worker N: P kernel packets, D kernel drops` line per capture worker, and its newest ten "
    "events (`2026-11-25 10:00:01 UTC ge-2/3/0 (eth1): detached: interface deleted`, `... re-attached, "
    "ifindex 13`): an interface that goes down, disappears or is renamed and comes back is re-attached "
    "without a restart. XML/JSON: `capture-information` {`capture-interface`, `capture-linux-interface`, "
    "`capture-state`, `capture-snmp-index`, `capture-worker-statistics` {`capture-worker`, `kernel-packets`, "
    "`kernel-drops`}, `capture-event` {`event-time`, `event-message`}}.")
USAGE_NOTE: Final = (
    "Linux analogues: Uptime is the daemon's; Interrupt time is the CPU time (user + system) the daemon and its "
    "capture workers have used; Load (5 second) and Load (1 minute) are their CPU utilisation over those "
    "windows, per capture worker (100% = every worker's CPU busy).")
AGGREGATION_TEMPLATE_NOTE: Final = (
    "Lists the cached flows of the families whose flow servers export with the template (`version9 { template "
    "NAME; }` or `version-ipfix { template NAME; }`), largest byte count first, one block of `Label: value` lines "
    "per flow in the layout of the template's type, blocks separated by a blank line (the real-router layouts of "
    "junos-reference.md §1.8). ipv4-template: Source address/Destination address; Source port/Destination port; "
    "Protocol/TOS/TCP flags; Source mask/Destination mask; Input/Output SNMP interface index; Start time/End "
    "time (sysUptime ms); Packet count/Byte count. ipv6-template: the same, each address on a line of its own, "
    "written out in full without `::` (`100:0:0:0:0:0:0:2`). mpls-template: MPLS label 1/2/3; Input/Output SNMP "
    "interface index; Packet count/Byte count. mpls-ipv4-template: MPLS label 1/2/3, then the ipv4-template "
    "lines with `Top Label Address` after the destination address. peer-as-billing-template (flowd's layout): "
    "TOS/Input SNMP interface index; Destination peer AS/BGP next hop; Start time/End time; Packet count/Byte "
    "count. bridge-template (flowd's layout): Source MAC address/Destination MAC address (the flow's first "
    "packet's; 00:00:00:00:00:00 where the link carries none); Ethernet type/VLAN ID; Input/Output SNMP "
    "interface index; Start time/End time; Packet count/Byte count. Output levels: `extensive` prints every "
    "line; `detail` leaves out Start time/End time; `terse` (default) prints only the label, address, port, "
    "protocol and count lines (for peer-as-billing: Destination peer AS and counts; for bridge: the MAC, "
    "Ethernet type and count lines). Values: labels are the 20-bit values of the top three MPLS label stack "
    "entries (0 where the stack is shorter); masks are 32 or 128 (flowd's flows are host flows); Top Label "
    "Address and BGP next hop are 0.0.0.0 (flowd has no label-to-FEC map and no BGP feed); Output SNMP interface index is 0. "
    "flowd samples families inet and inet6 only, so a template no family exports with (mpls-template, or one "
    "no flow server names) lists no flows. "
    "An unknown template name is an error (`template NAME is not configured`). `limit` (a flowd extension) "
    "keeps the N largest flows. XML/JSON: the entries sit in `flow-aggregate-template-detail-ipv4`, `-ipv6`, "
    "`-mpls`, `-mpls-ipv4`, `-peer-as-billing` or `-bridge` (by template type) with the leaves named after the "
    "labels (`source-mask`, `mpls-label-1`, `top-label-address`, `destination-peer-as`, `bgp-nexthop`, "
    "`source-mac-address`, ...).")
FIREWALL_NAMES: Final = {"filter": "<filter-name>", "counter": "<counter-name>"}
FIREWALL_SOURCES: Final = {"filter": (names.FILTERS, "Configured filter"),
                           "counter": (names.COUNTERS, "Configured counter")}
FIREWALL_NOTE: Final = (
    "One block per configured filter: a blank line, `Filter: NAME`, then `Counters:` and a `Name / Bytes / "
    "Packets` table of the counters its terms `count` (the name left-aligned in 40 columns, bytes right-aligned "
    "in 17, packets in 21). Packets are those the term took (first match decides, as the filter runs); bytes "
    "are their IP bytes (IPv4 total length, IPv6 payload length + 40), summed over every capture worker since "
    "the start, `clear firewall` or `clear services accounting statistics`. `filter NAME` and `counter NAME` "
    "narrow the listing; naming something not configured is an error. XML/JSON: `filter-information` "
    "{`filter-name`, `counter` {`counter-name`, `packet-count`, `byte-count`}}.")
COMMIT_NOTE: Final = (
    "The rollback store, newest first, as Junos lists it: `N   YYYY-MM-DD HH:MM:SS UTC by USER via cli`, "
    "` commit confirmed, rollback in Nmins` for an unconfirmed `commit confirmed`, and the commit comment "
    "on the next line, indented. Entry 0 is the active configuration; `rollback N` in configuration mode "
    "loads entry N. XML/JSON: `commit-history` {`sequence-number`, `user`, `client`, `date-time`, "
    "`comment`}.")
CONFIGURE_NOTE: Final = (
    "Enters configuration mode (docs/operator-guide.md, \"Configuration mode\"): the prompt becomes `user@host#` "
    "under an `[edit ...]` banner; `set`, `delete`, `edit`, `up`, `top`, `show [| display set | compare "
    "[rollback N]]`, `commit [check | confirmed [N] | comment TEXT | and-quit]`, `rollback [N]`, `load (merge | "
    "override | replace) (terminal | FILE)`, `run COMMAND`, `status`, `exit [configuration-mode]`, `quit`. "
    "Statements, value types, ranges and help come from the daemon's schema (`config.schema`). `private` "
    "edits a copy of its own; `exclusive` locks out every other session until it exits. Only root, the "
    "daemon's user and the admin group may enter it. In scripts (`flowcli -c \"configure; set ...; commit\"`) "
    "the exit status is 1 when any line, the commit included, failed.")
ALL_ACCOUNTING_NOTE: Final = (
    "Every section in turn, as Junos prints them for the bare command: `flow`, `errors`, `memory`, "
    "`packet-size-distribution`, `status`, `usage` (each exactly as its own command prints it; one request per "
    "section). `| display xml` gives one `rpc-reply` holding each section's `services-accounting-information`; "
    "`| display json` one `services-accounting-information` list with every section.")
SET_CLI_NOTE: Final = (
    "Settings of this shell session only: `screen-length N` pages output at N lines (0 never pages), "
    "`screen-width N` wraps output at N characters (0 never wraps), `timestamp` starts each command's output "
    "with a `Dec 03 12:20:01` line (`no-timestamp` stops). Prints `Screen length set to N`, `Screen width set "
    "to N`, `Enabling timestamp` / `Disabling timestamp`.")
CONFIGURATION_NOTE: Final = (
    "The running configuration, or the statements of one hierarchy, list, entry or statement (`show "
    "configuration forwarding-options sampling input`, `... flow-server 10.60.2.1`, `... input rate`), as Junos "
    "prints a hierarchy: its contents, curly-brace text with a 4-space indent (nothing when nothing is "
    "configured there). The words are the configuration statements (docs/config.md; Tab and `?` list them and "
    "the names configured, from the daemon's `config.schema`); a word that is not one is `syntax error.` under "
    "it. `| display set` prints one `set` line per leaf with the full path; `| display xml` the Junos "
    "`configuration` element (lists as repeated elements with a `name`, `interfaces` entries as `interface`, "
    "`family inet` as `family`/`inet`, flags empty); `| display json` the same as `{\"configuration\": ...}` "
    "(lists as arrays, flags `[null]`). `| compare rollback N` prints the difference from stored configuration "
    "N (`show system commit`; 0 is the active one) to the running one below the statement, in the `[edit ...]` "
    "/ `+` / `-` form of configuration mode's `show | compare` (needs a daemon started with `--config FILE`; "
    "a rollback the store does not hold is `error: rollback N not found`).")
HISTORY_NOTE: Final = "The commands typed in this session, oldest first, as `HH:MM:SS -- COMMAND` (the last 100)."
PASSIVE_NOTE: Final = "The same output as the `show services accounting` command of the same name."

COMMANDS: Final = (
    Command("show services accounting aggregation template", "Show flows of a version 9 or IPFIX template",
            xml_rpc="get-service-accounting-aggregation-template-information", rpc="accounting.aggregation_template", options=AGGREGATION_TEMPLATE_OPTIONS,
            notes=AGGREGATION_TEMPLATE_NOTE),
    *(Command(f"show services accounting aggregation {kind}", AGGREGATION_HELP[kind], rpc=aggregation_method(kind),
              options=(FLOW_DETAIL_LEVEL, *options(aggregation_method(kind), INDEX_AS, INDEX_SOURCES)),
              notes=AGGREGATION_NOTE)
      for kind in AGGREGATION_FILTERS),
    Command("show services accounting routing", "Show route sources (flowd extension)",
            rpc="accounting.routing", options=(NAME,), notes=ROUTING_NOTE),
    Command("show services accounting errors", "Show accounting error statistics",
            xml_rpc="get-service-accounting-errors-information", rpc="accounting.errors", options=(NAME,), notes=ERRORS_NOTE),
    Command("show services accounting flow", "Show flow statistics",
            xml_rpc="get-service-accounting-flow-information", rpc="accounting.flow", options=(NAME,), notes=FLOW_NOTE),
    Command("show services accounting flow-detail", "Show individual flows",
            xml_rpc="get-service-accounting-flow-detail", rpc="accounting.flow_detail", options=FLOW_DETAIL_OPTIONS, notes=FLOW_DETAIL_NOTE),
    Command("show services accounting memory", "Show memory utilization",
            xml_rpc="get-service-accounting-memory-information", rpc="accounting.memory", options=(NAME,), notes=MEMORY_NOTE),
    Command("show services accounting packet-size-distribution", "Show packet size distribution",
            xml_rpc="get-packet-distribution-information", rpc="accounting.packet_size_distribution", options=(NAME,), notes=SIZE_RANGES_NOTE),
    Command("show services accounting status", "Show accounting status",
            xml_rpc="get-service-accounting-status-information", rpc="accounting.status", options=(NAME,), notes=STATUS_NOTE),
    Command("show services accounting usage", "Show CPU utilization",
            xml_rpc="get-service-accounting-usage-information", rpc="accounting.usage", options=(NAME,), notes=USAGE_NOTE),
    Command("show passive-monitoring error", "Show passive monitoring error statistics",
            rpc="accounting.errors", options=(NAME,), notes=PASSIVE_NOTE),
    Command("show passive-monitoring flow", "Show passive monitoring flow statistics",
            rpc="accounting.flow", options=(NAME,), notes=PASSIVE_NOTE),
    Command("show passive-monitoring memory", "Show passive monitoring memory utilization",
            rpc="accounting.memory", options=(NAME,), notes=PASSIVE_NOTE),
    Command("show passive-monitoring status", "Show passive monitoring status",
            rpc="accounting.status", options=(NAME,), notes=PASSIVE_NOTE),
    Command("show passive-monitoring usage", "Show passive monitoring CPU utilization",
            rpc="accounting.usage", options=(NAME,), notes=PASSIVE_NOTE),
    Command("show version", "Show software version", xml_rpc="get-software-information", rpc="system.version",
            notes="`Hostname:`, `Model:`, `flowd:` (version), `Python:`, then one line per package comment."),
    Command("show system uptime", "Show time since the system and flowd started", xml_rpc="get-system-uptime-information", rpc="system.uptime",
            notes="`Protocols started` is when the flowd daemon started; the last line is uptime(1)'s."),
    Command("show configuration", "Show current configuration", xml_rpc="get-configuration", rpc="system.configuration",
            options=(Statement("<statement>", RPCS["system.configuration"].param("words").help),),
            displays=("json", "set", "xml"), compare="config.compare_rollback", notes=CONFIGURATION_NOTE),
    Command("clear services accounting statistics", "Clear all statistics",
            xml_rpc="clear-service-accounting-statistics", rpc="accounting.clear_statistics", pipes=False, notes="Prints nothing on success."),
    Command("clear services accounting flow", "Expire and export all cached flows",
            xml_rpc="clear-service-accounting-flow-information", rpc="accounting.clear_flows", pipes=False, notes="Prints nothing on success."),
    Command("show firewall", "Show firewall counters", xml_rpc="get-firewall-information", rpc="firewall.show",
            options=options("firewall.show", FIREWALL_NAMES, FIREWALL_SOURCES), notes=FIREWALL_NOTE),
    Command("clear firewall", "Clear firewall counters", xml_rpc="clear-firewall-counters", rpc="firewall.clear",
            pipes=False, options=options("firewall.clear", FIREWALL_NAMES, FIREWALL_SOURCES),
            notes="Zeroes the filter's counters (or the one named) as `show firewall` reports them; needs the "
                  "admin group. Prints nothing on success."),
    Command("show system commit", "Show pending commit operation and commit history",
            xml_rpc="get-commit-information", rpc="config.history", notes=COMMIT_NOTE),
    Command("configure", "Manipulate software configuration information", local=Local.CONFIGURE, pipes=False,
            options=(Level((("private", "Work in private database"),
                            ("exclusive", "Obtain exclusive lock (other users cannot make changes)")),
                           default="shared"),), notes=CONFIGURE_NOTE),
    Command("show services accounting", "Show every service accounting section", local=Local.ALL_ACCOUNTING,
            displays=("json", "xml"), notes=ALL_ACCOUNTING_NOTE),
    Command("set cli", "Set CLI properties", local=Local.SET_CLI, pipes=False, options=(
        Opt("screen-length", IntRange(0, 100_000, "<screen-length>"), "Set number of lines on screen (0: no pager)"),
        Opt("screen-width", IntRange(0, 100_000, "<screen-width>"), "Set number of characters on a line (0: no wrap)"),
        Level((("timestamp", "Timestamp CLI output"), ("no-timestamp", "Do not timestamp CLI output")), default=""),
    ), notes=SET_CLI_NOTE),
    Command("show cli history", "Show a list of previous commands", local=Local.CLI_HISTORY, notes=HISTORY_NOTE),
    Command("help", "Provide help information", local=Local.HELP, pipes=False),
    Command("exit", "Exit the management session", local=Local.EXIT, pipes=False),
    Command("quit", "Exit the management session", local=Local.EXIT, pipes=False),
)

DISPLAY_FORMATS: Final = {
    "json": "Show output in JSON format",
    "set": "Show 'set' commands that create configuration",
    "xml": "Show output as XML tags",
}

PIPES: Final = (
    Pipe("compare", "Compare configuration changes with prior version", IntRange(0, 49, "<rollback>"),
         word=("rollback", "Numeric index of rollback file"), compare=True),
    Pipe("count", "Count occurrences"),
    Pipe("display", "Show additional kinds of information", display=True),
    Pipe("except", "Show only text that does not match a pattern", Regex()),
    Pipe("find", "Search for first occurrence of pattern", Regex()),
    Pipe("hold", "Hold text without exiting the --More-- prompt"),
    Pipe("last", "Display end of output only", IntRange(1, 1_000_000, "<lines>")),
    Pipe("match", "Show only text that matches a pattern", Regex()),
    Pipe("no-more", "Don't paginate output"),
    Pipe("refresh", "Refresh a continuous display of the command", IntRange(1, 86_400, "<seconds>")),
    Pipe("save", "Save output text to file", Filename()),
    Pipe("trim", "Trim specified number of columns from start of line", IntRange(1, 10_000, "<columns>")),
)

PARSER: Final = Parser(COMMANDS, KEYWORD_HELP, PIPES, DISPLAY_FORMATS)


def _syntax(command: Command) -> str:
    parts = [command.path]
    for option in command.options:
        if isinstance(option, Level):
            parts.append("<" + " | ".join(w for w, _ in option.words) + ">")
            continue
        if isinstance(option, Statement):
            parts.append(f"<{option.placeholder[1:-1]} ...>")
            continue
        values = [w for w, _ in option.value.choices()]
        if option.value.placeholder:
            values.append(option.placeholder)
        value = values[0] if len(values) == 1 else "(" + " | ".join(values) + ")"
        parts.append(f"{option.keyword} {value}" if option.required else f"<{option.keyword} {value}>")
    return " ".join(parts)


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_docs(commands: Sequence[Command] = COMMANDS) -> str:
    """docs/commands.md: every command with its syntax, options, daemon method and pipes."""
    from shell.render import RENDERERS  # only the docs need the renderers

    out = [
        "# flowcli commands",
        "",
        "<!-- Generated by `python -m shell.grammar --docs` from shell/grammar.py; do not edit by hand. -->",
        "",
        "`flowcli` is flowd's Junos-style operational shell. Keywords may be shortened to any unambiguous",
        "prefix (`sh ser acc fl`); Tab and Space complete them; `?` lists what may come next. Errors put a",
        "caret under the offending word (`unknown command.`, `syntax error, expecting <command>.`,",
        "`'x' is ambiguous.`, `syntax error.` for a bad value). Non-interactively (`flowcli -c \"...\"` or",
        "commands on standard input) errors go to standard error as `error: ...` and the exit status is 1.",
        "",
        "## Commands",
        "",
        "| command | what it shows | daemon method |",
        "|---|---|---|",
    ]
    for command in commands:
        method = f"`{command.rpc}`" if command.rpc else "(local)"
        out.append(f"| `{command.path}` | {command.help} | {method} |")
    for command in commands:
        out += ["", f"### {command.path}", "", command.help + ".", "", "```", _syntax(command), "```"]
        if command.options:
            out += ["", "| option | value | meaning |", "|---|---|---|"]
            for option in command.options:
                if isinstance(option, Level):
                    for word, help_ in option.words:
                        default = " (default)" if word == option.default else ""
                        out.append(f"| `{word}` | | {help_}{default} |")
                elif isinstance(option, Statement):
                    out.append(f"| `{option.placeholder}` | statement keywords and names (docs/config.md) | "
                               f"{option.help} |")
                else:
                    values = [f"`{w}`" for w, _ in option.value.choices()]
                    if option.value.placeholder:
                        values.append(f"`{option.placeholder}`")
                    note = f" {option.value.note}" if option.value.note else ""
                    note += " (required)" if option.required else ""
                    if option.configured:
                        note += " (Tab and `?` list the configured ones)"
                    out.append(f"| `{option.keyword}` | {_cell(' or '.join(values))} | {option.help}{note} |")
        if command.rpc:
            out += ["", f"Daemon method: `{command.rpc}`."]
        if command.xml_rpc:
            out += ["", f"NETCONF RPC: `<{command.xml_rpc}>` (options as child elements, docs/operator-guide.md)."]
        if command.pipes:
            formats = ", ".join(f"`display {f}`" for f in command.displays)
            out += ["", f"Pipes: all, with {formats}" + (", `compare rollback N`" if command.compare else "") + "."]
        if command.compare:
            out += ["", f"`| compare rollback N` calls daemon method `{command.compare}`."]
        if command.rpc and (elements := RENDERERS[command.rpc].elements):
            out += ["", f"XML/JSON elements: `{elements}`."]
        if command.notes:
            out += ["", command.notes]
    out += ["", "## Pipes", "",
            "Pipes follow a command after `|` and may be chained (`| match udp | count`); `display` applies",
            "first wherever it is written. Quote a regular expression that holds spaces or `|`.",
            "", "| pipe | value | meaning |", "|---|---|---|"]
    for pipe in PIPES:
        if pipe.display:
            value = " or ".join(f"`{f}`" for f in DISPLAY_FORMATS)
        else:
            value = f"`{pipe.value.placeholder}`" if pipe.value is not None else ""
            value = f"`{pipe.word[0]}` {value}" if pipe.word is not None else value
        out.append(f"| `{pipe.keyword}` | {value} | {pipe.help}{' (`show configuration` only)' if pipe.compare else ''} |")
    out += ["", "| display format | meaning |", "|---|---|"]
    out += [f"| `{name}` | {help_} |" for name, help_ in DISPLAY_FORMATS.items()]
    out += ["",
            "`count` prints `Count: N lines`; `save FILE` writes the output to FILE and prints",
            "`Wrote N lines of output to 'FILE'`; `no-more` turns the pager off. The pager (`---(more NN%)---`;",
            "Space: next page, Enter: next line, q: stop) runs only on a terminal, for output taller than it.",
            "The flows of `flow-detail` and `aggregation template` arrive in chunks and are printed as they",
            "arrive, with `| no-more`, `| match` or `| except` and in scripts (`flowcli -c`); the pager and the",
            "other pipes take the whole output first.",
            ""]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m shell.grammar --docs`: print docs/commands.md."""
    parser = argparse.ArgumentParser(prog="python -m shell.grammar", description=__doc__)
    parser.add_argument("--docs", action="store_true", help="print docs/commands.md generated from the grammar")
    args = parser.parse_args(argv)
    if not args.docs:
        parser.print_help()
        return 2
    sys.stdout.write(render_docs())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
