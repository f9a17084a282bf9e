"""flowd as a systemd service: the unit passes systemd-analyze, the installer lays out its files, a real
daemon speaks sd_notify, logs in journal form, and runs inside the sandbox the unit sets up
(MemoryDenyWriteExecute through the kernel's PR_SET_MDWE; SystemCallFilter checked against strace)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowd.runtime.install import CHECKED_IN_FLOWD, service_config_text, unit_text
from flowd.runtime.notify import socket_address
from flowd.testing.synth import write_capture
from flowd.testing.truth import SynthSpec

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "systemd" / "flowd.service"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or ""
UCRED = struct.Struct("3i")
PR_SET_MDWE, PR_GET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 66, 1

pytestmark = pytest.mark.integration

needs_systemd_analyze = pytest.mark.skipif(not SYSTEMD_ANALYZE,
                                           reason="systemd-analyze not installed (Debian package systemd)")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory whose socket paths fit sun_path (pytest's tmp_path can exceed 108 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="flowd-svc-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def launcher(tmp_path: Path) -> Path:
    """A `flowd` command for this checkout, as pip's console-script launcher would be."""
    path = tmp_path / "bin" / "flowd"
    path.parent.mkdir()
    path.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(REPO)!r})\n"
                    "from flowd.__main__ import main\nsys.exit(main())\n")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("synth") / "small.pcap"
    write_capture(SynthSpec(packets=3_000, flows=300, seed=3, duration=10.0), str(path))
    return path


def flowd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowd", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=60)


# -- the unit ------------------------------------------------------------------------------------------

def test_the_checked_in_unit_is_the_installers() -> None:
    assert UNIT.read_text() == unit_text(CHECKED_IN_FLOWD), "regenerate: python -m flowd.runtime.install --unit > " \
                                                            "systemd/flowd.service"


@needs_systemd_analyze
def test_systemd_analyze_verify(tmp_path: Path, launcher: Path) -> None:
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(UNIT)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in (done.stdout + done.stderr).splitlines()
                  if not (line.endswith(f"Command {CHECKED_IN_FLOWD} is not executable: No such file or directory")
                          and not os.path.exists(CHECKED_IN_FLOWD))]
    assert complaints == []
    installed = tmp_path / "flowd.service"  # as the installer writes it: an existing flowd command
    installed.write_text(unit_text(str(launcher)))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(installed)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_systemd_analyze
def test_security_exposure_stays_low(tmp_path: Path, launcher: Path) -> None:
    installed = tmp_path / "flowd.service"
    installed.write_text(unit_text(str(launcher)))
    done = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=true", "--no-pager", str(installed)],
                          capture_output=True, text=True, timeout=60)
    if "--offline" in done.stderr:
        pytest.skip("systemd-analyze security --offline needs systemd >= 250")
    level = re.search(r"Overall exposure level for flowd.service: ([0-9.]+)", done.stdout)
    assert level is not None, done.stdout + done.stderr
    assert float(level.group(1)) <= 1.7  # docs/security.md quotes this number


# -- the installer -------------------------------------------------------------------------------------

def accounts() -> tuple[str, str]:
    return Path("/etc/passwd").read_text(), Path("/etc/group").read_text()


