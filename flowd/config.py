"""Configuration: YAML or Junos curly-brace text → validated frozen dataclasses (`load_config`).

Statement names, ranges and defaults follow ../shared/spec/junos-reference.md §2 (forwarding-options
sampling, output, services flow-monitoring templates, interface and firewall hooks). Both syntaxes
give the same nested dict (see flowd.junos); one validator turns it into a `Config`. Ranges and
defaults live once, in the dataclass field metadata, which also generates docs/config.md
(``python -m flowd.config --docs``). Every error is a one-line `ConfigError`:
``FILE:LINE: key.path: message``.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Final, NoReturn, cast

import yaml

from flowd import junos
from flowd.junos import Key, KeyPath

Prefix = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_SOURCE: Final = "flowd/data/default.yaml"  # how errors name the embedded default
COMMAND_LINE: Final = "command line"  # how errors name `with_overrides` values
FAMILIES: Final = ("inet", "inet6")
MAX_FLOW_SERVERS: Final = 8  # per family (reference §2.2: YANG max-elements 8)
MAX_TEMPLATES: Final = 10  # per version9 / version-ipfix (reference §2.3)
SOCKET_PATH_MAX: Final = 107  # sun_path is 108 bytes including the NUL

# Which v9/IPFIX template types each family may export with (reference §2.3).
TEMPLATE_TYPES_FOR: Final[Mapping[str, tuple[str, ...]]] = {
    "inet": ("ipv4", "mpls-ipv4", "peer-as-billing"),
    "inet6": ("ipv6",),
}

# IP protocol names Junos accepts in `from protocol` (IANA numbers).
PROTOCOLS: Final[Mapping[str, int]] = {
    "hop-by-hop": 0, "icmp": 1, "igmp": 2, "ipip": 4, "tcp": 6, "egp": 8, "udp": 17, "ipv6": 41,
    "routing": 43, "fragment": 44, "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "icmp6": 58,
    "no-next-header": 59, "dstopts": 60, "ospf": 89, "pim": 103, "vrrp": 112, "sctp": 132,
}

# Port names Junos accepts in `from source-port / destination-port / port` (IANA numbers).
PORTS: Final[Mapping[str, int]] = {
    "afs": 1483, "bgp": 179, "biff": 512, "bootpc": 68, "bootps": 67, "cmd": 514, "cvspserver": 2401,
    "dhcp": 67, "domain": 53, "eklogin": 2105, "ekshell": 2106, "exec": 512, "finger": 79, "ftp": 21,
    "ftp-data": 20, "http": 80, "https": 443, "ident": 113, "imap": 143, "kerberos-sec": 88,
    "klogin": 543, "kpasswd": 761, "krb-prop": 754, "krbupdate": 760, "kshell": 544, "ldap": 389,
    "ldp": 646, "login": 513, "mobileip-agent": 434, "mobilip-mn": 435, "msdp": 639,
    "netbios-dgm": 138, "netbios-ns": 137, "netbios-ssn": 139, "nfsd": 2049, "nntp": 119,
    "ntalk": 518, "ntp": 123, "pop3": 110, "pptp": 1723, "printer": 515, "radacct": 1813,
    "radius": 1812, "rip": 520, "rkinit": 2108, "smtp": 25, "snmp": 161, "snmptrap": 162,
    "snpp": 444, "socks": 1080, "ssh": 22, "sunrpc": 111, "syslog": 514, "tacacs": 49,
    "tacacs-ds": 65, "talk": 517, "telnet": 23, "tftp": 69, "timed": 525, "who": 513, "xdmcp": 177,
    "zephyr-clt": 2103, "zephyr-hm": 2104, "zephyr-srv": 2102,
}

_NAME: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}")
_IFNAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}")
_SERVICE_IF: Final = re.compile(r"(?:sp|ms|mo)-[0-9]+/[0-9]+/[0-9]+")
_LINUX_IF: Final = re.compile(r"[^/\s:]{1,15}")
_GROUP: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?")
_DURATION: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smh]?)")
_UNIT_SECONDS: Final = {"": 1, "s": 1, "m": 60, "h": 3600}


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
# kind (how the value is read), range, shown (default as the docs print it), help.


def _opt(default: Any = MISSING, *, syntax: str | None, help: str, kind: str = "block", key: str | None = None,
         range: tuple[int, int] | None = None, shown: str | None = None) -> Any:
    meta = {"key": key, "syntax": syntax, "kind": kind, "range": range, "shown": shown, "help": help}
    return field(default=default, metadata=meta)


def _leaf(default: Any = MISSING, *, key: str, arg: str, kind: str, help: str, within: str = "",
          range: tuple[int, int] | None = None, shown: str | None = None) -> Any:
    syntax = f"{within} {key} {arg}".lstrip()
    return _opt(default, syntax=syntax, kind=kind, key=key, range=range, shown=shown, help=help)


@dataclass(frozen=True, slots=True)
class SamplingInput:
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


@dataclass(frozen=True, slots=True)
class FlowServer:
    """`output flow-server ADDRESS { ... }`: one collector; every record goes to every server."""

    address: str = _opt(syntax=None, kind="address", help="The collector's IPv4 or IPv6 address (the entry's name).")
    port: int = _leaf(key="port", arg="N", kind="integer", range=(1, 65535), shown="required",
                      help="UDP port of the collector (2055 is usual for v5/v9, 4739 for IPFIX).")
    version: str = _opt("5", syntax="version 5 | version9 { template NAME; } | version-ipfix { template NAME; }",
                        kind="choice", shown="version 5",
                        help="Export format: cflowd/NetFlow v5, NetFlow v9 or IPFIX. Version 5 carries IPv4 only "
                             "and cannot be mixed with v9/IPFIX servers in one output. `version9;` without a "
                             "template (a flowd extension) uses the built-in template of the family.")
    source_address: str | None = _leaf(None, key="source-address", arg="ADDRESS", kind="address",
                                       shown="the output interface's, else chosen by the kernel",
                                       help="Source address of export packets (same address family as the server).")
    dscp: int = _leaf(0, key="dscp", arg="N", kind="integer", range=(0, 63), help="DSCP of export packets.")
    template: str | None = _opt(None, syntax=None, kind="name", help="v9/IPFIX template name (see version).")
    transport: str = _opt("udp", syntax="transport (udp | tcp)", kind="choice",
                          help="Export transport (a flowd extension): udp, or tcp for version-ipfix "
                               "(RFC 7011 section 10.4: reconnects with backoff, a bounded backlog).")


@dataclass(frozen=True, slots=True)
class ServiceInterface:
    """`output interface sp-F/P/0 { ... }`: the services PIC whose name and engine values flowd reports."""

    name: str = _opt(syntax=None, kind="name", help="sp-, ms- or mo-FPC/PIC/PORT (the entry's name).")
    engine_id: int = _leaf(0, key="engine-id", arg="N", kind="integer", range=(0, 255),
                           help="Engine ID in the v5 header (Junos assigns one dynamically; flowd uses 0).")
    engine_type: int = _leaf(0, key="engine-type", arg="N", kind="integer", range=(0, 255),
                             help="Engine type in the v5 header (Junos assigns one dynamically; flowd uses 0).")
    source_address: str | None = _leaf(None, key="source-address", arg="ADDRESS", kind="address",
                                       shown="none", help="Source address of export packets for this output.")


@dataclass(frozen=True, slots=True)
class FamilyOutput:
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


@dataclass(frozen=True, slots=True)
class TermMatch:
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


@dataclass(frozen=True, slots=True)
class Term:
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


@dataclass(frozen=True, slots=True)
class Filter:
    """`firewall family F filter NAME`: terms tried in order, first match decides."""

    name: str
    family: str
    terms: tuple[Term, ...]


@dataclass(frozen=True, slots=True)
class InputBinding:
    """`interfaces IF unit N family F` with `filter input F` or `sampling input` (or output)."""

    interface: str  # the Junos name as written; flowd interface-map gives the Linux one
    family: str
    filter: str | None  # None: every packet of the interface goes to the sampler
    unit: int = 0


@dataclass(frozen=True, slots=True)
class FlowTableConfig:
    """`flowd flow-table`: the flow cache."""

    max_flows: int = _leaf(1_000_000, key="max-flows", arg="N", kind="integer", range=(1, 245 * 262_144),
                           help="Flows the cache holds per family; packets of new flows beyond it are counted "
                                "as dropped (no memory). The maximum is Junos's largest inline table.")


@dataclass(frozen=True, slots=True)
class ControlConfig:
    """`flowd control`: the Unix socket flowcli talks to."""

    socket: str | None = _leaf(None, key="socket", arg="PATH", kind="socket", shown="chosen by the daemon",
                               help=f"Path of the control socket (at most {SOCKET_PATH_MAX} bytes).")
    read_group: str | None = _leaf(None, key="read-group", arg="GROUP", kind="group", shown="none",
                                   help="Group allowed to connect and run show commands.")
    admin_group: str | None = _leaf(None, key="admin-group", arg="GROUP", kind="group", shown="none",
                                    help="Group also allowed to run clear commands.")


DIRECTIONS: Final = ("in", "both")
PAGE_SIZE: Final = 4096  # block-size must be a multiple of the page size (x86-64, arm64 with 4k pages)
SNAP_HEADROOM: Final = 256  # bytes of a block the kernel needs beside one frame (headers and alignment)


@dataclass(frozen=True, slots=True)
class CaptureConfig:
    """`flowd capture`: how live Linux interfaces are read (AF_PACKET TPACKET_V3 rings)."""

    workers: int | None = _leaf(None, key="workers", arg="N", kind="integer", range=(1, 1024),
                                shown="one per CPU",
                                help="Capture processes. With more than one, each opens its own ring on every "
                                     "captured interface, all joined in one PACKET_FANOUT hash group, so every "
                                     "flow stays on one worker, which owns that shard of the flow cache; the "
                                     "daemon process exports for all of them. 1 captures in the daemon process.")
    ring_blocks: int = _leaf(64, key="ring-blocks", arg="N", kind="integer", range=(2, 65536),
                             help="Blocks in each ring (one ring per interface and worker).")
    block_size: int = _leaf(1 << 20, key="block-size", arg="BYTES", kind="integer", range=(PAGE_SIZE, 1 << 30),
                            help=f"Bytes in each block, a multiple of {PAGE_SIZE}; ring memory is ring-blocks "
                                 f"x block-size per interface and worker.")
    block_timeout: int = _leaf(50, key="block-timeout", arg="MILLISECONDS", kind="integer", range=(1, 60_000),
                               help="The kernel hands flowd a partly filled block after this long, so packets "
                                    "wait at most this long at a low rate. Longer means bigger batches and less "
                                    "CPU per packet (about 1.2 µs at 10 ms, 0.7 µs at 50 ms for 150k packets/s "
                                    "on one worker); packet times come from the kernel either way.")
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


@dataclass(frozen=True, slots=True)
class RefreshRate:
    """`template-refresh-rate` / `option-refresh-rate`: resend after N packets or S seconds."""

    packets: int = _leaf(4800, key="packets", arg="N", kind="integer", range=(1, 480_000),
                         help="Resend after this many export packets.")
    seconds: float = _leaf(60.0, key="seconds", arg="SECONDS", kind="duration", range=(10, 600), shown="60",
                           help="Resend after this many seconds.")


@dataclass(frozen=True, slots=True)
class TemplateConfig:
    """`services flow-monitoring (version9 | version-ipfix) template NAME { ... }`."""

    name: str = _opt(syntax=None, kind="name", help="Template name, referenced by `flow-server version9 template`.")
    format: str = _opt(syntax=None, kind="choice", help='"9" (version9) or "ipfix" (version-ipfix).')
    template_type: str = _opt(syntax="ipv4-template | ipv6-template | mpls-template | mpls-ipv4-template | "
                                     "bridge-template | peer-as-billing-template", kind="choice", shown="required",
                              help="Record layout (exactly one). peer-as-billing-template is version9 only. "
                                   "Family inet exports ipv4/mpls-ipv4/peer-as-billing, inet6 exports ipv6.")
    template_id: int | None = _leaf(None, key="template-id", arg="N", kind="integer", range=(1024, 65535),
                                    shown="per family", help="Template ID (unique among the templates).")
    options_template_id: int | None = _leaf(None, key="options-template-id", arg="N", kind="integer",
                                            range=(1024, 65535), shown="per family",
                                            help="Options template ID (unique among the templates).")
    domain_id: int = _opt(0, syntax="source-id N | observation-domain-id N", kind="integer", range=(0, 255),
                          help="v9 header Source ID (version9) or IPFIX Observation Domain ID (version-ipfix).")
    active_timeout: float = _leaf(60.0, key="flow-active-timeout", arg="SECONDS", kind="duration", range=(10, 600),
                                  shown="60", help="Overrides the output's flow-active-timeout for this template.")
    inactive_timeout: float = _leaf(60.0, key="flow-inactive-timeout", arg="SECONDS", kind="duration",
                                    range=(10, 600), shown="60",
                                    help="Overrides the output's flow-inactive-timeout for this template.")
    template_refresh: RefreshRate = _opt(RefreshRate(), syntax="template-refresh-rate { packets N; seconds S; }",
                                         shown="4800 packets / 60 s", help="When to resend the template.")
    option_refresh: RefreshRate = _opt(RefreshRate(), syntax="option-refresh-rate { packets N; seconds S; }",
                                       shown="4800 packets / 60 s", help="When to resend the options template.")
    label_positions: tuple[int, ...] = _opt((1, 2, 3), syntax="mpls-template { label-position [ N ... ]; }",
                                            kind="integers", range=(1, 8), shown="[ 1 2 3 ]",
                                            help="MPLS label positions exported (1 to 3 values; mpls-template "
                                                 "and mpls-ipv4-template only).")


@dataclass(frozen=True, slots=True)
class Config:
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

    def with_overrides(self, *, flow_servers: list[tuple[str, int]] | None = None, export_version: str | None = None,
                       active_timeout: float | None = None, inactive_timeout: float | None = None,
                       sampling_rate: int | None = None, source_address: str | None = None,
                       interfaces: list[str] | None = None, transport: str | None = None) -> Config:
        """Apply command-line overrides (same ranges as the file); raise `ConfigError` naming the option.

        ``flow_servers`` replaces the servers of every configured family (creating `family inet output`
        when none is configured); ``export_version`` ("5", "9", "ipfix") sets every server's version;
        ``source_address`` replaces the export source address of every server and service interface;
        ``interfaces`` replaces the input bindings: each name samples every packet (no filter) in every
        configured family; ``transport`` ("udp", "tcp") sets every server's transport.
        """
        cfg = _override(self, flow_servers, export_version, active_timeout, inactive_timeout, sampling_rate,
                        source_address, transport)
        return cfg if interfaces is None else _override_interfaces(cfg, interfaces)

    def live_interfaces(self) -> tuple[tuple[str, str], ...]:
        """(name as configured, Linux name) of every interface with an input binding, each once, in order.

        The Linux name is the `flowd interface-map` entry, else the configured name itself.
        """
        seen: dict[str, str] = {}
        for binding in self.inputs:
            seen.setdefault(binding.interface, self.interface_map.get(binding.interface, binding.interface))
        return tuple(seen.items())


def _meta(cls: type, name: str) -> Mapping[str, Any]:
    for f in fields(cls):
        if f.name == name:
            return f.metadata
    raise KeyError(name)


def _range(cls: type, name: str) -> tuple[int, int]:
    rng = _meta(cls, name)["range"]
    assert rng is not None
    return rng  # type: ignore[no-any-return]


# --- validation -------------------------------------------------------------------------------------


def _describe(value: Any) -> str:
    """A value as error messages show it after ``got``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"a flag ({str(value).lower()})"
    if isinstance(value, Mapping):
        return "a block { ... }"
    if isinstance(value, list):
        return "a list [ ... ]"
    if isinstance(value, str):
        plain = value and value == value.strip() and " " not in value and not re.fullmatch(r"-?[0-9.]+", value)
        return value if plain else repr(value)  # quoted when it would read as a number
    return str(value)


