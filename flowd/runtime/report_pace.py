"""How often a capture worker wakes to report when nothing happens (pure: the caller passes ``now``).

A worker scans for expired flows and sends its statistics to the daemon every TICK seconds. Where
nothing arrives, each of those wake-ups costs about half a millisecond of interpreter work on a cold
cache, for a report equal to the one before. So once nothing a report shows has changed for QUIET
seconds, the worker reports only every IDLE_TICK seconds, and otherwise wakes for a flow's deadline
or for traffic (the ingest path wakes it, and the report that follows goes at once). QUIET outlasts
the longest rate window (the one-minute CPU average) and the overload holds, so the last report sent
before the pause stays true: rates at zero, no overload. Any frame is news (an ARP request, a
neighbour solicitation), so this spares the links where nothing at all arrives, and never makes a
show command print an old count.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final

TICK: Final = 1.0  # seconds between reports and expiry scans while anything changes
QUIET: Final = 90.0  # seconds without news after which reports slow down
IDLE_TICK: Final = 30.0  # seconds between reports after that


class ReportPace:
    """The report period of one worker, from what its reports would show ("news")."""

    def __init__(self, quiet: float = QUIET) -> None:
        self.quiet = quiet
        self._news: Hashable = object()  # equal to no news: the first call starts the spell
        self._since = 0.0  # when the news last changed

    def period(self, now: float, news: Hashable) -> float:
        """Seconds until the next report, given what a report made ``now`` would show."""
        if news != self._news:
            self._news, self._since = news, now
        return IDLE_TICK if now - self._since >= self.quiet else TICK

    def stir(self, now: float) -> None:
        """Something changed that the news does not show (a reload): report at the usual pace again."""
        self._since = now
