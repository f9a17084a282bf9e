"""flowcli in a real pseudo-terminal, for tests that type at it as an operator would."""

from __future__ import annotations

import fcntl
import getpass
import os
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]|\r")
PROMPT = f"{getpass.getuser()}@{socket.gethostname().split('.')[0]}> "
CONFIG_PROMPT = PROMPT[:-2] + "# "
UP = "\x1b[A"


class PtyShell:
    """flowcli on the slave side of a pty; the test types on the master side and reads what it prints."""

    def __init__(self, sock: Path, home: Path, rows: int = 24, cols: int = 120) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        env = {k: v for k, v in os.environ.items() if k not in ("FLOWD_SOCKET", "COLUMNS", "LINES")}
        env.update(PYTHONPATH=str(REPO), HOME=str(home), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1")
        self.proc = subprocess.Popen([sys.executable, "-m", "shell", "--socket", str(sock)], stdin=slave,
                                     stdout=slave, stderr=slave, env=env, cwd=REPO, start_new_session=True)
        os.close(slave)
        self.master = master
        self.seen = ""  # ANSI-stripped output not yet consumed by expect()

    def send(self, text: str) -> None:
        os.write(self.master, text.encode())

    def _read(self, until: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], max(0.0, until - time.monotonic()))
        if not ready:
            return False
        try:
            data = os.read(self.master, 65536)
        except OSError:
            return False
        self.seen += ANSI.sub("", data.decode(errors="replace"))
        return bool(data)

    def expect(self, pattern: str, timeout: float = 10.0) -> str:
        """Wait for `pattern` (a regex) in the output; return the output up to its end and consume it."""
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern, self.seen)):
            if not self._read(deadline) and (time.monotonic() >= deadline or self.proc.poll() is not None):
                raise AssertionError(f"{pattern!r} not seen in output:\n{self.seen}")
        text = self.seen[:found.end()]
        self.seen = self.seen[found.end():]
        return text

    def prompt(self) -> str:
        return self.expect(re.escape(PROMPT.rstrip()))  # prompt_toolkit moves the cursor over the space

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(10)
        os.close(self.master)

    def config_prompt(self) -> str:
        """Up to configuration mode's prompt after its `[edit ...]` banner (printed once per command)."""
        return self.expect(r"\n\[edit[^\]\n]*\]\n" + re.escape(CONFIG_PROMPT.rstrip()))