def _dotted(path: KeyPath) -> str:
    return ".".join(str(k) for k in path)


class _Checker:
    """Reads values out of the tree; every failure becomes a `ConfigError` at the path's line."""

    def __init__(self, source: str, lines: Mapping[KeyPath, int]) -> None:
        self.source = source
        self.lines = lines

    def line(self, path: KeyPath) -> int | None:
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None

    def fail(self, path: KeyPath, message: str) -> NoReturn:
        raise ConfigError(self.source, self.line(path), path, message)

    def block(self, node: Any, path: KeyPath, allowed: Sequence[str] | None, *,
              flag_ok: bool = False) -> Mapping[Key, Any]:
        """A block of statements; unknown statements are errors (``allowed=None``: any names)."""
        if node is True and flag_ok:
            return {}
        if not isinstance(node, Mapping):
            self.fail(path, f"expected a block of statements, got {_describe(node)}")
        if allowed is not None:
            for key in node:
                if key not in allowed:
                    hint = f"expected one of: {', '.join(allowed)}" if allowed else "this block takes no statements"
                    self.fail(path + (key,), f"unknown statement ({hint})")
        return node

    def entries(self, node: Any, path: KeyPath) -> list[tuple[Key, Any]]:
        """Entries of a keyed list (`flow-server A {...}`); the one-line form `family inet;` is one entry."""
        if isinstance(node, Mapping):
            return list(node.items())
        if isinstance(node, (str, int)) and not isinstance(node, bool):
            return [(node, True)]
        self.fail(path, f"expected NAME {{ ... }} entries, got {_describe(node)}")

    def integer(self, node: Any, path: KeyPath, rng: tuple[int, int]) -> int:
        if isinstance(node, bool) or not isinstance(node, int):
            self.fail(path, f"expected an integer, got {_describe(node)}")
        lo, hi = rng
        if not lo <= node <= hi:
            self.fail(path, f"expected {lo}..{hi}, got {node}")
        return node

    def duration(self, node: Any, path: KeyPath, rng: tuple[int, int]) -> float:
        seconds: float | None = None
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            seconds = float(node)
        elif isinstance(node, str) and (m := _DURATION.fullmatch(node)):
            seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        if seconds is None:
            self.fail(path, f"expected a duration in seconds (60, 30s, 5m, 1h), got {_describe(node)}")
        lo, hi = rng
        if not lo <= seconds <= hi:
            self.fail(path, f"expected {lo}..{hi}, got {_describe(node)}")
        return seconds

    def flag(self, node: Any, path: KeyPath) -> bool:
        if node is not True:
            self.fail(path, f"expected a flag (true; delete the statement to turn it off), got {_describe(node)}")
        return True

    def name(self, node: Any, path: KeyPath, what: str) -> str:
        if isinstance(node, int) and not isinstance(node, bool) and node >= 0:
            return str(node)
        if not isinstance(node, str) or not _NAME.fullmatch(node):
            self.fail(path, f"expected a {what} name (letters, digits, '_', '-', '.', ':'), got {_describe(node)}")
        return node

    def address(self, node: Any, path: KeyPath) -> str:
        try:
            if not isinstance(node, str):
                raise ValueError
            return str(ipaddress.ip_address(node))
        except ValueError:
            self.fail(path, f"expected an IPv4 or IPv6 address, got {_describe(node)}")

    def prefix(self, node: Any, path: KeyPath, family: str) -> Prefix:
        example = "10.0.0.0/8" if family == "inet" else "2001:db8::/32"
        kind = "IPv4" if family == "inet" else "IPv6"
        if isinstance(node, str) and node.split()[1:] == ["except"]:
            self.fail(path, f"'except' entries are not supported ({node})")
        if not isinstance(node, str):
            self.fail(path, f"expected an {kind} prefix such as {example}, got {_describe(node)}")
        try:
            net = ipaddress.ip_network(node)
        except ValueError:
            try:
                loose = ipaddress.ip_network(node, strict=False)
            except ValueError:
                self.fail(path, f"expected an {kind} prefix such as {example}, got {_describe(node)}")
            self.fail(path, f"{node} has host bits set (did you mean {loose}?)")
        if net.version != (4 if family == "inet" else 6):
            self.fail(path, f"expected an {kind} prefix (family {family}), got {node}")
        return net

    def read_leaves(self, cls: type, block: Mapping[Key, Any], path: KeyPath) -> dict[str, Any]:
        """Values of the simple leaf statements of ``cls`` present in ``block`` (by field metadata)."""
        out: dict[str, Any] = {}
        for f in fields(cls):
            key = f.metadata.get("key")
            if key is None or key not in block:
                continue
            reader = _READERS[f.metadata["kind"]]
            out[f.name] = reader(self, block[key], path + (key,), f.metadata)
        return out


