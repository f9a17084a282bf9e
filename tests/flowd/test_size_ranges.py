"""The packet-size distribution counts each length in the range SIZE_RANGES names for it."""

from __future__ import annotations

import numpy as np

from flowd.core.stats import SIZE_RANGES, IngestStats


def test_every_length_lands_in_its_range() -> None:
    lengths = np.arange(70_000, dtype=np.uint32)  # past 65535: an IPv6 payload length plus its header
    stats = IngestStats()
    stats.count_sizes(lengths)
    want = [int(np.count_nonzero((lengths >= lo) & (lengths <= hi))) for lo, hi in SIZE_RANGES]
    want[-1] += int(np.count_nonzero(lengths > SIZE_RANGES[-1][1]))
    assert stats.sizes.tolist() == want
