"""The `config.*` control methods: configuration mode over the socket, one session per connection.

Their parameters are checked against their contracts (flowd.control.rpcs) before they run; every method
but `config.schema`, `config.history` and `config.compare_rollback` needs the admin group (docs/security.md). A
statement that does not fit the schema is not a failed call: the reply is ``{"error": {"word": N,
"message": ...}}`` so the shell can put its caret under word N, as Junos does. Requests that cannot be
done (a lock, a failed commit check) fail with code ``bad-params`` and the Junos text as the message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from flowd.control.database import Database, path_of
from flowd.syntax.edit import wrap
from flowd.syntax.schema import StatementError, outline


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent a request, on which connection."""

    session: int
    user: str
    pid: int


Handler = Callable[[Database, Caller, Mapping[str, Any], float], dict[str, Any]]


def _words(params: Mapping[str, Any]) -> list[str]:
    return list(params.get("words", []))


def _base(params: Mapping[str, Any]) -> tuple[Any, ...]:
    return path_of(params.get("path", []))


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


def _statement(action: Callable[[], Any], *fields: str) -> dict[str, Any]:
    """``{field: what the action returned}`` (several fields: one each from the tuple it returned), or the
    statement's error (word index and Junos message)."""
    try:
        found = action()
    except StatementError as exc:
        return {"error": {"word": exc.word, "message": exc.message}}
    if len(fields) > 1:
        return dict(zip(fields, found, strict=True))
    if isinstance(found, list):
        return {fields[0]: found}
    return {fields[0]: list(found) if isinstance(found, tuple) else found is not False}


def _set(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return _statement(lambda: db.set(who.session, _base(params), _words(params)), "found")


def _delete(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return _statement(lambda: db.delete(who.session, _base(params), _words(params)), "found")


def _edit(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return _statement(lambda: db.edit(who.session, _base(params), _words(params)), "path")


def _show(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    def show() -> tuple[Any, ...]:
        path, tree = db.show(who.session, _base(params), _words(params))
        return list(path), tree, outline(db.schema, wrap(path, tree))
    return _statement(show, "path", "config", "schema")


def _compare(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"lines": db.compare(who.session, _base(params), params.get("rollback"))}


def _compare_rollback(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    """Operational mode's `show configuration [STATEMENT] | compare rollback N`: the active configuration."""
    def compare() -> list[str]:
        path, _ = db.show(None, (), _words(params))
        return db.compare(None, path, params["rollback"])
    return _statement(compare, "lines")


def _commit(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"lines": db.commit(who.session, who.user, now, check=bool(params.get("check", False)),
                               comment=params.get("comment", ""), confirmed=params.get("confirmed"))}


def _rollback(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    db.rollback(who.session, params.get("index", 0))
    return {"lines": ["load complete"]}


def _load(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    db.load(who.session, params["mode"], params["text"], _base(params))
    return {"lines": ["load complete"]}


def _history(db: Database, who: Caller, params: Mapping[str, Any], now: float) -> dict[str, Any]:
    return {"commits": db.history(now)}


# method -> handler; each one's parameters, result fields and admin flag are its contract in flowd.control.rpcs.RPCS
CONFIG_METHODS: Final[Mapping[str, Handler]] = {
    "config.schema": _schema,
    "config.history": _history,
    "config.enter": _enter,
    "config.exit": _exit,
    "config.status": _status,
    "config.set": _set,
    "config.delete": _delete,
    "config.edit": _edit,
    "config.show": _show,
    "config.compare": _compare,
    "config.compare_rollback": _compare_rollback,
    "config.commit": _commit,
    "config.rollback": _rollback,
    "config.load": _load,
}
