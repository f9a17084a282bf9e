"""Validation of a parsed tree (YAML or Junos curly) into a `Config`: sampling, outputs, interfaces, templates, flowd settings."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from flowd.config.checker import (
    IFNAME_RE,
    LINUX_IF_RE,
    SERVICE_IF_RE,
    Checker,
    describe,
    dotted,
)
from flowd.config.firewall import as_list, read_firewall
from flowd.config.routing import read_aggregation, read_routing
from flowd.config.schema import (
    AS_TYPES,
    DIRECTIONS,
    FAMILIES,
    MAX_FLOW_SERVERS,
    MAX_TEMPLATES,
    PAGE_SIZE,
    SNAP_HEADROOM,
    TEMPLATE_TYPES,
    TEMPLATE_TYPES_FOR,
    TRANSPORTS,
    VERSIONS,
    CaptureConfig,
    Config,
    ControlConfig,
    FamilyOutput,
    Filter,
    FlowServer,
    FlowTableConfig,
    InputBinding,
    MetricsConfig,
    NetconfConfig,
    RefreshRate,
    RoutingConfig,
    SamplingInput,
    ServiceInterface,
    TemplateConfig,
    field_range,
)
from flowd.config.statements import statement_tree
from flowd.syntax.junos import Key, KeyPath


def build_config(tree: Any, source: str, lines: Mapping[KeyPath, int]) -> Config:
    """Validate a parsed tree (YAML or curly) into a `Config`."""
    c = Checker(source, lines, statement_tree())
    if tree is None:
        tree = {}
    top = c.block(tree, ())
    templates = _services(c, top["services"], ("services",)) if "services" in top else {}
    filters = read_firewall(c, top["firewall"], ("firewall",)) if "firewall" in top else {}
    sampling, families = _forwarding(c, top.get("forwarding-options"), templates)
    inputs, outputs = _interfaces(c, top["interfaces"], ("interfaces",), filters) if "interfaces" in top else ((), ())
    interface_map, flow_table, control, capture, services = _flowd(c, top.get("flowd"), ("flowd",))
    flowd = top.get("flowd")
    routing = RoutingConfig()
    if isinstance(flowd, Mapping) and "routing" in flowd:
        routing = read_routing(c, flowd["routing"], ("flowd", "routing"))
    return Config(sampling=sampling, families=families, filters=filters, inputs=inputs,
                  interface_map=interface_map, flow_table=flow_table, control=control, templates=templates,
                  source=source, tree=tree, outputs=outputs, capture=capture, routing=routing, **services)


def _forwarding(c: Checker, node: Any, templates: Mapping[str, TemplateConfig]
                ) -> tuple[SamplingInput, dict[str, FamilyOutput]]:
    path: KeyPath = ("forwarding-options",)
    base = SamplingInput()
    if node is None:
        return base, {}
    fo = c.block(node, path)
    places: list[tuple[KeyPath, Any]] = []
    if "sampling" in fo:
        sp = path + ("sampling",)
        sampling = c.block(fo["sampling"], sp, flag_ok=True)
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
                c.fail(here, f"family {fam} is also configured at {dotted(where[fam])}")
            block = c.block(body, here, flag_ok=True)
            inp = _input(c, block["input"], here + ("input",), base) if "input" in block else base
            families[fam] = _output(c, block.get("output"), here + ("output",), fam, inp, templates)
            where[fam] = here
    return base, families


def _input(c: Checker, node: Any, path: KeyPath, base: SamplingInput) -> SamplingInput:
    return replace(base, **c.read_leaves(SamplingInput, c.block(node, path, flag_ok=True), path))


def _output(c: Checker, node: Any, path: KeyPath, family: str, inp: SamplingInput,
            templates: Mapping[str, TemplateConfig]) -> FamilyOutput:
    if node is None:
        return FamilyOutput(family, inp)
    block = c.block(node, path, flag_ok=True)
    values = c.read_leaves(FamilyOutput, block, path)
    if "inline-jflow" in block:
        jpath = path + ("inline-jflow",)
        values |= c.read_leaves(FamilyOutput, c.block(block["inline-jflow"], jpath), jpath)
    servers: tuple[FlowServer, ...] = ()
    if "flow-server" in block:
        servers = _servers(c, block["flow-server"], path + ("flow-server",), family, templates)
    interface = _service_interface(c, block["interface"], path + ("interface",)) if "interface" in block else None
    values.update(_template_timeouts(c, path + ("flow-server",), servers, templates))
    return FamilyOutput(family, inp, servers, interface=interface, **values)


def _template_timeouts(c: Checker, path: KeyPath, servers: tuple[FlowServer, ...],
                       templates: Mapping[str, TemplateConfig]) -> dict[str, float]:
    """The timeouts a family's flow cache takes from its servers' templates (Junos: a template's override the output's).

    One flow cache serves every server of a family, so a template timeout applies when every server of the
    family exports with templates that agree on it; servers that would need different timeouts are an error.
    """
    out: dict[str, float] = {}
    for attr in ("active_timeout", "inactive_timeout"):
        chosen = {getattr(templates[s.template], attr) if s.template else None for s in servers}
        if chosen <= {None}:
            continue
        if len(chosen) > 1:
            statement = "flow-" + attr.replace("_", "-")
            c.fail(path, f"these flow servers' templates set different {statement} values (or some servers use "
                         f"none): flowd keeps one flow cache per family, so they must agree")
        value = chosen.pop()
        assert value is not None
        out[attr] = value
    return out


def _servers(c: Checker, node: Any, path: KeyPath, family: str,
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
        block = c.block(body, here, flag_ok=True)
        if "port" not in block:
            c.fail(here + ("port",), "missing: a flow server needs a port")
        values = c.read_leaves(FlowServer, block, here)
        version, template = _version(c, block, here, family, templates)
        source = values.get("source_address")
        if source is not None and ipaddress.ip_address(source).version != ipaddress.ip_address(address).version:
            c.fail(here + ("source-address",),
                   f"source-address {source} and flow server {address} are of different address families")
        transport = _transport(c, block, here, version)
        extra = _cflowd(c, block, here, version)
        out.append(FlowServer(address, version=version, template=template, transport=transport, **values, **extra))
        keys.append(name)
    for server, key in zip(out, keys, strict=True):
        if (server.version in ("5", "8")) != (out[0].version in ("5", "8")):
            c.fail(path + (key,), "version 5/8 and version 9/IPFIX flow servers cannot be mixed in one output")
    v8 = [(s, k) for s, k in zip(out, keys, strict=True) if s.version == "8"]
    for server, key in v8[1:]:
        if (server.aggregation, server.caida_compliant) != (v8[0][0].aggregation, v8[0][0].caida_compliant):
            c.fail(path + (key, "aggregation"), "every version 8 flow server must use the same aggregation")
    v5 = [(s, k) for s, k in zip(out, keys, strict=True) if s.version == "5"]
    for server, key in v5[1:]:
        if server.autonomous_system_type != v5[0][0].autonomous_system_type:
            c.fail(path + (key, "autonomous-system-type"),
                   "version 5 flow servers share one export: they must use the same autonomous-system-type")
    return tuple(out)


def _cflowd(c: Checker, block: Mapping[Key, Any], path: KeyPath, version: str) -> dict[str, Any]:
    """aggregation (version 8 only, and required there), autonomous-system-type, (no-)local-dump."""
    out: dict[str, Any] = {}
    if "aggregation" in block:
        if version != "8":
            c.fail(path + ("aggregation",), "aggregation needs version 8")
        out["aggregation"], out["caida_compliant"] = read_aggregation(c, block["aggregation"],
                                                                      path + ("aggregation",))
    elif version == "8":
        c.fail(path + ("aggregation",), "missing: a version 8 flow server needs aggregation { ... }")
    if "autonomous-system-type" in block:
        value = block["autonomous-system-type"]
        if value not in AS_TYPES:
            c.fail(path + ("autonomous-system-type",), f"expected {' or '.join(AS_TYPES)}, got {describe(value)}")
        out["autonomous_system_type"] = value
    if "local-dump" in block and "no-local-dump" in block:
        c.fail(path + ("no-local-dump",), "local-dump and no-local-dump are mutually exclusive")
    for key in ("local-dump", "no-local-dump"):
        if key in block:
            c.flag(block[key], path + (key,))
    out["local_dump"] = "local-dump" in block
    return out


def _transport(c: Checker, block: Mapping[Key, Any], path: KeyPath, version: str) -> str:
    """`transport (udp | tcp)`, a flowd extension: IPFIX may go over TCP (RFC 7011 section 10.4)."""
    value = block.get("transport", "udp")
    if value not in TRANSPORTS:
        c.fail(path + ("transport",), f"expected {' or '.join(TRANSPORTS)}, got {describe(value)}")
    if value == "tcp" and version != "ipfix":
        c.fail(path + ("transport",), "transport tcp needs version-ipfix (v5 and v9 are UDP only)")
    return str(value)


def _version(c: Checker, block: Mapping[Key, Any], path: KeyPath, family: str,
             templates: Mapping[str, TemplateConfig]) -> tuple[str, str | None]:
    given = [k for k in ("version", "version9", "version-ipfix") if k in block]
    if len(given) > 1:
        c.fail(path + (given[1],), f"{given[0]} and {given[1]} are mutually exclusive")
    if not given or given[0] == "version":
        if given:
            value = block["version"]
            if value == 500 and not isinstance(value, bool):
                c.fail(path + ("version",), f"version {value} is not supported "
                                            "(flowd exports versions 5 and 8, version9 and version-ipfix)")
            if value not in VERSIONS or isinstance(value, bool):
                c.fail(path + ("version",), f"expected {' or '.join(map(str, VERSIONS))}, got {describe(value)}")
        number = str(block.get("version", 5))
        if family == "inet6":
            c.fail(path + ("version",), f"version {number} carries IPv4 flows only; family inet6 needs "
                                        "version9 or version-ipfix")
        return number, None
    key = given[0]
    fmt = "9" if key == "version9" else "ipfix"
    vpath = path + (key,)
    body = c.block(block[key], vpath, flag_ok=True)
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


def _service_interface(c: Checker, node: Any, path: KeyPath) -> ServiceInterface | None:
    entries = c.entries(node, path)
    if len(entries) > 1:
        c.fail(path + (entries[1][0],), "at most one services interface is allowed per output")
    if not entries:
        return None
    name, body = entries[0]
    here = path + (name,)
    if not isinstance(name, str) or not SERVICE_IF_RE.fullmatch(name):
        c.fail(here, f"expected a services interface name (sp-, ms- or mo-FPC/PIC/PORT, such as sp-2/0/0), "
                     f"got {describe(name)}")
    block = c.block(body, here, flag_ok=True)
    return ServiceInterface(name, **c.read_leaves(ServiceInterface, block, here))


def _interfaces(c: Checker, node: Any, path: KeyPath, filters: Mapping[str, Filter]
                ) -> tuple[tuple[InputBinding, ...], tuple[InputBinding, ...]]:
    bindings: dict[str, list[InputBinding]] = {"input": [], "output": []}
    for ifname, body in c.block(node, path).items():
        ipath = path + (ifname,)
        if not isinstance(ifname, str) or not IFNAME_RE.fullmatch(ifname):
            c.fail(ipath, f"expected an interface name such as ge-2/3/0, got {describe(ifname)}")
        iblock = c.block(body, ipath, flag_ok=True)
        _description(c, iblock, ipath)
        for ukey, ubody in c.entries(iblock.get("unit", {}), ipath + ("unit",)):
            upath = ipath + ("unit", ukey)
            unit = c.integer(int(ukey) if isinstance(ukey, str) and ukey.isdigit() else ukey, upath, (0, 16385))
            ublock = c.block(ubody, upath, flag_ok=True)
            _description(c, ublock, upath)
            for fam, fbody in c.entries(ublock.get("family", {}), upath + ("family",)):
                fpath = upath + ("family", fam)
                if fam not in FAMILIES:
                    c.fail(fpath, "unsupported family (expected inet or inet6)")
                assert isinstance(fam, str)
                fblock = c.block(fbody, fpath, flag_ok=True)
                if "address" in fblock:
                    _interface_addresses(c, fblock["address"], fpath + ("address",), fam)
                flt = c.block(fblock["filter"], fpath + ("filter",)) if "filter" in fblock else {}
                smp = fblock.get("sampling", {})
                if smp in ("input", "output"):  # one-line form: `sampling input;`
                    smp = {smp: True}
                smp = c.block(smp, fpath + ("sampling",), flag_ok=True)
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


def _bound_filter(c: Checker, node: Any, path: KeyPath, family: str, filters: Mapping[str, Filter]) -> str:
    name = c.name(node, path, "filter")
    found = filters.get(name)
    if found is None:
        c.fail(path, f"filter {name} is not defined under firewall family {family} filter")
    if found.family != family:
        c.fail(path, f"filter {name} is a family {found.family} filter, not {family}")
    return name


def _description(c: Checker, block: Mapping[Key, Any], path: KeyPath) -> None:
    if "description" in block and not isinstance(block["description"], str):
        c.fail(path + ("description",), f"expected a text, got {describe(block['description'])}")


def _interface_addresses(c: Checker, node: Any, path: KeyPath, family: str) -> None:
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
            c.fail(where, f"expected an interface address such as 10.1.1.1/20, got {describe(value)}")
        if iface.version != version:
            c.fail(where, f"expected an IPv{version} address (family {family}), got {value}")
        block = c.block(body, where, flag_ok=True)
        if "destination" in block:
            dest = c.address(block["destination"], where + ("destination",))
            if ipaddress.ip_address(dest).version != version:
                c.fail(where + ("destination",), f"expected an IPv{version} address (family {family}), got {dest}")


def _flowd(c: Checker, node: Any, path: KeyPath
           ) -> tuple[dict[str, str], FlowTableConfig, ControlConfig, CaptureConfig, dict[str, Any]]:
    if node is None:
        return {}, FlowTableConfig(), ControlConfig(), CaptureConfig(), {}
    block = c.block(node, path)
    mapping: dict[str, str] = {}
    if "interface-map" in block:
        mpath = path + ("interface-map",)
        for key, value in c.block(block["interface-map"], mpath).items():
            here = mpath + (key,)
            if not isinstance(key, str) or not IFNAME_RE.fullmatch(key):
                c.fail(here, f"expected a Junos interface name such as ge-2/3/0, got {describe(key)}")
            if not isinstance(value, str) or not LINUX_IF_RE.fullmatch(value) or value in (".", ".."):
                c.fail(here, f"expected a Linux interface name (1..15 characters, no '/', ':' or spaces), "
                             f"got {describe(value)}")
            mapping[key] = value
    tables = []
    for key, cls in (("flow-table", FlowTableConfig), ("control", ControlConfig)):
        spath = path + (key,)
        sub = c.block(block[key], spath, flag_ok=True) if key in block else {}
        tables.append(cls(**c.read_leaves(cls, sub, spath)))
    flow_table, control = tables
    assert isinstance(flow_table, FlowTableConfig) and isinstance(control, ControlConfig)
    capture = _capture(c, block["capture"], path + ("capture",)) if "capture" in block else CaptureConfig()
    services: dict[str, Any] = {}
    for key, service in (("metrics", MetricsConfig), ("netconf", NetconfConfig)):
        if key in block:
            spath = path + (key,)
            services[key] = service(**c.read_leaves(service, c.block(block[key], spath, flag_ok=True), spath))
    return mapping, flow_table, control, capture, services


def _capture(c: Checker, node: Any, path: KeyPath) -> CaptureConfig:
    block = c.block(node, path, flag_ok=True)
    values = c.read_leaves(CaptureConfig, block, path)
    if "promiscuous" in block:
        values["promiscuous"] = c.flag(block["promiscuous"], path + ("promiscuous",))
    if "direction" in block:
        direction = block["direction"]
        if direction not in DIRECTIONS:
            c.fail(path + ("direction",), f"expected {' or '.join(DIRECTIONS)}, got {describe(direction)}")
        values["direction"] = direction
    size = values.get("block_size", CaptureConfig().block_size)
    if size % PAGE_SIZE:
        c.fail(path + ("block-size",), f"expected a multiple of {PAGE_SIZE}, got {size}")
    snaplen = values.get("snaplen", CaptureConfig().snaplen)
    if snaplen > size - SNAP_HEADROOM:
        where = path + (("snaplen",) if "snaplen" in block else ("block-size",))
        c.fail(where, f"snaplen {snaplen} needs a block-size of at least {snaplen + SNAP_HEADROOM}, got {size}")
    return CaptureConfig(**values)


def _services(c: Checker, node: Any, path: KeyPath) -> dict[str, TemplateConfig]:
    services = c.block(node, path)
    out: dict[str, TemplateConfig] = {}
    if "flow-monitoring" not in services:
        return out
    fpath = path + ("flow-monitoring",)
    monitoring = c.block(services["flow-monitoring"], fpath)
    for key, fmt in (("version9", "9"), ("version-ipfix", "ipfix")):
        if key not in monitoring:
            continue
        vpath = fpath + (key,)
        vblock = c.block(monitoring[key], vpath, flag_ok=True)
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


def _template(c: Checker, node: Any, path: KeyPath, name: str, fmt: str, ids: dict[int, str]) -> TemplateConfig:
    type_keys = [f"{t}-template" for t in TEMPLATE_TYPES[fmt]]
    domain_key = "source-id" if fmt == "9" else "observation-domain-id"
    block = c.block(node, path)
    values = c.read_leaves(TemplateConfig, block, path)
    if domain_key in block:
        values["domain_id"] = c.integer(block[domain_key], path + (domain_key,), field_range(TemplateConfig, "domain_id"))
    for key, attr in (("template-refresh-rate", "template_refresh"), ("option-refresh-rate", "option_refresh")):
        if key in block:
            sub = c.block(block[key], path + (key,))
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
        tblock = c.block(block[tkey], tpath, flag_ok=True)
        if "label-position" in tblock:
            values["label_positions"] = _label_positions(c, tblock["label-position"], tpath + ("label-position",))
    else:
        c.block(block[tkey], tpath, flag_ok=True)
    return TemplateConfig(name, fmt, tkey.removesuffix("-template"), **values)


def _label_positions(c: Checker, node: Any, path: KeyPath) -> tuple[int, ...]:
    items = as_list(c, node, path, "label position")
    if len(items) > 3:
        c.fail(path, f"at most 3 label positions, got {len(items)}")
    out = tuple(c.integer(item, path, field_range(TemplateConfig, "label_positions")) for item in items)
    if len(set(out)) != len(out):
        c.fail(path, "label positions must differ")
    return out
