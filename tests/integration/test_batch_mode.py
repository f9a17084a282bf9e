"""`flowd --read` end to end: ground truth through a real nfcapd, every shared capture without a traceback."""

from __future__ import annotations

import io
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from collectors import HAVE_NFDUMP, start_nfcapd

from flowd.config.loader import load_config
from flowd.config.overrides import with_overrides
from flowd.runtime.batch_mode import run_batch
from flowd.testing.synth import SynthSpec, write_capture

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO.parent / "shared" / "pcaps"

pytestmark = pytest.mark.integration


def flowd(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowd", *args], cwd=REPO, capture_output=True,
                          text=stdin is None, input=stdin, timeout=300)


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    path = tmp_path_factory.mktemp("synth") / "truth.pcap"
    truth = write_capture(SynthSpec(packets=60_000, flows=6_000, seed=7, duration=240.0), str(path))
    return path, truth


@pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")
def test_v5_export_collected_by_nfcapd_equals_ground_truth(capture: tuple[Path, object], tmp_path: Path) -> None:
    path, truth = capture
    with start_nfcapd(tmp_path / "nfcapd") as collector:
        done = flowd("--read", str(path), "--flow-server", f"127.0.0.1:{collector.port}",
                     "--source-address", "127.0.0.1", "--active-timeout", "60", "--inactive-timeout", "15")
        assert done.returncode == 0, done.stderr
        collector.wait_idle()
    got = Counter((f["src"], f["dst"], f["sport"], f["dport"], f["proto"], f["tos"], f["packets"], f["bytes"],
                   f["tcp_flags"]) for f in collector.flows())
    want = Counter((t.src, t.dst, t.sport, t.dport, t.proto, t.tos, t.packets, t.bytes, t.tcp_flags)
                   for t in truth.flows if ":" not in t.src)  # v5 carries IPv4 only
    assert sum(want.values()) > 5_000
    assert got == want
    summary = done.stdout
    assert f"Packets read: {truth.frames}," in summary
    assert f"header too small {truth.header_too_small}" in summary
    assert f"bad IP header {truth.bad_ip_header}" in summary
    assert truth.truncated and f"truncated {truth.truncated}" in summary
    assert f"exported: {sum(want.values())}" in summary


@pytest.mark.skipif(not HAVE_NFDUMP, reason="nfcapd/nfdump not installed")
def test_flow_times_survive_export(capture: tuple[Path, object], tmp_path: Path) -> None:
    path, truth = capture
    with start_nfcapd(tmp_path / "nfcapd") as collector:
        done = flowd("--read", str(path), "--flow-server", f"127.0.0.1:{collector.port}",
                     "--source-address", "127.0.0.1", "--active-timeout", "60", "--inactive-timeout", "15")
        assert done.returncode == 0, done.stderr
        collector.wait_idle()
    # v5 carries First/Last in ms of sysUptime; the boot time the collector derives from the header
    # (unix_secs/unix_nsecs minus sysUptime) is a whole ms, so they come back exact (to the ms,
    # truncated from the capture's µs, as every export format does)
    ms = lambda t: int(round(t * 1e6)) // 1000  # noqa: E731
    want = {(t.src, t.dst, t.sport, t.dport, t.proto, ms(t.first), ms(t.last)) for t in truth.flows
            if ":" not in t.src}
    got = {(f["src"], f["dst"], f["sport"], f["dport"], f["proto"], f["first_ms"], f["last_ms"])
           for f in collector.flows()}
    assert got == want


def test_stdin_and_gzip_give_the_same_summary(capture: tuple[Path, object], tmp_path: Path) -> None:
    import gzip

    path, _ = capture
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    server = f"127.0.0.1:{sink.getsockname()[1]}"
    plain = flowd("--read", str(path), "--flow-server", server, "--source-address", "127.0.0.1")
    zipped = flowd("--read", "-", "--flow-server", server, "--source-address", "127.0.0.1",
                   stdin=gzip.compress(path.read_bytes(), compresslevel=1))
    sink.close()
    assert plain.returncode == 0 and zipped.returncode == 0
    strip = lambda text: [l for l in text.splitlines() if not l.startswith(("Elapsed", "Flow server"))]  # noqa: E731
    assert strip(plain.stdout) == strip(zipped.stdout.decode())


def test_missing_file_is_one_line_and_exit_66(tmp_path: Path) -> None:
    done = flowd("--read", str(tmp_path / "nope.pcap"))
    assert done.returncode == 66  # EX_NOINPUT
    assert len(done.stderr.strip().splitlines()) == 1 and "nope.pcap" in done.stderr
    assert "Traceback" not in done.stderr


def test_truncated_file_exports_what_came_before(capture: tuple[Path, object], tmp_path: Path) -> None:
    path, _ = capture
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(path.read_bytes()[: 3_000_000 + 7])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:  # a flow server that takes the export
        sink.bind(("127.0.0.1", 0))
        done = flowd("--read", str(cut), "--flow-server", f"127.0.0.1:{sink.getsockname()[1]}",
                     "--source-address", "127.0.0.1")
    assert done.returncode == 65  # EX_DATAERR
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "byte" in lines[0]
    assert int(done.stdout.split("Packets read: ")[1].split(",")[0]) > 10_000


def test_bad_config_names_key_path_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("forwarding-options:\n  sampling:\n    input:\n      rate: 0\n")
    done = flowd("--check-config", "--config", str(bad))
    assert done.returncode == 78  # EX_CONFIG
    assert done.stderr.strip() == f"{bad}:4: forwarding-options.sampling.input.rate: expected 1..16000000, got 0"
    ok = flowd("--check-config")
    assert ok.returncode == 0, ok.stderr


@pytest.mark.skipif(not PCAPS.is_dir(), reason="../shared/pcaps is absent")
def test_every_shared_capture_goes_through_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # takes the export (never read: the kernel drops)
    sink.bind(("127.0.0.1", 0))
    cfg = with_overrides(load_config(None), flow_servers=[("127.0.0.1", sink.getsockname()[1])],
                         source_address="127.0.0.1")
    files = sorted(p for sub in ("real", "malformed", "flow-export") for p in (PCAPS / sub).rglob("*")
                   if p.is_file())
    assert len(files) > 500
    for path in files:
        out = io.StringIO()
        status = run_batch(str(path), cfg, out=out)
        err = capsys.readouterr().err
        assert status in (0, 65, 66), path  # success, damaged or unsupported, unreadable
        assert "Traceback" not in err
        if status:
            assert len(err.strip().splitlines()) == 1, (path, err)
        else:
            assert out.getvalue().startswith("Packets read: "), path
    sink.close()
