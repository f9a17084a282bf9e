"""The control socket's file: refuse a directory others could tamper with, and make the socket appear at
its path only once it already has its mode and group.

Setting the mode by name after ``bind()`` is a race when others may write the directory: between the
two calls they can rename a symlink over the new socket, and the daemon (often root) then chmods and
chowns whatever the symlink points at. So the socket is bound inside a fresh private directory (0700,
made by the daemon next to the final path), gets its mode and group there, where nobody else can
reach it, starts listening, and is then renamed onto its path (so whoever sees the path can connect); ``rename`` replaces a name, it never follows one. And a
directory that anyone but root and the daemon's user may write (or whose ancestors let others swap it)
is refused outright: there a peer could also replace the socket after it is in place.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
import tempfile
from pathlib import Path
from typing import Final

PRIVATE_PREFIX: Final = ".flowd-bind-"  # the private directory the socket is bound in, then renamed out of
BACKLOG: Final = 100  # asyncio's default for the connections waiting to be accepted
BOUND_NAME: Final = "s"  # short: the private path must still fit sun_path (108 bytes)


class UnsafeSocketPath(OSError):
    """The socket's path could be tampered with by another user; `str()` says why and what to do."""


def _trusted(uid: int) -> bool:
    return uid in (0, os.geteuid())


def _owner(uid: int) -> str:
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def unsafe_reason(folder: Path) -> str | None:
    """Why others could rename, replace or create entries in ``folder`` (or swap it), or None when they cannot.

    The folder itself must belong to root or the daemon's user and be writable by neither its group nor
    others (a sticky bit does not help: others could still create the name before the daemon). Every
    ancestor must belong to root or the daemon's user and be writable only by them, unless it is sticky
    (like /tmp), which stops others from renaming what is not theirs.
    """
    folder = folder.absolute()
    st = os.stat(folder)
    if not _trusted(st.st_uid):
        return f"{folder} belongs to {_owner(st.st_uid)}, not to root or the daemon's user"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        who = "everyone" if st.st_mode & stat.S_IWOTH else "its group"
        return f"{folder} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}; chmod go-w {folder})"
    for ancestor in folder.parents:
        st = os.stat(ancestor)
        if not _trusted(st.st_uid):
            return f"{ancestor} belongs to {_owner(st.st_uid)}, who could replace {folder}"
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
            return (f"{ancestor} is writable by others without the sticky bit "
                    f"(mode {stat.S_IMODE(st.st_mode):04o}), who could replace {folder}")
    return None


def check_path(path: Path) -> None:
    """Raise `UnsafeSocketPath` unless ``path`` may hold the control socket (its directory is created 0750)."""
    path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
    if (why := unsafe_reason(path.parent)) is not None:
        raise UnsafeSocketPath(f"refusing control socket {path}: {why}")
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise UnsafeSocketPath(f"refusing control socket {path}: it exists and is not a socket")


def bind_restricted(path: Path, mode: int, gid: int | None) -> socket.socket:
    """An AF_UNIX stream socket listening at ``path`` that had ``mode`` and group ``gid`` before it listened and
    before it appeared there; whatever was at ``path`` is replaced."""
    private = tempfile.mkdtemp(prefix=PRIVATE_PREFIX, dir=path.parent)  # 0700, ours alone
    bound = os.path.join(private, BOUND_NAME)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(bound)
        os.chmod(bound, mode)  # by name, but inside a directory nobody else may enter
        if gid is not None and os.lstat(bound).st_gid != gid:
            os.chown(bound, -1, gid, follow_symlinks=False)
        sock.listen(BACKLOG)  # listening before it appears: a client that sees the path can connect
        os.rename(bound, path)
    except BaseException:
        sock.close()
        raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(bound)
        os.rmdir(private)
    return sock
