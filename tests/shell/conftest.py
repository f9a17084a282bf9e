"""Fixtures for the shell tests: a short socket path and a daemon double answering with the seed's values."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from shell_daemon import DaemonDouble
from shell_seed import SEED_RESULTS


@pytest.fixture
def sock_path() -> Iterator[Path]:
    """A socket path short enough for sun_path (pytest's tmp_path can exceed 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="flowcli-"))
    try:
        yield folder / "flowd.sock"
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def daemon(sock_path: Path) -> Iterator[DaemonDouble]:
    """A running daemon double serving SEED_RESULTS on `sock_path`."""
    double = DaemonDouble(sock_path, SEED_RESULTS).start()
    try:
        yield double
    finally:
        double.stop()
