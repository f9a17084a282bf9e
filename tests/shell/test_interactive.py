"""The interactive shell in a real pseudo-terminal: `?`, Tab, Space, history, errors with carets, Ctrl-C/D,
the pager, and reconnecting when the daemon comes back."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from ptyshell import PROMPT, UP, PtyShell
from shell_daemon import DaemonDouble
from shell_seed import SEED_FLOWS, SEED_RESULTS


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def shell(daemon: DaemonDouble, home: Path) -> Iterator[PtyShell]:
    pty_shell = PtyShell(daemon.path, home)
    pty_shell.prompt()
    try:
        yield pty_shell
    finally:
        pty_shell.close()


def test_question_mark_lists_and_keeps_the_line(shell: PtyShell, daemon: DaemonDouble) -> None:
    shell.send("show services accounting ?")
    shown = shell.expect(r"usage +Show CPU utilization\n")
    assert "show services accounting ?\nPossible completions:\n" in shown
    assert "  flow-detail          Show individual flows\n" in shown
    assert "  packet-size-distribution Show packet size distribution\n" in shown
    shell.prompt()
    shell.send("flow\r")  # the line still holds "show services accounting " and no "?"
    out = shell.expect(r"Flows inactive timed out: 2, Flows active timed out: 0\n")
    assert "  Flow information\n" in out
    assert [r.method for r in daemon.requests] == ["accounting.flow"]


def test_tab_and_space_complete(shell: PtyShell, daemon: DaemonDouble) -> None:
    shell.send("sh\tser\tacc\tflow\t")  # the last Tab cannot choose between flow and flow-detail: it lists them
    listing = shell.expect(r"flow-detail +Show individual flows\n")
    assert "Possible completions:\n  flow                 Show flow statistics\n" in listing
    shell.prompt()
    shell.send("-\t\r")
    shell.expect(r"10\.71\.224\.1 +20 +1 +1046\n")
    shell.prompt()
    shell.send("sh sy u \r")  # Space completes each unique prefix
    shell.expect(r"load averages: 0\.43, 0\.43, 0\.42\n")
    assert [r.method for r in daemon.requests] == ["accounting.flow_detail", "system.uptime"]


def test_history_recalls_previous_command(shell: PtyShell, daemon: DaemonDouble, home: Path) -> None:
    shell.send("show version\r")
    shell.expect(r"Hostname: router1\n")
    shell.prompt()
    shell.send(UP)
    shell.expect("show version")
    shell.send("\r")
    shell.expect(r"Hostname: router1\n")
    assert [r.method for r in daemon.requests] == ["system.version", "system.version"]
    assert "+show version" in (home / ".flowcli_history").read_text()


def test_errors_put_the_caret_under_the_word(shell: PtyShell, daemon: DaemonDouble) -> None:
    shell.send("show version c\r")
    out = shell.expect(r"syntax error, expecting <command>\.\n")
    assert "\n" + " " * (len(PROMPT) + 13) + "^\n" in out
    shell.prompt()
    shell.send("sh s\r")  # Space has completed "sh" to "show"
    out = shell.expect(r"system +Show system information\n")
    assert "show s\n" + " " * (len(PROMPT) + 5) + "^\n's' is ambiguous.\nPossible completions:\n" in out
    shell.prompt()
    shell.send("foo\r")
    out = shell.expect(r"unknown command\.\n")
    assert "\n" + " " * len(PROMPT) + "^\n" in out
    assert daemon.requests == []


def test_ctrl_c_clears_the_line_and_ctrl_d_exits(shell: PtyShell, daemon: DaemonDouble) -> None:
    shell.send("show ver")
    shell.expect("show ver")
    shell.send("\x03")
    shell.prompt()
    shell.send("show system uptime\r")
    shell.expect(r"Current time: 2020-03-26 08:16:41 UTC\n")
    shell.prompt()
    shell.send("\x04")
    assert shell.proc.wait(10) == 0
    assert [r.method for r in daemon.requests] == ["system.uptime"]


def test_pager(shell: PtyShell, daemon: DaemonDouble) -> None:
    flows = [dict(SEED_FLOWS[i % 10], source_port=i) for i in range(80)]
    daemon.results["accounting.flow_detail"] = {"interfaces": [{"interface": "sp-2/0/0", "local_index": 468,
                                                                "service_name": "(default sampling)", "flows": flows}]}
    shell.send("show services accounting flow-detail\r")
    first = shell.expect(r"---\(more 27%\)---")  # 23 of 84 lines on a 24-row terminal
    assert first.count("\n") == 24  # the echoed command line and 23 output lines
    shell.send("\r")
    assert shell.expect(r"---\(more 28%\)---").count("\n") == 1  # Enter: one more line
    shell.send(" ")
    assert shell.expect(r"---\(more 55%\)---").count("\n") == 23  # Space: one more screen
    shell.send("q")
    shell.prompt()
    shell.send("show services accounting flow-detail | no-more\r")
    out = shell.expect(r"10\.71\.224\.1 +20 +1 +1046\n(?!.*10\.71\.224\.1)", timeout=10)
    assert "---(more" not in out
    shell.prompt()


def test_reconnects_when_the_daemon_starts(sock_path: Path, home: Path) -> None:
    pty_shell = PtyShell(sock_path, home)
    try:
        pty_shell.prompt()
        pty_shell.send("show version\r")
        pty_shell.expect(re.escape(f"error: flowd is not running (cannot connect to {sock_path}: "
                                   "No such file or directory)\n"))
        pty_shell.prompt()
        double = DaemonDouble(sock_path, SEED_RESULTS).start()
        try:
            pty_shell.send("show version\r")
            pty_shell.expect(r"Hostname: router1\n")
            pty_shell.prompt()
            pty_shell.send("exit\r")
            assert pty_shell.proc.wait(10) == 0
        finally:
            double.stop()
    finally:
        pty_shell.close()
