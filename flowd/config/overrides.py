"""Command-line overrides (`--flow-server`, `--export-version`, timeouts, `--interface` ...) applied to a `Config`."""

from __future__ import annotations

import copy
import ipaddress
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, cast

from flowd.config.build import build_config
from flowd.config.checker import IFNAME_RE, LINUX_IF_RE, Checker, describe
from flowd.config.schema import (
    COMMAND_LINE,
    Config,
    FamilyOutput,
    FlowServer,
    SamplingInput,
    field_range,
)
from flowd.config.statements import statement_tree
from flowd.syntax.junos import Key

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
    containers = _family_containers(tree)
    if not any(containers) and create:
        containers = [_child_block(_child_block(_child_block(tree, "forwarding-options"), "sampling"), "family")]
        containers[0]["inet"] = {}
    return [(str(name), _child_block(fams, name)) for fams in containers for name in list(fams)]


def _add_inet6(tree: dict[Key, Any]) -> None:
    """`--export-version 9|ipfix` without an inet6 output: inet6 gets inet's output (servers, timeouts).

    Templates are left out (inet's are IPv4 templates): the servers use the built-in IPv6 template.
    """
    for container in _family_containers(tree):
        if "inet6" in container and isinstance(container["inet6"], dict) and "output" in container["inet6"]:
            return
    for container in _family_containers(tree):
        inet = container.get("inet")
        if isinstance(inet, dict) and "inet6" not in container:
            inet6 = copy.deepcopy(inet)
            servers = inet6.get("output", {}).get("flow-server") if isinstance(inet6.get("output"), dict) else None
            for body in (servers.values() if isinstance(servers, dict) else ()):
                if isinstance(body, dict):
                    for key in ("version9", "version-ipfix"):
                        if key in body:
                            body[key] = True
            container["inet6"] = inet6
            return


def _family_containers(tree: dict[Key, Any]) -> list[dict[Key, Any]]:
    """The `family` blocks of `forwarding-options sampling` and of `forwarding-options` (the seed's place)."""
    fo = tree.get("forwarding-options")
    containers: list[dict[Key, Any]] = []
    if isinstance(fo, dict):
        sampling = fo.get("sampling")
        if isinstance(sampling, dict) and "family" in sampling:
            containers.append(_child_block(sampling, "family"))
        if "family" in fo:
            containers.append(_child_block(fo, "family"))
    return containers


def _same_family(address: Key, sources: dict[int, str]) -> str | None:
    try:
        return sources.get(ipaddress.ip_address(str(address)).version)
    except ValueError:
        return None


def _version_statements(version: str, template: str | None) -> dict[Key, Any]:
    if version == "5":
        return {"version": 5}
    key = "version9" if version == "9" else "version-ipfix"
    return {key: {"template": template} if template else True}