def _read_socket(c: _Checker, node: Any, path: KeyPath, meta: Mapping[str, Any]) -> str:
    if not isinstance(node, str) or not node or "\0" in node:
        c.fail(path, f"expected a socket path, got {_describe(node)}")
    if len(node.encode()) > SOCKET_PATH_MAX:
        c.fail(path, f"socket path is {len(node.encode())} bytes; "
                     f"at most {SOCKET_PATH_MAX} fit in a Unix socket address")
    return node


def _read_group(c: _Checker, node: Any, path: KeyPath, meta: Mapping[str, Any]) -> str:
    if not isinstance(node, str) or not _GROUP.fullmatch(node):
        c.fail(path, f"expected a group name, got {_describe(node)}")
    return node


_READERS: Final[Mapping[str, Callable[[_Checker, Any, KeyPath, Mapping[str, Any]], Any]]] = {
    "integer": lambda c, node, path, meta: c.integer(node, path, meta["range"]),
    "duration": lambda c, node, path, meta: c.duration(node, path, meta["range"]),
    "address": lambda c, node, path, meta: c.address(node, path),
    "socket": _read_socket,
    "group": _read_group,
}


def _build(tree: Any, source: str, lines: Mapping[KeyPath, int]) -> Config:
    """Validate a parsed tree (YAML or curly) into a `Config`."""
    c = _Checker(source, lines)
    if tree is None:
        tree = {}
    top = c.block(tree, (), ("interfaces", "forwarding-options", "firewall", "services", "flowd"))
    templates = _services(c, top["services"], ("services",)) if "services" in top else {}
    filters = _firewall(c, top["firewall"], ("firewall",)) if "firewall" in top else {}
    sampling, families = _forwarding(c, top.get("forwarding-options"), templates)
    inputs, outputs = _interfaces(c, top["interfaces"], ("interfaces",), filters) if "interfaces" in top else ((), ())
    interface_map, flow_table, control, capture = _flowd(c, top.get("flowd"), ("flowd",))
    return Config(sampling=sampling, families=families, filters=filters, inputs=inputs,
                  interface_map=interface_map, flow_table=flow_table, control=control, templates=templates,
                  source=source, tree=tree, outputs=outputs, capture=capture)


