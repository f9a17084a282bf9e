"""Logging to stderr in a form the journal stores well (priority prefixes when run under systemd)."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}


class JournalFormatter(logging.Formatter):
    """`<N>message`: systemd reads N as the syslog priority and adds its own timestamp."""

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelno, 6)}>"
        # The journal stores each line as its own entry: prefix them all, so a traceback keeps its priority.
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def stderr_is_journal(environ: Mapping[str, str] | None = None) -> bool:
    """True when stderr is the journal stream systemd connected (``$JOURNAL_STREAM`` = its DEVICE:INODE).

    The variable is inherited by children whose stderr may point elsewhere, so the device and inode
    must match (systemd.exec(5)).
    """
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    dev, sep, ino = value.partition(":")
    if not (sep and dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(sys.stderr.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def setup_logging(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if stderr_is_journal():
        handler.setFormatter(JournalFormatter("%(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s flowd[%(process)d] %(levelname)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class Throttle:
    """At most ``lines`` log lines per ``period`` seconds of the caller's clock (pure: takes ``now``).

    For lines a peer can provoke at will (bad control requests, dropped connections): the journal
    keeps a handful, and the first line let through after a quiet spell says how many were held back.
    """

    def __init__(self, lines: int = 10, period: float = 60.0) -> None:
        self.lines = lines
        self.period = period
        self._window = float("-inf")
        self._used = 0
        self._suppressed = 0

    def allow(self, now: float) -> tuple[bool, int]:
        """(whether to log this line, how many lines were suppressed since the last one logged)."""
        if now - self._window >= self.period:
            self._window, self._used = now, 0
        if self._used >= self.lines:
            self._suppressed += 1
            return False, 0
        self._used += 1
        suppressed, self._suppressed = self._suppressed, 0
        return True, suppressed
