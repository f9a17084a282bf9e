"""The configuration schema: every statement as a frozen dataclass, its range, default and help declared once.

Statement names, ranges and defaults follow ../shared/spec/junos-reference.md §2. Field metadata
(key, syntax, kind, range, shown default, help) drives the validator (`flowd.config.checker`) and
the docs generator (`flowd.config.docs`). Imports nothing of flowd but the Junos syntax leaf and the model.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Final

from flowd.model.record import Frozen
from flowd.syntax.junos import Key

Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SOURCE: Final = "flowd/data/default.yaml"  # how errors name the embedded default
COMMAND_LINE: Final = "command line"  # how errors name `with_overrides` values
FAMILIES: Final = ("inet", "inet6")
MAX_FLOW_SERVERS: Final = 8  # per family (reference §2.2: YANG max-elements 8)
MAX_TEMPLATES: Final = 10  # per version9 / version-ipfix (reference §2.3)
SOCKET_PATH_MAX: Final = 107  # sun_path is 108 bytes including the NUL
PATH_MAX: Final = 4095  # bytes in a file path (PATH_MAX less the NUL)

# Which v9/IPFIX template types each family may export with (reference §2.3).
TEMPLATE_TYPES_FOR: Final[Mapping[str, tuple[str, ...]]] = {
    "inet": ("ipv4", "mpls-ipv4", "peer-as-billing", "bridge"),
    "inet6": ("ipv6", "bridge"),
}
# The template types of each format (`TYPE-template;`, exactly one per template).
TEMPLATE_TYPES: Final[Mapping[str, tuple[str, ...]]] = {
    "9": ("ipv4", "ipv6", "mpls", "mpls-ipv4", "bridge", "peer-as-billing"),
    "ipfix": ("ipv4", "ipv6", "mpls", "mpls-ipv4", "bridge"),
}

# The words of the statements that take one of a fixed set, each with its `?` help (reference §2.2).
VERSIONS: Final[Mapping[int, str]] = {5: "cflowd/NetFlow version 5", 8: "cflowd version 8 aggregates (see aggregation)"}
TRANSPORTS: Final[Mapping[str, str]] = {"udp": "UDP (default)", "tcp": "TCP (version-ipfix only)"}
AS_TYPES: Final[Mapping[str, str]] = {"origin": "Export the origin AS of each route",
                                      "peer": "Export the peer (neighbour) AS of each route"}
AGGREGATIONS: Final[Mapping[str, str]] = {
    "autonomous-system": "Aggregate by autonomous system number",
    "protocol-port": "Aggregate by protocol and port number",
    "source-prefix": "Aggregate by source prefix",
    "destination-prefix": "Aggregate by destination prefix",
    "source-destination-prefix": "Aggregate by source and destination prefix",
}
PREFIX_FORMATS: Final[Mapping[str, str]] = {"flowd": "PREFIX ORIGIN-AS [NEXT-HOP] per line",
                                            "ip2asn": "The iptoasn.com TSV layout"}


class ConfigError(Exception):
    """A bad configuration; ``str()`` is one line: ``SOURCE:LINE: key.path: message``."""

    def __init__(self, source: str, line: int | None, path: Sequence[Key], message: str) -> None:
        self.source = source
        self.line = line
        self.path = tuple(path)
        self.message = " ".join(message.split())
        where = source if line is None else f"{source}:{line}"
        dotted = ".".join(str(k) for k in self.path)
        super().__init__(f"{where}: {dotted}: {self.message}" if dotted else f"{where}: {self.message}")


# --- dataclasses -----------------------------------------------------------------------------------
# Field metadata: key (the statement read by the generic leaf reader), syntax (for the docs),
# kind (how the value is read), range, shown (default as the docs print it), help. Each class derives
# equality, hashing and repr from flowd.model.record.Frozen (start-up compiles fewer methods).


def _opt(default: Any = MISSING, *, syntax: str | None, help: str, kind: str = "block", key: str | None = None,
         range: tuple[int, int] | None = None, shown: str | None = None) -> Any:
    meta = {"key": key, "syntax": syntax, "kind": kind, "range": range, "shown": shown, "help": help}
    return field(default=default, metadata=meta)


def _leaf(default: Any = MISSING, *, key: str, arg: str, kind: str, help: str, within: str = "",
          range: tuple[int, int] | None = None, shown: str | None = None) -> Any:
    syntax = f"{within} {key} {arg}".lstrip()
    return _opt(default, syntax=syntax, kind=kind, key=key, range=range, shown=shown, help=help)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class SamplingInput(Frozen):
    """`forwarding-options sampling input` (and the per-family `family F input` override)."""

    rate: int = _leaf(1, key="rate", arg="N", kind="integer", range=(1, 16_000_000),
                      help="Sample 1 packet out of N (1 samples every packet).")
    run_length: int = _leaf(0, key="run-length", arg="N", kind="integer", range=(0, 20),
                            help="Also sample the N packets that follow each sampled packet.")
    max_packets_per_second: int | None = _leaf(
        None, key="max-packets-per-second", arg="N", kind="integer", range=(0, 65535), shown="none (no limit)",
        help="Sample at most N packets per second; 0 samples nothing. Junos ignores it on a services "
             "PIC (the seed's setup), hence no limit unless configured.")
    maximum_packet_length: int = _leaf(0, key="maximum-packet-length", arg="BYTES", kind="integer",
                                       range=(0, 9192), help="Bytes of each sampled packet to keep; 0 keeps all.")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FlowServer(Frozen):
    """`output flow-server ADDRESS { ... }`: one collector; every record goes to every server."""

    address: str = _opt(syntax=None, kind="address", help="The collector's IPv4 or IPv6 address (the entry's name).")
    port: int = _leaf(key="port", arg="N", kind="integer", range=(1, 65535), shown="required",
                      help="UDP port of the collector (2055 is usual for v5/v9, 4739 for IPFIX).")
    version: str = _opt("5", syntax="version (5 | 8) | version9 { template NAME; } | version-ipfix { template NAME; }",
                        kind="choice", shown="version 5",
                        help="Export format: cflowd/NetFlow v5, v8 aggregates (see `aggregation`), NetFlow v9 or "
                             "IPFIX. Versions 5 and 8 carry IPv4 only and cannot be mixed with v9/IPFIX servers in "
                             "one output (a version 5 and a version 8 server can). `version9;` without a "
                             "template (a flowd extension) uses the built-in template of the family.")
    source_address: str | None = _leaf(None, key="source-address", arg="ADDRESS", kind="address",
                                       shown="the output interface's if of the server's address family, else chosen by the kernel",
                                       help="Source address of export packets (same address family as the server).")
    dscp: int = _leaf(0, key="dscp", arg="N", kind="integer", range=(0, 63), help="DSCP of export packets.")
    template: str | None = _opt(None, syntax=None, kind="name", help="v9/IPFIX template name (see version).")
    transport: str = _opt("udp", syntax="transport (udp | tcp)", kind="choice",
                          help="Export transport (a flowd extension): udp, or tcp for version-ipfix "
                               "(RFC 7011 section 10.4: reconnects with backoff, a bounded backlog).")
    aggregation: tuple[str, ...] = _opt((), syntax="aggregation { autonomous-system; protocol-port; source-prefix; "
                                        "destination-prefix; source-destination-prefix { caida-compliant; } }",
                                        kind="choice", shown="none",
                                        help="Version 8 only, and required there: the aggregation methods; each "
                                             "is exported every `aggregate-export-interval` in its own datagrams.")
    caida_compliant: bool = _opt(False, syntax=None, kind="flag",
                                 help="source-destination-prefix records put the source mask before the "
                                      "destination mask (CAIDA cflowd 2.1b1 order).")
    autonomous_system_type: str = _opt("origin", syntax="autonomous-system-type (origin | peer)", kind="choice",
                                       help="AS numbers exported: the route's origin AS or the peer (neighbour) "
                                            "AS; needs a route source (`flowd routing`).")
    local_dump: bool = _opt(False, syntax="local-dump | no-local-dump", kind="flag",
                            help="Also write one line per exported record (or v8 aggregate) to the local dump "
                                 "file before export (see `flowd routing local-dump`).")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ServiceInterface(Frozen):
    """`output interface sp-F/P/0 { ... }`: the services PIC whose name and engine values flowd reports."""

    name: str = _opt(syntax=None, kind="name", help="sp-, ms- or mo-FPC/PIC/PORT (the entry's name).")
    engine_id: int = _leaf(0, key="engine-id", arg="N", kind="integer", range=(0, 255),
                           help="Engine ID in the v5 header (Junos assigns one dynamically; flowd uses 0).")
    engine_type: int = _leaf(0, key="engine-type", arg="N", kind="integer", range=(0, 255),
                             help="Engine type in the v5 header (Junos assigns one dynamically; flowd uses 0).")
    source_address: str | None = _leaf(None, key="source-address", arg="ADDRESS", kind="address",
                                       shown="none", help="Source address of export packets for this output's flow servers "
                                            "of the same address family (the others: their own, or the kernel's).")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FamilyOutput(Frozen):
    """`forwarding-options sampling family (inet | inet6) { input {...} output {...} }`."""

    family: str = _opt(syntax=None, kind="choice", help="inet or inet6.")
    input: SamplingInput = _opt(SamplingInput(), syntax="input { ... }", shown="sampling input",
                                help="Per-family sampling input; each statement given overrides "
                                     "`sampling input`, the rest is inherited.")
    flow_servers: tuple[FlowServer, ...] = _opt((), syntax="output flow-server ADDRESS { ... }", shown="none",
                                                help=f"Collectors, at most {MAX_FLOW_SERVERS} per family.")
    active_timeout: float = _leaf(1800.0, key="flow-active-timeout", arg="SECONDS", kind="duration", within="output",
                                  range=(60, 1800), shown="1800",
                                  help="Export (and restart) a flow that has lasted this long.")
    inactive_timeout: float = _leaf(60.0, key="flow-inactive-timeout", arg="SECONDS", kind="duration", within="output",
                                    range=(15, 1800), shown="60",
                                    help="Export a flow that has seen no packet for this long.")
    interface: ServiceInterface | None = _opt(None, syntax="output interface NAME { ... }", shown="none",
                                              help="At most one services interface per output.")
    export_rate: int | None = _leaf(None, key="flow-export-rate", arg="KPPS", kind="integer",
                                    within="output inline-jflow", range=(1, 3200),
                                    shown="10 in the daemon; batch mode (--read): not paced",
                                    help="Export at most this many thousand datagrams per second to each UDP flow "
                                         "server, at most 32 back to back, so a collector reading with Linux's "
                                         "default 208 KiB receive buffer is never overrun (10 kpps: about 300k v5 "
                                         "flows/s, a full 1M-flow cache in under 7 s). Records wait, as flows, until "
                                         "they may go; at shutdown the rate rises if needed to finish within 20 s. "
                                         "TCP flow servers are not paced (TCP flow control is). Batch mode sends as "
                                         "fast as it encodes unless this is configured.")
    aggregate_export_interval: float = _leaf(90.0, key="aggregate-export-interval", arg="SECONDS", kind="duration",
                                             within="output", range=(90, 1800), shown="90",
                                             help="How often version 8 servers get the aggregates of the flows "
                                                  "that ended since the last export.")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class BgpNeighbor(Frozen):
    """`flowd routing bgp neighbor ADDRESS { ... }`: one BGP session, run by ExaBGP."""

    address: str = _opt(syntax=None, kind="address", help="The router's address (the entry's name).")
    peer_as: int = _leaf(key="peer-as", arg="N", kind="integer", range=(1, 4294967295), shown="required",
                         help="The router's AS.")
    local_as: int = _leaf(key="local-as", arg="N", kind="integer", range=(1, 4294967295), shown="required",
                          help="flowd's AS (the router's peer-as for flowd; equal to peer-as for iBGP).")
    local_address: str = _leaf(key="local-address", arg="ADDRESS", kind="address", shown="required",
                               help="flowd's address for the session.")
    router_id: str = _leaf(key="router-id", arg="ADDRESS", kind="address", shown="required",
                           help="flowd's BGP identifier (an IPv4 address).")
    passive: bool = _opt(True, syntax="passive | active", kind="choice", shown="passive",
                         help="passive: wait for the router to connect; active: connect to it.")
    port: int = _leaf(179, key="port", arg="N", kind="integer", range=(1, 65535),
                      help="TCP port flowd listens on (passive) or connects to (active).")
    speaker: str = _leaf("exabgp", key="speaker", arg="COMMAND", kind="text",
                         help="The ExaBGP command (program and arguments, split at spaces).")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class PrefixFileConfig(Frozen):
    """`flowd routing prefix-file PATH { format ...; }`."""

    path: str = _opt(syntax=None, kind="name", help="The file (the entry's name); reloaded on SIGHUP.")
    format: str = _opt("flowd", syntax="format (flowd | ip2asn)", kind="choice",
                       help="flowd: `PREFIX ORIGIN-AS [NEXT-HOP]` per line; ip2asn: the iptoasn.com TSV layout.")


ROUTE_SOURCES: Final = ("bgp", "kernel", "prefix-file")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class RoutingConfig(Frozen):
    """`flowd routing { ... }`: where AS numbers, masks, next hops and output interfaces come from."""

    bgp: tuple[BgpNeighbor, ...] = _opt((), syntax="bgp { neighbor ADDRESS { ... } }", shown="none",
                                        help="BGP sessions to the router flowd watches (ExaBGP, supervised).")
    kernel: bool = _opt(False, syntax="kernel", kind="flag",
                        help="Follow this host's routing table (netlink): next hop, output interface, mask.")
    prefix_files: tuple[PrefixFileConfig, ...] = _opt((), syntax="prefix-file PATH { format (flowd | ip2asn); }",
                                                      shown="none", help="Static route files.")
    precedence: tuple[str, ...] = _opt(ROUTE_SOURCES, syntax="precedence [ bgp kernel prefix-file ]",
                                       kind="choice", shown="bgp kernel prefix-file",
                                       help="Which source wins when several match an address with the same "
                                            "prefix length (the longest match wins first); each attribute "
                                            "the winner lacks is taken from the next match that has it.")
    snmp_index: tuple[tuple[str, int], ...] = _opt((), syntax="snmp-index { LINUX-NAME N; }",
                                         kind="integers", range=(0, 4294967295), shown="the Linux ifindex",
                                         help="SNMP index to export for an interface (input and output).")
    local_dump: str = _leaf("/var/log/flowd/cflowd-dump", key="local-dump", arg="PATH", kind="text",
                            help="Where `flow-server ... local-dump` writes (rotated at 1 MB, 3 old files kept "
                                 "as PATH.0 .. PATH.2).")

    @property
    def configured(self) -> bool:
        return bool(self.bgp or self.kernel or self.prefix_files)

    @property
    def lookups(self) -> bool:
        """Whether finished flows get a route lookup (a route source or an SNMP index map is configured)."""
        return self.configured or bool(self.snmp_index)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class TermMatch(Frozen):
    """`term NAME from { ... }`: every given condition must match; an empty tuple matches anything."""

    source_address: tuple[Prefix, ...] = _opt((), syntax="source-address { PREFIX; ... }", kind="prefixes",
                                              shown="any", help="Source address lies in one of the prefixes.")
    destination_address: tuple[Prefix, ...] = _opt((), syntax="destination-address { PREFIX; ... }",
                                                   kind="prefixes", shown="any",
                                                   help="Destination address lies in one of the prefixes.")
    address: tuple[Prefix, ...] = _opt((), syntax="address { PREFIX; ... }", kind="prefixes", shown="any",
                                       help="Source or destination address lies in one of the prefixes.")
    protocol: tuple[int, ...] = _opt((), syntax="protocol [ PROTOCOL ... ]", kind="protocols", shown="any",
                                     help="IP protocol (inet6: next header; `next-header` is accepted too): "
                                          "a number 0..255, a range 6-17 or a name (tcp, udp, icmp, icmp6, "
                                          "gre, esp, ...).")
    source_port: tuple[tuple[int, int], ...] = _opt((), syntax="source-port [ PORT ... ]", kind="ports", shown="any",
                                                    help="Source port: a number, a range 1024-65535 or a name "
                                                         "(http, https, domain, ssh, ntp, ...).")
    destination_port: tuple[tuple[int, int], ...] = _opt((), syntax="destination-port [ PORT ... ]", kind="ports",
                                                         shown="any", help="Destination port, as source-port.")
    port: tuple[tuple[int, int], ...] = _opt((), syntax="port [ PORT ... ]", kind="ports", shown="any",
                                             help="Source or destination port, as source-port.")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Term(Frozen):
    """`term NAME { from {...} then {...} }` (the `then` half; the `from` half is `match`)."""

    name: str = _opt(syntax=None, kind="name", help="Term name.")
    match: TermMatch = _opt(TermMatch(), syntax=None, help="The `from` conditions.")
    sample: bool = _opt(False, syntax="sample", kind="flag", shown="off",
                        help="Send matching packets to the sampler (the sampling rate still applies).")
    count: str | None = _opt(None, syntax="count NAME", kind="name", shown="none",
                             help="Count matching packets and bytes in the named counter.")
    action: str | None = _opt(None, syntax="accept | discard", kind="choice", shown="accept",
                              help="Terminating action; discarded packets are not sampled. Packets that no "
                                   "term matches are discarded (Junos's implicit last term).")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Filter(Frozen):
    """`firewall family F filter NAME`: terms tried in order, first match decides."""

    name: str
    family: str
    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class InputBinding(Frozen):
    """`interfaces IF unit N family F` with `filter input F` or `sampling input` (or output)."""

    interface: str  # the Junos name as written; flowd interface-map gives the Linux one
    family: str
    filter: str | None  # None: every packet of the interface goes to the sampler
    unit: int = 0


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class FlowTableConfig(Frozen):
    """`flowd flow-table`: the flow cache."""

    max_flows: int = _leaf(1_000_000, key="max-flows", arg="N", kind="integer", range=(1, 245 * 262_144),
                           help="Flows the cache holds per family; packets of new flows beyond it are counted "
                                "as dropped (no memory). The maximum is Junos's largest inline table.")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class ControlConfig(Frozen):
    """`flowd control`: the Unix socket flowcli talks to."""

    socket: str | None = _leaf(None, key="socket", arg="PATH", kind="socket", shown="chosen by the daemon",
                               help=f"Path of the control socket (at most {SOCKET_PATH_MAX} bytes).")
    read_group: str | None = _leaf(None, key="read-group", arg="GROUP", kind="group", shown="none",
                                   help="Group allowed to connect and run show commands.")
    admin_group: str | None = _leaf(None, key="admin-group", arg="GROUP", kind="group", shown="none",
                                    help="Group also allowed to run clear commands.")


DIRECTIONS: Final[Mapping[str, str]] = {"in": "Packets arriving on the interface", "both": "Packets arriving and leaving"}
PAGE_SIZE: Final = 4096  # block-size must be a multiple of the page size (x86-64, arm64 with 4k pages)
SNAP_HEADROOM: Final = 256  # bytes of a block the kernel needs beside one frame (headers and alignment)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class CaptureConfig(Frozen):
    """`flowd capture`: how live Linux interfaces are read (AF_PACKET TPACKET_V3 rings)."""

    workers: int | None = _leaf(None, key="workers", arg="N", kind="integer", range=(1, 1024),
                                shown="one per CPU",
                                help="Capture processes. With more than one, each opens its own ring on every "
                                     "captured interface, all joined in one PACKET_FANOUT hash group, so every "
                                     "flow stays on one worker, which owns that shard of the flow cache; the "
                                     "daemon process exports for all of them. 1 captures in the daemon process.")
    ring_blocks: int = _leaf(16, key="ring-blocks", arg="N", kind="integer", range=(2, 65536),
                             help="Blocks in each ring (one ring per interface and worker).")
    block_size: int = _leaf(4 << 20, key="block-size", arg="BYTES", kind="integer", range=(PAGE_SIZE, 1 << 30),
                            help=f"Bytes in each block, a multiple of {PAGE_SIZE}; ring memory is ring-blocks "
                                 f"x block-size per interface and worker. Fewer, larger blocks mean fewer "
                                 f"wake-ups at moderate rates (the kernel hands over a block when it is full).")
    block_timeout: int = _leaf(500, key="block-timeout", arg="MILLISECONDS", kind="integer", range=(1, 60_000),
                               help="The kernel hands flowd a partly filled block after this long (a full one at "
                                    "once), so at a low rate packets reach the flow cache at most this late "
                                    "(flows end after seconds, so this delays no export noticeably). Longer "
                                    "means fewer wake-ups and less CPU per packet at low rates (10k packets/s "
                                    "on two workers: about 0.77 µs at 200 ms, 0.50 µs at 500 ms, 0.30 µs at "
                                    "1000 ms, tcpdump's buffer timeout); packet times come from the kernel "
                                    "either way. A stop waits for the block being filled only when it holds "
                                    "frames.")
    promiscuous: bool = _opt(False, syntax="promiscuous", kind="flag",
                             help="Put each captured interface into promiscuous mode while it is captured.")
    direction: str = _opt("in", syntax="direction (in | both)", kind="choice",
                          help="in: only packets arriving on the interface (Junos `filter input`); both: also "
                               "the packets the host sends out of it.")
    snaplen: int = _leaf(256, key="snaplen", arg="BYTES", kind="integer", range=(64, 65535),
                         help="Bytes of each frame copied out of the kernel (headers are all flowd reads; "
                              "byte counts come from the IP header). At most block-size - 256.")

    def worker_count(self) -> int:
        """The configured number of workers, or one per CPU this process may run on."""
        if self.workers is not None:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except (AttributeError, OSError):
            return max(1, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class MetricsConfig(Frozen):
    """`flowd metrics` (a flowd extension): the OpenMetrics endpoint; off unless the block is present."""

    listen: str = _leaf("127.0.0.1", key="listen", arg="ADDRESS", kind="address",
                        help="Address the HTTP endpoint listens on (GET /metrics).")
    port: int = _leaf(9477, key="port", arg="N", kind="integer", range=(1, 65535),
                      help="TCP port of the endpoint (0 is not allowed; 9477 is flowd's default).")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class NetconfConfig(Frozen):
    """`flowd netconf` (a flowd extension): NETCONF over SSH (RFC 6241/6242); off unless the block is present."""

    listen: str = _leaf("127.0.0.1", key="listen", arg="ADDRESS", kind="address",
                        help="Address the SSH server listens on.")
    port: int = _leaf(830, key="port", arg="N", kind="integer", range=(1, 65535),
                      help="TCP port (830 is NETCONF's; below 1024 needs CAP_NET_BIND_SERVICE).")
    authorized_keys: str = _leaf("/etc/flowd/netconf/%u.keys", key="authorized-keys", arg="PATH", kind="path",
                                 help="OpenSSH authorized_keys file of each user; %u stands for the user name. "
                                      "The user must exist on the host; its groups give its class as on the "
                                      "control socket (read-group: shows; admin-group or root: everything).")
    host_key: str | None = _leaf(None, key="host-key", arg="PATH", kind="path",
                                 shown="generated, kept beside the control socket",
                                 help="The server's SSH private key (created as an Ed25519 key if missing).")
    max_sessions: int = _leaf(8, key="max-sessions", arg="N", kind="integer", range=(1, 256),
                              help="NETCONF sessions at once; more are refused at login.")
    idle_timeout: int = _leaf(600, key="idle-timeout", arg="SECONDS", kind="integer", range=(10, 86400),
                              help="A session with no RPC for this long is closed.")
    max_message: int = _leaf(1 << 20, key="max-message-size", arg="BYTES", kind="integer", range=(4096, 1 << 26),
                             help="Largest RPC a client may send; a larger one closes the session.")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class RefreshRate(Frozen):
    """`template-refresh-rate` / `option-refresh-rate`: resend after N packets or S seconds."""

    packets: int = _leaf(4800, key="packets", arg="N", kind="integer", range=(1, 480_000),
                         help="Resend after this many export packets.")
    seconds: float = _leaf(60.0, key="seconds", arg="SECONDS", kind="duration", range=(10, 600), shown="60",
                           help="Resend after this many seconds.")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class TemplateConfig(Frozen):
    """`services flow-monitoring (version9 | version-ipfix) template NAME { ... }`."""

    name: str = _opt(syntax=None, kind="name", help="Template name, referenced by `flow-server version9 template`.")
    format: str = _opt(syntax=None, kind="choice", help='"9" (version9) or "ipfix" (version-ipfix).')
    template_type: str = _opt(syntax="ipv4-template | ipv6-template | mpls-template | mpls-ipv4-template | "
                                     "bridge-template | peer-as-billing-template", kind="choice", shown="required",
                              help="Record layout (exactly one). peer-as-billing-template is version9 only. "
                                   "Family inet exports ipv4/mpls-ipv4/peer-as-billing, inet6 exports ipv6, and "
                                   "either exports bridge (a flowd extension: Junos uses it for family bridge; "
                                   "flowd's flows are IP flows, and the bridge template carries their MAC "
                                   "addresses, Ethernet type and VLAN).")
    template_id: int | None = _leaf(None, key="template-id", arg="N", kind="integer", range=(1024, 65535),
                                    shown="per family", help="Template ID (unique among the templates).")
    options_template_id: int | None = _leaf(None, key="options-template-id", arg="N", kind="integer",
                                            range=(1024, 65535), shown="per family",
                                            help="Options template ID (unique among the templates).")
    domain_id: int | None = _opt(None, syntax="source-id N | observation-domain-id N", kind="integer",
                                 range=(0, 255), shown="1 (inet), 2 (inet6)",
                                 help="v9 header Source ID (version9) or IPFIX Observation Domain ID "
                                      "(version-ipfix). Unset, each family has its own (Junos derives a unique "
                                      "one too): the families export from separate sockets with separate "
                                      "sequence numbers, and collectors track sequences per exporter and "
                                      "domain.")
    active_timeout: float | None = _leaf(None, key="flow-active-timeout", arg="SECONDS", kind="duration",
                                         range=(10, 600), shown="the output's",
                                         help="Overrides the output's flow-active-timeout for the flows of every "
                                              "family whose flow servers export with this template (flowd keeps "
                                              "one flow cache per family, so those servers must agree).")
    inactive_timeout: float | None = _leaf(None, key="flow-inactive-timeout", arg="SECONDS", kind="duration",
                                           range=(10, 600), shown="the output's",
                                           help="Overrides the output's flow-inactive-timeout, as "
                                                "flow-active-timeout does.")
    template_refresh: RefreshRate = _opt(RefreshRate(), syntax="template-refresh-rate { packets N; seconds S; }",
                                         shown="4800 packets / 60 s", help="When to resend the template.")
    option_refresh: RefreshRate = _opt(RefreshRate(), syntax="option-refresh-rate { packets N; seconds S; }",
                                       shown="4800 packets / 60 s", help="When to resend the options template.")
    label_positions: tuple[int, ...] = _opt((1, 2, 3), syntax="mpls-template { label-position [ N ... ]; }",
                                            kind="integers", range=(1, 8), shown="[ 1 2 3 ]",
                                            help="MPLS label positions exported (1 to 3 values; mpls-template "
                                                 "and mpls-ipv4-template only).")


@dataclass(frozen=True, slots=True, eq=False, repr=False)
class Config(Frozen):
    """The whole validated configuration."""

    sampling: SamplingInput
    families: Mapping[str, FamilyOutput]
    filters: Mapping[str, Filter]
    inputs: tuple[InputBinding, ...]
    interface_map: Mapping[str, str]
    flow_table: FlowTableConfig
    control: ControlConfig
    templates: Mapping[str, TemplateConfig]
    source: str
    tree: Mapping[str, Any]  # the validated nested dict, for `show configuration`
    outputs: tuple[InputBinding, ...] = ()  # `filter output` / `sampling output` bindings (egress)
    capture: CaptureConfig = CaptureConfig()
    metrics: MetricsConfig | None = None
    netconf: NetconfConfig | None = None
    routing: RoutingConfig = RoutingConfig()

    def live_interfaces(self) -> tuple[tuple[str, str], ...]:
        """(name as configured, Linux name) of every interface with an input binding, each once, in order.

        The Linux name is the `flowd interface-map` entry, else the configured name itself.
        """
        seen: dict[str, str] = {}
        for binding in self.inputs:
            seen.setdefault(binding.interface, self.interface_map.get(binding.interface, binding.interface))
        return tuple(seen.items())


def field_meta(cls: type, name: str) -> Mapping[str, Any]:
    for f in fields(cls):
        if f.name == name:
            return f.metadata
    raise KeyError(name)


def field_range(cls: type, name: str) -> tuple[int, int]:
    rng = field_meta(cls, name)["range"]
    assert rng is not None
    return rng  # type: ignore[no-any-return]
