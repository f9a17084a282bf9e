"""`flowcli` as a real process (non-interactive) against a daemon double: output, stderr texts, exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shell_daemon import DaemonDouble
from shell_golden import GOLDEN_DIR, REPO
from shell_seed import SEED_FLOWS

from flowd.control.protocol import RpcError


def flowcli(*args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "FLOWD_SOCKET"}
    environ.update(PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([sys.executable, "-m", "shell", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, env=environ, timeout=30, check=False)


def golden(name: str) -> str:
    return (GOLDEN_DIR / name).read_text()


def test_one_command(daemon: DaemonDouble) -> None:
    run = flowcli("--socket", str(daemon.path), "-c", "show services accounting errors")
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == golden("errors.txt")


def test_several_commands_repeated_and_semicolons(daemon: DaemonDouble, tmp_path: Path) -> None:
    saved = tmp_path / "flows.txt"
    run = flowcli("--socket", str(daemon.path), "-c", "sh ser acc fl; show services accounting memory | count",
                  "-c", f"show services accounting flow-detail limit 10 | match tcp | save {saved}",
                  "-c", "clear services accounting flow")
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == golden("flow.txt") + "Count: 6 lines\n" + f"Wrote 6 lines of output to '{saved}'\n"
    assert saved.read_text() == "".join(line + "\n" for line in golden("flow_detail_terse.txt").splitlines()
                                        if "tcp" in line)
    assert [(r.method, r.params) for r in daemon.requests] == [
        ("accounting.flow", {}), ("accounting.memory", {}), ("accounting.flow_detail", {"limit": 10}),
        ("accounting.clear_flows", {})]


def test_errors_go_to_stderr_and_exit_1(daemon: DaemonDouble) -> None:
    daemon.results["accounting.usage"] = RpcError("internal", "usage counters unavailable")
    daemon.results["accounting.flow"] = {"interfaces": [{"interface": "sp-2/0/0", "local_index": 1,
                                                         "service_name": "x"}]}
    run = flowcli("--socket", str(daemon.path), "-c", "foo", "-c", "show version c", "-c",
                  "show services accounting flow-detail limit abc; show services accounting usage",
                  "-c", "show services accounting flow", "-c", "show services accounting status")
    assert run.returncode == 1
    assert run.stderr.splitlines() == [
        "error: unknown command: foo",
        "error: syntax error, expecting <command>: c",
        "error: syntax error: abc",
        "error: usage counters unavailable",
        "error: unexpected reply from flowd to accounting.flow (missing 'flow_packets')",
    ]
    assert run.stdout == golden("status.txt")  # later commands still run


def test_not_running(sock_path: Path) -> None:
    run = flowcli("--socket", str(sock_path), "-c", "show version", "-c", "show system uptime")
    assert run.returncode == 1
    assert run.stdout == ""
    assert run.stderr == f"error: flowd is not running (cannot connect to {sock_path}: No such file or directory)\n"


def test_commands_from_stdin_and_env_socket(daemon: DaemonDouble) -> None:
    run = flowcli(stdin="show version\n\nshow system uptime | last 1\nexit\nshow version\n",
                  env={"FLOWD_SOCKET": str(daemon.path)})
    assert (run.returncode, run.stderr) == (0, "")
    assert run.stdout == golden("version.txt") + golden("uptime.txt").splitlines(keepends=True)[-1]


def test_never_pages_when_not_interactive(daemon: DaemonDouble) -> None:
    flows = [dict(SEED_FLOWS[i % 10], source_port=i) for i in range(500)]
    daemon.results["accounting.flow_detail"] = {"interfaces": [{"interface": "sp-2/0/0", "local_index": 468,
                                                                "service_name": "(default sampling)", "flows": flows}]}
    run = flowcli("--socket", str(daemon.path), "-c", "show services accounting flow-detail | count",
                  "-c", "show services accounting flow-detail")
    assert (run.returncode, run.stderr) == (0, "")
    lines = run.stdout.splitlines()
    assert lines[0] == "Count: 504 lines"
    assert len(lines) == 505 and "---(more" not in run.stdout


def test_help_option() -> None:
    run = flowcli("--help")
    assert run.returncode == 0
    assert "--socket PATH" in run.stdout and "-c COMMAND" in run.stdout
