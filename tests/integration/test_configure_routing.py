"""Configuration mode in a real terminal for the statements the tree gained from the validator: a `flowd
routing` prefix-file source and a version 8 flow server with its aggregation, typed, refused when wrong,
committed, running in the daemon, and exporting version 8 aggregates of a replayed capture."""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from ptyshell import CONFIG_PROMPT, PtyShell
from seed_set import NEARLY_EMPTY

from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

sys.path.insert(0, str(Path(__file__).parent))
from test_daemon import Daemon  # noqa: E402

pytestmark = pytest.mark.integration

V8_PROTOCOL_PORT, V8_SOURCE_DESTINATION_PREFIX = 2, 5  # cflowd v8 aggregation numbers
ROUTES = "198.51.100.0/24 64500 192.0.2.254\n10.0.0.0/8 64501\n"
SERVER = "forwarding-options sampling family inet output flow-server 127.0.0.1"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    """A daemon with nothing to export yet, replaying a small capture in a loop."""
    write_capture(SynthSpec(packets=3000, flows=300, seed=5, duration=2.0), str(tmp_path / "t.pcap"))
    (tmp_path / "flowd.conf").write_text(NEARLY_EMPTY)
    d = Daemon(tmp_path, "--config", str(tmp_path / "flowd.conf"), "--replay", str(tmp_path / "t.pcap"),
               "--replay-loop")
    yield d
    if d.proc.poll() is None:
        d.stop()


@pytest.fixture
def collector() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    yield sock
    sock.close()


def refused(shell: PtyShell, line: str, word: str, message: str) -> None:
    """`line` is refused with `message`, the caret under `word` (its last occurrence)."""
    shell.send(line + "\r")
    out = shell.config_prompt().splitlines()
    echoed = next(i for i, text in enumerate(out) if text.endswith(line))
    column = out[echoed].index(line) + line.rindex(word)  # the terminal may show the line twice: the first
    assert out[echoed + 1] == " " * column + "^", "\n".join(out)
    assert out[echoed + 2] == message, "\n".join(out)


def drop_kept_line(shell: PtyShell, line: str) -> None:
    """After a `?` listing the prompt comes back holding ``line``: wait for it, clear it (Ctrl-U), enter nothing."""
    shell.expect(re.escape((CONFIG_PROMPT + line).rstrip()))
    shell.send("\x15\r")
    shell.config_prompt()


def test_routing_and_v8_aggregation_typed_in_configuration_mode(tmp_path: Path, daemon: Daemon,
                                                                collector: socket.socket) -> None:
    port = collector.getsockname()[1]
    routes = tmp_path / "routes.txt"
    routes.write_text(ROUTES)
    shell = PtyShell(Path(daemon.socket), tmp_path, cols=250)  # pytest paths are long: no wrapped lines
    try:
        shell.prompt()
        shell.send("configure\r")
        shell.config_prompt()
        shell.send("set flowd routing ?")
        listing = shell.expect(r"snmp-index +SNMP index to export for an interface \(input and output\)\n")
        assert re.search(r"\n  kernel +Follow this host's routing table \(netlink\): next hop, output interface, "
                         r"mask\n  local-dump +Where `flow-server \.\.\. local-dump` writes", listing), listing
        assert "\n  prefix-file          Static route files\n" in listing
        drop_kept_line(shell, "set flowd routing ")
        shell.send(f"set {SERVER} port 2055 ?")
        listing = shell.expect(r"version9 +Export data in version 9 format\n")
        assert "\n  aggregation          Aggregations of version 8 exports\n" in listing
        assert "\n  no-local-dump        Don't dump cflowd records to log file before exporting\n" in listing
        drop_kept_line(shell, f"set {SERVER} port 2055 ")

        refused(shell, f"set {SERVER} version 7", "7", "syntax error.")
        refused(shell, f"set {SERVER} aggregation protocol-ports", "protocol-ports", "syntax error.")
        refused(shell, "set forwarding-options sampling family inet output aggregate-export-interval 30", "30",
                "error: value out of range: 30 is not within range (90..1800)")
        refused(shell, f"set flowd routing prefix-file {routes} format csv", "csv", "syntax error.")
        refused(shell, "set flowd routing snmp-index eth0 4294967296", "4294967296",
                "error: value out of range: 4294967296 is not within range (0..4294967295)")
        shell.send("show | compare\r")
        assert "+" not in shell.config_prompt()  # nothing of the refused lines reached the candidate

        for line in (f"set flowd routing prefix-file {routes} format flowd",
                     f"set {SERVER} port {port} version 8 aggregation protocol-port",
                     f"set {SERVER} aggregation source-destination-prefix caida-compliant",
                     "set forwarding-options sampling family inet output aggregate-export-interval 120"):
            shell.send(line + "\r")
            assert "error" not in shell.config_prompt()
        shell.send("commit\r")
        assert "commit complete" in shell.config_prompt()
        shell.send("exit\r")
        shell.prompt()
    finally:
        shell.close()

    shown = daemon.cli("show configuration")
    assert shown.returncode == 0, shown.stderr
    assert f"    routing {{\n        prefix-file {routes} {{\n            format flowd;\n" in shown.stdout
    assert re.search(r"flow-server 127\.0\.0\.1 \{\n +port 2055;\n +version 8;\n +aggregation \{\n +protocol-port;\n"
                     r" +source-destination-prefix \{\n +caida-compliant;\n".replace("2055", str(port)), shown.stdout), \
        shown.stdout
    assert "aggregate-export-interval 120;" in shown.stdout
    routing = daemon.cli("show services accounting routing")
    assert routing.returncode == 0, routing.stderr
    assert f"Source: {routes}, Type: prefix-file, State: Loaded\n      IPv4 prefixes: 2, IPv6 prefixes: 0\n" \
        in routing.stdout, routing.stdout
    written = (tmp_path / "flowd.conf").read_text()
    assert "aggregation {" in written and f"prefix-file {routes}" in written
    status = daemon.cli("show services accounting status")
    assert f"  Flow server: 127.0.0.1:{port}, Family: inet, Export format: cflowd v8, Transport: UDP" \
        in status.stdout, status.stdout
    # The daemon exports the replayed flows' aggregates when it stops: version 8 datagrams of both methods.
    assert daemon.stop()[0] == 0
    collector.setblocking(False)
    methods = set()
    with contextlib.suppress(BlockingIOError):
        while True:
            datagram = collector.recv(65536)
            version, count = struct.unpack_from("!HH", datagram)
            assert version == 8 and count > 0
            methods.add(datagram[22])  # the header's aggregation
    assert methods == {V8_PROTOCOL_PORT, V8_SOURCE_DESTINATION_PREFIX}
