"""Export datagrams sent by a thread of their own, so that the next export is encoded while these go out.

Batch mode's end-of-file flush encodes and sends hundreds of thousands of datagrams; with one thread the
two take turns. ``BackgroundUdpSender`` is a ``UdpSender`` whose ``send()`` queues the datagrams for a
thread that sends them, in order, with everything ``UdpSender.send`` does (errors counted, ICMP errors
drained, the wait for buffer space). The compiled sender releases the interpreter lock for a whole run
of datagrams, so the two threads truly overlap; without it (or with FLOWD_NO_FASTPATH=1) each datagram
would hand the lock back and forth, and ``udp_sender`` gives the plain ``UdpSender`` instead.

At most QUEUED sends wait, so memory stays bounded however fast the encoder is. Counters are read only
once every queued datagram is sent: ``stats_rows()``, ``poll_errors()`` and ``close()`` wait for the
queue first. An error that is not a network error (a bug) is raised again by the next call.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Sequence
from typing import Final

from flowd.export.udp import SENDS_IN_BATCHES, WAIT_LIMIT, Destination, UdpSender

QUEUED: Final = 4  # send() calls waiting for the thread at most (each one export: a few hundred datagrams)


class BackgroundUdpSender(UdpSender):
    """A UdpSender whose sends run on a thread of its own (see the module docstring)."""

    def __init__(self, destinations: Sequence[Destination], *, wait_limit: float = WAIT_LIMIT) -> None:
        self._queue: queue.Queue[Sequence[bytes] | None] = queue.Queue(QUEUED)
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        super().__init__(destinations, wait_limit=wait_limit)  # (closes what it opened when it fails)

    def send(self, datagrams: Sequence[bytes]) -> None:
        """Queue the datagrams for every flow server (waits while QUEUED sends are queued)."""
        self._require_open()
        self._raise_failure()
        if not datagrams:
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="flowd-export-send", daemon=True)
            self._thread.start()
        self._queue.put(datagrams)

    def _run(self) -> None:
        while (datagrams := self._queue.get()) is not None:
            try:
                if self._failure is None:
                    UdpSender.send(self, datagrams)
            except BaseException as exc:  # handed to the caller's thread by _raise_failure
                self._failure = exc
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def settle(self) -> None:
        """Wait until every queued datagram is sent (or counted lost)."""
        if self._thread is not None:
            self._queue.join()
        self._raise_failure()

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def poll_errors(self, timeout: float = 0.0) -> None:
        self.settle()
        super().poll_errors(timeout)

    def stats_rows(self) -> list[dict[str, object]]:
        self.settle()
        return super().stats_rows()

    def close(self) -> None:
        """Send what is queued, stop the thread, then close as UdpSender does (idempotent)."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        super().close()
        self._raise_failure()


def udp_sender(destinations: Sequence[Destination]) -> UdpSender:
    """Batch mode's sender: sends on a thread of their own when the compiled sender is there."""
    return BackgroundUdpSender(destinations) if SENDS_IN_BATCHES else UdpSender(destinations)
