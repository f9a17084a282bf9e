"""Start-up imports what the chosen mode and configuration need, no more: the modules a `flowd --read` run
has loaded when it ends (no timing; `benchmarks/startup.py` measures the time).

A plain run (the embedded default: v5 over UDP, one process, no route source) does without the YAML parser,
multiprocessing and the shard machinery, asyncio, the v8/v9/IPFIX encoders, the TCP sender, the routing
tables and the control protocol; a run that configures one of them loads it.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dpkt
import pytest

pytestmark = pytest.mark.integration

# What a plain --read must not load (each is loaded where the configuration asks for it).
OPTIONAL = (
    "yaml", "flowd.config.yaml_text", "flowd.config.diagnosis",  # YAML text, --check-config
    "multiprocessing", "flowd.runtime.batch_shards", "flowd.runtime.batch_chunks", "flowd.runtime.shard",  # --workers
    "asyncio", "uvloop", "logging",  # the daemon
    "flowd.export.server_export", "flowd.export.v9", "flowd.export.ipfix", "flowd.export.templates",  # v9/IPFIX
    "flowd.export.tcp",  # transport tcp
    "flowd.export.aggregation", "flowd.export.v8", "flowd.export.localdump",  # version 8, local-dump
    "flowd.runtime.routes", "flowd.routing.prefixfile", "flowd.routing.rib", "flowd.routing.compiled_lpm",  # routing
    "flowd.control.protocol", "json",  # the control socket
    "encodings.idna",  # resolving a flow server's address given as text
)

# Run flowd's entry point as the `flowd` command does, then list the modules loaded.
RUN = """\
import sys
modules_file = sys.argv.pop(1)
from flowd.__main__ import main
status = main()
with open(modules_file, "w") as out:
    out.write("\\n".join(sorted(sys.modules)))
sys.exit(status)
"""


@pytest.fixture(scope="module")
def one_packet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    udp = dpkt.udp.UDP(sport=40000, dport=53, data=b"x" * 32)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=bytes([127, 0, 0, 1]), dst=bytes([127, 0, 0, 2]), p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = len(ip)
    path = tmp_path_factory.mktemp("startup") / "one.pcap"
    with path.open("wb") as f:
        dpkt.pcap.Writer(f).writepkt(bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip)),
                                     ts=1_700_000_000.0)
    return path


@pytest.fixture
def sink() -> Iterator[int]:
    """A UDP collector on 127.0.0.1 (the datagrams wait in its buffer); its port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def loaded(tmp_path: Path, *args: str) -> set[str]:
    """The modules `flowd ARGS` has loaded when it ends (it must succeed)."""
    listing = tmp_path / "modules"
    done = subprocess.run([sys.executable, "-c", RUN, str(listing), *args], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "Flows created: 1, exported: 1" in done.stdout
    return set(listing.read_text().split())


def test_plain_read_loads_none_of_the_optional_machinery(one_packet: Path, sink: int, tmp_path: Path) -> None:
    modules = loaded(tmp_path, "--read", str(one_packet), "--flow-server", f"127.0.0.1:{sink}")
    assert {"flowd.runtime.batch_mode", "flowd.export.v5", "flowd.config.default_tree"} <= modules
    assert sorted(modules.intersection(OPTIONAL)) == []


def test_what_a_run_configures_is_loaded(one_packet: Path, sink: int, tmp_path: Path) -> None:
    """The same guard seen from the other side: each optional piece is loaded when a run asks for it."""
    config = tmp_path / "flowd.yaml"
    config.write_text(f"forwarding-options:\n  sampling:\n    input: {{rate: 1}}\n    family:\n      inet:\n"
                      f"        output:\n          flow-server:\n            127.0.0.1: {{port: {sink}, "
                      f"version9: {{template: t}}}}\n"
                      "services:\n  flow-monitoring:\n    version9:\n      template:\n        t: {ipv4-template: true}\n")
    modules = loaded(tmp_path, "--read", str(one_packet), "--config", str(config), "--workers", "2")
    assert {"yaml", "flowd.config.yaml_text", "flowd.export.server_export", "flowd.export.v9",
            "multiprocessing", "flowd.runtime.batch_shards"} <= modules
    assert "flowd.export.tcp" not in modules
