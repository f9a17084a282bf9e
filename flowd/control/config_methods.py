"""The `config.*` control methods: configuration mode over the socket, one session per connection.

Every method but `config.schema` and `config.history` needs the admin group (docs/security.md). A
statement that does not fit the schema is not a failed call: the reply is ``{"error": {"word": N,
"message": ...}}`` so the shell can put its caret under word N, as Junos does. Requests that cannot be
done (a lock, a failed commit check) fail with code ``bad-params`` and the Junos text as the message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from flowd.control.database import Database, DatabaseError, path_of
from flowd.syntax.schema import StatementError


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, on which connection."""

    session: int
    user: str
    pid: int


Handler = Callable[[Database, Caller, Mapping[str, Any], float], dict[str, Any]]


def _words(params: Mapping[str, Any]) -> list[str]:
    words = params.get("words", [])
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise DatabaseError("words: expected a list of strings")
    return words


def _base(params: Mapping[str, Any]) -> tuple[Any, ...]:
    path = params.get("path", [])
    if not isinstance(path, list):
        raise DatabaseError("path: expected a list")
    return path_of(path)


def _int(params: Mapping[str, Any], name: str, lo: int, hi: int) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise DatabaseError(f"{name}: expected {lo}..{hi}")
    return value


def _schema(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"schema": db.schema}


def _enter(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    mode = params.get("mode", "shared")
    return {"lines": db.enter(who.session, who.user, who.pid, str(mode), now)}


def _exit(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    changed = who.session in db.sessions and db.changed(who.session)
    db.leave(who.session)
    return {"changed": changed}


def _status(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    deadline = db.next_deadline()
    return {"changed": db.changed(who.session), "mode": db.session(who.session).mode,
            "rollback_in": None if deadline is None else max(0.0, deadline - now)}


def _statement(action: Callable[[], Any]) -> dict[str, Any]:
    try:
        found = action()
    except StatementError as exc:
        return {"error": {"word": exc.word, "message": exc.message}}
    return {"found": found is not False, "path": list(found) if isinstance(found, tuple) else None}


def _set(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return _statement(lambda: db.set(who.session, _base(params), _words(params)))


def _delete(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return _statement(lambda: db.delete(who.session, _base(params), _words(params)))


def _edit(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return _statement(lambda: db.edit(who.session, _base(params), _words(params)))


def _show(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"config": db.show(who.session, _base(params))}


def _compare(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"lines": db.compare(who.session, _base(params), _int(params, "rollback", 0, 49))}


def _commit(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    comment = params.get("comment", "")
    if not isinstance(comment, str):
        raise DatabaseError("comment: expected a string")
    return {"lines": db.commit(who.session, who.user, now, check=bool(params.get("check", False)),
                               comment=comment, confirmed=_int(params, "confirmed", 1, 65535))}


def _rollback(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    db.rollback(who.session, _int(params, "index", 0, 49) or 0)
    return {"lines": ["load complete"]}


def _load(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    mode, text = params.get("mode"), params.get("text")
    if mode not in ("merge", "override", "replace") or not isinstance(text, str):
        raise DatabaseError("expected mode merge|override|replace and the text to load")
    db.load(who.session, mode, text, _base(params))
    return {"lines": ["load complete"]}


def _history(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"commits": db.history(now)}


# name -> (handler, needs the admin group)
CONFIG_METHODS: Final[Mapping[str, tuple[Handler, bool]]] = {
    "config.schema": (_schema, False),
    "config.history": (_history, False),
    "config.enter": (_enter, True),
    "config.exit": (_exit, True),
    "config.status": (_status, True),
    "config.set": (_set, True),
    "config.delete": (_delete, True),
    "config.edit": (_edit, True),
    "config.show": (_show, True),
    "config.compare": (_compare, True),
    "config.commit": (_commit, True),
    "config.rollback": (_rollback, True),
    "config.load": (_load, True),
}
