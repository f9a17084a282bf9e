"""A stop signal wins over a reload that has not started (flowd.runtime.signals)."""

from __future__ import annotations

import asyncio
import signal
import threading

from flowd.runtime import signals
from flowd.runtime.signals import Signals


def run(dispatched: list[int], settle: float) -> tuple[int, int]:
    """Dispatch ``dispatched`` in one turn of a fresh loop; returns (stops, reloads) once all is done."""
    counts = {"stop": 0, "reload": 0}
    loop = asyncio.new_event_loop()
    try:
        s = Signals()
        s.attach(loop, stop=lambda: counts.__setitem__("stop", counts["stop"] + 1),
                 reload=lambda: counts.__setitem__("reload", counts["reload"] + 1))
        for sig in dispatched:
            loop.call_soon(s.dispatch, sig)
        done = loop.create_future()
        # the reload runs one loop turn after its settle timer: wait for a later timer, then two turns
        loop.call_later(settle, lambda: loop.call_soon(loop.call_soon, done.set_result, None))
        loop.run_until_complete(done)
    finally:
        for sig in signals.HANDLED:
            loop.remove_signal_handler(sig)
        loop.close()
    return counts["stop"], counts["reload"]


def test_sighups_arriving_together_are_one_reload() -> None:
    assert run([signal.SIGHUP] * 5, signals.RELOAD_SETTLE) == (0, 1)


def test_a_stop_dispatched_after_sighups_of_the_same_moment_drops_the_reload() -> None:
    assert run([signal.SIGHUP, signal.SIGHUP, signal.SIGTERM], signals.RELOAD_SETTLE) == (1, 0)


def test_a_pending_stop_signal_drops_the_reload() -> None:
    """SIGTERM held back (here: blocked, as behind a stream of SIGHUP) is seen pending; the reload is dropped."""
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        signal.signal(signal.SIGTERM, lambda *_: None)  # pending needs a disposition other than ignore
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)  # to this thread, which blocks it
        assert signals._stop_pending()
        assert run([signal.SIGHUP], signals.RELOAD_SETTLE) == (0, 0)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # drop the pending one
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        signal.signal(signal.SIGTERM, previous)
    assert not signals._stop_pending()
    assert run([signal.SIGHUP], signals.RELOAD_SETTLE) == (0, 1)
