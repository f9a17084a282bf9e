"""Tell systemd how the daemon is doing: the sd_notify protocol, spoken directly (no libsystemd).

sd_notify(3): the service manager passes ``$NOTIFY_SOCKET``, the address of an ``AF_UNIX``
``SOCK_DGRAM`` socket (a path, or an abstract name written with a leading ``@``). Each notification
is one datagram of newline-separated ``VARIABLE=value`` assignments; the kernel attaches the
sender's credentials, which is how systemd knows the message comes from the main process
(``NotifyAccess=main``). ``$WATCHDOG_USEC`` asks for ``WATCHDOG=1`` keep-alives more often than
that many microseconds (sd_watchdog_enabled(3) recommends every half of it), unless
``$WATCHDOG_PID`` names another process. Without ``$NOTIFY_SOCKET`` every call here does nothing,
so the daemon runs the same by hand, in tests and under ``Type=simple``.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import time
from collections.abc import Mapping
from enum import Enum
from typing import Final

log = logging.getLogger(__name__)

SUN_PATH_MAX: Final = 108  # bytes of sockaddr_un.sun_path, the NUL of a path included


class State(str, Enum):
    """The assignments sd_notify(3) defines that flowd sends (the value-less ones)."""

    READY = "READY=1"  # startup finished: the control socket accepts and every input is open
    RELOADING = "RELOADING=1"  # re-reading the configuration; READY=1 follows
    STOPPING = "STOPPING=1"  # shutdown began
    WATCHDOG = "WATCHDOG=1"  # keep-alive


class NotifyError(Exception):
    """``$NOTIFY_SOCKET`` or ``$WATCHDOG_USEC`` holds something sd_notify(3) does not allow."""


def socket_address(value: str) -> bytes:
    """The sockaddr_un path of a ``$NOTIFY_SOCKET`` value: ``/path``, or ``@name`` for the abstract ``\\0name``."""
    if value.startswith("/"):
        raw = os.fsencode(value)
        limit = SUN_PATH_MAX - 1  # room for the terminating NUL
    elif value.startswith("@") and len(value) > 1:
        raw = b"\0" + os.fsencode(value[1:])
        limit = SUN_PATH_MAX
    else:
        raise NotifyError(f"NOTIFY_SOCKET={value!r}: expected an absolute path or @abstract-name")
    if len(raw) > limit:
        raise NotifyError(f"NOTIFY_SOCKET={value!r}: longer than {limit} bytes")
    return raw


def watchdog_interval(env: Mapping[str, str], pid: int) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings (half of ``$WATCHDOG_USEC``), or None when no watchdog is asked of `pid`."""
    usec = env.get("WATCHDOG_USEC")
    if usec is None:
        return None
    if not usec.isdigit() or int(usec) == 0:
        raise NotifyError(f"WATCHDOG_USEC={usec!r}: expected a positive number of microseconds")
    target = env.get("WATCHDOG_PID")
    if target is not None:
        if not target.isdigit() or int(target) == 0:
            raise NotifyError(f"WATCHDOG_PID={target!r}: expected a process id")
        if int(target) != pid:
            return None  # the watchdog is meant for another process (we were started by it)
    return int(usec) / 2e6


def one_line(text: str) -> str:
    """`text` fit for ``STATUS=``: a newline would start the next assignment."""
    return " ".join(text.split())


class Notifier:
    """Sends notifications to one ``$NOTIFY_SOCKET`` address; a no-op when `address` is None."""

    def __init__(self, address: bytes | None, *, watchdog: float | None = None) -> None:
        self.address = address
        self.watchdog_interval = watchdog if address is not None else None
        self._sock: socket.socket | None = None
        self._warned = False

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None, pid: int | None = None) -> Notifier:
        """The notifier systemd asked for in the environment; a disabled one (with a warning) for bad values."""
        environ = os.environ if env is None else env
        value = environ.get("NOTIFY_SOCKET")
        if not value:
            return cls(None)
        try:
            return cls(socket_address(value), watchdog=watchdog_interval(environ, os.getpid() if pid is None else pid))
        except NotifyError as exc:
            log.warning("not notifying systemd: %s", exc)
            return cls(None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *assignments: str) -> bool:
        """Send one datagram of ``VARIABLE=value`` lines; False (logged once) when it could not be delivered."""
        if self.address is None:
            return False
        message = "\n".join(assignments).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # a full queue drops a ping rather than stalling the loop
            self._sock.sendto(message, self.address)
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            reason = "queue full" if exc.errno == errno.EAGAIN else (exc.strerror or str(exc))
            log.log(level, "cannot notify systemd (%s): %s", assignments[0], reason)
            self._warned = True
            return False
        return True

    def ready(self, status: str) -> bool:
        """Startup is complete (sd_notify(3)'s own example also names the main pid)."""
        return self.send(State.READY.value, f"MAINPID={os.getpid()}", f"STATUS={one_line(status)}")

    def reloading(self) -> bool:
        """A configuration reload began; ``MONOTONIC_USEC`` lets systemd order it after the reload request."""
        return self.send(State.RELOADING.value, f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def reloaded(self, status: str) -> bool:
        """The reload finished (successfully or not): the daemon is ready again."""
        return self.send(State.READY.value, f"STATUS={one_line(status)}")

    def status(self, text: str) -> bool:
        """The one-line state ``systemctl status`` shows."""
        return self.send(f"STATUS={one_line(text)}")

    def watchdog(self) -> bool:
        return self.send(State.WATCHDOG.value)

    def stopping(self, status: str = "Stopping: exporting cached flows") -> bool:
        return self.send(State.STOPPING.value, f"STATUS={one_line(status)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


async def ping_watchdog(notifier: Notifier) -> None:
    """Send ``WATCHDOG=1`` every `notifier.watchdog_interval` seconds, from the event loop itself.

    Being a task of the loop is the point: a loop blocked by a stuck handler sends nothing, and
    systemd restarts the daemon (``WatchdogSec=``, ``Restart=on-failure``). The interval is real
    time, as systemd measures it, whatever clock drives the flow cache.
    """
    interval = notifier.watchdog_interval
    if interval is None:
        return
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval)