def _forwarding(c: _Checker, node: Any, templates: Mapping[str, TemplateConfig]
                ) -> tuple[SamplingInput, dict[str, FamilyOutput]]:
    path: KeyPath = ("forwarding-options",)
    base = SamplingInput()
    if node is None:
        return base, {}
    fo = c.block(node, path, ("sampling", "family"))
    places: list[tuple[KeyPath, Any]] = []
    if "sampling" in fo:
        sp = path + ("sampling",)
        sampling = c.block(fo["sampling"], sp, ("input", "family"), flag_ok=True)
        if "input" in sampling:
            base = _input(c, sampling["input"], sp + ("input",), base)
        if "family" in sampling:
            places.append((sp + ("family",), sampling["family"]))
    if "family" in fo:
        # The seed closes `sampling {` before `family inet { output ... }`; accept that placement too.
        places.append((path + ("family",), fo["family"]))
    families: dict[str, FamilyOutput] = {}
    where: dict[str, KeyPath] = {}
    for fpath, fnode in places:
        for fam, body in c.entries(fnode, fpath):
            here = fpath + (fam,)
            if fam not in FAMILIES:
                c.fail(here, "unsupported family (expected inet or inet6)")
            assert isinstance(fam, str)
            if fam in families:
                c.fail(here, f"family {fam} is also configured at {_dotted(where[fam])}")
            block = c.block(body, here, ("input", "output"), flag_ok=True)
            inp = _input(c, block["input"], here + ("input",), base) if "input" in block else base
            families[fam] = _output(c, block.get("output"), here + ("output",), fam, inp, templates)
            where[fam] = here
    return base, families


def _input(c: _Checker, node: Any, path: KeyPath, base: SamplingInput) -> SamplingInput:
    keys = [f.metadata["key"] for f in fields(SamplingInput)]
    return replace(base, **c.read_leaves(SamplingInput, c.block(node, path, keys, flag_ok=True), path))


def _output(c: _Checker, node: Any, path: KeyPath, family: str, inp: SamplingInput,
            templates: Mapping[str, TemplateConfig]) -> FamilyOutput:
    if node is None:
        return FamilyOutput(family, inp)
    block = c.block(node, path, ("flow-server", "flow-active-timeout", "flow-inactive-timeout", "interface"),
                    flag_ok=True)
    values = c.read_leaves(FamilyOutput, block, path)
    servers: tuple[FlowServer, ...] = ()
    if "flow-server" in block:
        servers = _servers(c, block["flow-server"], path + ("flow-server",), family, templates)
    interface = _service_interface(c, block["interface"], path + ("interface",)) if "interface" in block else None
    return FamilyOutput(family, inp, servers, interface=interface, **values)


def _servers(c: _Checker, node: Any, path: KeyPath, family: str,
             templates: Mapping[str, TemplateConfig]) -> tuple[FlowServer, ...]:
    out: list[FlowServer] = []
    keys: list[Key] = []
    for i, (name, body) in enumerate(c.entries(node, path)):
        here = path + (name,)
        if i == MAX_FLOW_SERVERS:
            c.fail(here, f"at most {MAX_FLOW_SERVERS} flow servers are allowed per family "
                         f"(this is number {MAX_FLOW_SERVERS + 1})")
        address = c.address(name, here)
        if any(s.address == address for s in out):
            c.fail(here, f"flow server {address} is configured twice")
        block = c.block(body, here, ("port", "version", "version9", "version-ipfix", "source-address", "dscp",
                                     "transport"), flag_ok=True)
        if "port" not in block:
            c.fail(here + ("port",), "missing: a flow server needs a port")
        values = c.read_leaves(FlowServer, block, here)
        version, template = _version(c, block, here, family, templates)
        source = values.get("source_address")
        if source is not None and ipaddress.ip_address(source).version != ipaddress.ip_address(address).version:
            c.fail(here + ("source-address",),
                   f"source-address {source} and flow server {address} are of different address families")
        transport = _transport(c, block, here, version)
        out.append(FlowServer(address, version=version, template=template, transport=transport, **values))
        keys.append(name)
    for server, key in zip(out, keys, strict=True):
        if (server.version == "5") != (out[0].version == "5"):
            c.fail(path + (key,), "version 5 and version 9/IPFIX flow servers cannot be mixed in one output")
    return tuple(out)


def _transport(c: _Checker, block: Mapping[Key, Any], path: KeyPath, version: str) -> str:
    """`transport (udp | tcp)`, a flowd extension: IPFIX may go over TCP (RFC 7011 section 10.4)."""
    value = block.get("transport", "udp")
    if value not in ("udp", "tcp"):
        c.fail(path + ("transport",), f"expected udp or tcp, got {_describe(value)}")
    if value == "tcp" and version != "ipfix":
        c.fail(path + ("transport",), "transport tcp needs version-ipfix (v5 and v9 are UDP only)")
    return str(value)


def _version(c: _Checker, block: Mapping[Key, Any], path: KeyPath, family: str,
             templates: Mapping[str, TemplateConfig]) -> tuple[str, str | None]:
    given = [k for k in ("version", "version9", "version-ipfix") if k in block]
    if len(given) > 1:
        c.fail(path + (given[1],), f"{given[0]} and {given[1]} are mutually exclusive")
    if not given or given[0] == "version":
        if given:
            value = block["version"]
            if value in (8, 500) and not isinstance(value, bool):
                c.fail(path + ("version",), f"version {value} is not supported "
                                            "(flowd exports version 5, version9 and version-ipfix)")
            if value != 5 or isinstance(value, bool):
                c.fail(path + ("version",), f"expected 5, got {_describe(value)}")
        if family == "inet6":
            c.fail(path + ("version",), "version 5 carries IPv4 flows only; family inet6 needs "
                                        "version9 or version-ipfix")
        return "5", None
    key = given[0]
    fmt = "9" if key == "version9" else "ipfix"
    vpath = path + (key,)
    body = c.block(block[key], vpath, ("template",), flag_ok=True)
    if "template" not in body:
        return fmt, None
    name = c.name(body["template"], vpath + ("template",), "template")
    found = templates.get(name)
    if found is None or found.format != fmt:
        c.fail(vpath + ("template",), f"template {name} is not defined under services flow-monitoring {key} template")
    if found.template_type not in TEMPLATE_TYPES_FOR[family]:
        allowed = ", ".join(f"{t}-template" for t in TEMPLATE_TYPES_FOR[family])
        c.fail(vpath + ("template",), f"template {name} has type {found.template_type}-template; family "
                                      f"{family} exports with {allowed}")
    return fmt, name


def _service_interface(c: _Checker, node: Any, path: KeyPath) -> ServiceInterface | None:
    entries = c.entries(node, path)
    if len(entries) > 1:
        c.fail(path + (entries[1][0],), "at most one services interface is allowed per output")
    if not entries:
        return None
    name, body = entries[0]
    here = path + (name,)
    if not isinstance(name, str) or not _SERVICE_IF.fullmatch(name):
        c.fail(here, f"expected a services interface name (sp-, ms- or mo-FPC/PIC/PORT, such as sp-2/0/0), "
                     f"got {_describe(name)}")
    block = c.block(body, here, ("engine-id", "engine-type", "source-address"), flag_ok=True)
    return ServiceInterface(name, **c.read_leaves(ServiceInterface, block, here))


def _firewall(c: _Checker, node: Any, path: KeyPath) -> dict[str, Filter]:
    fw = c.block(node, path, ("family",))
    filters: dict[str, Filter] = {}
    for fam, body in c.entries(fw.get("family", {}), path + ("family",)):
        fpath = path + ("family", fam)
        if fam not in FAMILIES:
            c.fail(fpath, "unsupported family (expected inet or inet6)")
        assert isinstance(fam, str)
        block = c.block(body, fpath, ("filter",), flag_ok=True)
        for fname, fbody in c.entries(block.get("filter", {}), fpath + ("filter",)):
            here = fpath + ("filter", fname)
            name = c.name(fname, here, "filter")
            if name in filters:
                other = filters[name].family
                c.fail(here, f"filter {name} is defined twice" if other == fam else
                       f"filter {name} is also defined in family {other}; flowd needs unique filter names")
            fblock = c.block(fbody, here, ("term",), flag_ok=True)
            terms: list[Term] = []
            for tname, tbody in c.entries(fblock.get("term", {}), here + ("term",)):
                terms.append(_term(c, tname, tbody, here + ("term", tname), fam, terms))
            filters[name] = Filter(name, fam, tuple(terms))
    return filters


