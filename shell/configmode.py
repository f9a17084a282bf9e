"""Configuration mode: `configure [private | exclusive]`, the `user@host#` prompt and its commands.

The statements come from the daemon's schema (`config.schema`, cached here for Tab and `?`), walked by
flowd.syntax.schema exactly as the daemon walks it for `set`; the daemon holds the candidate, checks
and commits. Commands (each may be abbreviated):

    set / delete STATEMENT          edit STATEMENT / up [N] / top
    show [STATEMENT] [| display set | compare [rollback N] | other pipes of `show configuration`]
    commit [check | and-quit | confirmed [N] | comment "TEXT"]     rollback [N]     status
    load (merge | override | replace) (terminal | FILE)            run OPERATIONAL-COMMAND
    exit [configuration-mode]       quit
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from flowd.syntax.names import Configuration
from flowd.syntax.schema import Key, node_at, word_value
from shell.client import Client, RemoteError
from shell.commands import Candidate, Match, Word
from shell.pager import Output, PipeError, apply_pipes, display_format
from shell.parser import failure_text, format_candidates, split_words
from shell.render import render
from shell.render.configuration import revive

VERBS: Final = (
    ("commit", "Commit current set of changes"),
    ("delete", "Delete a data element"),
    ("edit", "Edit a sub-element"),
    ("exit", "Exit from this level"),
    ("load", "Load configuration from ASCII file or terminal"),
    ("quit", "Quit from this level"),
    ("rollback", "Roll back to previous committed configuration"),
    ("run", "Run an operational-mode command"),
    ("set", "Set a parameter"),
    ("show", "Show a parameter"),
    ("status", "Show users currently editing configuration"),
    ("top", "Exit to top level of configuration"),
    ("up", "Exit one level of configuration"),
)
UNCOMMITTED: Final = "The configuration has been changed but not committed"
EXIT_QUESTION: Final = "Exit with uncommitted changes? [yes,no] (yes) "
DISCARD_QUESTION: Final = "Discard uncommitted changes? [yes,no] (yes) "


class LeaveConfiguration(Exception):
    """The session leaves configuration mode (`exit` at the top, `quit`, `commit and-quit`); ``lines`` to print first."""

    def __init__(self, lines: Sequence[str] = ()) -> None:
        super().__init__("leave configuration mode")
        self.lines = list(lines)


class ConfigCommandError(Exception):
    """A configuration-mode line that failed; ``lines`` are printed as they are."""

    def __init__(self, lines: Sequence[str], column: int | None = None) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)
        self.column = column  # where the caret goes (in the typed line), when there is one


def _verb(word: str) -> str:
    names = [v for v, _ in VERBS]
    if word in names:
        return word
    found = [v for v in names if v.startswith(word)]
    if len(found) == 1:
        return found[0]
    raise ConfigCommandError(["syntax error."] if found else ["unknown command."], 0)


def _remote(exc: RemoteError) -> ConfigCommandError:
    lines = str(exc).splitlines() or ["error"]
    if not lines[0].startswith(("error:", "warning:", "[edit")):
        lines[0] = "error: " + lines[0]
    return ConfigCommandError(lines)


@dataclass(slots=True)
class ConfigSession:
    """One stay in configuration mode, on the shell's connection."""

    client: Client
    run_operational: Callable[[str], Awaitable[Output]]
    read_terminal: Callable[[], Awaitable[list[str]]] | None = None  # `load ... terminal` (until Ctrl-D)
    level: tuple[Key, ...] = ()
    schema: Mapping[str, Any] | None = None
    mode: str = "shared"
    config: Configuration | None = None  # the candidate's statements and names, for Tab and `?`

    async def enter(self, mode: str) -> list[str]:
        """`configure [private | exclusive]`: the lines Junos prints (raises on a lock)."""
        try:
            result = await self.client.call("config.enter", {"mode": mode})
            self.schema = (await self.client.call("config.schema"))["schema"]
        except RemoteError as exc:
            raise _remote(exc) from None
        self.mode = mode
        await self.refresh_known()
        return ["Entering configuration mode", *result["lines"]]

    def banner(self) -> str:
        return "[edit" + "".join(f" {k}" for k in self.level) + "]"

    async def refresh_known(self) -> None:
        """The names configured in the candidate, offered by Tab and `?` (once per command line)."""
        try:
            tree = (await self.client.call("config.show", {"path": []}))["config"]
        except RemoteError:
            return
        assert self.schema is not None
        self.config = Configuration(self.schema, revive(tree))

    def complete(self, words: Sequence[str], verb: str) -> list[tuple[str, str]]:
        """Candidates after a verb's words (`set forwarding-options ...`)."""
        if self.config is None or verb not in ("set", "delete", "edit", "show"):
            return []
        return self.config.statements(words, self.level, several=verb == "set")

    async def changed(self) -> bool:
        try:
            return bool((await self.client.call("config.status"))["changed"])
        except RemoteError:
            return False

    async def leave(self) -> None:
        try:
            await self.client.call("config.exit")
        except RemoteError:
            pass

    async def execute(self, line: str) -> Output:
        """Run one configuration-mode line; raise `ConfigCommandError` or `LeaveConfiguration`."""
        words, _ = split_words(line)
        if not words:
            return Output([], False)
        verb = _verb(words[0].text)
        rest = words[1:]
        handler = _HANDLERS[verb]
        try:
            return await handler(self, rest, line)
        except RemoteError as exc:
            raise _remote(exc) from None

    async def _statement(self, method: str, rest: Sequence[Word]) -> dict[str, Any]:
        result: dict[str, Any] = await self.client.call(
            method, {"path": list(self.level), "words": [w.text for w in rest]})
        if "error" in result:
            index = result["error"]["word"]
            column = rest[index].start if index < len(rest) else (rest[-1].end + 1 if rest else None)
            raise ConfigCommandError([result["error"]["message"]], column)
        return result


