"""`flowd --demo`: a newcomer's first minute — a daemon replaying a sample capture, and the shell on it.

No root needed: the sample capture is made by flowd.testing.synth (documentation address ranges only), the
control socket lives in a private temporary directory, and records go to 127.0.0.1:2055.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from flowd.testing.synth import SynthSpec, write_capture

SAMPLE = SynthSpec(packets=40_000, flows=2_000, seed=2, duration=120.0, damaged_share=0.0005)
READY_TIMEOUT = 20.0


def sample_capture() -> Path:
    """The demo capture, made once and kept in the user's cache directory."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flowd"
    path = cache / f"demo-{SAMPLE.seed}-{SAMPLE.packets}.pcap"
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        write_capture(SAMPLE, str(tmp))
        tmp.replace(path)
    return path


def run_demo(config: str | None) -> int:
    capture = sample_capture()
    with tempfile.TemporaryDirectory(prefix="flowd-demo-") as tmp:
        sock = str(Path(tmp) / "flowd.sock")
        log = open(Path(tmp) / "flowd.runtime.log", "w")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "flowd", "--replay", str(capture), "--replay-loop", "--socket", sock,
             "--flow-server", "127.0.0.1:2055", "--source-address", "127.0.0.1",
             *(["--config", config] if config else [])],
            stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not os.path.exists(sock):
                if daemon.poll() is not None or time.monotonic() > deadline:
                    log.close()
                    print(f"flowd: the demo daemon did not start:\n{(Path(tmp) / 'flowd.runtime.log').read_text()}",
                          file=sys.stderr)
                    return 1
                time.sleep(0.05)
            print("flowd demo: a daemon is replaying a sample capture in a loop, at packet timing.\n"
                  "Try: show services accounting flow-detail limit 10   (Tab completes, ? helps, "
                  "exit leaves)\n")
            return subprocess.call([sys.executable, "-m", "shell", "--socket", sock])
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
            log.close()