def _term(c: _Checker, key: Key, node: Any, path: KeyPath, family: str, earlier: Sequence[Term]) -> Term:
    name = c.name(key, path, "term")
    if any(t.name == name for t in earlier):
        c.fail(path, f"term {name} is defined twice")
    block = c.block(node, path, ("from", "then"), flag_ok=True)
    match = _match(c, block["from"], path + ("from",), family) if "from" in block else TermMatch()
    sample, count, action = _then(c, block["then"], path + ("then",)) if "then" in block else (False, None, None)
    return Term(name, match, sample, count, action)


def _match(c: _Checker, node: Any, path: KeyPath, family: str) -> TermMatch:
    allowed = ["source-address", "destination-address", "address", "protocol",
               "source-port", "destination-port", "port"]
    if family == "inet6":
        allowed.insert(4, "next-header")
    block = c.block(node, path, allowed, flag_ok=True)
    if "protocol" in block and "next-header" in block:
        c.fail(path + ("next-header",), "protocol and next-header are the same condition; give one of them")
    values: dict[str, Any] = {}
    for key in ("source-address", "destination-address", "address"):
        if key in block:
            values[key.replace("-", "_")] = _prefixes(c, block[key], path + (key,), family)
    for key in ("protocol", "next-header"):
        if key in block:
            values["protocol"] = _protocols(c, block[key], path + (key,))
    for key in ("source-port", "destination-port", "port"):
        if key in block:
            values[key.replace("-", "_")] = _ports(c, block[key], path + (key,))
    return TermMatch(**values)


def _prefixes(c: _Checker, node: Any, path: KeyPath, family: str) -> tuple[Prefix, ...]:
    items: list[tuple[Any, KeyPath]]
    if isinstance(node, Mapping):  # curly: source-address { 10.0.0.0/8; 192.0.2.0/24 except; }
        items = []
        for key, value in node.items():
            if value == "except":
                c.fail(path + (key,), f"'except' entries are not supported ({key} except)")
            if value is not True:
                c.fail(path + (key,), f"expected a prefix entry, got {_describe(value)} after it")
            items.append((key, path + (key,)))
    elif isinstance(node, list):
        items = [(value, path) for value in node]
    elif isinstance(node, str):
        items = [(node, path)]
    else:
        c.fail(path, f"expected a prefix or a list of prefixes, got {_describe(node)}")
    if not items:
        c.fail(path, "expected at least one prefix")
    return tuple(dict.fromkeys(c.prefix(value, where, family) for value, where in items))


def _as_list(c: _Checker, node: Any, path: KeyPath, what: str) -> list[Any]:
    items = node if isinstance(node, list) else [node]
    if not items:
        c.fail(path, f"expected at least one {what}")
    return items


def _protocols(c: _Checker, node: Any, path: KeyPath) -> tuple[int, ...]:
    out: list[int] = []
    for item in _as_list(c, node, path, "protocol"):
        if isinstance(item, int) and not isinstance(item, bool):
            out.append(c.integer(item, path, (0, 255)))
        elif isinstance(item, str) and item in PROTOCOLS:
            out.append(PROTOCOLS[item])
        elif isinstance(item, str) and (m := re.fullmatch(r"([0-9]+)-([0-9]+)", item)):
            lo, hi = c.integer(int(m.group(1)), path, (0, 255)), c.integer(int(m.group(2)), path, (0, 255))
            if lo > hi:
                c.fail(path, f"range {item} is reversed")
            out.extend(range(lo, hi + 1))
        else:
            c.fail(path, f"expected a protocol name (tcp, udp, icmp, icmp6, ...) or a number 0..255, "
                         f"got {_describe(item)}")
    return tuple(dict.fromkeys(out))


def _port_number(item: Any) -> int | None:
    if isinstance(item, int) and not isinstance(item, bool):
        return item
    if isinstance(item, str):
        if item.isdigit():
            return int(item)
        return PORTS.get(item)
    return None


def _ports(c: _Checker, node: Any, path: KeyPath) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for item in _as_list(c, node, path, "port"):
        pair: tuple[int, int] | None = None
        single = _port_number(item)
        if single is not None:
            pair = (single, single)
        elif isinstance(item, str):
            for i, ch in enumerate(item):  # `1024-65535`, `ftp-data-http`: try each '-' as the range dash
                if ch == "-":
                    lo, hi = _port_number(item[:i]), _port_number(item[i + 1:])
                    if lo is not None and hi is not None:
                        pair = (lo, hi)
                        break
        if pair is None:
            c.fail(path, f"expected a port number 0..65535, a range such as 1024-65535, or a name such as "
                         f"http or domain, got {_describe(item)}")
        for number in pair:
            c.integer(number, path, (0, 65535))
        if pair[0] > pair[1]:
            c.fail(path, f"range {item} is reversed")
        out.append(pair)
    return tuple(dict.fromkeys(out))


def _then(c: _Checker, node: Any, path: KeyPath) -> tuple[bool, str | None, str | None]:
    if node in ("accept", "discard", "sample"):  # one-line form: `then accept;`
        node = {node: True}
    block = c.block(node, path, ("sample", "count", "accept", "discard"))
    sample = c.flag(block["sample"], path + ("sample",)) if "sample" in block else False
    count = c.name(block["count"], path + ("count",), "counter") if "count" in block else None
    action: str | None = None
    for key in ("accept", "discard"):
        if key in block:
            c.flag(block[key], path + (key,))
            if action is not None:
                c.fail(path + (key,), "accept and discard are mutually exclusive")
            action = key
    return sample, count, action


def _interfaces(c: _Checker, node: Any, path: KeyPath, filters: Mapping[str, Filter]
                ) -> tuple[tuple[InputBinding, ...], tuple[InputBinding, ...]]:
    bindings: dict[str, list[InputBinding]] = {"input": [], "output": []}
    for ifname, body in c.block(node, path, None).items():
        ipath = path + (ifname,)
        if not isinstance(ifname, str) or not _IFNAME.fullmatch(ifname):
            c.fail(ipath, f"expected an interface name such as ge-2/3/0, got {_describe(ifname)}")
        iblock = c.block(body, ipath, ("unit", "description"), flag_ok=True)
        _description(c, iblock, ipath)
        for ukey, ubody in c.entries(iblock.get("unit", {}), ipath + ("unit",)):
            upath = ipath + ("unit", ukey)
            unit = c.integer(int(ukey) if isinstance(ukey, str) and ukey.isdigit() else ukey, upath, (0, 16385))
            ublock = c.block(ubody, upath, ("family", "description"), flag_ok=True)
            _description(c, ublock, upath)
            for fam, fbody in c.entries(ublock.get("family", {}), upath + ("family",)):
                fpath = upath + ("family", fam)
                if fam not in FAMILIES:
                    c.fail(fpath, "unsupported family (expected inet or inet6)")
                assert isinstance(fam, str)
                fblock = c.block(fbody, fpath, ("filter", "sampling", "address"), flag_ok=True)
                if "address" in fblock:
                    _interface_addresses(c, fblock["address"], fpath + ("address",), fam)
                flt = c.block(fblock["filter"], fpath + ("filter",), ("input", "output")) if "filter" in fblock else {}
                smp = fblock.get("sampling", {})
                if smp in ("input", "output"):  # one-line form: `sampling input;`
                    smp = {smp: True}
                smp = c.block(smp, fpath + ("sampling",), ("input", "output"), flag_ok=True)
                for direction, found in bindings.items():
                    fname = None
                    if direction in flt:
                        fname = _bound_filter(c, flt[direction], fpath + ("filter", direction), fam, filters)
                    sampled = direction in smp and c.flag(smp[direction], fpath + ("sampling", direction))
                    if fname is not None and sampled:
                        c.fail(fpath + ("sampling", direction),
                               f"give either filter {direction} or sampling {direction} on one family, not both")
                    if fname is not None or sampled:
                        found.append(InputBinding(ifname, fam, fname, unit))
    return tuple(bindings["input"]), tuple(bindings["output"])


