"""docs/commands.md is generated from the grammar; every method the grammar calls is documented, rendered and
(once the daemon has its table) served."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys

import pytest
from shell_golden import REPO

from shell.grammar import COMMANDS, SIZE_RANGES_NOTE, render_docs
from shell.render import RENDERERS

RPCS = sorted({c.rpc for c in COMMANDS if c.rpc} | {c.compare for c in COMMANDS if c.compare})


def test_commands_md_is_up_to_date() -> None:
    assert (REPO / "docs" / "commands.md").read_text() == render_docs(), \
        "docs/commands.md is stale: run `python -m shell.grammar --docs > docs/commands.md`"


def test_docs_entry_point_prints_the_same() -> None:
    run = subprocess.run([sys.executable, "-m", "shell.grammar", "--docs"], capture_output=True, text=True,
                         cwd=REPO, timeout=30, check=True)
    assert run.stdout == render_docs()


def test_every_rpc_is_in_the_protocol_method_table() -> None:
    doc = (REPO / "docs" / "control-protocol.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", doc, re.MULTILINE))
    assert set(RPCS) <= documented, sorted(set(RPCS) - documented)


def test_every_rpc_has_a_renderer_with_its_display_formats() -> None:
    for command in COMMANDS:
        if command.rpc is None:
            continue
        renderer = RENDERERS[command.rpc]
        if command.pipes:
            assert set(command.displays) <= set(renderer.displays), command.path
    assert set(RENDERERS) == set(RPCS)


@pytest.mark.skipif(importlib.util.find_spec("flowd.control.methods") is None,
                    reason="flowd/control/methods.py is not written yet")
def test_every_rpc_is_served_by_the_daemon() -> None:
    methods = importlib.import_module("flowd.control.methods")
    config_methods = importlib.import_module("flowd.control.config_methods")
    served = set(methods.METHODS) | set(config_methods.CONFIG_METHODS)
    assert set(RPCS) <= served, sorted(set(RPCS) - served)


def test_packet_size_ranges_documented_are_the_daemons() -> None:
    stats = pytest.importorskip("flowd.core.stats")
    documented = [tuple(map(int, r.split("-"))) for r in re.findall(r"\d+-\d+", SIZE_RANGES_NOTE)]
    assert documented == [tuple(r) for r in stats.SIZE_RANGES]
