"""Private network namespaces and veth pairs for live-capture tests, and a frame sender to run inside one.

Everything here needs root and iproute2's ``ip netns``; ``unavailable()`` says why a test must skip.
The links carry no addresses and IPv6 is disabled in the namespaces, so the kernel sends nothing on
them by itself (no DAD, router solicitations or MLD reports): every frame a capture sees came from
the sender. A test that needs addresses takes them from 198.18.0.0/15 and 2001:db8::/32 and assigns
them inside its namespaces only.

Run as a script, this file is the sender: ``python tests/netns.py send CAPTURE INTERFACE [--start N]
[--stop N] [--pps N]`` writes frames [start, stop) of a capture file to INTERFACE through an AF_PACKET
socket, one ``send`` per frame, at no more than N frames a second, and prints how many it sent.
``sender_command`` builds that command line to run inside a namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import functools
import itertools
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROOT: Final = Path(__file__).resolve().parents[1]
CLONE_NEWNET: Final = 0x40000000
NETNS_DIR: Final = Path("/run/netns")
SEND_BURST: Final = 64  # frames sent between two looks at the clock
QUIET_SYSCTLS: Final = ("net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")

_libc = ctypes.CDLL(None, use_errno=True)
_serial = itertools.count()


WHOLE_FRAMES_MTU = 1600  # above flowd.testing.synth.MAX_WIRE - 14 - 4: see add_veth


class NetnsError(Exception):
    """An ip(8) command failed; the message is its one-line stderr."""


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        raise NetnsError(f"ip {' '.join(args)}: {detail}")


@functools.cache
def unavailable() -> str | None:
    """Why namespaces cannot be used here (a pytest skip reason), or None when they can."""
    if os.geteuid() != 0:
        return "live capture needs root (CI runs these tests as root)"
    if shutil.which("ip") is None:
        return "iproute2's ip is not installed"
    name = f"flowd-probe-{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except NetnsError as exc:
        return f"ip netns is unavailable: {exc}"
    try:
        _ip("netns", "del", name)
    except NetnsError as exc:
        return f"ip netns cannot delete a namespace: {exc}"
    return None


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


@dataclass(frozen=True, slots=True)
class Namespace:
    """A named network namespace (``ip netns``)."""

    name: str

    def ip(self, *args: str) -> None:
        """Run ``ip -n NAME ARGS``."""
        _ip("-n", self.name, *args)

    def exec_args(self, *argv: str) -> list[str]:
        """The command line that runs argv inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    @contextlib.contextmanager
    def inside(self) -> Iterator[None]:
        """Move the calling thread into the namespace, and back on exit.

        Sockets opened meanwhile stay in the namespace; so do processes started from this thread.
        """
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            target = os.open(NETNS_DIR / self.name, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(target)
            finally:
                os.close(target)
            try:
                yield
            finally:
                _setns(home)
        finally:
            os.close(home)


@contextlib.contextmanager
def namespaces(count: int) -> Iterator[list[Namespace]]:
    """``count`` fresh, quiet namespaces, deleted (with every link in them) on exit."""
    made: list[Namespace] = []
    try:
        for _ in range(count):
            ns = Namespace(f"flowd-{os.getpid()}-{next(_serial)}")
            _ip("netns", "add", ns.name)
            made.append(ns)
            done = subprocess.run(ns.exec_args("sysctl", "-q", "-w", *QUIET_SYSCTLS),
                                  capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise NetnsError(f"sysctl in {ns.name}: {done.stderr.strip() or done.returncode}")
        yield made
    finally:
        for ns in made:
            with contextlib.suppress(NetnsError):
                _ip("netns", "del", ns.name)


def add_veth(a: Namespace, a_name: str, b: Namespace, b_name: str, *, up: bool = True,
             mtu: int = WHOLE_FRAMES_MTU) -> None:
    """Create a veth pair with one end in each namespace (and bring both ends up).

    The MTU lets a synthetic capture's longest frames through whole (QinQ or three MPLS labels on a
    1500-byte IP packet): a replay must put every frame on the wire as it was captured.
    """
    _ip("link", "add", a_name, "netns", a.name, "type", "veth", "peer", "name", b_name, "netns", b.name)
    a.ip("link", "set", a_name, "mtu", str(mtu))
    b.ip("link", "set", b_name, "mtu", str(mtu))
    if up:
        a.ip("link", "set", a_name, "up")
        b.ip("link", "set", b_name, "up")


def sender_command(ns: Namespace, interface: str, capture: str | Path, *, start: int = 0,
                   stop: int | None = None, pps: int = 50_000) -> list[str]:
    """The command line that replays frames [start, stop) of a capture into interface, inside ns."""
    argv = [sys.executable, str(Path(__file__).resolve()), "send", str(capture), interface,
            "--start", str(start), "--pps", str(pps)]
    if stop is not None:
        argv += ["--stop", str(stop)]
    return ns.exec_args(*argv)


def sender_env() -> dict[str, str]:
    """The environment the sender needs to import flowd from this checkout."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": str(ROOT) if not path else f"{ROOT}{os.pathsep}{path}"}


# --- the sender -------------------------------------------------------------------------------------

def send(capture: str, interface: str, *, start: int, stop: int | None, pps: int) -> int:
    """Write frames [start, stop) of the capture to the interface; return how many were sent.

    The process is pinned to one CPU: veth delivers each frame to the peer's packet sockets on the
    sending CPU, so a sender that migrated between CPUs could reorder frames at the receiver.
    """
    from flowd.capture.files import open_capture

    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    frames: list[bytes] = []
    with open_capture(capture) as reader:
        for batch in reader.batches(65536):
            with memoryview(batch.buf) as view:
                frames.extend(bytes(view[o:o + c])
                              for o, c in zip(batch.offset.tolist(), batch.caplen.tolist()))
    chosen = frames[start:stop]
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind((interface, 0))
        begin = time.perf_counter()
        for i, frame in enumerate(chosen):
            if i % SEND_BURST == 0:
                lag = begin + i / pps - time.perf_counter()
                if lag > 0:
                    time.sleep(lag)
            sock.send(frame)
    return len(chosen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="netns.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("send", help="replay a capture file into an interface")
    p.add_argument("capture")
    p.add_argument("interface")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--stop", type=int, default=None)
    p.add_argument("--pps", type=int, default=50_000)
    args = parser.parse_args(argv)
    try:
        sent = send(args.capture, args.interface, start=args.start, stop=args.stop, pps=args.pps)
    except OSError as exc:
        print(f"netns.py send: {args.interface}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    print(sent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
