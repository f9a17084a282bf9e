"""Facts about the host the shows report beside the probe's own: routes, boot time, logged-in users, names.

The only module of the control path that reads /proc and utmp; the RPC methods call it.
"""

from __future__ import annotations

import os
import platform
import socket
import struct
from typing import Final


def count_routes() -> int:
    """Routes in the kernel's IPv4 and IPv6 main tables (the Junos route record count)."""
    total = 0
    for path in ("/proc/net/route", "/proc/net/ipv6_route"):
        try:
            with open(path) as fh:
                lines = fh.read().splitlines()
        except OSError:
            continue
        total += len(lines) - 1 if path.endswith("/route") else len(lines)
    return max(total, 0)


def interface_name_of(index: int) -> str:
    try:
        return socket.if_indextoname(index)
    except OSError:
        return f"index {index}" if index else ""


def boot_time(now: float) -> float:
    """When the host booted, on the scale of ``now`` (from /proc/uptime)."""
    with open("/proc/uptime") as fh:
        return now - float(fh.read().split()[0])


def load_average() -> list[float]:
    return list(os.getloadavg())


def hostname() -> str:
    return socket.gethostname().split(".")[0]


def machine() -> str:
    return platform.machine()


UTMP_RECORD: Final = struct.Struct("<hxxi32s4s32s256s")  # type, pid, line, id, user, host (glibc utmp head)
UTMP_SIZE: Final = 384
USER_PROCESS: Final = 7


def logged_in_users(path: str = "/var/run/utmp") -> int:
    """Distinct users with a login session, from utmp (what `uptime` counts)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError:
        return 0
    users = set()
    for off in range(0, len(data) - UTMP_SIZE + 1, UTMP_SIZE):
        kind, _pid, _line, _id, user, _host = UTMP_RECORD.unpack_from(data, off)
        if kind == USER_PROCESS:
            users.add(user.rstrip(b"\0"))
    return len(users)
