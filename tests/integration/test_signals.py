"""No signal ends the daemon uncleanly: stop signals export and remove the socket, the rest are ignored."""

from __future__ import annotations

import os
import signal
import socket
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_daemon import Daemon, wait_for

from flowd.runtime.signals import name
from flowd.testing.synth import SynthSpec, write_capture

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "signals.pcap"
    write_capture(SynthSpec(packets=6_000, flows=600, seed=5, duration=30.0), str(path))
    return path


class V5Sink:
    """A UDP socket on 127.0.0.1 that counts the flow records of the v5 datagrams it received."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.setblocking(False)
        self.records = 0

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.sock.getsockname()[1]}"

    def drain(self) -> int:
        while True:
            try:
                data = self.sock.recv(65535)
            except BlockingIOError:
                return self.records
            self.records += struct.unpack_from("!H", data, 2)[0]


@pytest.fixture
def replayed(capture: Path, tmp_path: Path) -> Iterator[tuple[Daemon, V5Sink]]:
    """A daemon that has read the whole capture and holds its flows in the cache."""
    sink = V5Sink()
    d = Daemon(tmp_path, "--replay", str(capture), "--replay-speed", "max", "--flow-server", sink.server,
               "--source-address", "127.0.0.1")
    wait_for(lambda: "finished after" in d.log.read_text())
    yield d, sink
    if d.proc.poll() is None:
        d.proc.kill()
        d.proc.wait()
    sink.sock.close()


def assert_clean_exit(d: Daemon, sink: V5Sink, status: int, log: str) -> None:
    assert status == 0, log
    assert "Traceback" not in log
    flushed = int(log.split("; exported ")[1].split(" cached flows")[0])
    assert flushed > 0
    assert sink.drain() >= flushed  # the final flush reached the collector
    assert not os.path.exists(d.socket)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT], ids=name)
def test_stop_signals_export_every_flow_and_remove_the_socket(replayed: tuple[Daemon, V5Sink], sig: int) -> None:
    d, sink = replayed
    status, log = d.stop(sig)
    assert_clean_exit(d, sink, status, log)


@pytest.mark.parametrize("sig", [signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGPROF, signal.SIGVTALRM,
                                 signal.SIGPWR, signal.SIGIO, signal.SIGXCPU, signal.SIGRTMIN + 3, signal.SIGRTMAX], ids=name)
def test_other_signals_are_ignored(replayed: tuple[Daemon, V5Sink], sig: int) -> None:
    d, sink = replayed
    for _ in range(3):
        d.proc.send_signal(sig)
    wait_for(lambda: f"{name(sig)} ignored" in d.log.read_text())
    assert d.proc.poll() is None
    assert d.call("accounting.status")  # still serving
    status, log = d.stop()
    assert log.count(f"{name(sig)} ignored") == 1  # one line however many came
    assert_clean_exit(d, sink, status, log)


def test_sighup_during_shutdown_neither_kills_nor_reloads(replayed: tuple[Daemon, V5Sink]) -> None:
    d, sink = replayed
    d.proc.send_signal(signal.SIGTERM)
    sent = 0
    while d.proc.poll() is None:  # SIGHUP at every stage of the stop, up to the process's exit
        try:
            d.proc.send_signal(signal.SIGHUP)
        except ProcessLookupError:
            break
        sent += 1
    status = d.proc.wait(timeout=60)
    log = d.log.read_text()
    assert sent > 0
    assert "configuration reloaded" not in log and "reload" not in log.split("SIGTERM: stopping")[-1]
    assert_clean_exit(d, sink, status, log)



@pytest.mark.parametrize("content", ["", "# every statement commented out\n\n"])
def test_sighup_with_an_empty_configuration_keeps_the_running_one(capture: Path, tmp_path: Path, content: str) -> None:
    sink = V5Sink()
    config = tmp_path / "flowd.yaml"
    config.write_text("forwarding-options:\n  sampling:\n    family:\n      inet:\n        output:\n"
                      f"          flow-server:\n            127.0.0.1: {{port: {sink.server.rsplit(':')[1]}, "
                      "version: 5}\n")
    d = Daemon(tmp_path, "--config", str(config), "--replay", str(capture), "--replay-speed", "max")
    wait_for(lambda: "finished after" in d.log.read_text())
    config.write_text(content)  # a file emptied by mistake, or caught half-written
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "reload failed" in d.log.read_text())
    assert f"{config}: the configuration is empty (no statements)" in d.log.read_text()
    status, log = d.stop()
    assert "configuration reloaded" not in log
    assert_clean_exit(d, sink, status, log)  # the running configuration's family still held and exported its flows
    sink.sock.close()
