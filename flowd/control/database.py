"""The configuration database behind configuration mode: candidates, the exclusive lock, commit and rollback.

Junos's model (docs/operator-guide.md, "Configuration mode"):

* ``configure`` edits the one shared candidate, which outlives the session; ``configure private`` a
  copy of the active configuration of its own, dropped at exit; ``configure exclusive`` the shared
  candidate under a lock: nobody else may enter configuration mode or commit until it exits, and its
  uncommitted changes are dropped at exit.
* ``commit`` validates the candidate exactly as a configuration file is validated (with the daemon's
  command-line overrides applied, as a reload applies them), writes the file atomically in its own
  syntax, stores the commit in the rollback store (flowd.rollback) and applies it by the daemon's
  reload. The event loop runs one request at a time and commit never awaits, so commits never interleave.
* ``commit confirmed N`` arms a timer on the daemon clock (`next_deadline` / `expire`, driven by
  `run_confirm_timer`); unless another commit confirms it in time, the previous configuration is
  committed back by the daemon itself.

Everything here is synchronous and takes ``now``; the control server owns sessions (one per connection).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import logging
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

import yaml

from flowd.config.loader import syntax_for
from flowd.config.rollback import Commit, RollbackStore, write_atomic
from flowd.config.schema import Config, ConfigError
from flowd.config.statements import statement_tree
from flowd.model.clock import Clock
from flowd.syntax import junos
from flowd.syntax.compare import compare
from flowd.syntax.edit import Tree, delete_statement, lookup, normalize, set_statement, shown
from flowd.syntax.schema import Key, KeyPath, StatementError, show_path, walk, walk_several, word_value

log = logging.getLogger(__name__)

MODES: Final = ("shared", "private", "exclusive")
CONFIRM_UNIT: Final = 60.0  # seconds in a `commit confirmed` minute (the daemon's --confirm-unit changes it)


class DatabaseError(Exception):
    """A configuration-mode request that cannot be done; ``str()`` is the Junos text (may be several lines)."""


class Applier(Protocol):
    def __call__(self, user: str) -> bool:
        """Re-read the written file and apply it as SIGHUP does; False when the running configuration stayed."""
        ...


@dataclass(slots=True)
class Session:
    """One client in configuration mode."""

    id: int
    user: str
    pid: int
    mode: str
    since: float
    candidate: Tree | None = None  # private mode only
    base: Tree | None = None  # private mode: the active tree it was copied from


@dataclass(slots=True)
class Pending:
    """An unconfirmed `commit confirmed`: the tree to go back to and when."""

    deadline: float
    previous: Tree
    user: str


def _stamp(when: float) -> str:
    return dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def path_of(words: Sequence[Any]) -> tuple[Key, ...]:
    """A key path sent as JSON (integer keys may arrive as strings)."""
    return tuple(word_value(w) if isinstance(w, str) else w for w in words)


@dataclass(slots=True)
class Database:
    """The active configuration, its candidates and its history."""

    source: str | None  # the configuration file, None for the embedded default
    syntax: str  # "junos" or "yaml": the file's own
    active: Tree
    store: RollbackStore
    check: Callable[[str], Config]  # validate curly text as the daemon would load it (overrides included)
    apply: Applier
    confirm_unit: float = CONFIRM_UNIT
    sessions: dict[int, Session] = field(default_factory=dict)
    shared: Tree | None = None  # the shared candidate when it differs from active
    exclusive: int | None = None  # session holding the lock
    pending: Pending | None = None
    last_commit: tuple[float, str] | None = None  # when and by whom, for `show system uptime`
    wake: Callable[[], None] = lambda: None  # called when a `commit confirmed` (dis)arms the timer
    schema: Mapping[str, Any] = field(default_factory=statement_tree)

    def __post_init__(self) -> None:
        self.active = normalize(self.schema, self.active)

    # --- sessions -----------------------------------------------------------------------------------

    def describe(self, s: Session) -> list[str]:
        return [f"  {s.user} terminal flowcli (pid {s.pid}) on since {_stamp(s.since)}",
                f"      {'exclusive ' if s.mode == 'exclusive' else ''}{'private ' if s.mode == 'private' else ''}[edit]"]

    def enter(self, sid: int, user: str, pid: int, mode: str, now: float) -> list[str]:
        """`configure [private | exclusive]`: the lines Junos prints before `[edit]`."""
        if mode not in MODES:
            raise DatabaseError(f"unknown configuration mode '{mode}'")
        if sid in self.sessions:
            raise DatabaseError("already in configuration mode")
        if self.exclusive is not None:
            raise DatabaseError("\n".join(["configuration database locked by:",
                                           *self.describe(self.sessions[self.exclusive])]))
        lines: list[str] = []
        others = list(self.sessions.values())
        if mode == "exclusive" and self.changed_shared() and any(o.mode == "shared" for o in others):
            raise DatabaseError("shared configuration database modified\n"
                                "Users currently editing the configuration:\n" +
                                "\n".join(line for o in others for line in self.describe(o)))
        if mode == "shared" and any(o.mode == "private" for o in others):
            raise DatabaseError("shared configuration database modified; other users are in configure private\n"
                                "use 'configure private' or 'configure exclusive'")
        if mode == "private" and self.changed_shared():
            raise DatabaseError("shared configuration database modified\n"
                                "Please use 'show | compare' in 'configure' to see the uncommitted changes")
        if others:
            lines.append("Users currently editing the configuration:")
            for other in others:
                lines.extend(self.describe(other))
        session = Session(sid, user, pid, mode, now)
        if mode == "private":
            session.candidate = copy.deepcopy(self.active)
            session.base = copy.deepcopy(self.active)
        if mode == "exclusive":
            self.exclusive = sid
            lines.append("warning: uncommitted changes will be discarded on exit")
        elif mode == "private":
            lines.append("warning: uncommitted changes will be discarded on exit")
        self.sessions[sid] = session
        if mode == "shared" and self.changed_shared():
            lines.append("The configuration has been changed but not committed")
        return lines

    def leave(self, sid: int) -> None:
        """Exit configuration mode (or the connection closed)."""
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        if session.mode == "exclusive":
            self.exclusive = None
            self.shared = None  # Junos drops an exclusive session's uncommitted changes

    def session(self, sid: int) -> Session:
        found = self.sessions.get(sid)
        if found is None:
            raise DatabaseError("not in configuration mode (type 'configure' first)")
        return found

    def changed_shared(self) -> bool:
        return self.shared is not None and self.shared != self.active

    def candidate(self, sid: int) -> Tree:
        """The tree the session edits (created from the active one when first changed)."""
        session = self.session(sid)
        if session.candidate is not None:
            return session.candidate
        if self.shared is None:
            self.shared = copy.deepcopy(self.active)
        return self.shared

    def changed(self, sid: int) -> bool:
        session = self.session(sid)
        if session.candidate is not None:
            return session.candidate != session.base
        return self.changed_shared()

    # --- editing ------------------------------------------------------------------------------------

    def set(self, sid: int, base: Sequence[Key], words: Sequence[str]) -> None:
        """`set`: one or several statements of one level (`walk_several`), all or none."""
        statements = walk_several(self.schema, tuple(base), words)
        tree = self.candidate(sid)
        for resolved in statements:
            set_statement(tree, resolved)
        self._replace(sid, normalize(self.schema, tree))

    def delete(self, sid: int, base: Sequence[Key], words: Sequence[str]) -> bool:
        resolved = walk(self.schema, tuple(base), words, values=False)
        tree = self.candidate(sid)
        found = delete_statement(tree, resolved)
        self._replace(sid, normalize(self.schema, tree))
        return found

    def edit(self, sid: int, base: Sequence[Key], words: Sequence[str]) -> tuple[Key, ...]:
        """The new `[edit ...]` level; an `edit` may stop at a container or a list entry, not a leaf."""
        self.session(sid)
        resolved = walk(self.schema, tuple(base), words, values=False)
        if resolved.values or (resolved.steps and resolved.node["kind"] in ("leaf", "leaf-list", "flag")):
            raise StatementError(len(words) - 1, "syntax error.")
        return resolved.path

    def show(self, sid: int | None, base: Sequence[Key], words: Sequence[str] = ()) -> tuple[KeyPath, Tree]:
        """`show [STATEMENT]` in the session's candidate (the active tree outside configuration mode): where
        the shown statements sit, and the statements (`flowd.syntax.edit.shown`)."""
        return shown(self.candidate(sid) if sid is not None else self.active,
                     show_path(self.schema, tuple(base), words))

    def compare(self, sid: int | None, base: Sequence[Key], rollback: int | None = None) -> list[str]:
        """`show | compare [rollback N]`: the session's candidate (``sid`` None: the active configuration, as
        operational mode's `show configuration | compare rollback N`) against the active or a stored one."""
        old = self.active if rollback is None else self.rollback_tree(rollback)
        path = tuple(base)
        before, after = lookup(old, path), lookup(self.active if sid is None else self.candidate(sid), path)
        return compare(before if isinstance(before, dict) else {}, after if isinstance(after, dict) else {}, path)

    def rollback_tree(self, index: int) -> Tree:
        if index == 0:
            return copy.deepcopy(self.active)
        commit = self.store.get(index)
        if commit is None:
            raise DatabaseError(f"rollback {index} not found (the rollback store holds {len(self.store)})")
        return normalize(self.schema, junos.parse(commit.text).tree)

    def rollback(self, sid: int, index: int) -> None:
        """`rollback N`: the stored configuration becomes the candidate (still to be committed)."""
        self._replace(sid, self.rollback_tree(index))

    def _replace(self, sid: int, tree: Tree) -> None:
        tree = normalize(self.schema, tree)
        session = self.session(sid)
        if session.candidate is not None:
            session.candidate = tree
        else:
            self.shared = tree

    def load(self, sid: int, mode: str, text: str, base: Sequence[Key] = ()) -> None:
        """`load merge | override | replace`: curly text (or `set` lines) into the candidate."""
        try:
            if any(line.strip().startswith(("set ", "delete ")) for line in text.splitlines()):
                self._load_set(sid, text)
                return
            parsed = junos.parse(text).tree
        except junos.JunosSyntaxError as exc:
            raise DatabaseError(f"error: syntax error at line {exc.line}: {exc.message}\nload failed") from None
        if mode == "override":
            self._replace(sid, parsed)
            return
        target = copy.deepcopy(self.candidate(sid))
        _merge(target, parsed, replace=mode == "replace")
        self._replace(sid, target)

    def _load_set(self, sid: int, text: str) -> None:
        work = copy.deepcopy(self.candidate(sid))
        for number, raw in enumerate(text.splitlines(), 1):
            words = _split(raw)
            if not words or words[0].startswith("#"):
                continue
            if words[0] not in ("set", "delete"):
                raise DatabaseError(f"error: line {number}: syntax error.\nload failed")
            try:
                if words[0] == "set":
                    for resolved in walk_several(self.schema, (), words[1:]):
                        set_statement(work, resolved)
                else:
                    delete_statement(work, walk(self.schema, (), words[1:], values=False))
            except StatementError as exc:
                raise DatabaseError(f"error: line {number}: {exc.message}\nload failed") from None
        self._replace(sid, work)

    # --- commit -------------------------------------------------------------------------------------

    def validate(self, tree: Tree) -> Config:
        """The candidate as the daemon would load it; `DatabaseError` in the Junos commit-check layout."""
        try:
            return self.check(junos.to_curly(tree))
        except ConfigError as exc:
            path = exc.path
            stmt = " ".join(str(k) for k in path[-1:])
            where = " ".join(str(k) for k in path[:-1])
            lines = [f"[edit{' ' + where if where else ''}]"] if path else []
            if stmt:
                lines.append(f"  '{stmt}'")
            lines.append(f"    {exc.message}")
            lines.append("error: configuration check-out failed")
            raise DatabaseError("\n".join(lines)) from None

    def commit(self, sid: int | None, user: str, now: float, *, check: bool = False, comment: str = "",
               confirmed: int | None = None, tree: Tree | None = None) -> list[str]:
        """`commit [check | confirmed N | comment TEXT]`; the lines printed on success."""
        if sid is not None and self.exclusive not in (None, sid):
            raise DatabaseError("\n".join(["configuration database locked by:",
                                           *self.describe(self.sessions[self.exclusive])]))
        if tree is None:
            assert sid is not None
            session = self.session(sid)
            tree = self.candidate(sid)
            if session.candidate is not None and session.base != self.active:
                raise DatabaseError("error: the active configuration was changed by another commit since "
                                    "'configure private'; exit configuration mode and enter it again")
        self.validate(tree)
        if check:
            return ["configuration check succeeds"]
        if self.source is None:
            raise DatabaseError("error: flowd runs its embedded default configuration (no --config FILE); "
                                "there is no file to commit to")
        previous = copy.deepcopy(self.active)
        self._write(tree, user, now, comment, confirmed)
        lines: list[str] = []
        if confirmed is not None:
            self.pending = Pending(now + confirmed * self.confirm_unit, previous, user)
            self.wake()
            lines.append(f"commit confirmed will be automatically rolled back in {confirmed} minutes "
                         "unless confirmed")
        elif self.pending is not None:
            self.pending = None  # this commit confirms the previous `commit confirmed`
        lines.append("commit complete")
        return lines

    def _write(self, tree: Tree, user: str, now: float, comment: str, confirmed: int | None) -> None:
        assert self.source is not None
        path = Path(self.source)
        try:
            old_text: str | None = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old_text = None
        if len(self.store) == 0:  # the configuration the daemon started with becomes rollback 1
            self.store.add(junos.to_curly(self.active), user="flowd", time=now, comment="configuration at start")
        try:
            write_atomic(path, render_file(tree, self.syntax, old_text or ""))
        except OSError as exc:
            raise DatabaseError(f"error: cannot write {path}: {exc.strerror or exc}\n"
                                "error: configuration commit failed") from None
        if not self.apply(user):
            if old_text is not None:
                write_atomic(path, old_text)
            raise DatabaseError("error: the daemon could not apply the configuration (see its log); "
                                "the running configuration is unchanged\nerror: configuration commit failed")
        self.store.add(junos.to_curly(tree), user=user, time=now, comment=comment, confirmed=confirmed)
        self.active = normalize(self.schema, tree)
        for session in self.sessions.values():
            if session.candidate is not None and session.candidate == tree:
                session.base = copy.deepcopy(tree)
        if self.shared is not None and self.shared == tree:
            self.shared = None
        self.last_commit = (now, user)
        log.info("commit by %s%s%s", user, f" (confirmed, {confirmed} min)" if confirmed else "",
                 f": {comment}" if comment else "")

    def next_deadline(self) -> float | None:
        return None if self.pending is None else self.pending.deadline

    def expire(self, now: float) -> bool:
        """Roll back an unconfirmed `commit confirmed` whose time is up; True when it did."""
        if self.pending is None or now < self.pending.deadline:
            return False
        pending, self.pending = self.pending, None
        try:
            self._write(pending.previous, "flowd", now, "automatic rollback: commit confirmed was not confirmed",
                        None)
        except DatabaseError as exc:
            log.error("commit confirmed by %s was not confirmed; rolling back failed: %s", pending.user, exc)
            return False
        log.warning("commit confirmed by %s was not confirmed; automatic rollback complete", pending.user)
        return True

    def history(self, now: float | None = None) -> list[dict[str, Any]]:
        """The rollback store newest first; the unconfirmed `commit confirmed` says when it rolls back."""
        out = [history_entry(c, i) for i, c in enumerate(self.store.history())]
        if out and self.pending is not None and now is not None:
            out[0]["rollback_in"] = max(0.0, self.pending.deadline - now) / self.confirm_unit * 60
        return out