def test_install_service_stages_the_files_under_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    before = accounts()
    done = flowd("--install-service", "--root", str(root), "--flowd-path", "/opt/flowd/bin/flowd")
    assert done.returncode == 0, done.stderr
    config = root / "etc/flowd/flowd.yaml"
    unit = root / "etc/systemd/system/flowd.service"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "etc/flowd/flowd.yaml", "etc/systemd/system/flowd.service"]
    assert (config.stat().st_mode & 0o777, unit.stat().st_mode & 0o777) == (0o644, 0o644)
    assert config.read_text() == service_config_text()
    assert unit.read_text() == unit_text("/opt/flowd/bin/flowd")
    assert "ExecStart=/opt/flowd/bin/flowd --config /etc/flowd/flowd.yaml" in unit.read_text()
    assert "  systemctl daemon-reload && systemctl enable --now flowd" in done.stdout.splitlines()
    assert any(line.startswith("  usermod -aG flowd USER ") for line in done.stdout.splitlines())
    checked = flowd("--check-config", "--config", str(config))
    assert (checked.returncode, checked.stdout) == (0, "configuration check succeeds\n")
    same = flowd("--install-service", "--root", str(root), "--flowd-path", "/opt/flowd/bin/flowd")
    assert "/etc/systemd/system/flowd.service  unchanged" in same.stdout

    config.write_text(config.read_text() + "# edited by the operator\n")
    again = flowd("--install-service", "--root", str(root), "--flowd-path", "/usr/bin/flowd")
    assert again.returncode == 0, again.stderr
    assert "/etc/flowd/flowd.yaml              kept (exists)" in again.stdout
    assert "/etc/systemd/system/flowd.service  updated (ExecStart=/usr/bin/flowd)" in again.stdout
    assert config.read_text().endswith("# edited by the operator\n")
    assert unit.read_text() == unit_text("/usr/bin/flowd")
    assert accounts() == before  # --root never touches the host's users and groups


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_the_installer_gives_the_configuration_to_the_service_user(tmp_path: Path) -> None:
    from flowd.runtime.install import own_config

    root = tmp_path / "root"
    assert flowd("--install-service", "--root", str(root), "--flowd-path", "/usr/bin/flowd").returncode == 0
    steps = own_config(root, user="nobody", group="nogroup")  # accounts every Debian system has
    owners = {(p.stat().st_uid, p.stat().st_gid) for p in (root / "etc/flowd", root / "etc/flowd/flowd.yaml")}
    assert owners == {(pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)}
    assert [(s.what, s.outcome) for s in steps] == [("/etc/flowd", "owner nobody:nogroup (commit writes the "
                                                                  "configuration)")]
    unit = UNIT.read_text()
    assert "\nReadWritePaths=/etc/flowd\nStateDirectory=flowd\n" in unit and "\nProtectSystem=strict\n" in unit


def test_the_installed_configuration_turns_the_control_groups_on(tmp_path: Path) -> None:
    from flowd.config.loader import parse_config

    cfg = parse_config(service_config_text(), source="installed", syntax="yaml")
    assert (cfg.control.read_group, cfg.control.admin_group) == ("flowd", "flowd-admin")


