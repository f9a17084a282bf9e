"""Real flow collectors for tests: run nfcapd on a loopback port, stop it, read its flows back with nfdump.

Usage (any test; skip when the tools are missing):

    pytestmark = pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")

    with start_nfcapd(tmp_path) as collector:          # listens on 127.0.0.1:<free port>
        send_somehow("127.0.0.1", collector.port)
        collector.wait_idle()                          # every datagram read by nfcapd
    flows = collector.flows()                          # after the stop: one dict per flow

nfcapd writes its file only when it rotates or stops; SIGTERM makes it flush and exit, which is
what ``stop()`` (and leaving the ``with`` block) does. Flags follow nfcapd 1.7 (``-w DIR``, ``-b``,
``-p``, ``-B``); the log goes to ``WORKDIR/nfcapd.log`` so a chatty collector never blocks on a pipe.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

NFCAPD: Final = shutil.which("nfcapd")
NFDUMP: Final = shutil.which("nfdump")
HAVE_NFDUMP: Final = NFCAPD is not None and NFDUMP is not None

POLL_INTERVAL: Final = 0.01  # seconds between looks at /proc/net/udp while waiting for nfcapd
RECEIVE_BUFFER: Final = 8 * 1024 * 1024  # nfcapd -B: room for bursts of export datagrams
# nfdump's JSON protocol numbers of ICMP / ICMPv6, where it reports type and code instead of ports.
_ICMP: Final = (1, 58)


class CollectorError(Exception):
    """nfcapd did not start, did not drain its socket, or nfdump could not read its files."""


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody is bound to right now (bind to port 0, note it, close)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def udp_socket_queue(port: int, *, ipv6: bool = False) -> int | None:
    """Bytes waiting in the receive queue of the local UDP socket bound to ``port``; None if none is."""
    table = Path("/proc/net/udp6" if ipv6 else "/proc/net/udp")
    for line in table.read_text().splitlines()[1:]:
        cols = line.split()
        local, queues = cols[1], cols[4]
        if int(local.rsplit(":", 1)[1], 16) == port:
            return int(queues.split(":")[1], 16)
    return None


@dataclass
class Nfcapd:
    """A running nfcapd writing into ``flowdir``."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    flowdir: Path
    log: Path
    output: str = field(default="", init=False)

    @property
    def ipv6(self) -> bool:
        return ":" in self.host

    def _poll(self, what: str, timeout: float, done: Callable[[], bool]) -> None:
        for _ in range(max(1, int(timeout / POLL_INTERVAL))):
            if done():
                return
            try:
                self.process.wait(POLL_INTERVAL)  # also notices an nfcapd that exited
            except subprocess.TimeoutExpired:
                continue
            raise CollectorError(f"nfcapd exited with status {self.process.returncode} while {what}: "
                                 f"{self.log.read_text().strip()[-500:]}")
        raise CollectorError(f"nfcapd still not done {what} after {timeout} s")

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Return once nfcapd's socket is bound."""
        self._poll("starting", timeout, lambda: udp_socket_queue(self.port, ipv6=self.ipv6) is not None)

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Return once nfcapd has read every datagram queued on its socket."""
        self._poll("reading its socket", timeout,
                   lambda: udp_socket_queue(self.port, ipv6=self.ipv6) in (0, None))

    def stop(self, timeout: float = 10.0) -> str:
        """SIGTERM (nfcapd flushes its file and exits); return its log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise CollectorError(f"nfcapd did not stop within {timeout} s of SIGTERM") from None
        self.output = self.log.read_text()
        return self.output

    def summary(self) -> dict[str, int] | None:
        """nfcapd's own totals from its stop message (Flows, Packets, Bytes, Sequence Errors, ...)."""
        for line in reversed(self.output.splitlines()):
            if line.startswith("Ident:") and "Flows:" in line:
                return {name.strip().lower().replace(" ", "_"): int(value)
                        for name, value in re.findall(r"([A-Za-z][A-Za-z ]*):\s*(\d+)", line)}
        return None

    def flows(self) -> list[dict[str, Any]]:
        """Every flow nfcapd stored (call after ``stop()``), normalised by ``read_flows``."""
        return read_flows(self.flowdir)

    def __enter__(self) -> Nfcapd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_nfcapd(workdir: Path, *, host: str = "127.0.0.1", port: int | None = None,
                 extra_args: tuple[str, ...] = ()) -> Nfcapd:
    """Start nfcapd on ``host:port`` (a free port by default) storing into ``workdir/flows``."""
    if NFCAPD is None:
        raise CollectorError("nfcapd is not installed")
    port = port or free_udp_port(host)
    flowdir = workdir / "flows"
    flowdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "nfcapd.log"
    args = [NFCAPD, "-p", str(port), "-b", host, "-w", str(flowdir), "-B", str(RECEIVE_BUFFER),
            *(("-6",) if ":" in host else ()), *extra_args]
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
    collector = Nfcapd(process, host, port, flowdir, log)
    try:
        collector.wait_ready()
    except BaseException:
        if process.poll() is None:
            process.kill()
            process.wait()
        raise
    return collector


