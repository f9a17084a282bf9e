"""How much of the daemon one control-socket client may hold: the limits, and who may open one more connection.

Pure bookkeeping (the server applies it): connections are counted per user and in total, and the last
few of the total are kept for privileged callers (root, the daemon's own user, the admin group), so a
reader who opens connections until the cap cannot lock an administrator out. A refused connection is
told why in the reply to its first request (so the client reads it rather than a broken pipe); a few
refused connections at most wait for that request, the others are closed at once. The time limits (idle
connections, clients that stop reading) and the reply buffer are applied by the server on the daemon
clock; they are declared here so that the whole budget of a connection is in one place.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class Limits:
    """What the control server allows (docs/security.md lists the defaults)."""

    connections: int = 64  # open at once, in total (the unit's LimitNOFILE leaves room for far more)
    per_user: int = 8  # open at once by one uid
    reserved: int = 4  # of `connections`, kept for root, the daemon's user and the admin group
    idle: float = 300.0  # seconds a connection may wait between requests before the daemon closes it
    stalled: float = 30.0  # seconds a reply may wait for the client to read before the connection is dropped
    buffer: int = 256 * 1024  # bytes of reply held for one connection before the daemon waits for the client
    refusals: int = 16  # refused connections held at once, each until its first request gets the refusal
    refusal_wait: float = 5.0  # seconds a refused connection may take to send its first request


DEFAULT_LIMITS: Final = Limits()


class Admission:
    """Counts the open connections; ``admit`` says whether one more may open, and for whom."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.by_user: Counter[int] = Counter()

    @property
    def total(self) -> int:
        return sum(self.by_user.values())

    def admit(self, uid: int, user: str, privileged: bool) -> str | None:
        """Count a new connection of ``uid`` and return None, or return why it is refused (and count nothing)."""
        lim = self.limits
        if self.by_user[uid] >= lim.per_user:
            return f"too many connections from user {user} ({lim.per_user} open, the most one user may have)"
        room = lim.connections if privileged else lim.connections - lim.reserved
        if self.total >= room:
            kept = "" if privileged else f"; the last {lim.reserved} are kept for administrators"
            return f"too many connections to flowd ({self.total} open{kept})"
        self.by_user[uid] += 1
        return None

    def release(self, uid: int) -> None:
        """A connection of ``uid`` closed."""
        self.by_user[uid] -= 1
        if self.by_user[uid] <= 0:
            del self.by_user[uid]
