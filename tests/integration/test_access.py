"""Who may use the control socket: real users and groups against a real daemon (root only), and the rules.

The test creates a read group, an admin group and four users (removed at the end), starts flowd as
root with `flowd control read-group/admin-group`, and runs flowcli's batch runner as each user in a
forked child that dropped its privileges (initgroups/setgid/setuid), so SO_PEERCRED and
SO_PEERGROUPS see exactly what they would see for a login of that user.
"""

from __future__ import annotations

import asyncio
import grp
import io
import json
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from accounts import accounts, fork_as, needs_root

from flowd.control.server import ControlServer, Peer
from flowd.runtime import install
from flowd.runtime.clock import SystemClock
from shell.client import Client
from shell.repl import run_batch

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration



# -- the rules, without users ----------------------------------------------------------------------------

READ, ADMIN, OTHER = 50_001, 50_002, 50_003


def rules(read: bool, admin: bool) -> ControlServer:
    server = ControlServer("/nonexistent/flowd.sock", None, SystemClock())  # type: ignore[arg-type]
    server.read_gid, server.read_group = (READ, "ops") if read else (None, None)
    server.admin_gid, server.admin_group = (ADMIN, "ops-admin") if admin else (None, None)
    return server


@pytest.mark.parametrize("read, admin, groups, show, clear", [
    (True, True, {READ}, None, "membership in group 'ops-admin' is required"),
    (True, True, {READ, ADMIN}, None, None),
    (True, True, {ADMIN}, None, None),  # an admin may show even outside the read group
    (True, True, {OTHER}, "membership in group 'ops' is required", "membership in group 'ops-admin' is required"),
    (False, True, {OTHER}, None, "membership in group 'ops-admin' is required"),  # the socket mode is the gate
    (True, False, {READ}, None, "only root or the flowd user may do this (no admin-group is configured)"),
    (False, False, {OTHER}, None, "only root or the flowd user may do this (no admin-group is configured)"),
])
def test_who_may_call_what(read: bool, admin: bool, groups: set[int], show: str | None, clear: str | None) -> None:
    server = rules(read, admin)
    uid = 60_000 if os.geteuid() != 60_000 else 60_001
    peer = Peer(pid=1, uid=uid, gid=OTHER, supplementary=frozenset(groups))
    assert (server.allowed(peer, admin=False), server.allowed(peer, admin=True)) == (show, clear)
    for everyone in (0, os.geteuid()):  # root and the daemon's own user may do everything
        assert server.allowed(Peer(1, everyone, OTHER, frozenset()), admin=True) is None


# -- real users ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class People:
    read_group: str
    admin_group: str
    reader: str  # in the read group
    admin: str  # in both groups (what `flowd --install-service --admin` does)
    stranded: str  # in the admin group only: cannot open the socket
    other: str  # in neither


def run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def people() -> Iterator[People]:
    tag = uuid.uuid4().hex[:6]
    p = People(f"fr{tag}", f"fa{tag}", f"fur{tag}", f"fua{tag}", f"fus{tag}", f"fuo{tag}")
    with accounts([p.read_group, p.admin_group], {p.reader: [p.read_group], p.admin: [p.read_group, p.admin_group],
                                                  p.stranded: [p.admin_group], p.other: []}):
        yield p


@dataclass(frozen=True, slots=True)
class Daemon:
    proc: subprocess.Popen[bytes]
    socket: str
    log: Path


@pytest.fixture(scope="module")
def daemon(people: People) -> Iterator[Daemon]:
    """flowd as root, its socket in a directory every user can reach."""
    folder = Path(tempfile.mkdtemp(prefix="flowd-access-"))
    folder.chmod(0o755)
    config = yaml.safe_load((REPO / "etc" / "flowd.yaml").read_text())
    config["flowd"]["control"] = {"read-group": people.read_group, "admin-group": people.admin_group}
    (folder / "flowd.yaml").write_text(yaml.safe_dump(config))
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    log = folder / "flowd.runtime.log"
    sock = str(folder / "flowd.sock")
    proc = subprocess.Popen([sys.executable, "-m", "flowd", "--config", str(folder / "flowd.yaml"), "--socket", sock,
                             "--flow-server", f"127.0.0.1:{sink.getsockname()[1]}", "--source-address", "127.0.0.1"],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    try:
        deadline = time.monotonic() + 30
        while "control socket listening" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)
        yield Daemon(proc, sock, log)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        sink.close()
        shutil.rmtree(folder, ignore_errors=True)


