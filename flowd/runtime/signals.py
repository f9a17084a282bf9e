"""What each signal does to the daemon, from the first line of `run_daemon` to the process's exit.

No signal that someone may send ends flowd uncleanly, whatever phase it is in:

- SIGTERM, SIGINT and SIGQUIT stop it: the cached flows are exported and the control socket removed.
- SIGHUP reloads the configuration; while stopping it is ignored (one log line). A stop wins over a
  reload that has not started: SIGHUPs are gathered for RELOAD_SETTLE seconds into one reload, which
  is dropped when a stop signal came meanwhile or is still pending (Linux delivers the lowest-numbered
  pending signal first, so a stream of SIGHUP can hold back a SIGTERM sent before it).
- Every other signal whose default action would end the process (SIGUSR1, SIGUSR2, SIGALRM, SIGPROF,
  the real-time signals, ...) is ignored, with one log line per signal number.
- Left alone: SIGKILL and SIGSTOP (they cannot be caught), the stop-from-terminal signals, and the
  signals that report a fault in the process itself (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP,
  SIGSYS), which no handler can recover from.

The phases: before the event loop runs, a stop or reload signal is remembered and acted on once it
runs (`remember`, then `attach`); while it runs, the loop's handlers act; when `run` is over, the
signals are blocked before the loop closes (closing restores the default actions, which would end
the process), set to be ignored, and unblocked (`settle`): a signal that came in between is dropped.
The daemon process starts no threads, so blocking in this thread blocks them for the process.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from types import FrameType
from typing import Final

log = logging.getLogger(__name__)

STOP: Final = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)
RELOAD: Final = (signal.SIGHUP,)
# Default action "terminate" or "core", but raised by the process's own faults: leave them to kill it.
_FAULTS: Final = frozenset({signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE, signal.SIGILL, signal.SIGABRT,
                            signal.SIGTRAP, signal.SIGSYS})
# Default action "ignore", "stop" or "continue", not catchable, or ignored by Python itself (SIGPIPE, SIGXFSZ:
# a write then fails with EPIPE / EFBIG instead): nothing to do.
_HARMLESS: Final = frozenset({signal.SIGKILL, signal.SIGSTOP, signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU,
                              signal.SIGCONT, signal.SIGCHLD, signal.SIGURG, signal.SIGWINCH, signal.SIGPIPE,
                              signal.SIGXFSZ})
IGNORED: Final = tuple(sorted(
    (s for s in signal.valid_signals() if s not in _FAULTS | _HARMLESS and s not in STOP + RELOAD),
    key=int))
HANDLED: Final = STOP + RELOAD + IGNORED
RELOAD_SETTLE: Final = 0.05  # seconds SIGHUPs are gathered into one reload


def name(sig: int) -> str:
    """`SIGUSR1`, or `SIGRTMIN+3` for a real-time signal."""
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"SIGRTMIN+{sig - signal.SIGRTMIN}"


class Signals:
    """The daemon's signal dispositions across its phases (see the module docstring)."""

    def __init__(self) -> None:
        self.pending: list[int] = []  # stop/reload signals that came before the loop ran
        self.stopping = False
        self._logged: set[int] = set()
        self._stop: Callable[[], None] | None = None
        self._reload: Callable[[], object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reload_queued = False

    def remember(self) -> None:
        """Before the event loop: remember stop and reload signals; ignore the rest."""
        for sig in STOP + RELOAD:
            signal.signal(sig, self._remember)
        for sig in IGNORED:
            signal.signal(sig, signal.SIG_IGN)

    def _remember(self, sig: int, frame: FrameType | None) -> None:
        self.pending.append(sig)

    def attach(self, loop: asyncio.AbstractEventLoop, *, stop: Callable[[], None],
               reload: Callable[[], object]) -> None:
        """Let the running loop handle every signal, then act on those that came before it ran."""
        self._stop, self._reload, self._loop = stop, reload, loop
        for sig in HANDLED:
            loop.add_signal_handler(sig, self.dispatch, sig)
        pending, self.pending = self.pending, []
        for number in pending:
            loop.call_soon(self.dispatch, number)

    def dispatch(self, sig: int) -> None:
        """What one signal does now."""
        if sig in STOP:
            if not self.stopping:
                log.info("%s: stopping", name(sig))
                self.stopping = True
                assert self._stop is not None
                self._stop()
            return
        if sig in RELOAD and not self.stopping:
            if not self._reload_queued:
                assert self._loop is not None
                self._reload_queued = True
                # after the settle time, one more turn of the loop: a stop signal read from the loop's
                # wake-up pipe in that same turn is dispatched before the reload
                self._loop.call_later(RELOAD_SETTLE, self._loop.call_soon, self._reload_now)
            return
        what = "stopping already" if sig in RELOAD else "flowd stops on SIGTERM, SIGINT or SIGQUIT"
        if sig not in self._logged:  # a flood of signals is one line each
            self._logged.add(sig)
            log.warning("%s ignored (%s)", name(sig), what)

    def _reload_now(self) -> None:
        self._reload_queued = False
        if self.stopping or _stop_pending():
            return
        assert self._reload is not None
        self._reload()

    def block(self) -> None:
        """When `run` is over: hold every handled signal back while the loop closes."""
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED)

    def settle(self) -> None:
        """After the loop closed: ignore every handled signal until exit, dropping any held back."""
        for sig in HANDLED:
            signal.signal(sig, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED)


def _stop_pending() -> bool:
    """Whether a stop signal is pending for this process (held back behind other signals)."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, STOP)
    try:
        return bool(signal.sigpending() & set(STOP))
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
