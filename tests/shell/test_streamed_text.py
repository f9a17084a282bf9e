"""Streamed results rendered batch by batch give the lines the whole result gives (the seed's flows)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from shell_seed import SEED_FLOWS, SEED_RESULTS

from flowd.control.rpcs import RPCS
from shell.render import render
from shell.render.streamed import StreamedText

INTO = RPCS["accounting.flow_detail"].streamed


def head() -> dict[str, Any]:
    result: dict[str, Any] = copy.deepcopy(SEED_RESULTS["accounting.flow_detail"])
    result["interfaces"][0]["flows"] = []
    return result


def whole(flows: list[dict[str, Any]]) -> dict[str, Any]:
    result = head()
    result["interfaces"][0]["flows"] = flows
    return result


@pytest.mark.parametrize("level", [None, "terse", "detail", "extensive"])
@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_batch_by_batch_is_the_whole_text(level: str | None, size: int) -> None:
    flows = [dict(f) for f in SEED_FLOWS]
    text = StreamedText(lambda result: render("accounting.flow_detail", result, level), INTO)
    lines = text.feed(head())
    for start in range(0, len(flows), size):
        lines += text.feed(copy.deepcopy(flows[start:start + size]))
    lines += text.finish()
    assert lines == render("accounting.flow_detail", whole(flows), level)


def test_no_rows_gives_the_header_and_a_whole_result_gives_itself() -> None:
    text = StreamedText(lambda result: render("accounting.flow_detail", result, None), INTO)
    assert text.feed(head()) == []
    assert text.finish() == render("accounting.flow_detail", head(), None)
    text = StreamedText(lambda result: render("accounting.flow_detail", result, None), INTO)
    assert text.feed(whole(list(SEED_FLOWS))) == []  # a daemon that sent it in one reply
    assert text.finish() == render("accounting.flow_detail", whole(list(SEED_FLOWS)), None)
