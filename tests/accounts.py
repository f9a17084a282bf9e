"""Temporary real users and groups (root only), for tests that need the kernel's view of another user."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import pytest

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not (shutil.which("useradd") and shutil.which("groupadd")),
    reason="creates users and groups: needs root and useradd/groupadd")


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


@contextmanager
def accounts(groups: Sequence[str], users: Mapping[str, Sequence[str]]) -> Iterator[None]:
    """Create ``groups``, then each user (no home, no login shell) with its supplementary groups; remove all after."""
    made_groups: list[str] = []
    made_users: list[str] = []
    try:
        for group in groups:
            _run("groupadd", group)
            made_groups.append(group)
        for user, extra in users.items():
            _run("useradd", "--no-create-home", "--no-user-group", "--shell", "/usr/sbin/nologin",
                 *(["--groups", ",".join(extra)] if extra else []), user)
            made_users.append(user)
        yield
    finally:
        for user in made_users:
            subprocess.run(["userdel", user], capture_output=True, timeout=60)
        for group in made_groups:
            subprocess.run(["groupdel", group], capture_output=True, timeout=60)


def become(user: str) -> None:
    """Drop this (forked) process to ``user``: its groups, then its gid and uid, as a login would have them.

    Tests fork and call this rather than exec a program as the user: the test's interpreter may live
    where other users cannot read it.
    """
    pw = pwd.getpwnam(user)
    os.initgroups(user, pw.pw_gid)
    os.setgid(pw.pw_gid)
    os.setuid(pw.pw_uid)


def fork_as(user: str, work: Callable[[], None]) -> int:
    """Run ``work`` in a forked child that became ``user``; the child's pid (it exits when ``work`` returns)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            become(user)
            work()
            code = 0
        finally:
            os._exit(code)
    return pid
