"""`show version` and `show system uptime` (junos-reference.md §4 layouts, fields from the `system.*` results)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from shell.render.common import Element, leaf, node


def render_version(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    """`Hostname:`, `Model:`, the flowd version (where Junos prints `Junos:`), Python, package comments."""
    lines = [f"Hostname: {result['hostname']}", f"Model: {result['model']}", f"flowd: {result['version']}",
             f"Python: {result['python']}"]
    lines += [str(package["comment"]) for package in result.get("packages", [])]
    return lines


def version_tree(result: Mapping[str, Any]) -> Element:
    return node("software-information", [
        leaf("host-name", result["hostname"]), leaf("product-model", result["model"]),
        leaf("product-name", result["model"]), leaf("junos-version", result["version"]),
        leaf("python-version", result["python"]),
        *(node("package-information", [leaf("name", p["name"]), leaf("comment", p["comment"])])
          for p in result.get("packages", [])),
    ])


def parse_time(text: str) -> datetime:
    """An ISO-8601 time from the daemon (``2020-03-26T08:16:41Z``) as an aware UTC datetime."""
    value = datetime.fromisoformat(text)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def junos_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M:%S UTC")


def junos_age(seconds: float) -> str:
    """Junos's age text: ``29w6d 23:14`` from a day on, ``03:21:09`` below a day."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if not days:
        return f"{hours:02d}:{minutes:02d}:{secs:02d}"
    weeks, days = divmod(days, 7)
    return (f"{weeks}w" if weeks else "") + f"{days}d {hours:02d}:{minutes:02d}"


def uptime_text(seconds: float) -> str:
    """uptime(1)'s ``209 days, 23:14`` / ``5 mins`` / ``12 secs``."""
    total = max(0, int(seconds))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days} day{'s' if days != 1 else ''}"] if days else []
    if hours:
        parts.append(f"{hours}:{minutes:02d}")
    elif minutes:
        parts.append(f"{minutes} min{'s' if minutes != 1 else ''}")
    elif not days:
        parts.append(f"{secs} sec{'s' if secs != 1 else ''}")
    return ", ".join(parts)


def _clock(when: datetime) -> str:
    hour = when.hour % 12 or 12
    return f"{hour:>2}:{when.minute:02d}{'AM' if when.hour < 12 else 'PM'}"


def _uptime_fields(result: Mapping[str, Any]) -> dict[str, Any]:
    now = parse_time(result["current_time"])
    stamps = {key: parse_time(result[key]) for key in ("system_booted", "daemon_started", "last_configured")}
    users = int(result["users"])
    return {
        "now": now,
        "stamps": stamps,
        "ages": {key: junos_age((now - when).total_seconds()) for key, when in stamps.items()},
        "up": uptime_text((now - stamps["system_booted"]).total_seconds()),
        "users": f"{users} user{'s' if users != 1 else ''}",
        "loads": ", ".join(f"{float(x):.2f}" for x in result["load_average"]),
    }


def render_uptime(result: Mapping[str, Any], level: str | None = None) -> list[str]:
    """`Protocols started` is when the flowd daemon started."""
    v = _uptime_fields(result)
    stamps, ages = v["stamps"], v["ages"]
    by = f" by {result['last_configured_by']}" if result.get("last_configured_by") else ""
    source = [f"Time Source:  {result['time_source']}"] if result.get("time_source") else []
    return [
        f"Current time: {junos_time(v['now'])}",
        *source,
        f"System booted: {junos_time(stamps['system_booted'])} ({ages['system_booted']} ago)",
        f"Protocols started: {junos_time(stamps['daemon_started'])} ({ages['daemon_started']} ago)",
        f"Last configured: {junos_time(stamps['last_configured'])} ({ages['last_configured']} ago){by}",
        f"{_clock(v['now'])}  up {v['up']}, {v['users']}, load averages: {v['loads']}",
    ]


def uptime_tree(result: Mapping[str, Any]) -> Element:
    v = _uptime_fields(result)
    stamps, ages = v["stamps"], v["ages"]
    loads = [f"{float(x):.2f}" for x in result["load_average"]]

    def stamp(tag: str, key: str) -> Element:
        user = result.get("last_configured_by") if key == "last_configured" else None
        return node(tag, [leaf("date-time", junos_time(stamps[key])), leaf("time-length", ages[key]),
                          *([leaf("user", user)] if user else [])])

    return node("system-uptime-information", [
        node("current-time", [leaf("date-time", junos_time(v["now"]))]),
        *([leaf("time-source", f" {result['time_source']} ")] if result.get("time_source") else []),
        stamp("system-booted-time", "system_booted"),
        stamp("protocols-started-time", "daemon_started"),
        stamp("last-configured-time", "last_configured"),
        node("uptime-information", [
            leaf("date-time", _clock(v["now"]).strip()), leaf("up-time", v["up"]),
            leaf("active-user-count", result["users"]), leaf("load-average-1", loads[0]),
            leaf("load-average-5", loads[1]), leaf("load-average-15", loads[2]),
        ]),
    ])
