"""`show system commit`: the rollback store, newest first, in Junos's layout.

    0   2026-12-03 11:40:00 UTC by alice via cli commit confirmed, rollback in 1mins
        typed the seed's stanza
    1   2026-12-03 11:30:00 UTC by flowd via cli
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from shell.render.common import Element, leaf, node


def _when(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pending(entry: Mapping[str, Any]) -> str:
    if entry.get("rollback_in") is None:
        return ""
    minutes = max(1, round(float(entry["rollback_in"]) / 60))
    return f" commit confirmed, rollback in {minutes}mins"


def render_commit_history(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    lines: list[str] = []
    for entry in result["commits"]:
        lines.append(f"{entry['index']:<4}{_when(entry['time'])} by {entry['user']} via {entry['via']}"
                     f"{_pending(entry)}")
        if entry.get("comment"):
            lines.append(f"    {entry['comment']}")
    return lines


def commit_history_tree(result: Mapping[str, Any]) -> Element:
    return node("commit-information", [
        node("commit-history", [
            leaf("sequence-number", entry["index"]), leaf("user", entry["user"]), leaf("client", entry["via"]),
            leaf("date-time", _when(entry["time"])),
            *([leaf("comment", entry["comment"])] if entry.get("comment") else []),
        ]) for entry in result["commits"]])
