"""Pipes (`| match`, `| count`, `| save` ...) over rendered lines, and the pager's paging and keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from shell_seed import SEED_RESULTS

from shell.commands import Match
from shell.grammar import PARSER
from shell.pager import PipeError, apply_pipes, display_format, needs_pager, page
from shell.render import render

FLOWS = render("accounting.flow_detail", SEED_RESULTS["accounting.flow_detail"], "terse")


def run(line: str) -> tuple[list[str], bool]:
    """Render the seed's flow-detail output through the pipes typed after the command."""
    match = PARSER.resolve("show services accounting flow-detail " + line)
    assert isinstance(match, Match), match
    lines = render("accounting.flow_detail", SEED_RESULTS["accounting.flow_detail"], match.level,
                   display_format(match.pipes))
    out = apply_pipes(lines, match.pipes)
    return out.lines, out.pageable


def test_match_keeps_matching_lines() -> None:
    lines, pageable = run("| match udp")
    assert lines == [FLOWS[4], FLOWS[7]]
    assert pageable


def test_match_is_case_insensitive_and_takes_quoted_alternation() -> None:
    assert run('| match "UDP|ip\\(0\\)"')[0] == [FLOWS[4], FLOWS[5], FLOWS[6], FLOWS[7]]


def test_match_with_spaces_in_quotes() -> None:
    assert run('| match "Service name: \\(default"')[0] == [FLOWS[1]]


def test_except_drops_matching_lines() -> None:
    lines, _ = run("| except tcp")
    assert lines == FLOWS[:8]


def test_find_starts_at_first_match() -> None:
    assert run("| find 10.168")[0] == FLOWS[9:]
    assert run("| find nothing-here")[0] == []


def test_count() -> None:
    assert run("| count")[0] == [f"Count: {len(FLOWS)} lines"]
    assert run("| match tcp | count")[0] == ["Count: 6 lines"]


def test_last() -> None:
    assert run("| last 2")[0] == FLOWS[-2:]
    assert run("| last 1000")[0] == FLOWS


def test_chained_pipes_apply_left_to_right() -> None:
    assert run("| match tcp | except 10.3.0.1 | last 1 | count")[0] == ["Count: 1 lines"]


def test_no_more_turns_the_pager_off() -> None:
    lines, pageable = run("| no-more")
    assert lines == FLOWS and not pageable


def test_display_json_then_match() -> None:
    lines, _ = run("| display json | match '\"byte-count\"'")
    assert len(lines) == 10 and all('"byte-count"' in line for line in lines)


def test_display_applies_wherever_written() -> None:
    assert run("| count | display xml")[0] == [f"Count: {len(run('| display xml')[0])} lines"]


def test_save_writes_the_file(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    lines, pageable = run(f"| match tcp | save {target}")
    assert lines == [f"Wrote 6 lines of output to '{target}'"]
    assert not pageable
    assert target.read_text().splitlines() == [line for line in FLOWS if "tcp" in line]


def test_save_to_a_missing_directory_is_a_pipe_error(tmp_path: Path) -> None:
    with pytest.raises(PipeError, match="could not write"):
        run(f"| save {tmp_path}/no/such/dir/out.txt")


@pytest.mark.parametrize(("count", "rows", "expected"), [(23, 24, False), (24, 24, True), (0, 24, False)])
def test_needs_pager(count: int, rows: int, expected: bool) -> None:
    assert needs_pager(["x"] * count, rows) is expected


class Screen:
    """Collects what the pager writes and feeds it keys."""

    def __init__(self, keys: str) -> None:
        self.keys = list(keys)
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def read_key(self) -> str:
        return self.keys.pop(0) if self.keys else ""


def test_pager_space_enter_and_percentages() -> None:
    lines = [f"line {i}" for i in range(10)]
    screen = Screen(" \n ")
    page(lines, screen.write, screen.read_key, rows=4)
    text = screen.text.replace("\r" + " " * 16 + "\r", "|")
    assert text == ("line 0\nline 1\nline 2\n---(more 30%)---|line 3\nline 4\nline 5\n"
                    "---(more 60%)---|line 6\n---(more 70%)---|line 7\nline 8\nline 9\n")


def test_pager_q_stops_and_other_keys_repeat_the_prompt() -> None:
    lines = [f"line {i}" for i in range(10)]
    screen = Screen("xq")
    page(lines, screen.write, screen.read_key, rows=4)
    assert screen.text.count("---(more 30%)---") == 2
    assert "line 3" not in screen.text


def test_pager_output_that_fits_has_no_prompt() -> None:
    screen = Screen("")
    page(["a", "b"], screen.write, screen.read_key, rows=24)
    assert screen.text == "a\nb\n"
