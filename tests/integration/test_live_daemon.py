"""The real daemon capturing live: `flowd --interface vb` in a private network namespace, fed through a veth pair.

Namespace a holds the sender's end (``va``), namespace b the daemon's (``vb``), its loopback, and the
collector: a UDP socket on b's 127.0.0.1 that decodes the v5 datagrams with dpkt. A synthetic
capture with ground truth (whole frames, 5% of them IPv4 fragments, each counted as a packet as file
mode counts it, with one or two capture workers) is replayed into ``va`` at a moderate rate; the show commands are
asked over the control socket (a path, so it is reachable from outside the namespace); then SIGTERM,
and the exported flows are compared with the truth flow by flow. Timeouts are 1800 s, so flows end
only on FIN/RST and at the final flush, whatever the pace of the replay.

Root and ``ip netns`` are needed (CI runs as root); without them every test here is skipped.
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dpkt
import pytest
from control_call import call_raw
from netns import (
    Namespace,
    add_veth,
    namespaces,
    sender_command,
    sender_env,
    unavailable,
)

from flowd.testing.synth import write_capture
from flowd.testing.truth import GroundTruth, SynthSpec, TruthPackets, truth_flows

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 1800  # flow timeouts, seconds: nothing times out during a test
PPS = 40_000  # the sender's rate: moderate
GUARD = 30.0  # seconds any wait may take before the test fails

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(unavailable() is not None, reason=unavailable() or "")]

Totals = collections.Counter[tuple[str, str, int, int, int, int, int, int, int]]


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GroundTruth]:
    path = tmp_path_factory.mktemp("live-daemon") / "synth.pcap"
    # whole frames: a replayed snaplen cut would be a truncated frame on the wire (flowd drops those)
    spec = SynthSpec(packets=12_000, flows=1_500, damaged_share=0, fragment_share=0.05, snaplen=65_535, seed=5)
    return path, write_capture(spec, path)


@pytest.fixture
def veth() -> Iterator[tuple[Namespace, Namespace]]:
    """Namespace a (sender, ``va``) and b (daemon and collector, ``vb`` and a working loopback)."""
    with namespaces(2) as (a, b):
        add_veth(a, "va", b, "vb")
        b.ip("link", "set", "lo", "up")
        yield a, b


def wait_for(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


class Collector:
    """A UDP socket on namespace b's 127.0.0.1 that keeps every v5 record it receives."""

    def __init__(self, ns: Namespace) -> None:
        with ns.inside():
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.records: list[dpkt.netflow.Netflow5.NetflowRecord] = []

    def drain(self) -> list[dpkt.netflow.Netflow5.NetflowRecord]:
        """Every record queued now (the daemon has exited, so everything it sent is queued)."""
        while True:
            try:
                self.records.extend(dpkt.netflow.Netflow5(self.sock.recv(65535)).data)
            except BlockingIOError:
                return self.records


