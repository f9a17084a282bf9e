"""The Junos CLI habits: bare `show services accounting`, `set cli ...`, `show cli history`, the `trim`, `hold`
and `refresh` pipes, and `h` in the pager; golden text, XML and JSON that parse."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from shell_daemon import DaemonDouble
from shell_golden import REPO, check_golden
from shell_seed import SEED_RESULTS

from shell import repl
from shell.clisettings import CliSession
from shell.commands import Match
from shell.grammar import PARSER
from shell.pager import PAGER_HELP, apply_pipes, page
from shell.render import ALL_ACCOUNTING, render, render_sections

SECTIONS = [(method, SEED_RESULTS[method]) for method in ALL_ACCOUNTING]


def test_bare_show_services_accounting_prints_every_section(update_golden: bool) -> None:
    lines = render_sections(SECTIONS)
    assert lines == [line for m, r in SECTIONS for line in render(m, r)]
    check_golden("accounting_all.txt", lines, update_golden)


def test_bare_show_services_accounting_xml_and_json_parse(update_golden: bool) -> None:
    xml = render_sections(SECTIONS, "xml")
    check_golden("accounting_all.xml", xml, update_golden)
    root = ET.fromstring("\n".join(xml))
    info = root.findall("services-accounting-information")
    tags = ["flow-information", "error-information", "memory-information", "packet-distribution-information",
            "status-information", "usage-information"]
    assert [section.find(tag) is not None for section, tag in zip(info, tags, strict=True)] == [True] * 6
    data = json.loads("\n".join(render_sections(SECTIONS, "json")))
    assert [tag in section for section, tag in zip(data["services-accounting-information"], tags, strict=True)] \
        == [True] * 6


def test_set_cli_and_show_cli_history(update_golden: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")  # the history prints local time, as Junos does
    time.tzset()
    times = iter([1_796_300_000.0, 1_796_300_007.0, 1_796_300_042.0, 1_796_300_043.0, 1_796_300_044.0])
    cli = CliSession(clock=lambda: next(times))
    for line in ("show version", "set cli screen-length 0", "show cli history"):
        cli.remember(line)
    cli.remember("   ")  # blank lines are not commands
    check_golden("cli_history.txt", cli.history_lines(), update_golden)
    assert cli.apply(0, 40, "timestamp") == ["Screen length set to 0", "Screen width set to 40", "Enabling timestamp"]
    assert cli.rows(24) == 0 and cli.stamp()[0][:3].isalpha() and len(cli.stamp()[0].split()) == 3
    assert cli.wrap(["x" * 90]) == ["x" * 40, "x" * 40, "x" * 10]
    assert cli.apply(None, None, "no-timestamp") == ["Disabling timestamp"] and cli.stamp() == []


def test_trim_pipe(update_golden: bool) -> None:
    match = PARSER.resolve("show version | trim 5")
    assert isinstance(match, Match)
    out = apply_pipes(render("system.version", SEED_RESULTS["system.version"]), match.pipes)
    check_golden("version_trim.txt", out.lines, update_golden)
    assert out.lines[0] == "ame: router1"


def test_hold_keeps_the_pager_until_q_and_h_prints_help() -> None:
    match = PARSER.resolve("show version | hold")
    assert isinstance(match, Match)
    out = apply_pipes(["a", "b"], match.pipes)
    assert out.hold and out.pageable
    written: list[str] = []
    keys = iter(["h", " ", "q"])
    page(out.lines, written.append, lambda: next(keys), rows=24, hold=True)
    text = "".join(written)
    assert text.startswith("a\nb\n---(more 100%)---")
    assert "\n".join(PAGER_HELP) + "\n" in text
    assert text.count("---(more 100%)---") == 3  # shown, after the help, after Space; q ends it


def test_refresh_runs_the_command_again_until_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    class Client:
        calls = 0

        async def call(self, method: str, params: dict[str, Any]) -> Any:
            Client.calls += 1
            return SEED_RESULTS[method]

    naps: list[float] = []

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 2:
            raise asyncio.CancelledError  # what Ctrl-C does to the running command

    monkeypatch.setattr(repl.asyncio, "sleep", sleep)
    match = PARSER.resolve("show version | refresh 3")
    assert isinstance(match, Match)
    out = io.StringIO()
    asyncio.run(repl._refresh(match, Client(), PARSER, repl.Terminal(out), 3))  # type: ignore[arg-type]
    lines = out.getvalue().splitlines()
    assert Client.calls == 2 and naps == [3, 3]
    assert [ln for ln in lines if ln.startswith("---(refreshed at ")].__len__() == 2
    assert lines[-1] == "!!! Refresh interrupted by user"


def test_scripts_reach_the_new_commands(daemon: DaemonDouble) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FLOWD_SOCKET"}
    env["PYTHONPATH"] = str(REPO)
    run = subprocess.run([sys.executable, "-m", "shell", "--socket", str(daemon.path), "-c",
                          "set cli screen-width 0; show services accounting | display json; show cli history"],
                         capture_output=True, text=True, cwd=REPO, env=env, timeout=30, check=False)
    assert (run.returncode, run.stderr) == (0, "")
    out = run.stdout
    start = out.index("{")
    end = out.rindex("}") + 1
    assert "services-accounting-information" in json.loads(out[start:end])
    history = out[end:].split()
    assert history[1:] == ["--", "set", "cli", "screen-width", "0", history[6], "--", "show", "services",
                           "accounting", "|", "display", "json", history[14], "--", "show", "cli", "history"]
    assert out.startswith("Screen width set to 0\n")
