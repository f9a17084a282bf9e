"""The rollback store: the last committed configurations, newest first, each with who, when and why.

Junos numbering: `rollback 0` is the active configuration, 1 the one before, up to `KEEP - 1`. Each
commit is one file ``commit-SEQUENCE.json`` (the statement tree as curly text, the user, the time, the
comment, and whether it was a `commit confirmed`) written atomically (a temporary file, fsync, rename),
so a crash leaves either the old store or the new one. Older files beyond `KEEP` are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

KEEP: Final = 50
_NAME: Final = re.compile(r"commit-([0-9]{9})\.json")


def write_atomic(path: Path, text: str, mode: int | None = None) -> None:
    """Replace ``path`` with ``text`` so that readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is None and path.exists():
            mode = path.stat().st_mode & 0o7777
        os.chmod(tmp, 0o644 if mode is None else mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@dataclass(frozen=True, slots=True)
class Commit:
    """One stored configuration."""

    sequence: int
    text: str  # the statement tree, curly braces
    user: str
    time: float  # wall clock, seconds since the epoch
    comment: str = ""
    confirmed: int | None = None  # minutes of a `commit confirmed`, else None
    via: str = "cli"

    def to_json(self) -> dict[str, Any]:
        return {"sequence": self.sequence, "text": self.text, "user": self.user, "time": self.time,
                "comment": self.comment, "confirmed": self.confirmed, "via": self.via}


class RollbackStore:
    """A directory of the last `KEEP` commits."""

    def __init__(self, directory: Path, keep: int = KEEP) -> None:
        self.directory = directory
        self.keep = keep

    def _files(self) -> list[tuple[int, Path]]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        found = [(int(m.group(1)), self.directory / n) for n in names if (m := _NAME.fullmatch(n))]
        return sorted(found, reverse=True)

    def __len__(self) -> int:
        return len(self._files())

    def get(self, index: int) -> Commit | None:
        """`rollback INDEX` (0 = the newest); None when there is no such commit."""
        files = self._files()
        if not 0 <= index < len(files):
            return None
        return self._read(files[index][1])

    def history(self) -> list[Commit]:
        """Every stored commit, newest first."""
        return [self._read(path) for _, path in self._files()]

    @staticmethod
    def _read(path: Path) -> Commit:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Commit(int(data["sequence"]), str(data["text"]), str(data["user"]), float(data["time"]),
                      str(data.get("comment", "")), data.get("confirmed"), str(data.get("via", "cli")))

    def add(self, text: str, *, user: str, time: float, comment: str = "", confirmed: int | None = None,
            via: str = "cli") -> Commit:
        """Store a new newest commit and drop the ones beyond `keep`."""
        files = self._files()
        sequence = files[0][0] + 1 if files else 1
        commit = Commit(sequence, text, user, time, comment, confirmed, via)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o750)
        write_atomic(self.directory / f"commit-{sequence:09d}.json", json.dumps(commit.to_json(), indent=1) + "\n",
                     0o640)
        for _, old in files[self.keep - 1:]:
            old.unlink(missing_ok=True)
        return commit
