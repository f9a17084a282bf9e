"""The daemon's control server in-process, on a fake clock, for tests that talk to it over its real socket."""

from __future__ import annotations

from pathlib import Path

from fakes import FakeClock

from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.control.admission import DEFAULT_LIMITS, Limits
from flowd.control.server import ControlServer
from flowd.runtime.probe import Probe


def make_server(folder: Path, clock: FakeClock, limits: Limits = DEFAULT_LIMITS, **groups: str) -> ControlServer:
    """A control server at FOLDER/flowd.sock over a probe with the built-in configuration (enter it to serve)."""
    cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", 9)], source_address="127.0.0.1")
    return ControlServer(str(folder / "flowd.sock"), Probe(cfg, now=clock.time()), clock, limits=limits, **groups)