def flowcli_as(user: str, socket_path: str, command: str) -> tuple[int, str, str]:
    """`flowcli -c COMMAND` as `user`: a forked child drops to the user's uid, gid and groups, then runs it."""
    r, w = os.pipe()

    def work() -> None:
        os.close(r)
        out, err = io.StringIO(), io.StringIO()
        status = asyncio.run(run_batch([command], Client(socket_path), out, err))
        os.write(w, json.dumps([status, out.getvalue(), err.getvalue()]).encode())

    pid = fork_as(user, work)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        data = fh.read()
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0, "the child failed before reporting"
    status, out, err = json.loads(data)
    return status, out, err


@needs_root
def test_the_socket_belongs_to_the_read_group_and_is_not_world_writable(people: People, daemon: Daemon) -> None:
    st = os.stat(daemon.socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == grp.getgrnam(people.read_group).gr_gid


@needs_root
def test_a_reader_may_show_but_not_clear(people: People, daemon: Daemon) -> None:
    status, out, err = flowcli_as(people.reader, daemon.socket, "show services accounting flow")
    assert (status, err) == (0, "") and "    Flow packets: 0, Flow bytes: 0\n" in out
    status, out, err = flowcli_as(people.reader, daemon.socket, "clear services accounting flow")
    assert (status, out, err) == (
        1, "", f"error: permission denied: membership in group '{people.admin_group}' is required\n")


@needs_root
def test_an_admin_may_clear(people: People, daemon: Daemon) -> None:
    for command in ("clear services accounting flow", "clear services accounting statistics",
                    "show services accounting errors"):
        status, _, err = flowcli_as(people.admin, daemon.socket, command)
        assert (status, err) == (0, ""), command


@needs_root
@pytest.mark.parametrize("who", ["other", "stranded"])
def test_users_outside_the_socket_group_are_refused(people: People, daemon: Daemon, who: str) -> None:
    status, out, err = flowcli_as(getattr(people, who), daemon.socket, "show services accounting flow")
    assert (status, out, err) == (1, "", f"error: cannot connect to flowd ({daemon.socket}: Permission denied)\n")


@needs_root
def test_the_daemon_names_admins_who_cannot_reach_the_socket(people: People, daemon: Daemon) -> None:
    warning = [line for line in daemon.log.read_text().splitlines() if "cannot open" in line]
    assert len(warning) == 1
    assert f"members of admin group '{people.admin_group}' who are not in group '{people.read_group}'" in warning[0]
    assert f": {people.stranded} (add them to both: usermod -aG {people.read_group},{people.admin_group} USER)" \
        in warning[0]


@needs_root
def test_the_installer_creates_the_accounts_once_and_adds_members(monkeypatch: pytest.MonkeyPatch) -> None:
    tag = uuid.uuid4().hex[:6]
    user, group, admin, login = f"fsu{tag}", f"fsg{tag}", f"fsa{tag}", f"fsl{tag}"
    monkeypatch.setattr(install, "SERVICE_USER", user)
    monkeypatch.setattr(install, "READ_GROUP", group)
    monkeypatch.setattr(install, "ADMIN_GROUP", admin)
    try:
        first = install.ensure_accounts()
        assert [(s.what, s.outcome.split()[0]) for s in first] == [
            (f"group {group}", "created"), (f"group {admin}", "created"), (f"user {user}", "created")]
        pw = pwd.getpwnam(user)
        assert pw.pw_gid == grp.getgrnam(group).gr_gid
        assert (pw.pw_dir, pw.pw_shell) == ("/nonexistent", "/usr/sbin/nologin")
        assert not os.path.exists("/nonexistent")
        system_max = max((int(line.split()[1]) for line in Path("/etc/login.defs").read_text().splitlines()
                          if line.startswith("SYS_UID_MAX")), default=999)
        assert pw.pw_uid <= system_max  # a system account
        again = install.ensure_accounts()
        assert [s.outcome for s in again] == ["exists", "exists", "exists"]
        run("useradd", "--no-create-home", "--no-user-group", login)
        steps = install.add_members([], [login])
        assert [(s.what, s.outcome) for s in steps] == [(f"user {login}", f"added to {group} and {admin}")]
        assert {group, admin} <= {g.gr_name for g in grp.getgrall() if login in g.gr_mem}
        with pytest.raises(install.InstallError, match=f"no such user: nobody{tag}"):
            install.add_members([f"nobody{tag}"], [])
    finally:
        for name in (login, user):
            subprocess.run(["userdel", name], capture_output=True, timeout=60)
        for name in (admin, group):
            subprocess.run(["groupdel", name], capture_output=True, timeout=60)