async def run_confirm_timer(db: Database, clock: Clock) -> None:
    """Roll back unconfirmed commits on time (the daemon's task; tests drive it with a fake clock)."""
    wake = asyncio.Event()
    db.wake = wake.set
    while True:
        deadline = db.next_deadline()
        if deadline is None:
            await wake.wait()
            wake.clear()
            continue
        sleeper = asyncio.ensure_future(clock.sleep_until(deadline))
        woken = asyncio.ensure_future(wake.wait())
        done, _ = await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        for task in (sleeper, woken):
            if task not in done:
                task.cancel()
        wake.clear()
        db.expire(clock.time())


def _merge(target: Tree, more: Mapping[Key, Any], *, replace: bool) -> None:
    for key, value in more.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict) and not replace:
            _merge(target[key], value, replace=replace)
        else:
            target[key] = copy.deepcopy(value)


def _split(line: str) -> list[str]:
    try:
        return shlex.split(line, comments=False)
    except ValueError:
        return line.split()


def _leading_comments(text: str, marker: str) -> list[str]:
    out: list[str] = []
    for line in text.splitlines():
        if line.strip().startswith(marker) or (out and not line.strip()):
            out.append(line)
        else:
            break
    while out and not out[-1].strip():
        out.pop()
    return out


def render_file(tree: Mapping[Key, Any], syntax: str, old_text: str) -> str:
    """The committed file: the old file's leading comment block, then the tree in the file's own syntax."""
    if syntax == "yaml":
        head = _leading_comments(old_text, "#")
        body = yaml.safe_dump(_plain(tree), sort_keys=False, default_flow_style=False) if tree else ""
    else:
        head = _leading_comments(old_text, "#") or _leading_comments(old_text, "/*")
        body = junos.to_curly(tree)
    return "\n".join(head) + ("\n" if head else "") + body


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def history_entry(commit: Commit, index: int) -> dict[str, Any]:
    return {"index": index, "user": commit.user, "time": commit.time, "comment": commit.comment,
            "confirmed": commit.confirmed, "via": commit.via}


def open_database(source: str, check: Callable[[str], Config], apply: Applier, *, active: Tree,
                  rollback_dir: str | None = None, confirm_unit: float = CONFIRM_UNIT) -> Database:
    """The database of a daemon started with ``--config source``; the rollback store beside the file
    (``.NAME.rollback/``) unless ``rollback_dir`` (systemd's ``$STATE_DIRECTORY/rollback``) is given."""
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        text = ""
    store = Path(rollback_dir) if rollback_dir else path.parent / f".{path.name}.rollback"
    return Database(source, syntax_for(source, text), copy.deepcopy(dict(active)), RollbackStore(store),
                    check, apply, confirm_unit)
