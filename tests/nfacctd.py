"""pmacct's nfacctd as a test collector: listen on a loopback port, print every flow to a file.

Usage (skip when nfacctd is missing; tests/run.sh installs Debian's pmacct):

    pytestmark = pytest.mark.skipif(NFACCTD is None, reason="nfacctd (pmacct) is not installed")

    with start_nfacctd(tmp_path) as collector:        # 127.0.0.1:<free port>
        send_somehow("127.0.0.1", collector.port)
        flows = collector.wait_flows(expected_count)  # one dict per aggregate, see ``flows()``
    collector.sequence_warnings()                      # its "expecting flow N but received M" lines

nfacctd aggregates by the primitives in ``AGGREGATE`` (the 5-tuple, ToS, TCP flags, the exporter and
both timestamps, so distinct flows stay distinct) and its print plugin appends each purge to a JSON
lines file every second. nfacctd reads the fields its own way (it is not a decoder flowd's tests
share code with): TCP flags at the template's size, ports from L4_SRC/DST_PORT only, sequence
numbers tracked per exporter address and Source ID / Observation Domain ID (``nfacctd_disable_checks:
false`` makes it log every gap).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from collectors import free_udp_port

NFACCTD: Final = shutil.which("nfacctd")
AGGREGATE: Final = ("peer_src_ip, src_host, dst_host, src_port, dst_port, proto, tos, tcpflags, "
                    "timestamp_start, timestamp_end")
RECEIVE_BUFFER: Final = 4 * 1024 * 1024  # room for a burst of export datagrams (see start_nfacctd)
POLL: Final = 0.05  # seconds between looks at the output file
_PROTOCOLS: Final = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmp6": 58}


class NfacctdError(Exception):
    """nfacctd did not start, or did not print the flows in time."""


@dataclass
class Nfacctd:
    """A running nfacctd whose print plugin appends to ``output``."""

    process: subprocess.Popen[bytes]
    port: int
    output: Path
    log: Path

    def flows(self) -> list[dict[str, Any]]:
        """Every aggregate printed so far: src, dst, sport, dport, proto, tos, tcp_flags, packets, bytes,
        first_ms, last_ms, exporter; ``nfacctd`` holds the printed record."""
        if not self.output.exists():
            return []
        text = self.output.read_text()
        whole = text[:text.rfind("\n") + 1]  # nfacctd may be writing the last line right now
        return [_normalise(json.loads(line)) for line in whole.splitlines() if line.strip()]

    def wait_flows(self, count: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        """The flows once at least ``count`` have been printed (nfacctd purges once a second)."""
        deadline = time.monotonic() + timeout
        while len(flows := self.flows()) < count:
            if self.process.poll() is not None:
                raise NfacctdError(f"nfacctd exited ({self.process.returncode}): {self.log_text()[-500:]}")
            if time.monotonic() > deadline:
                raise NfacctdError(f"nfacctd printed {len(flows)} of {count} flows in {timeout} s")
            time.sleep(POLL)
        return flows

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def sequence_warnings(self) -> list[str]:
        """nfacctd's lines for a sequence number it did not expect (per exporter and domain)."""
        return [line for line in self.log_text().splitlines() if "expecting flow" in line]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> Nfacctd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_nfacctd(workdir: Path, *, host: str = "127.0.0.1", receive_buffer: int | None = RECEIVE_BUFFER) -> Nfacctd:
    """Start nfacctd on ``host`` and a free UDP port; return once it listens.

    ``receive_buffer``: its socket's SO_RCVBUF (``nfacctd_pipe_size``; the kernel caps it at
    net.core.rmem_max); None keeps the system default (net.core.rmem_default, 208 KiB on Linux).
    """
    if NFACCTD is None:
        raise NfacctdError("nfacctd is not installed")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_udp_port(host)
    output, log = workdir / "flows.json", workdir / "nfacctd.log"
    conf = workdir / "nfacctd.conf"
    conf.write_text("\n".join((
        "daemonize: false", f"nfacctd_ip: {host}", f"nfacctd_port: {port}", "nfacctd_disable_checks: false",
        "plugins: print", f"aggregate: {AGGREGATE}", "print_output: json", f"print_output_file: {output}",
        "print_output_file_append: true", "print_refresh_time: 1", "timestamps_since_epoch: true",
        f"logfile: {log}", *((f"nfacctd_pipe_size: {receive_buffer}",) if receive_buffer else ()), "")))
    process = subprocess.Popen([NFACCTD, "-f", str(conf)], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    collector = Nfacctd(process, port, output, log)
    deadline = time.monotonic() + 30
    while "waiting for NetFlow/IPFIX data" not in collector.log_text():
        if process.poll() is not None or time.monotonic() > deadline:
            collector.stop()
            raise NfacctdError(f"nfacctd did not start: {collector.log_text()[-500:]}")
        time.sleep(POLL)
    return collector


def _normalise(rec: dict[str, Any]) -> dict[str, Any]:
    proto = rec["ip_proto"]
    return {
        "src": rec["ip_src"], "dst": rec["ip_dst"], "sport": int(rec["port_src"]), "dport": int(rec["port_dst"]),
        "proto": int(proto) if str(proto).isdigit() else _PROTOCOLS[proto], "tos": int(rec["tos"]),
        "tcp_flags": int(rec["tcp_flags"]), "packets": int(rec["packets"]), "bytes": int(rec["bytes"]),
        "first_ms": round(float(rec["timestamp_start"]) * 1000), "last_ms": round(float(rec["timestamp_end"]) * 1000),
        "exporter": rec["peer_ip_src"], "nfacctd": rec,
    }