def read_flows(flowdir: Path) -> list[dict[str, Any]]:
    """nfdump's flows from every file in ``flowdir``, one dict each, with these normalised keys:

    src, dst (str), sport, dport (ICMP: 0 and type*256 + code, as v5 carries them), proto, tos,
    tcp_flags (int), packets, bytes, first_ms, last_ms (epoch milliseconds), input, output (ifIndex),
    sampled (bool); ``nfdump`` holds nfdump's own record.
    """
    if NFDUMP is None:
        raise CollectorError("nfdump is not installed")
    if not any(p.name.startswith("nfcapd.") for p in flowdir.iterdir()):
        return []
    done = subprocess.run([NFDUMP, "-N", "-R", str(flowdir), "-o", "json"], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "TZ": "UTC"})
    if done.returncode != 0:
        raise CollectorError(f"nfdump failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return [_normalise(r) for r in _json_objects(done.stdout) if r.get("type") == "FLOW"]


def _json_objects(text: str) -> list[dict[str, Any]]:
    """nfdump's ``-o json``: a JSON array, or (some versions, with -q) objects one after another."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while pos < len(text):
        if text[pos] in " \t\r\n,[]":
            pos += 1
            continue
        obj, pos = decoder.raw_decode(text, pos)
        out.append(obj)
    return out


def _normalise(rec: dict[str, Any]) -> dict[str, Any]:
    proto = int(rec["proto"])
    if proto in _ICMP:
        sport, dport = 0, int(rec.get("icmp_type", 0)) * 256 + int(rec.get("icmp_code", 0))
    else:
        sport, dport = int(rec.get("src_port", 0)), int(rec.get("dst_port", 0))
    return {
        "src": rec.get("src4_addr") or rec.get("src6_addr"),
        "dst": rec.get("dst4_addr") or rec.get("dst6_addr"),
        "sport": sport, "dport": dport, "proto": proto, "tos": int(rec.get("src_tos", 0)),
        "tcp_flags": _flags(str(rec.get("tcp_flags", ""))),
        "packets": int(rec["in_packets"]), "bytes": int(rec["in_bytes"]),
        "first_ms": _epoch_ms(rec["first"]), "last_ms": _epoch_ms(rec["last"]),
        "input": int(rec.get("input_snmp", 0)), "output": int(rec.get("output_snmp", 0)),
        "sampled": bool(rec.get("sampled", 0)), "nfdump": rec,
    }


def _flags(text: str) -> int:
    """nfdump's flag string (``...AP.SF``, one position per bit, highest first) → the flag byte."""
    return sum(1 << (len(text) - 1 - i) for i, ch in enumerate(text) if ch != ".")


def _epoch_ms(text: str) -> int:
    """nfdump's ``2023-11-14T22:13:21.500`` (printed with TZ=UTC) → milliseconds since the epoch."""
    stamp = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=UTC)
    return round(stamp.timestamp() * 1000)