class LiveDaemon:
    """`flowd --interface vb` running inside namespace b."""

    def __init__(self, ns: Namespace, tmp: Path, collector: Collector, *, workers: int) -> None:
        self.socket = str(tmp / "flowd.sock")
        self.log = tmp / "flowd.runtime.log"
        self.workers = workers
        config = tmp / "flowd.yaml"
        config.write_text(f"flowd:\n  capture: {{workers: {workers}, ring-blocks: 16, block-size: 262144}}\n")
        self.proc = subprocess.Popen(
            ns.exec_args(sys.executable, "-m", "flowd", "--socket", self.socket, "--config", str(config),
                         "--interface", "vb", "--flow-server", f"127.0.0.1:{collector.port}",
                         "--active-timeout", str(TIMEOUT), "--inactive-timeout", str(TIMEOUT)),
            cwd=REPO, env=sender_env(), stdout=subprocess.DEVNULL, stderr=open(self.log, "w"))
        try:
            wait_for("the daemon's capture", lambda: self.alive() and os.path.exists(self.socket)
                     and self.capture_state() == ("up", workers))
        except BaseException:
            self.kill()
            raise

    def kill(self) -> None:
        """Stop a daemon that is still running without waiting for its export (a test that failed)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=60)

    def alive(self) -> bool:
        assert self.proc.poll() is None, self.log.read_text()
        return True

    def call(self, method: str, params: dict[str, object] | None = None) -> dict[str, object]:
        reply = call_raw(self.socket, method, params)
        assert reply["ok"], reply
        return reply["result"]["interfaces"][0]  # type: ignore[no-any-return]

    def capture(self) -> dict[str, object]:
        [vb] = self.call("accounting.status")["captures"]  # type: ignore[misc]
        return vb  # type: ignore[no-any-return]

    def capture_state(self) -> tuple[str, int] | None:
        try:
            vb = self.capture()
        except (OSError, ValueError):  # not listening yet, or the capture not open yet
            return None
        return str(vb["state"]), len(vb["workers"])  # type: ignore[arg-type]

    def kernel(self) -> list[dict[str, int]]:
        return self.call("accounting.errors")["kernel_statistics"]  # type: ignore[return-value]

    def shell(self, command: str) -> str:
        done = subprocess.run([sys.executable, "-m", "shell", "--socket", self.socket, "-c", command],
                              cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(timeout=60)
        log = self.log.read_text()
        assert status == 0 and "Traceback" not in log, log
        return log


def replay(a: Namespace, path: Path, start: int = 0, stop: int | None = None) -> None:
    done = subprocess.run(sender_command(a, "va", path, start=start, stop=stop, pps=PPS), env=sender_env(),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr


def exported(records: list[dpkt.netflow.Netflow5.NetflowRecord], ifindex: int | None = None) -> Totals:
    return collections.Counter(
        (socket.inet_ntoa(r.src_addr.to_bytes(4, "big")), socket.inet_ntoa(r.dst_addr.to_bytes(4, "big")),
         r.src_port, r.dst_port, r.ip_proto, r.tos, r.pkts_sent, r.bytes_sent, r.tcp_flags)
        for r in records if ifindex is None or r.input_iface == ifindex)


def truth_v4(packets: TruthPackets) -> Totals:
    return collections.Counter((f.src, f.dst, f.sport, f.dport, f.proto, f.tos, f.packets, f.bytes, f.tcp_flags)
                               for f in truth_flows(packets, active=TIMEOUT, inactive=TIMEOUT) if "." in f.src)


def part(packets: TruthPackets, first: int, stop: int) -> TruthPackets:
    mask = (packets.frame >= first) & (packets.frame < stop)
    return TruthPackets(ts=packets.ts[mask], key=packets.key[mask], length=packets.length[mask],
                        tcp_flags=packets.tcp_flags[mask], frame=packets.frame[mask], keys=packets.keys)


def differences(got: Totals, want: Totals) -> str:
    missing, extra = want - got, got - want
    return (f"{sum(missing.values())} flows missing, e.g. {list(missing)[:3]}; "
            f"{sum(extra.values())} unexpected, e.g. {list(extra)[:3]}")


@pytest.fixture
def live_daemon() -> Iterator[Callable[..., LiveDaemon]]:
    """Starts LiveDaemons; one still running when the test ends (it failed) is killed, not left behind."""
    started: list[LiveDaemon] = []

    def start(*args: Any, **kwargs: Any) -> LiveDaemon:
        started.append(LiveDaemon(*args, **kwargs))
        return started[-1]

    yield start
    for daemon in started:
        daemon.kill()


def test_one_and_two_workers_export_the_ground_truth_without_drops(
        veth: tuple[Namespace, Namespace], capture: tuple[Path, GroundTruth], tmp_path: Path,
        live_daemon: Callable[..., LiveDaemon]) -> None:
    a, b = veth
    path, truth = capture
    want = truth_v4(truth.packets)
    for workers in (1, 2):
        collector = Collector(b)
        here = tmp_path / f"workers-{workers}"
        here.mkdir()
        daemon = live_daemon(b, here, collector, workers=workers)
        replay(a, path)
        wait_for("every frame in the kernel statistics",
                 lambda d=daemon: sum(k["packets"] for k in d.kernel()) >= truth.frames)  # type: ignore[misc]
        kernel = daemon.kernel()
        assert [(k["worker"], k["interface"], k["drops"]) for k in kernel] == [(w, "vb", 0) for w in range(workers)]
        assert sum(k["packets"] for k in kernel) == truth.frames
        assert all(k["packets"] > 0 for k in kernel), kernel  # the fanout hash spreads the flows
        assert "PPS overload: No" in daemon.shell("show services accounting errors")
        packets = sum(k[6] * n for k, n in want.items())
        # the kernel counts a frame when it writes it to the ring; the flow cache sees it when its block is
        # handed over (full, or after the block timeout)
        wait_for("every frame in the flow cache",
                 lambda d=daemon: d.call("accounting.flow")["flow_packets"] >= packets)  # type: ignore[misc]
        flow = daemon.call("accounting.flow")  # summed over the workers
        assert flow["flow_packets"] == packets
        assert flow["total_flows"] == sum(want.values())
        top = daemon.call("accounting.flow_detail", {"limit": 5})["flows"]  # merged and ranked again
        cached = sorted((k[7] for k, n in want.items() for _ in range(n) if not k[8] & 0x05), reverse=True)
        assert [f["bytes"] for f in top] == cached[:5]  # type: ignore[index, union-attr]
        log = daemon.stop()
        assert f"stopping: {truth.frames} frames ingested" in log
        got = exported(collector.drain())
        assert got == want, f"{workers} workers: {differences(got, want)}"


def test_an_interface_deleted_and_recreated_is_reattached(
        veth: tuple[Namespace, Namespace], capture: tuple[Path, GroundTruth], tmp_path: Path,
        live_daemon: Callable[..., LiveDaemon]) -> None:
    a, b = veth
    path, truth = capture
    half = truth.frames // 2
    collector = Collector(b)
    daemon = live_daemon(b, tmp_path, collector, workers=2)
    before = daemon.capture()["ifindex"]
    replay(a, path, stop=half)
    wait_for("the first half", lambda: sum(k["packets"] for k in daemon.kernel()) >= half)

    b.ip("link", "del", "vb")  # takes va with it
    wait_for("the detach", lambda: daemon.capture()["state"] == "detached: interface deleted")
    add_veth(a, "va", b, "vb")
    wait_for("the re-attach of both workers", lambda: daemon.capture_state() == ("up", 2))
    after = daemon.capture()["ifindex"]
    assert isinstance(before, int) and isinstance(after, int) and after != before

    status = daemon.shell("show services accounting status")
    assert "  Capture interface: vb, State: up, SNMP index: " + str(after) in status
    assert "vb: detached: interface deleted\n" in status and f"vb: re-attached, ifindex {after}\n" in status

    replay(a, path, start=half)
    wait_for("the second half", lambda: sum(k["packets"] for k in daemon.kernel()) >= truth.frames)
    assert sum(k["drops"] for k in daemon.kernel()) == 0
    daemon.stop()

    records = collector.drain()
    assert {r.input_iface for r in records} == {before, after}
    for index, first, stop in ((before, 0, half), (after, half, truth.frames)):
        got, want = exported(records, index), truth_v4(part(truth.packets, first, stop))
        assert got == want, f"ifindex {index}: {differences(got, want)}"


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
@pytest.mark.parametrize("workers", [1, 2])
def test_without_cap_net_raw_the_error_names_the_capability(tmp_path: Path, workers: int) -> None:
    config = tmp_path / "flowd.yaml"
    config.write_text(f"flowd:\n  capture: {{workers: {workers}}}\n")
    done = subprocess.run(
        ["setpriv", "--bounding-set=-net_raw", sys.executable, "-m", "flowd", "--socket", str(tmp_path / "s"),
         "--config", str(config), "--interface", "lo", "--flow-server", "127.0.0.1:9"],
        cwd=REPO, env=sender_env(), capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 71  # EX_OSERR
    assert "Traceback" not in done.stderr, done.stderr
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line]
    assert len(errors) == 1, done.stderr
    assert errors[0].endswith("lo: capturing needs CAP_NET_RAW; grant it with AmbientCapabilities=CAP_NET_RAW in the "
                              "systemd unit, or start flowd with `sudo setpriv --reuid=USER --regid=GROUP "
                              "--init-groups --inh-caps=+net_raw --ambient-caps=+net_raw flowd ...` (setcap on a "
                              "virtualenv's python does not carry over to it)")
