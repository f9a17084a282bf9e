"""The control socket's path under attack: a real unprivileged user racing a symlink onto it, and the
directories the daemon refuses (root only: the attacker is a user the test creates)."""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from accounts import accounts, fork_as, needs_root

from flowd.control.socketfile import (
    UnsafeSocketPath,
    bind_restricted,
    check_path,
    unsafe_reason,
)

REPO = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.integration, needs_root]

def race(target: Path, victim: Path, ready: int) -> None:
    """The attacker: forever put a symlink to the victim file where the daemon's socket is about to be."""
    link = str(target) + ".evil"
    os.write(ready, b"ready")
    while True:
        with contextlib.suppress(FileExistsError):
            os.symlink(victim, link)
        with contextlib.suppress(OSError):
            os.rename(link, target)


@pytest.fixture(scope="module")
def mallory() -> Iterator[tuple[str, str]]:
    """An unprivileged user and a group the daemon gives its socket (the read group)."""
    tag = uuid.uuid4().hex[:6]
    user, group = f"fm{tag}", f"fg{tag}"
    with accounts([group], {user: []}):
        yield user, group


@pytest.fixture
def folders() -> Iterator[tuple[Path, Path]]:
    """A directory the attacker may write (0777), and a root-only file elsewhere for the attacker to aim at."""
    top = Path(tempfile.mkdtemp(prefix="flowd-race-"))
    try:
        top.chmod(0o755)
        shared = top / "shared"
        shared.mkdir()
        shared.chmod(0o777)
        safe = top / "safe"
        safe.mkdir(mode=0o700)
        victim = safe / "victim"
        victim.write_text("root's secret\n")
        victim.chmod(0o600)
        yield shared, victim
    finally:
        shutil.rmtree(top, ignore_errors=True)


def test_a_symlink_raced_onto_the_socket_never_gets_its_mode_or_group(
        mallory: tuple[str, str], folders: tuple[Path, Path]) -> None:
    user, group = mallory
    shared, victim = folders
    gid = grp.getgrnam(group).gr_gid
    target = shared / "flowd.sock"
    r, w = os.pipe()
    racer = fork_as(user, lambda: race(target, victim, w))
    os.close(w)
    try:
        assert os.read(r, 5) == b"ready"
        bound = 0
        for _ in range(400):
            sock = bind_restricted(target, 0o660, gid)
            sock.close()
            bound += 1
            with_mode = os.stat(victim)
            assert (stat.S_IMODE(with_mode.st_mode), with_mode.st_gid) == (0o600, 0), \
                f"the victim changed after {bound} binds"
        assert os.waitpid(racer, os.WNOHANG) == (0, 0), "the attacker stopped racing"
    finally:
        os.close(r)
        os.kill(racer, signal.SIGKILL)
        os.waitpid(racer, 0)
    # what the attacker could see of the daemon's private directories: none is left behind
    assert not [p for p in shared.iterdir() if p.name.startswith(".flowd-bind-")]


def test_the_bound_socket_has_its_mode_and_group_before_it_is_at_its_path(
        mallory: tuple[str, str], folders: tuple[Path, Path]) -> None:
    _, group = mallory
    folder = folders[1].parent  # 0700, root's
    gid = grp.getgrnam(group).gr_gid
    sock = bind_restricted(folder / "flowd.sock", 0o660, gid)
    try:
        st = os.lstat(folder / "flowd.sock")
        assert stat.S_ISSOCK(st.st_mode) and (stat.S_IMODE(st.st_mode), st.st_gid) == (0o660, gid)
        sock.listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(folder / "flowd.sock"))  # the socket at the path is the one bound
    finally:
        sock.close()


@pytest.mark.parametrize("mode, reason", [
    (0o777, "is writable by everyone (mode 0777; chmod go-w"),
    (0o1777, "is writable by everyone (mode 1777; chmod go-w"),
    (0o770, "is writable by its group (mode 0770; chmod go-w"),
])
def test_a_socket_directory_others_may_write_is_refused(folders: tuple[Path, Path], mode: int, reason: str) -> None:
    shared, _ = folders
    shared.chmod(mode)
    with pytest.raises(UnsafeSocketPath, match=r"refusing control socket .*/shared/flowd.sock: .*/shared "
                                                + re.escape(reason)):
        check_path(shared / "flowd.sock")


def test_directories_of_another_user_are_refused(mallory: tuple[str, str], folders: tuple[Path, Path]) -> None:
    user, _ = mallory
    shared, _ = folders
    uid = pwd.getpwnam(user).pw_uid
    shared.chmod(0o755)
    os.chown(shared, uid, -1)
    assert unsafe_reason(shared) == f"{shared} belongs to {user}, not to root or the daemon's user"
    inner = shared / "inner"
    inner.mkdir(mode=0o700)
    assert unsafe_reason(inner) == f"{shared} belongs to {user}, who could replace {inner}"
    os.chown(shared, 0, -1)
    shared.chmod(0o777)
    assert unsafe_reason(inner) == (f"{shared} is writable by others without the sticky bit (mode 0777), "
                                    f"who could replace {inner}")
    shared.chmod(0o1777)  # like /tmp: others cannot rename what is not theirs
    assert unsafe_reason(inner) is None


def test_a_path_that_is_not_a_socket_is_left_alone(folders: tuple[Path, Path]) -> None:
    shared, victim = folders
    shared.chmod(0o755)
    (shared / "flowd.sock").symlink_to(victim)
    with pytest.raises(UnsafeSocketPath, match="it exists and is not a socket"):
        check_path(shared / "flowd.sock")
    assert (shared / "flowd.sock").is_symlink() and stat.S_IMODE(os.stat(victim).st_mode) == 0o600


def test_the_daemon_refuses_a_world_writable_socket_directory_in_one_line(folders: tuple[Path, Path]) -> None:
    shared, _ = folders
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    try:
        done = subprocess.run([sys.executable, "-m", "flowd", "--socket", str(shared / "flowd.sock"),
                               "--flow-server", f"127.0.0.1:{sink.getsockname()[1]}", "--source-address",
                               "127.0.0.1"], cwd=REPO, capture_output=True, text=True, timeout=60)
    finally:
        sink.close()
    assert done.returncode == 71  # EX_OSERR: the control socket could not be set up
    errors = [line for line in done.stderr.splitlines() if "ERROR" in line or "Traceback" in line]
    assert len(errors) == 1 and f"refusing control socket {shared}/flowd.sock: {shared} is writable by " \
        "everyone (mode 0777; chmod go-w" in errors[0], done.stderr
    assert list(shared.iterdir()) == []
