"""etc/flowd.yaml's comments state the ranges and defaults the schema declares, and nothing the code no longer does."""

from __future__ import annotations

import dataclasses
import re
from collections import defaultdict
from pathlib import Path

from flowd.config import schema
from flowd.config.docs import shown_default

EXAMPLE = Path(__file__).resolve().parents[2] / "etc" / "flowd.yaml"
# `key: value   # words (LO..HI, default D)`, the statement possibly commented out itself
CLAIM = re.compile(r"^\s*#?\s*([a-z][\w-]*):[^#]*#.*?\((\d+)\.\.(\d+)(?:, default ([^,)]+))?")


def declared() -> dict[str, list[tuple[tuple[int, int], str]]]:
    """Statement name -> (range, default as the docs show it) of every schema field that reads one."""
    out: dict[str, list[tuple[tuple[int, int], str]]] = defaultdict(list)
    for cls in vars(schema).values():
        if isinstance(cls, type) and dataclasses.is_dataclass(cls):
            for f in dataclasses.fields(cls):
                if f.metadata.get("key") and f.metadata.get("range"):
                    out[f.metadata["key"]].append((tuple(f.metadata["range"]), f.metadata["shown"] or shown_default(f)))
    return out


def test_every_range_and_default_in_the_example_is_the_schemas() -> None:
    schema_claims = declared()
    claims = [(n, m) for n, line in enumerate(EXAMPLE.read_text().splitlines(), 1) if (m := CLAIM.match(line))]
    assert len(claims) >= 6  # the example does document its statements
    for number, m in claims:
        key, low, high, default = m.group(1), int(m.group(2)), int(m.group(3)), m.group(4)
        assert key in schema_claims, f"etc/flowd.yaml:{number}: {key} is no statement of the schema"
        ranges = {rng for rng, _ in schema_claims[key]}
        assert (low, high) in ranges, f"etc/flowd.yaml:{number}: {key} ({low}..{high}); the schema says {ranges}"
        if default is not None:
            defaults = {d for rng, d in schema_claims[key] if rng == (low, high)}
            assert default.strip() in defaults, f"etc/flowd.yaml:{number}: {key} default {default}; schema: {defaults}"


def test_the_example_makes_no_claim_the_code_dropped() -> None:
    text = EXAMPLE.read_text().lower()
    for stale in ("version 5 first", "v5 is exported first", "parsed and checked now"):
        assert stale not in text
