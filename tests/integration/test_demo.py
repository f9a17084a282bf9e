"""`flowd --demo` in a real terminal: whatever ends it, the daemon goes with it and the temporary directory too.

bash runs as the session leader of a pseudo-terminal (its controlling terminal), as in a terminal
window; the test types `flowd --demo` into it and ends the demo the ways a newcomer does.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from flowd.demo import sample_capture

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|\r")
PASTE = re.compile(r"^  (FLOWD_SOCKET=(\S+) .*)$", re.M)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG_CACHE_HOME with the demo capture already made (made once for the module)."""
    home = tmp_path_factory.mktemp("cache")
    with mock.patch.dict(os.environ, {"XDG_CACHE_HOME": str(home)}):
        sample_capture()
    return home


def _controlling_tty() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """A terminal window: bash on a pty it controls; `close()` is closing the window (a hangup)."""

    def __init__(self, cache: Path, tmp: Path) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("FLOWD_SOCKET", "COLUMNS", "LINES")}
        venv_bin = Path(os.sys.executable).parent
        env.update(XDG_CACHE_HOME=str(cache), HOME=str(tmp), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1",
                   PATH=f"{venv_bin}:{env.get('PATH', '/usr/bin:/bin')}", PS1="term$ ", TMPDIR=str(tmp))
        self.bash = subprocess.Popen(["bash", "--norc", "--noprofile", "-i"], stdin=slave, stdout=slave,
                                     stderr=slave, env=env, cwd=tmp, start_new_session=True,
                                     preexec_fn=_controlling_tty)
        os.close(slave)
        self.master: int | None = master
        self.seen = ""

    def send(self, text: str) -> None:
        assert self.master is not None
        os.write(self.master, text.encode())

    def expect(self, pattern: re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        assert self.master is not None
        deadline = time.monotonic() + timeout
        while not (found := pattern.search(self.seen)):
            assert time.monotonic() < deadline, f"{pattern.pattern!r} not seen in:\n{self.seen}"
            ready, _, _ = select.select([self.master], [], [], 0.2)
            if ready:
                try:
                    self.seen += ANSI.sub("", os.read(self.master, 65536).decode(errors="replace"))
                except OSError:
                    pass
        return found

    def close(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None


@pytest.fixture
def terminal(cache: Path, tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(cache, tmp_path)
    yield term
    term.close()
    if term.bash.poll() is None:
        term.bash.kill()
    term.bash.wait(timeout=30)


def pids(*words: str, pid: int | None = None) -> list[int]:
    """Processes (or the one process ``pid``) whose command line holds every word."""
    found = []
    for entry in [Path(f"/proc/{pid}")] if pid is not None else Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if all(w.encode() in argv for w in words):
                found.append(int(entry.name))
    return found


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


class Demo:
    """What a running demo is made of, found from the line its banner prints."""

    def __init__(self, term: Terminal) -> None:
        found = term.expect(PASTE)
        self.paste, self.socket = found.group(1), found.group(2)
        self.tmp = Path(self.socket).parent
        term.expect(re.compile(r"@\S+>"))  # flowcli's prompt
        [self.daemon] = pids("--socket", self.socket, "--replay-loop")
        [self.shell] = pids("shell", "--socket", self.socket)
        [self.demo] = [p for p in pids("--demo") if _parent(p) == term.bash.pid]

    def wait_gone(self, timeout: float = 30.0) -> None:
        """The demo, the daemon and the shell have exited and the temporary directory is gone."""
        deadline = time.monotonic() + timeout
        while left := [*pids("--socket", self.socket), *pids("--demo", pid=self.demo), *[self.tmp] * self.tmp.exists()]:
            assert time.monotonic() < deadline, f"left behind: {left}"
            time.sleep(0.05)


def start(term: Terminal) -> Demo:
    term.expect(re.compile(r"term\$ $", re.M))
    term.send("flowd --demo\n")
    return Demo(term)


def test_closing_the_terminal_stops_the_daemon(terminal: Terminal) -> None:
    demo = start(terminal)
    terminal.close()  # the window is closed: the kernel hangs the terminal up, SIGHUP to bash and the demo
    demo.wait_gone()


def test_kill_stops_the_daemon(terminal: Terminal) -> None:
    demo = start(terminal)
    os.kill(demo.demo, signal.SIGTERM)
    demo.wait_gone()
    terminal.expect(re.compile(r"term\$ $", re.M))  # back at the prompt


def test_exit_from_the_shell_stops_the_daemon(terminal: Terminal) -> None:
    demo = start(terminal)
    terminal.send("exit\n")
    demo.wait_gone()
    terminal.send("echo status=$?\n")
    terminal.expect(re.compile(r"status=0"))


def test_killing_the_shell_stops_the_daemon(terminal: Terminal) -> None:
    demo = start(terminal)
    os.kill(demo.shell, signal.SIGKILL)
    demo.wait_gone()


def test_ctrl_c_at_the_prompt_leaves_the_demo_running(terminal: Terminal) -> None:
    demo = start(terminal)
    terminal.send("\x03")
    terminal.send("show services accounting status\n")
    terminal.expect(re.compile(r"Service Accounting interface"))
    assert pids("--socket", demo.socket, "--replay-loop") == [demo.daemon]
    terminal.send("exit\n")
    demo.wait_gone()


def test_sigkill_of_the_demo_still_stops_the_daemon_and_the_shell(terminal: Terminal) -> None:
    demo = start(terminal)
    os.kill(demo.demo, signal.SIGKILL)  # nothing of the demo runs after this: the kernel tells its children
    deadline = time.monotonic() + 30
    while pids("--socket", demo.socket):
        assert time.monotonic() < deadline, "the daemon or the shell outlived the demo"
        time.sleep(0.05)
    assert not Path(demo.socket).exists()  # the daemon stopped cleanly, removing its socket


def paste(demo: Demo, command: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the banner's line (with another command, if given) in a shell that knows nothing of the demo."""
    env = {k: v for k, v in os.environ.items() if k != "FLOWD_SOCKET"}
    env["PATH"] = f"{Path(os.sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    line = demo.paste if command is None else demo.paste.rsplit(" -c ", 1)[0] + f" -c '{command}'"
    return subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=60)


def test_the_banner_line_reaches_the_demo_from_another_terminal(terminal: Terminal) -> None:
    demo = start(terminal)
    done = paste(demo)
    assert done.returncode == 0, done.stderr
    assert "Flow information" in done.stdout or "Service Accounting interface" in done.stdout, done.stdout
    terminal.send("exit\n")
    demo.wait_gone()


def test_the_demo_is_healthy_and_says_where_it_exports(terminal: Terminal) -> None:
    """Its own collector takes the export (no failures), both families are sampled, status names the sink."""
    demo = start(terminal)
    sink = re.search(r"collector inside this demo \((127\.0\.0\.1:\d+)\)", terminal.seen)
    assert sink is not None, terminal.seen
    status = paste(demo, "show services accounting status").stdout
    assert "Protocol: IPv4, IPv6" in status, status
    for family in ("inet", "inet6"):
        assert f"Flow server: {sink.group(1)}, Family: {family}, Export format: IP-FIX, Transport: UDP" in status
    deadline = time.monotonic() + 30  # the replay runs at packet timing: wait for the first exports
    while "Flows exported: 0" in (flow := paste(demo, "show services accounting flow").stdout):
        assert time.monotonic() < deadline, flow
        time.sleep(0.2)
    errors = paste(demo, "show services accounting errors").stdout
    assert "Packets dropped (not IPv4): 0" in errors, errors
    failures = re.findall(r"Export packet failures \(([^)]+)\): (\d+)", errors)
    assert failures and all(count == "0" for _, count in failures), errors
    terminal.send("exit\n")
    demo.wait_gone()
