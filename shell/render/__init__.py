"""Renderers keyed by daemon method: pure ``result -> lines`` for text and for each `| display` format."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from shell.render import (
    accounting,
    aggregation,
    aggregation_template,
    commit,
    configuration,
    firewall,
    flow_detail,
    system,
)
from shell.render.common import Element
from shell.render.structured import to_json, to_xml

Result = Mapping[str, Any]
TextRenderer = Callable[[Result, "str | None"], list[str]]
DisplayRenderer = Callable[[Result], list[str]]


@dataclass(frozen=True, slots=True)
class Renderer:
    """How one method's result is printed: as text (given the output level) and per display format."""

    text: TextRenderer
    displays: Mapping[str, DisplayRenderer] = field(default_factory=dict)
    elements: str = ""  # the XML/JSON element path, for docs/commands.md
    tree: Callable[[Result], Element] | None = None  # the element tree behind `| display xml|json` (NETCONF)


def _tree(text: TextRenderer, tree: Callable[[Result], Element], elements: str) -> Renderer:
    return Renderer(text, _structured(tree), elements, tree)


def _structured(tree: Callable[[Result], Element]) -> dict[str, DisplayRenderer]:
    return {"json": lambda result: to_json(tree(result)), "xml": lambda result: to_xml(tree(result))}


ROOT: Final = "services-accounting-information"

RENDERERS: Final[Mapping[str, Renderer]] = {
    "accounting.errors": _tree(accounting.render_errors, accounting.errors_tree, f"{ROOT}/error-information"),
    "accounting.flow": _tree(accounting.render_flow, accounting.flow_tree, f"{ROOT}/flow-information"),
    "accounting.flow_detail": _tree(
        flow_detail.render_flow_detail, flow_detail.flow_detail_tree, f"{ROOT}/flow-detail/detail-entry"),
    "accounting.aggregation_template": _tree(
        aggregation_template.render_aggregation_template, aggregation_template.aggregation_template_tree,
        f"{ROOT}/flow-aggregate-template-detail/flow-aggregate-template-detail-TYPE/detail-entry"),
    **{f"accounting.aggregation_{kind.replace('-', '_')}": _tree(
        aggregation.render_aggregation, aggregation.aggregation_tree,
        f"{ROOT}/flow-aggregate-{kind}-detail/detail-entry") for kind in aggregation.LAYOUTS},
    "accounting.routing": _tree(aggregation.render_routing, aggregation.routing_tree,
                                f"{ROOT}/route-information/route-source-information"),
    "accounting.memory": _tree(accounting.render_memory, accounting.memory_tree, f"{ROOT}/memory-information"),
    "accounting.packet_size_distribution": _tree(
        accounting.render_packet_size_distribution, accounting.packet_size_distribution_tree,
        f"{ROOT}/packet-distribution-information"),
    "accounting.status": _tree(accounting.render_status, accounting.status_tree, f"{ROOT}/status-information"),
    "accounting.usage": _tree(accounting.render_usage, accounting.usage_tree, f"{ROOT}/usage-information"),
    "accounting.clear_statistics": Renderer(accounting.render_nothing),
    "accounting.clear_flows": Renderer(accounting.render_nothing),
    "firewall.show": _tree(firewall.render_firewall, firewall.firewall_tree, "firewall-information"),
    "firewall.clear": Renderer(accounting.render_nothing),
    "config.history": _tree(commit.render_commit_history, commit.commit_history_tree,
                            "commit-information/commit-history"),
    "system.version": _tree(system.render_version, system.version_tree, "software-information"),
    "system.uptime": _tree(system.render_uptime, system.uptime_tree, "system-uptime-information"),
    "system.configuration": Renderer(
        configuration.render_configuration, {"set": configuration.render_configuration_set,
                                             "xml": configuration.render_configuration_xml,
                                             "json": configuration.render_configuration_json},
        "configuration", configuration.configuration_tree),
    "config.compare_rollback": _tree(configuration.render_compare, configuration.compare_tree,
                                     "configuration-information/configuration-output"),
}


ALL_ACCOUNTING: Final = ("accounting.flow", "accounting.errors", "accounting.memory",
                         "accounting.packet_size_distribution", "accounting.status", "accounting.usage")


def render_sections(results: Sequence[tuple[str, Result]], display: str | None = None) -> list[str]:
    """Several accounting results as one output (bare `show services accounting`): the texts one after the
    other, or one reply holding each section's `services-accounting-information` in turn."""
    if display is None:
        return [line for method, result in results for line in RENDERERS[method].text(result, None)]
    roots: list[Element] = []
    for method, result in results:
        tree = RENDERERS[method].tree
        assert tree is not None
        roots.append(tree(result))
    return to_json(roots) if display == "json" else to_xml(roots)


def render(method: str, result: Result, level: str | None = None, display: str | None = None) -> list[str]:
    """The lines a method's result prints as (in a display format when one is given)."""
    renderer = RENDERERS[method]
    if display is not None:
        return renderer.displays[display](result)
    return renderer.text(result, level)
