"""A real `flowd` daemon that replays a capture at full speed, for tests that read its front ends (metrics, NETCONF).

``replayed_daemon(tmp, config_text, capture)`` writes the configuration, starts the daemon on a socket in
``tmp`` (exporting to a UDP port nobody reads), waits until the replay has finished (status Idle) and
``ready()`` holds, yields the socket path, and stops the daemon.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from collectors import free_udp_port

REPO = Path(__file__).resolve().parents[1]


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def call(sock: str, method: str, params: dict[str, Any] | None = None) -> Any:
    """One control request's result (asserting it succeeded)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(sock)
        s.sendall(json.dumps({"id": 1, "method": method, "params": params or {}}).encode() + b"\n")
        reply = json.loads(s.makefile("rb").readline())
    assert reply["ok"], reply
    return reply["result"]


@contextmanager
def replayed_daemon(tmp: Path, config_text: str, capture: Path, ready: Callable[[], bool] = lambda: True,
                    timeout: float = 60.0) -> Iterator[str]:
    (tmp / "flowd.yaml").write_text(config_text)
    sock = str(tmp / "flowd.sock")
    log = tmp / "flowd.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flowd", "--config", str(tmp / "flowd.yaml"), "--socket", sock,
                                 "--replay", str(capture), "--replay-speed", "max",
                                 "--flow-server", f"127.0.0.1:{free_udp_port()}", "--active-timeout", "1800",
                                 "--inactive-timeout", "1800"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if call(sock, "accounting.status")["interfaces"][0]["interface_state"] == "Idle" and ready():
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=60)