def _seconds(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def override(cfg: Config, flow_servers: list[tuple[str, int]] | None, export_version: str | None,
              active: float | None, inactive: float | None, rate: int | None,
              source_addresses: list[str] | None = None, transport: str | None = None) -> Config:
    if (flow_servers is None and export_version is None and active is None and inactive is None and rate is None
            and source_addresses is None and transport is None):
        return cfg
    c = Checker(COMMAND_LINE, {}, statement_tree())
    servers: list[tuple[str, int]] = []
    for host, port in flow_servers or ():
        address = c.address(host, ("--flow-server",))
        c.integer(port, ("--flow-server",), field_range(FlowServer, "port"))
        if any(address == a for a, _ in servers):
            c.fail(("--flow-server",), f"{address} is given twice (flow servers are keyed by address)")
        servers.append((address, port))
    if export_version is not None and export_version not in ("5", "9", "ipfix"):
        c.fail(("--export-version",), f"expected 5, 9 or ipfix, got {export_version}")
    if active is not None:
        active = c.duration(active, ("--active-timeout",), field_range(FamilyOutput, "active_timeout"))
    if inactive is not None:
        inactive = c.duration(inactive, ("--inactive-timeout",), field_range(FamilyOutput, "inactive_timeout"))
    if rate is not None:
        c.integer(rate, ("--sampling-rate",), field_range(SamplingInput, "rate"))
    sources: dict[int, str] = {}  # IP version -> the --source-address of that family
    for text in source_addresses or ():
        address = c.address(text, ("--source-address",))
        ip_version = ipaddress.ip_address(address).version
        if ip_version in sources:
            c.fail(("--source-address",), f"give at most one IPv{ip_version} source address, got "
                                          f"{sources[ip_version]} and {address}")
        sources[ip_version] = address

    tree = cast(dict[Key, Any], copy.deepcopy(dict(cfg.tree)))
    wants_output = flow_servers is not None or export_version is not None or active is not None or inactive is not None \
        or bool(sources) or transport is not None
    blocks = _family_blocks(tree, create=wants_output)
    if export_version in ("9", "ipfix"):
        _add_inet6(tree)
        blocks = _family_blocks(tree, create=False)
    for family, block in blocks:
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
        for section in ("flow-server", "interface") if sources else ():
            named = out.get(section)
            if not isinstance(named, dict):
                continue
            for name in list(named):
                # a server takes the source of its own family; the service interface the first one given
                chosen = _same_family(name, sources) if section == "flow-server" else next(iter(sources.values()))
                if chosen is not None:
                    _child_block(named, name)["source-address"] = chosen
        if active is not None:
            out["flow-active-timeout"] = _seconds(active)
        if inactive is not None:
            out["flow-inactive-timeout"] = _seconds(inactive)
        if rate is not None and isinstance(block.get("input"), dict) and "rate" in block["input"]:
            block["input"]["rate"] = rate
    if rate is not None:
        sampling = _child_block(_child_block(tree, "forwarding-options"), "sampling")
        _child_block(sampling, "input")["rate"] = rate
    return replace(build_config(tree, COMMAND_LINE, {}), source=cfg.source)


def override_interfaces(cfg: Config, names: list[str]) -> Config:
    """`--interface NAME ...`: these interfaces, and only these, feed sampling, every packet of them."""
    c = Checker(COMMAND_LINE, {}, statement_tree())
    chosen: list[str] = []
    for name in names:
        if not isinstance(name, str) or not (name in cfg.interface_map or LINUX_IF_RE.fullmatch(name)) \
                or not IFNAME_RE.fullmatch(name):
            c.fail(("--interface",), f"expected a Linux interface name (1..15 characters, no '/', ':' or spaces) "
                                     f"or a name from flowd interface-map, got {describe(name)}")
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
    return replace(build_config(tree, COMMAND_LINE, {}), source=cfg.source)


def with_overrides(cfg: Config, *, flow_servers: list[tuple[str, int]] | None = None, export_version: str | None = None,
                   active_timeout: float | None = None, inactive_timeout: float | None = None,
                   sampling_rate: int | None = None, source_address: str | Sequence[str] | None = None,
                   interfaces: list[str] | None = None, transport: str | None = None) -> Config:
    """Apply command-line overrides (same ranges as the file); raise `ConfigError` naming the option.

    ``flow_servers`` replaces the servers of every configured family (creating `family inet output`
    when none is configured); ``export_version`` ("5", "9", "ipfix") sets every server's version, and
    "9" or "ipfix" gives a configuration without an inet6 output one with inet's servers and timeouts;
    ``source_address`` (one, or a list with at most one per address family) replaces the export source address of every
    server of that family, and of every service interface (the first one given);
    ``interfaces`` replaces the input bindings: each name samples every packet (no filter) in every
    configured family; ``transport`` ("udp", "tcp") sets every server's transport.
    """
    sources = [source_address] if isinstance(source_address, str) else source_address
    cfg = override(cfg, flow_servers, export_version, active_timeout, inactive_timeout, sampling_rate,
                   None if sources is None else list(sources), transport)
    return cfg if interfaces is None else override_interfaces(cfg, interfaces)