def test_install_service_finds_the_flowd_command_it_runs_as(tmp_path: Path, launcher: Path) -> None:
    done = subprocess.run([str(launcher), "--install-service", "--root", str(tmp_path / "root")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    unit = (tmp_path / "root/etc/systemd/system/flowd.service").read_text()
    assert f"ExecStart={launcher} --config /etc/flowd/flowd.yaml\n" in unit


@pytest.mark.parametrize("args, error", [
    (["--root", "R", "--flowd-path", "bin/flowd"], "flowd: the flowd path must be absolute and without spaces, "
                                                   "got 'bin/flowd'\n"),
    (["--root", "R", "--flowd-path", "/usr/bin/flowd", "--admin", "alice"],
     "flowd: --reader/--admin change the host's accounts; they cannot be combined with --root\n"),
])
def test_install_service_errors_are_one_line(tmp_path: Path, args: list[str], error: str) -> None:
    args = [str(tmp_path / a) if a == "R" else a for a in args]
    done = flowd("--install-service", *args)
    assert (done.returncode, done.stderr, done.stdout) == (71, error, "")  # EX_OSERR
    assert not (tmp_path / "R").exists()


def test_installing_on_the_host_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowd.runtime import install

    monkeypatch.setattr("flowd.runtime.install.os.geteuid", lambda: 1000)
    with pytest.raises(install.InstallError, match=r"installing the service needs root \(sudo flowd "
                                                     r"--install-service\), or --root DIR to stage the files"):
        install.install(root=None, flowd="/usr/bin/flowd")


def test_install_only_flags_need_install_service() -> None:
    done = flowd("--root", "/tmp/x")
    assert done.returncode == 64 and done.stderr.endswith("flowd: error: --root needs --install-service\n")


# -- logging for the journal ---------------------------------------------------------------------------

LOG_TWO_LINES = ("from flowd.runtime.log import setup_logging; import logging; setup_logging(); "
                 "logging.getLogger('flowd').warning('first\\nsecond')")


def test_logs_carry_journal_priorities_only_when_stderr_is_the_journal_stream(tmp_path: Path) -> None:
    out = tmp_path / "stderr"
    with open(out, "w") as fh:
        st = os.fstat(fh.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        subprocess.run([sys.executable, "-c", LOG_TWO_LINES], cwd=REPO, stderr=fh, env=env, check=True, timeout=60)
    assert out.read_text() == "<4>first\n<4>second\n"
    with open(out, "w") as fh:  # inherited from a parent whose stderr was the journal: not ours
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}
        subprocess.run([sys.executable, "-c", LOG_TWO_LINES], cwd=REPO, stderr=fh, env=env, check=True, timeout=60)
    assert re.fullmatch(r"\S+ \S+ flowd\[\d+\] WARNING: first\nsecond\n", out.read_text())


# -- sd_notify from a real daemon ----------------------------------------------------------------------

class Manager:
    """The service manager's notify socket: datagrams with the sender's pid."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(socket_address(name))

    def receive(self, timeout: float = 30.0) -> tuple[int, bytes]:
        self.sock.settimeout(timeout)
        msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
        return UCRED.unpack(anc[0][2])[0], msg


@pytest.mark.parametrize("kind", ["path", "abstract"])
def test_daemon_notifies_ready_watchdog_and_stopping(short_dir: Path, capture: Path, kind: str) -> None:
    name = str(short_dir / "notify") if kind == "path" else f"@flowd-test/{uuid.uuid4().hex}"
    manager = Manager(name)
    control = str(short_dir / "flowd.sock")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    env = {**os.environ, "NOTIFY_SOCKET": name, "WATCHDOG_USEC": "200000"}
    log = short_dir / "flowd.runtime.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowd", "--socket", control, "--replay", str(capture), "--replay-speed", "max",
         "--flow-server", f"127.0.0.1:{sink.getsockname()[1]}", "--source-address", "127.0.0.1"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        seen: list[bytes] = []
        while not seen or not seen[-1].startswith(b"READY=1"):
            pid, msg = manager.receive()
            assert pid == proc.pid
            seen.append(msg)
            if msg.startswith(b"READY=1"):
                with socket.socket(socket.AF_UNIX) as client:
                    client.connect(control)  # READY=1 means the control socket accepts: no retry needed
        assert seen[:-1] == [b"WATCHDOG=1"] * (len(seen) - 1)  # pings may start before READY
        assert seen[-1].startswith(f"READY=1\nMAINPID={proc.pid}\nSTATUS=".encode())
        watchdogs = 0
        while watchdogs < 3:  # keeps pinging (every 0.1 s) while it runs
            pid, msg = manager.receive()
            assert pid == proc.pid
            watchdogs += msg == b"WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        while (msg := manager.receive()[1]) == b"WATCHDOG=1":
            pass
        assert msg == b"STOPPING=1\nSTATUS=Stopping: exporting cached flows"
        assert proc.wait(timeout=60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        manager.sock.close()
        sink.close()


# -- the sandbox ---------------------------------------------------------------------------------------

MDWE_WRAPPER = f"""
import ctypes, runpy, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl({PR_SET_MDWE}, {PR_MDWE_REFUSE_EXEC_GAIN}, 0, 0, 0) != 0:
    sys.exit(77)
assert libc.prctl({PR_GET_MDWE}, 0, 0, 0, 0) == {PR_MDWE_REFUSE_EXEC_GAIN}
sys.argv = ["flowd", *sys.argv[1:]]
runpy.run_module("flowd", run_name="__main__", alter_sys=True)
"""


def mdwe_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) >= 0:
        return True
    return ctypes.get_errno() != errno.EINVAL


def run_daemon_and_exercise(argv_prefix: list[str], short_dir: Path, capture: Path, *,
                            traced: bool = False) -> tuple[int, str]:
    """Start flowd (after `argv_prefix`), replay, ask the shell, reload, stop; (status, log).

    `traced`: the process started is strace, and the signals go to the daemon, its child.
    """
    control = str(short_dir / "flowd.sock")
    log = short_dir / "flowd.runtime.log"
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    proc = subprocess.Popen([*argv_prefix, "--socket", control, "--replay", str(capture), "--replay-speed", "max",
                             "--flow-server", f"127.0.0.1:{sink.getsockname()[1]}", "--source-address", "127.0.0.1"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    daemon = proc.pid
    try:
        deadline = time.monotonic() + 60
        while "finished after" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        if traced:
            daemon = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])
        for command in ("show services accounting flow", "show services accounting status",
                        "show services accounting flow-detail limit 5", "clear services accounting flow"):
            done = subprocess.run([sys.executable, "-m", "shell", "--socket", control, "-c", command],
                                  cwd=REPO, capture_output=True, text=True, timeout=60)
            assert done.returncode == 0, done.stderr
        os.kill(daemon, signal.SIGHUP)
        while "configuration reload" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        os.kill(daemon, signal.SIGTERM)
        return proc.wait(timeout=60), log.read_text()
    finally:
        if proc.poll() is None:  # still running: the test failed
            for pid in dict.fromkeys((daemon, proc.pid)):  # the daemon first: it would outlive a killed strace
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait()
        sink.close()


def test_memory_deny_write_execute_leaves_numpy_and_uvloop_working(short_dir: Path, capture: Path) -> None:
    if not mdwe_supported():
        pytest.skip("the kernel has no PR_SET_MDWE (Linux >= 6.3)")
    status, log = run_daemon_and_exercise([sys.executable, "-c", MDWE_WRAPPER], short_dir, capture)
    assert status == 0, log
    assert "stopping: 3000 frames ingested" in log and "Traceback" not in log


def expand_filter(group: str) -> set[str]:
    """The system calls a systemd syscall group stands for, nested groups included."""
    out = subprocess.run([SYSTEMD_ANALYZE, "syscall-filter", group], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    calls: set[str] = set()
    for line in out.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        calls |= expand_filter(word) if word.startswith("@") else {word}
    return calls


@needs_systemd_analyze
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_every_system_call_flowd_makes_passes_the_units_filter(short_dir: Path, capture: Path) -> None:
    if subprocess.run(["strace", "-qq", "-o", os.devnull, "true"], capture_output=True, timeout=60).returncode:
        pytest.skip("strace cannot trace here (ptrace not permitted)")
    trace = short_dir / "strace.txt"
    status, log = run_daemon_and_exercise(["strace", "-f", "-qq", "-o", str(trace), sys.executable, "-m", "flowd"],
                                          short_dir, capture, traced=True)
    assert status == 0, log
    used = set(re.findall(r"^\d+ +([a-z0-9_]+)\(", trace.read_text(), re.MULTILINE))
    allowed: set[str] = set()
    denied: set[str] = set()
    for line in UNIT.read_text().splitlines():
        if line.startswith("SystemCallFilter="):
            value = line.partition("=")[2]
            target, value = (denied, value[1:]) if value.startswith("~") else (allowed, value)
            for word in value.split():
                target |= expand_filter(word) if word.startswith("@") else {word}
    assert used and allowed
    assert sorted(used - allowed) == [] and sorted(used & denied) == []