def _bound_filter(c: _Checker, node: Any, path: KeyPath, family: str, filters: Mapping[str, Filter]) -> str:
    name = c.name(node, path, "filter")
    found = filters.get(name)
    if found is None:
        c.fail(path, f"filter {name} is not defined under firewall family {family} filter")
    if found.family != family:
        c.fail(path, f"filter {name} is a family {found.family} filter, not {family}")
    return name


def _description(c: _Checker, block: Mapping[Key, Any], path: KeyPath) -> None:
    if "description" in block and not isinstance(block["description"], str):
        c.fail(path + ("description",), f"expected a text, got {_describe(block['description'])}")


def _interface_addresses(c: _Checker, node: Any, path: KeyPath, family: str) -> None:
    """`family inet address A/L { destination B; }`: checked (seed compatibility), not applied."""
    items: list[tuple[Any, Any, KeyPath]]
    if isinstance(node, list):
        items = [(value, True, path) for value in node]
    else:
        items = [(key, body, path + (key,)) for key, body in c.entries(node, path)]
    version = 4 if family == "inet" else 6
    for value, body, where in items:
        try:
            if not isinstance(value, str):
                raise ValueError
            iface = ipaddress.ip_interface(value)
        except ValueError:
            c.fail(where, f"expected an interface address such as 10.1.1.1/20, got {_describe(value)}")
        if iface.version != version:
            c.fail(where, f"expected an IPv{version} address (family {family}), got {value}")
        block = c.block(body, where, ("destination",), flag_ok=True)
        if "destination" in block:
            dest = c.address(block["destination"], where + ("destination",))
            if ipaddress.ip_address(dest).version != version:
                c.fail(where + ("destination",), f"expected an IPv{version} address (family {family}), got {dest}")


def _flowd(c: _Checker, node: Any, path: KeyPath
           ) -> tuple[dict[str, str], FlowTableConfig, ControlConfig, CaptureConfig]:
    if node is None:
        return {}, FlowTableConfig(), ControlConfig(), CaptureConfig()
    block = c.block(node, path, ("interface-map", "flow-table", "control", "capture"))
    mapping: dict[str, str] = {}
    if "interface-map" in block:
        mpath = path + ("interface-map",)
        for key, value in c.block(block["interface-map"], mpath, None).items():
            here = mpath + (key,)
            if not isinstance(key, str) or not _IFNAME.fullmatch(key):
                c.fail(here, f"expected a Junos interface name such as ge-2/3/0, got {_describe(key)}")
            if not isinstance(value, str) or not _LINUX_IF.fullmatch(value) or value in (".", ".."):
                c.fail(here, f"expected a Linux interface name (1..15 characters, no '/', ':' or spaces), "
                             f"got {_describe(value)}")
            mapping[key] = value
    tables = []
    for key, cls in (("flow-table", FlowTableConfig), ("control", ControlConfig)):
        spath = path + (key,)
        keys = [f.metadata["key"] for f in fields(cls)]
        sub = c.block(block[key], spath, keys, flag_ok=True) if key in block else {}
        tables.append(cls(**c.read_leaves(cls, sub, spath)))
    flow_table, control = tables
    assert isinstance(flow_table, FlowTableConfig) and isinstance(control, ControlConfig)
    capture = _capture(c, block["capture"], path + ("capture",)) if "capture" in block else CaptureConfig()
    return mapping, flow_table, control, capture


def _capture(c: _Checker, node: Any, path: KeyPath) -> CaptureConfig:
    keys = [k for f in fields(CaptureConfig) if (k := f.metadata.get("key"))]
    block = c.block(node, path, [*keys, "promiscuous", "direction"], flag_ok=True)
    values = c.read_leaves(CaptureConfig, block, path)
    if "promiscuous" in block:
        values["promiscuous"] = c.flag(block["promiscuous"], path + ("promiscuous",))
    if "direction" in block:
        direction = block["direction"]
        if direction not in DIRECTIONS:
            c.fail(path + ("direction",), f"expected in or both, got {_describe(direction)}")
        values["direction"] = direction
    size = values.get("block_size", CaptureConfig().block_size)
    if size % PAGE_SIZE:
        c.fail(path + ("block-size",), f"expected a multiple of {PAGE_SIZE}, got {size}")
    snaplen = values.get("snaplen", CaptureConfig().snaplen)
    if snaplen > size - SNAP_HEADROOM:
        where = path + (("snaplen",) if "snaplen" in block else ("block-size",))
        c.fail(where, f"snaplen {snaplen} needs a block-size of at least {snaplen + SNAP_HEADROOM}, got {size}")
    return CaptureConfig(**values)


_TEMPLATE_COMMON: Final = ("flow-active-timeout", "flow-inactive-timeout", "template-id", "options-template-id",
                           "template-refresh-rate", "option-refresh-rate")
_TEMPLATE_TYPES: Final = ("ipv4", "ipv6", "mpls", "mpls-ipv4", "bridge")


def _services(c: _Checker, node: Any, path: KeyPath) -> dict[str, TemplateConfig]:
    services = c.block(node, path, ("flow-monitoring",))
    out: dict[str, TemplateConfig] = {}
    if "flow-monitoring" not in services:
        return out
    fpath = path + ("flow-monitoring",)
    monitoring = c.block(services["flow-monitoring"], fpath, ("version9", "version-ipfix"))
    for key, fmt in (("version9", "9"), ("version-ipfix", "ipfix")):
        if key not in monitoring:
            continue
        vpath = fpath + (key,)
        vblock = c.block(monitoring[key], vpath, ("template",), flag_ok=True)
        ids: dict[int, str] = {}
        for i, (tkey, tbody) in enumerate(c.entries(vblock.get("template", {}), vpath + ("template",))):
            here = vpath + ("template", tkey)
            if i == MAX_TEMPLATES:
                c.fail(here, f"at most {MAX_TEMPLATES} templates are allowed under services flow-monitoring {key}")
            name = c.name(tkey, here, "template")
            if name in out:
                other = "version9" if out[name].format == "9" else "version-ipfix"
                c.fail(here, f"template {name} is defined twice" if other == key else
                       f"template {name} is also defined under {other}; flowd needs unique template names")
            out[name] = _template(c, tbody, here, name, fmt, ids)
    return out


def _template(c: _Checker, node: Any, path: KeyPath, name: str, fmt: str, ids: dict[int, str]) -> TemplateConfig:
    types = [*_TEMPLATE_TYPES, "peer-as-billing"] if fmt == "9" else list(_TEMPLATE_TYPES)
    type_keys = [f"{t}-template" for t in types]
    domain_key = "source-id" if fmt == "9" else "observation-domain-id"
    block = c.block(node, path, [*_TEMPLATE_COMMON, domain_key, *type_keys])
    values = c.read_leaves(TemplateConfig, block, path)
    if domain_key in block:
        values["domain_id"] = c.integer(block[domain_key], path + (domain_key,), _range(TemplateConfig, "domain_id"))
    for key, attr in (("template-refresh-rate", "template_refresh"), ("option-refresh-rate", "option_refresh")):
        if key in block:
            sub = c.block(block[key], path + (key,), ("packets", "seconds"))
            values[attr] = RefreshRate(**c.read_leaves(RefreshRate, sub, path + (key,)))
    for key in ("template-id", "options-template-id"):
        if key in block:
            number = values[key.replace("-", "_")]
            if number in ids:
                c.fail(path + (key,), f"{key} {number} is already used by template {ids[number]}")
            ids[number] = name
    chosen = [k for k in type_keys if k in block]
    if not chosen:
        c.fail(path, f"one of {', '.join(type_keys)} is required")
    if len(chosen) > 1:
        c.fail(path + (chosen[1],), f"{chosen[0]} and {chosen[1]} are mutually exclusive")
    tkey = chosen[0]
    tpath = path + (tkey,)
    if tkey in ("mpls-template", "mpls-ipv4-template"):
        tblock = c.block(block[tkey], tpath, ("label-position",), flag_ok=True)
        if "label-position" in tblock:
            values["label_positions"] = _label_positions(c, tblock["label-position"], tpath + ("label-position",))
    else:
        c.block(block[tkey], tpath, (), flag_ok=True)
    return TemplateConfig(name, fmt, tkey.removesuffix("-template"), **values)