async def _set(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    await s._statement("config.set", rest)
    await s.refresh_known()
    return Output([], False)


async def _delete(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    result = await s._statement("config.delete", rest)
    await s.refresh_known()
    return Output([] if result["found"] else ["warning: statement not found"], False)


async def _edit(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    result = await s._statement("config.edit", rest)
    s.level = tuple(word_value(k) if isinstance(k, str) else k for k in result["path"])
    return Output([], False)


async def _up(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    count = int(rest[0].text) if rest and rest[0].text.isdigit() else 1
    if not s.level:
        return Output(["warning: already at top of configuration"], False)
    s.level = s.level[:-_levels(s, count)]
    return Output([], False)


def _levels(s: ConfigSession, count: int) -> int:
    """Tree keys in the last ``count`` levels (a list entry and its keyword are one level)."""
    assert s.schema is not None
    keys, taken, path = 0, 0, list(s.level)
    while path and taken < count:
        node = node_at(s.schema, tuple(path[:-1])) if len(path) > 1 else s.schema
        step = 2 if node["kind"] == "list" and len(path) >= 2 else 1
        keys += step
        del path[-step:]
        taken += 1
    return keys


async def _top(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    s.level = ()
    return Output([], False)


def _split_pipes(rest: Sequence[Word]) -> tuple[list[Word], list[list[str]]]:
    """The statement words, then each `| ...` segment's words."""
    where: list[Word] = []
    segments: list[list[str]] = []
    for word in rest:
        if word.is_pipe:
            segments.append([])
        elif segments:
            segments[-1].append(word.text)
        else:
            where.append(word)
    return where, segments


def _bare_compare(segments: list[list[str]]) -> tuple[bool, list[list[str]]]:
    """Take a bare `| compare` (the candidate against the active configuration) out of the pipes; `compare
    rollback N` is the operational grammar's pipe."""
    bare = [seg for seg in segments if len(seg) == 1 and len(seg[0]) >= 3 and "compare".startswith(seg[0])]
    return bool(bare), [seg for seg in segments if seg not in bare]


async def _show(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    where, segments = _split_pipes(rest)
    bare, segments = _bare_compare(segments)
    match = _pipes(" ".join("| " + " ".join(seg) for seg in segments))
    pipes = match.pipes if match is not None else ()
    rollback = next((p.arg for p in pipes if p.keyword == "compare"), None)
    result = await s._statement("config.show", where)
    if bare or rollback is not None:
        params: dict[str, Any] = {"path": result["path"]}
        if rollback is not None:
            params["rollback"] = rollback
        lines = (await s.client.call("config.compare", params))["lines"]
    else:
        lines = render("system.configuration", result, None, display_format(pipes))
    try:
        return apply_pipes(lines, pipes)
    except PipeError as exc:
        raise ConfigCommandError([f"error: {exc}"]) from None


def _pipes(pipes: str) -> Match | None:
    """The pipes after `show`, parsed by the operational grammar's pipe table (`show configuration | ...`)."""
    if not pipes:
        return None
    from shell.grammar import PARSER
    result = PARSER.resolve("show configuration " + pipes)
    if not isinstance(result, Match):
        raise ConfigCommandError(failure_text(result)) if result is not None else ConfigCommandError(["syntax error."])
    return result


async def _commit(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    params: dict[str, Any] = {}
    quit_after = False
    i = 0
    words = [w.text for w in rest]
    while i < len(words):
        word = words[i]
        if "check".startswith(word):
            params["check"] = True
        elif "and-quit".startswith(word):
            quit_after = True
        elif "confirmed".startswith(word):
            params["confirmed"] = 10
            if i + 1 < len(words) and words[i + 1].isdigit():
                params["confirmed"] = int(words[i + 1])
                i += 1
        elif "comment".startswith(word) and i + 1 < len(words):
            params["comment"] = words[i + 1]
            i += 1
        else:
            raise ConfigCommandError(["syntax error."], rest[i].start)
        i += 1
    result = await s.client.call("config.commit", params)
    await s.refresh_known()
    if quit_after:
        raise LeaveConfiguration(result["lines"])
    return Output(result["lines"], False)


async def _rollback(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    index = 0
    if rest:
        if not rest[0].text.isdigit() or int(rest[0].text) > 49:
            raise ConfigCommandError(["error: value out of range: rollback 0..49"], rest[0].start)
        index = int(rest[0].text)
    result = await s.client.call("config.rollback", {"index": index})
    await s.refresh_known()
    return Output(result["lines"], False)


async def _load(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    if len(rest) != 2 or not any(m.startswith(rest[0].text) for m in ("merge", "override", "replace")):
        raise ConfigCommandError(["syntax error, expecting merge, override or replace and terminal or FILE."],
                                 rest[0].start if rest else len(line) + 1)
    mode = next(m for m in ("merge", "override", "replace") if m.startswith(rest[0].text))
    source = rest[1].text
    if "terminal".startswith(source) and source:
        if s.read_terminal is None:
            raise ConfigCommandError(["error: load terminal needs an interactive terminal"])
        text = "\n".join(await s.read_terminal())
    else:
        try:
            with open(os.path.expanduser(source), encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            raise ConfigCommandError([f"error: could not read {source}: {exc.strerror or exc}"]) from None
    result = await s.client.call("config.load", {"mode": mode, "text": text, "path": list(s.level)})
    await s.refresh_known()
    return Output(result["lines"], False)


async def _run(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    if not rest:
        raise ConfigCommandError(["syntax error, expecting <command>."], len(line) + 1)
    return await s.run_operational(line[rest[0].start:])


async def _status(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    result = await s.client.call("config.status")
    lines = [f"Configuration mode: {result['mode']}"]
    if result["changed"]:
        lines.append(UNCOMMITTED)
    if result["rollback_in"] is not None:
        lines.append(f"# commit confirmed will be rolled back in {_minutes(result['rollback_in'])}")
    return Output(lines, False)


def _minutes(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute" + ("s" if minutes != 1 else "")


async def _exit(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    if rest and not "configuration-mode".startswith(rest[0].text):
        raise ConfigCommandError(["syntax error."], rest[0].start)
    if s.level and not rest:
        s.level = s.level[:-_levels(s, 1)]
        return Output([], False)
    raise LeaveConfiguration([])


async def _quit(s: ConfigSession, rest: Sequence[Word], line: str) -> Output:
    return await _exit(s, rest, line)


_HANDLERS: Final[dict[str, Callable[[ConfigSession, Sequence[Word], str], Awaitable[Output]]]] = {
    "set": _set, "delete": _delete, "edit": _edit, "up": _up, "top": _top, "show": _show, "commit": _commit,
    "rollback": _rollback, "load": _load, "run": _run, "status": _status, "exit": _exit, "quit": _quit,
}


def _after_pipe(text: str) -> str | None:
    """`show ... | PIPES` as the operational line whose pipes they are (None without a pipe after `show`)."""
    words, _ = split_words(text)
    pipe = next((w for w in words if w.is_pipe), None)
    if pipe is None or not words or not "show".startswith(words[0].text) or words[0].is_pipe:
        return None
    return "show configuration " + text[pipe.start:]


def help_lines(session: ConfigSession, text: str) -> list[str]:
    """`?` in configuration mode: the verbs, or what the verb's statement (or `show`'s pipe) may take next."""
    if (piped := _after_pipe(text)) is not None:
        from shell.grammar import PARSER
        return [line for line in PARSER.help_lines(piped, 0) if line.strip() != "^"]
    words, _ = split_words(text)
    typed = [w.text for w in words]
    partial = "" if not typed or text.endswith(" ") else typed.pop()
    if not typed:
        listing = [(v, h) for v, h in VERBS if v.startswith(partial)]
    else:
        try:
            verb = _verb(typed[0])
        except ConfigCommandError:
            return ["syntax error."]
        listing = [(w, h) for w, h in session.complete(typed[1:], verb) if w.startswith(partial) or w.startswith("<")]
    if not listing:
        return ["syntax error."]
    return format_candidates(Candidate(w, h) for w, h in listing)


def completions(session: ConfigSession, text: str) -> tuple[int, list[tuple[str, str]]]:
    """Tab in configuration mode: (start column of the word being typed, the words that may replace it)."""
    words, quoted = split_words(text)
    if quoted:
        return len(text), []
    if (piped := _after_pipe(text)) is not None:
        from shell.grammar import PARSER
        listing = PARSER.candidates(piped)
        offset = len(text) - len(piped)
        return listing.start + offset, [(c.word, c.help) for c in listing.candidates if c.insertable]
    typed = [w.text for w in words]
    start = len(text)
    partial = ""
    if typed and not text[-1:].isspace():
        partial = typed.pop()
        start = words[-1].start
    if not typed:
        return start, [(v, h) for v, h in VERBS if v.startswith(partial)]
    try:
        verb = _verb(typed[0])
    except ConfigCommandError:
        return start, []
    found = [(w, h) for w, h in session.complete(typed[1:], verb) if not w.startswith("<") and w.startswith(partial)]
    return start, sorted(set(found))


class ConfigCompleter(Completer):
    """prompt_toolkit completer for configuration mode (keywords and configured names; no placeholders)."""

    def __init__(self, session: ConfigSession) -> None:
        self.session = session

    def get_completions(self, document: Document, complete_event: CompleteEvent) -> Iterable[Completion]:
        text = document.text_before_cursor
        start, found = completions(self.session, text)
        for word, help in found:
            yield Completion(word, start_position=start - len(text), display_meta=help)
