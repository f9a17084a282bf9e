"""`flowd --demo`: a newcomer's first minute — a daemon replaying a sample capture, and the shell on it.

No root needed: the sample capture is made by flowd.testing.synth (documentation address ranges
only), the control socket lives in a private temporary directory, and the records go, as IPFIX over
UDP, to a collector sink inside the demo process (an ephemeral port on 127.0.0.1), so no export fails and no
other program is involved. Both families are sampled (the IPFIX override adds inet6).

Lifecycle: the demo owns the daemon and the shell. The daemon runs in a session of its own, so the
terminal's signals (Ctrl-C, hangup) reach only the demo and the shell; whatever ends the demo or the
shell — `exit`, a closed terminal (SIGHUP), `kill`, the shell killed — the demo stops the daemon (it
exports its flows and removes its socket) and removes the temporary directory. If the demo itself is
killed with SIGKILL, the kernel sends SIGTERM to the daemon and the shell (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Final, TextIO

from flowd.runtime.exit_status import ExitStatus
from flowd.runtime.parent_death import die_with_parent
from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

SAMPLE = SynthSpec(packets=40_000, flows=2_000, seed=2, duration=120.0, damaged_share=0.0005)
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0  # seconds the daemon gets to export its cache and exit before SIGKILL
_ENDING_SIGNALS: Final = (signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT)
DEMO_COMMAND: Final = "show services accounting flow"


def sample_capture() -> Path:
    """The demo capture, made once and kept in the user's cache directory."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flowd"
    path = cache / f"demo-{SAMPLE.seed}-{SAMPLE.packets}.pcap"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        write_capture(SAMPLE, str(tmp))
        tmp.replace(path)
    return path


class CollectorSink:
    """The demo's flow collector: a UDP socket on 127.0.0.1 that takes every export message and counts it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.messages = 0
        self.octets = 0

    @property
    def address(self) -> str:
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def drain(self) -> None:
        """Take every message waiting in the socket."""
        while True:
            try:
                data = self.sock.recv(65535)
            except (BlockingIOError, OSError):
                return
            self.messages += 1
            self.octets += len(data)

    def close(self) -> None:
        self.drain()
        self.sock.close()


class DemoEnded(Exception):
    """A signal ended the demo; the exit status is 128 + its number, as a shell reports it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_CLEANING: list[bool] = []  # set once the cleanup has begun: later signals must not cut it short


def _end(signum: int, frame: FrameType | None) -> None:
    if not _CLEANING:
        raise DemoEnded(signum)


def _ignore(signum: int, frame: FrameType | None) -> None:
    """Ctrl-C belongs to the shell (a caught signal, unlike SIG_IGN, is reset for the shell at exec)."""




def flowcli_command() -> str:
    """How to run flowcli from another terminal: `flowcli` when that is this installation's, else its path."""
    beside = Path(sys.executable).parent / "flowcli"
    if beside.exists():
        found = shutil.which("flowcli")
        return "flowcli" if found and Path(found).resolve() == beside.resolve() else shlex.quote(str(beside))
    return f"{shlex.quote(sys.executable)} -m shell"


def banner(sock: str, sink: CollectorSink) -> str:
    return (f"flowd demo: a daemon is replaying a sample capture in a loop, at packet timing, and exporting\n"
            f"IPFIX (families inet and inet6) to a collector inside this demo ({sink.address}).\n"
            f"Try: show services accounting flow-detail limit 10   (Tab completes, ? helps, exit leaves)\n"
            f"From another terminal, while the demo runs:\n"
            f"  FLOWD_SOCKET={shlex.quote(sock)} {flowcli_command()} -c {shlex.quote(DEMO_COMMAND)}\n")


def run_demo(config: str | None, *, out: TextIO = sys.stdout) -> int:
    """Run the demo until the shell exits or a signal ends it; return the shell's status (128+N for signal N)."""
    capture = sample_capture()
    previous = {sig: signal.signal(sig, _end) for sig in _ENDING_SIGNALS}
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, _ignore)
    tmp = tempfile.mkdtemp(prefix="flowd-demo-")
    sink = CollectorSink()
    daemon: subprocess.Popen[bytes] | None = None
    shell: subprocess.Popen[bytes] | None = None
    sock = str(Path(tmp) / "flowd.sock")
    log_path = Path(tmp) / "flowd.log"
    try:
        with open(log_path, "wb") as log:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "flowd", "--replay", str(capture), "--replay-loop", "--socket", sock,
                 "--flow-server", sink.address, "--export-version", "ipfix",
                 *(["--config", config] if config else [])],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                preexec_fn=partial(die_with_parent, os.getpid()))
        if not _wait_ready(daemon, sock, sink):
            print(f"flowd: the demo daemon did not start:\n{log_path.read_text()}", file=sys.stderr)
            return ExitStatus.SOFTWARE
        print(banner(sock, sink), file=out, flush=True)
        shell = subprocess.Popen([sys.executable, "-m", "shell", "--socket", sock],
                                 preexec_fn=partial(die_with_parent, os.getpid()))
        status = _serve(shell, daemon, sink)
        if daemon.poll() is not None:
            print(f"flowd: the demo daemon stopped (status {daemon.returncode}):\n{log_path.read_text()}",
                  file=sys.stderr)
        return status
    except DemoEnded as ended:
        return 128 + ended.signum
    finally:
        # Closing a terminal sends SIGHUP more than once (to the shell's jobs and to the foreground
        # group): a signal that lands as the cleanup starts must not cut it short, so it starts again.
        while True:
            try:
                _CLEANING.append(True)
                for sig in _ENDING_SIGNALS:
                    signal.signal(sig, signal.SIG_IGN)
                _stop(shell, signal.SIGHUP)
                _stop(daemon, signal.SIGTERM)
                sink.close()
                shutil.rmtree(tmp, ignore_errors=True)
                break
            except DemoEnded:
                continue
        _CLEANING.clear()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _wait_ready(daemon: subprocess.Popen[bytes], sock: str, sink: CollectorSink) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while not os.path.exists(sock):
        if daemon.poll() is not None or time.monotonic() > deadline:
            return False
        select.select([sink.sock], [], [], 0.05)
        sink.drain()
    return True


def _serve(shell: subprocess.Popen[bytes], daemon: subprocess.Popen[bytes], sink: CollectorSink) -> int:
    """Collect export messages until the shell exits (its status) or the daemon does (1)."""
    shell_fd, daemon_fd = os.pidfd_open(shell.pid), os.pidfd_open(daemon.pid)
    try:
        while True:
            ready, _, _ = select.select([sink.sock.fileno(), shell_fd, daemon_fd], [], [])
            sink.drain()
            if shell_fd in ready:
                return shell.wait()
            if daemon_fd in ready:
                return 1
    finally:
        os.close(shell_fd)
        os.close(daemon_fd)


def _stop(proc: subprocess.Popen[bytes] | None, sig: int) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