def _label_positions(c: _Checker, node: Any, path: KeyPath) -> tuple[int, ...]:
    items = _as_list(c, node, path, "label position")
    if len(items) > 3:
        c.fail(path, f"at most 3 label positions, got {len(items)}")
    out = tuple(c.integer(item, path, _range(TemplateConfig, "label_positions")) for item in items)
    if len(set(out)) != len(out):
        c.fail(path, "label positions must differ")
    return out


# --- loading ------------------------------------------------------------------------------------------


class _LinedDict(dict[Any, Any]):
    """A YAML mapping that remembers the line of each key and any repeated key."""

    __slots__ = ("duplicate", "lines")

    def __init__(self) -> None:
        super().__init__()
        self.lines: dict[Any, int] = {}
        self.duplicate: tuple[Any, int, int] | None = None  # (key, first line, repeated line)


class _LineLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` that records the line of every mapping key (plain safe_load loses them)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> _LinedDict:
        self.flatten_mapping(node)
        mapping = _LinedDict()
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        "found an unhashable key", key_node.start_mark) from None
            line = key_node.start_mark.line + 1
            if key in mapping.lines:
                if mapping.duplicate is None:
                    mapping.duplicate = (key, mapping.lines[key], line)
            else:
                mapping.lines[key] = line
            mapping[key] = self.construct_object(value_node, deep=deep)
        return mapping


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> Iterator[_LinedDict]:
    data = _LinedDict()
    yield data
    built = loader.construct_mapping(node)
    data.update(built)
    data.lines, data.duplicate = built.lines, built.duplicate


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)


def _plain(value: Any, path: KeyPath, lines: dict[KeyPath, int], source: str) -> Any:
    """Turn `_LinedDict`s into plain dicts, collecting the key lines by path."""
    if isinstance(value, _LinedDict):
        if value.duplicate is not None:
            key, first, again = value.duplicate
            raise ConfigError(source, again, path + (key,), f"duplicate key (first given on line {first})")
        out: dict[Any, Any] = {}
        for key, item in value.items():
            lines[path + (key,)] = value.lines[key]
            out[key] = _plain(item, path + (key,), lines, source)
        return out
    if isinstance(value, list):
        return [_plain(item, path, lines, source) for item in value]
    return value


def _parse_yaml(text: str, source: str) -> junos.ParsedTree:
    try:
        raw = yaml.load(text, Loader=_LineLoader)  # _LineLoader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(source, line, (), f"YAML syntax error: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(source, None, (), f"YAML error: {exc}") from None
    lines: dict[KeyPath, int] = {}
    tree = _plain(raw, (), lines, source)
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError(source, 1, (), f"expected a mapping of statements at the top, got {_describe(tree)}")
    return junos.ParsedTree(tree, lines)


_TAG_PREFIXES: Final = ("inactive:", "protect:", "replace:", "delete:", "active:")
_YAML_FIRST_LINE: Final = re.compile(r"""(?:---|-\s|\{|"[^"]*"\s*:|'[^']*'\s*:|[^\s#{};\[\]"']+:(?:\s|$))""")


def detect_syntax(text: str) -> str:
    """"junos" when the first statement is curly-brace style (`name ... {` or `name ...;`), else "yaml"."""
    in_comment = False
    for raw in text.splitlines():
        line = raw.strip()
        while line:
            if in_comment:
                end = line.find("*/")
                if end < 0:
                    line = ""
                    break
                line, in_comment = line[end + 2:].strip(), False
            elif line.startswith("/*"):
                line, in_comment = line[2:], True
            else:
                break
        if not line or line.startswith("#"):
            continue
        return "yaml" if _YAML_FIRST_LINE.match(line) and not line.startswith(_TAG_PREFIXES) else "junos"
    return "yaml"


def syntax_for(path: str, text: str) -> str:
    """Syntax by file suffix (.conf = junos, .yaml/.yml = yaml), else by content."""
    suffix = Path(path).suffix.lower()
    if suffix == ".conf":
        return "junos"
    if suffix in (".yaml", ".yml"):
        return "yaml"
    return detect_syntax(text)


def parse_config(text: str, *, source: str, syntax: str) -> Config:
    """Parse and validate configuration text; ``syntax`` is "yaml", "junos" or "auto"."""
    if syntax == "auto":
        syntax = detect_syntax(text)
    if syntax == "yaml":
        parsed = _parse_yaml(text, source)
    elif syntax == "junos":
        try:
            parsed = junos.parse(text)
        except junos.JunosSyntaxError as exc:
            raise ConfigError(source, exc.line, exc.path, f"syntax error: {exc.message}") from None
    else:
        raise ValueError(f"syntax must be 'yaml', 'junos' or 'auto', not {syntax!r}")
    return _build(parsed.tree, source, parsed.lines)


def default_text() -> str:
    """The embedded default configuration (the same text as etc/flowd.yaml)."""
    return (Path(__file__).parent / "data" / "default.yaml").read_text(encoding="utf-8")


def load_config(path: str | None) -> Config:
    """Load and validate a configuration file (``None``: the embedded default); raise `ConfigError`."""
    if path is None:
        return parse_config(default_text(), source=DEFAULT_SOURCE, syntax="yaml")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, None, (), f"cannot read the configuration: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(path, None, (), f"not UTF-8 text (byte {exc.start})") from None
    return parse_config(text, source=path, syntax=syntax_for(path, text))


def check_config_main(path: str | None) -> int:
    """`flowd --check-config`: print Junos's success line and return 0, or the error on stderr and 1."""
    try:
        load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    print("configuration check succeeds")
    return 0


# --- command-line overrides -----------------------------------------------------------------------------


def _child_block(parent: dict[Key, Any], key: Key) -> dict[Key, Any]:
    """``parent[key]`` as a dict, creating it or expanding the one-line forms (`name;`, `family inet;`)."""
    value = parent.get(key)
    if isinstance(value, dict):
        return value
    new: dict[Key, Any] = {} if value is None or value is True else {value: {}}
    parent[key] = new
    return new


def _family_blocks(tree: dict[Key, Any], create: bool) -> list[tuple[str, dict[Key, Any]]]:
    fo = tree.get("forwarding-options")
    containers: list[dict[Key, Any]] = []
    if isinstance(fo, dict):
        sampling = fo.get("sampling")
        if isinstance(sampling, dict) and "family" in sampling:
            containers.append(_child_block(sampling, "family"))
        if "family" in fo:
            containers.append(_child_block(fo, "family"))
    out = [(str(name), _child_block(fams, name)) for fams in containers for name in list(fams)]
    if not out and create:
        fams = _child_block(_child_block(_child_block(tree, "forwarding-options"), "sampling"), "family")
        out = [("inet", _child_block(fams, "inet"))]
    return out


def _version_statements(version: str, template: str | None) -> dict[Key, Any]:
    if version == "5":
        return {"version": 5}
    key = "version9" if version == "9" else "version-ipfix"
    return {key: {"template": template} if template else True}


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def _override(cfg: Config, flow_servers: list[tuple[str, int]] | None, export_version: str | None,
              active: float | None, inactive: float | None, rate: int | None,
              source_address: str | None = None, transport: str | None = None) -> Config:
    if (flow_servers is None and export_version is None and active is None and inactive is None and rate is None
            and source_address is None and transport is None):
        return cfg
    c = _Checker(COMMAND_LINE, {})
    servers: list[tuple[str, int]] = []
    for host, port in flow_servers or ():
        address = c.address(host, ("--flow-server",))
        c.integer(port, ("--flow-server",), _range(FlowServer, "port"))
        if any(address == a for a, _ in servers):
            c.fail(("--flow-server",), f"{address} is given twice (flow servers are keyed by address)")
        servers.append((address, port))
    if export_version is not None and export_version not in ("5", "9", "ipfix"):
        c.fail(("--export-version",), f"expected 5, 9 or ipfix, got {export_version}")
    if active is not None:
        active = c.duration(active, ("--active-timeout",), _range(FamilyOutput, "active_timeout"))
    if inactive is not None:
        inactive = c.duration(inactive, ("--inactive-timeout",), _range(FamilyOutput, "inactive_timeout"))
    if rate is not None:
        c.integer(rate, ("--sampling-rate",), _range(SamplingInput, "rate"))
    if source_address is not None:
        source_address = c.address(source_address, ("--source-address",))

    tree = cast(dict[Key, Any], copy.deepcopy(dict(cfg.tree)))
    wants_output = flow_servers is not None or export_version is not None or active is not None or inactive is not None \
        or source_address is not None or transport is not None
    for family, block in _family_blocks(tree, create=wants_output):
        old = cfg.families.get(family)
        out = _child_block(block, "output") if wants_output else block
        if flow_servers is not None:
            first = old.flow_servers[0] if old is not None and old.flow_servers else None
            version = export_version or (first.version if first else "5")
            template = first.template if first is not None and first.version == version else None
            out["flow-server"] = {a: {"port": p, **_version_statements(version, template)} for a, p in servers}
            if not servers:
                del out["flow-server"]
        elif export_version is not None and "flow-server" in out:
            known = {s.address: s for s in old.flow_servers} if old is not None else {}
            entries = _child_block(out, "flow-server")
            for name in list(entries):
                body = _child_block(entries, name)
                for key in ("version", "version9", "version-ipfix"):
                    body.pop(key, None)
                prev = known.get(str(name))
                keep = prev.template if prev is not None and prev.version == export_version else None
                body.update(_version_statements(export_version, keep))
        if transport is not None:
            for name in list(out.get("flow-server") or ()):
                _child_block(out["flow-server"], name)["transport"] = transport
        if source_address is not None:
            for section in ("flow-server", "interface"):
                named = out.get(section)
                if isinstance(named, dict):
                    for name in list(named):
                        _child_block(named, name)["source-address"] = source_address
        if active is not None:
            out["flow-active-timeout"] = _seconds(active)
        if inactive is not None:
            out["flow-inactive-timeout"] = _seconds(inactive)
        if rate is not None and isinstance(block.get("input"), dict) and "rate" in block["input"]:
            block["input"]["rate"] = rate
    if rate is not None:
        sampling = _child_block(_child_block(tree, "forwarding-options"), "sampling")
        _child_block(sampling, "input")["rate"] = rate
    return replace(_build(tree, COMMAND_LINE, {}), source=cfg.source)


def _override_interfaces(cfg: Config, names: list[str]) -> Config:
    """`--interface NAME ...`: these interfaces, and only these, feed sampling, every packet of them."""
    c = _Checker(COMMAND_LINE, {})
    chosen: list[str] = []
    for name in names:
        if not isinstance(name, str) or not (name in cfg.interface_map or _LINUX_IF.fullmatch(name)) \
                or not _IFNAME.fullmatch(name):
            c.fail(("--interface",), f"expected a Linux interface name (1..15 characters, no '/', ':' or spaces) "
                                     f"or a name from flowd interface-map, got {_describe(name)}")
        if name in chosen:
            c.fail(("--interface",), f"{name} is given twice")
        chosen.append(name)
    tree = cast(dict[Key, Any], copy.deepcopy(dict(cfg.tree)))
    interfaces = tree.get("interfaces")
    for body in (interfaces.values() if isinstance(interfaces, dict) else ()):
        units = body.get("unit") if isinstance(body, dict) else None
        for unit in (units.values() if isinstance(units, dict) else ()):
            families = unit.get("family") if isinstance(unit, dict) else None
            for fam in (families.values() if isinstance(families, dict) else ()):
                if not isinstance(fam, dict):
                    continue
                for section in ("filter", "sampling"):
                    if isinstance(fam.get(section), dict):
                        fam[section].pop("input", None)
                        if not fam[section]:
                            del fam[section]
                    elif fam.get(section) == "input":  # one-line form `sampling input;`
                        del fam[section]
    families = list(cfg.families) or ["inet"]
    for name in chosen:
        block = _child_block(_child_block(tree, "interfaces"), name)
        unit = _child_block(_child_block(block, "unit"), 0)
        for family in families:
            fam = _child_block(_child_block(unit, "family"), family)
            _child_block(fam, "sampling")["input"] = True
    return replace(_build(tree, COMMAND_LINE, {}), source=cfg.source)


# --- docs/config.md -----------------------------------------------------------------------------------

_KIND_TEXT: Final = {
    "integer": "integer", "duration": "duration (s)", "address": "IP address", "name": "name", "flag": "flag",
    "choice": "choice", "block": "block", "socket": "path", "group": "group name", "prefixes": "prefix list",
    "protocols": "protocol list", "ports": "port list", "integers": "integer list",
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
                            meta["shown"] or _shown_default(f), meta["help"]))
    return rows


def _shown_default(f: Field[Any]) -> str:
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
     f"most {MAX_TEMPLATES} per version; names must be unique across both. Parsed and checked now; flowd "
     "exports version 5 first.", _rows(TemplateConfig)),
    ("... template-refresh-rate / option-refresh-rate", "Resend the (options) template after `packets` export "
     "packets or `seconds` seconds, whichever comes first.", _rows(RefreshRate)),
    ("flowd interface-map", "flowd's own statement: router interface names to Linux interfaces.", _MAP_ROWS),
    ("flowd flow-table", "flowd's own statement: the flow cache.", _rows(FlowTableConfig)),
    ("flowd control", "flowd's own statement: the control socket for flowcli.", _rows(ControlConfig)),
    ("flowd capture", "flowd's own statement: how the daemon reads the Linux interfaces that feed sampling "
     "(AF_PACKET TPACKET_V3 rings, needing CAP_NET_RAW only). Changes take effect at the next start; a "
     "reload (SIGHUP) keeps the running rings and workers.", _rows(CaptureConfig)),
)

_DOC_INTRO: Final = """\
# flowd configuration reference

Generated by `python -m flowd.config --docs` from the field metadata in `flowd/config.py` (the same
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
exits 0, or prints one error line and exits 1.

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
* A flow server needs `port`; at most 8 flow servers per family; version 5 and version 9/IPFIX servers
  cannot be mixed in one output; version 5 cannot serve family inet6; `source-address` must be of the
  server's address family.
* `version9 { template NAME; }` / `version-ipfix { template NAME; }` must name a template defined under
  the same version, of a type the family can export. `version9;` alone (a flowd extension, also what
  a command-line version override writes) means the family's built-in template.
* Template IDs and options template IDs are unique; exactly one template type per template.
* Command-line overrides (`--flow-server`, `--export-version`, `--active-timeout`,
  `--inactive-timeout`, `--sampling-rate`) replace the values of every configured family (creating
  `family inet output` when none exists) and pass the same checks. `--interface NAME` (repeatable)
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
    out = [_DOC_INTRO]
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
    """``python -m flowd.config --docs`` or ``--check [FILE]``."""
    parser = argparse.ArgumentParser(prog="python -m flowd.config", description=__doc__.splitlines()[0])
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
