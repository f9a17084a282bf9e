"""`show firewall [filter NAME] [counter NAME]`: the counters of each filter in Junos's table.

    Filter: catch_all
    Counters:
    Name                                                Bytes              Packets
    counter1                                          1050866                 7364

Each filter starts with a blank line and its `Filter:` line; a filter without counters prints only that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from shell.render.common import Element, leaf, node

NAME_WIDTH: Final = 40
BYTES_WIDTH: Final = 17
PACKETS_WIDTH: Final = 21


def _row(name: str, octets: object, packets: object) -> str:
    return f"{name:<{NAME_WIDTH}}{octets!s:>{BYTES_WIDTH}}{packets!s:>{PACKETS_WIDTH}}"


def render_firewall(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for flt in result["filters"]:
        lines += ["", f"Filter: {flt['name']}"]
        if flt["counters"]:
            lines += ["Counters:", _row("Name", "Bytes", "Packets")]
            lines += [_row(c["name"], int(c["bytes"]), int(c["packets"])) for c in flt["counters"]]
    return lines


def firewall_tree(result: Mapping[str, Any]) -> Element:
    return node("firewall-information", [
        node("filter-information", [
            leaf("filter-name", flt["name"]),
            *(node("counter", [leaf("counter-name", c["name"]), leaf("packet-count", int(c["packets"])),
                               leaf("byte-count", int(c["bytes"]))]) for c in flt["counters"]),
        ]) for flt in result["filters"]])
