"""Each outcome of `flowd` exits with its own documented status (sysexits), and --help and the docs list them."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from flowd.runtime.exit_status import ExitStatus, epilog, markdown

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def flowd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


def pcap(major: int, minor: int) -> bytes:
    return struct.pack("<IHHiIII", 0xA1B2C3D4, major, minor, 0, 0, 65535, 1)


def pcapng(major: int, minor: int) -> bytes:
    body = struct.pack("<IHHq", 0x1A2B3C4D, major, minor, -1)
    length = 12 + len(body)
    return struct.pack("<II", 0x0A0D0D0A, length) + body + struct.pack("<I", length)


@pytest.mark.parametrize("args", [
    ("--bogus",),
    ("--export-version", "7"),
    ("--root", "/tmp/x"),  # only with --install-service
    ("--read", "x.pcap", "--interface", "lo"),
    ("--replay-speed", "-1"),
])
def test_usage_errors_exit_64_not_2(args: tuple[str, ...]) -> None:
    done = flowd(*args)
    assert done.returncode == ExitStatus.USAGE == 64, done.stderr
    assert done.stderr.startswith("usage: flowd") and "Traceback" not in done.stderr


def test_missing_capture_exits_66(tmp_path: Path) -> None:
    done = flowd("--read", str(tmp_path / "nope.pcap"))
    assert done.returncode == ExitStatus.NOINPUT == 66
    assert done.stderr.strip() == f"flowd: {tmp_path / 'nope.pcap'}: No such file or directory"


@pytest.mark.parametrize("name, data", [
    ("pcap-3.0", pcap(3, 0)),
    ("pcapng-2.0", pcapng(2, 0)),
    ("text", b"hello, not a capture\n"),
])
def test_unsupported_or_unknown_format_exits_65(tmp_path: Path, name: str, data: bytes) -> None:
    path = tmp_path / f"{name}.cap"
    path.write_bytes(data)
    done = flowd("--read", str(path), "--flow-server", "127.0.0.1:9", "--source-address", "127.0.0.1")
    assert done.returncode == ExitStatus.DATAERR == 65, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith(f"flowd: {path}: ")


def test_unsupported_pcap_and_pcapng_versions_say_so_alike(tmp_path: Path) -> None:
    (tmp_path / "a.pcap").write_bytes(pcap(3, 0))
    (tmp_path / "b.pcapng").write_bytes(pcapng(2, 0))
    a, b = flowd("--read", str(tmp_path / "a.pcap")), flowd("--read", str(tmp_path / "b.pcapng"))
    assert a.returncode == b.returncode == ExitStatus.DATAERR
    assert "unsupported pcap version 3.0" in a.stderr and "unsupported pcapng version 2.0" in b.stderr


def test_bad_configuration_exits_78(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("forwarding-options:\n  sampling:\n    input:\n      rate: 0\n")
    assert flowd("--check-config", "--config", str(bad)).returncode == ExitStatus.CONFIG == 78
    assert flowd("--read", "-", "--config", str(bad)).returncode == ExitStatus.CONFIG
    assert flowd("--check-config", "--config", str(tmp_path / "missing.yaml")).returncode == ExitStatus.CONFIG
    assert flowd("--check-config").returncode == ExitStatus.OK


def test_flow_server_socket_that_cannot_be_set_up_exits_69(tmp_path: Path) -> None:
    (tmp_path / "empty.pcap").write_bytes(pcap(2, 4))
    # 192.0.2.1 (TEST-NET-1) is not an address of this host: bind() fails, nothing is sent
    done = flowd("--read", str(tmp_path / "empty.pcap"), "--flow-server", "127.0.0.1:9",
                 "--source-address", "192.0.2.1")
    assert done.returncode == ExitStatus.UNAVAILABLE == 69, done.stderr
    assert "Traceback" not in done.stderr


def test_daemon_that_cannot_bind_its_socket_exits_71(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("a regular file where the socket's directory should be\n")
    done = flowd("--socket", str(tmp_path / "file" / "flowd.sock"))
    assert done.returncode == ExitStatus.OSERR == 71, done.stderr
    assert "Traceback" not in done.stderr


def test_help_and_operator_guide_list_every_status() -> None:
    done = flowd("--help")
    assert done.returncode == 0
    assert epilog() in done.stdout
    for code in ExitStatus:
        assert f"  {int(code):>3}  " in done.stdout
    guide = (REPO / "docs" / "operator-guide.md").read_text()
    assert markdown() in guide, "docs/operator-guide.md: paste flowd.runtime.exit_status.markdown() under Exit status"
