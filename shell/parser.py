"""Compile the command table into a keyword trie and match typed lines against it (FRR's DEFUN graph idea).

How matching works
------------------
A line is split into words (`split_words`): whitespace separates words, single or double quotes keep
spaces (and `|`) inside one word, and an unquoted `|` is a word of its own that starts a pipe. Every
word records the column it starts at, so an error can put its caret under the word.

The words are fed one at a time to a small state machine with five phases:

* ``COMMAND``: the words so far walk the trie of command paths (``show services accounting flow``).
  Once a trie node ends a command, the next word may also be one of the command's options: an `Opt`
  keyword (which then wants one value), or a word of its `Level` (``terse``/``detail``/``extensive``).
  Each option may be used once, in any order; once an option is used, no more path keywords follow.
  An option marked `required` (``template-name NAME``) must be given before the command is complete.
* ``OPT_VALUE``: the word is checked by the option's value type (`shell.tokens`); a bad value is
  ``syntax error.`` with the caret under it.
* ``STATEMENT``: a command with a `Statement` option (``show configuration``) takes every word up to the
  pipe as a configuration statement's; given the daemon's statement tree (a `Configured`, which the shell
  fetches when a line reaches a statement or an option whose values are configured names), each word is
  walked through it and a word that is no statement is ``syntax error.`` under it; without the tree the
  daemon checks them.
* ``PIPE_KEYWORD`` (after ``|``), ``PIPE_WORD`` (a pipe's keyword before its value: ``compare rollback
  N``), ``PIPE_VALUE`` and ``PIPE_DONE``: the same for the pipe table.

A keyword word is looked up among the words valid at that point: an exact match wins; otherwise a
unique prefix wins; otherwise, when one of the words it prefixes is itself a prefix of all the others
(``fl`` → ``flow`` rather than ``flow-detail``), that shortest word wins; otherwise the word is
ambiguous. A word that matches nothing is ``unknown command.`` when it is the first word of the line
and ``syntax error, expecting <command>.`` later. A line that stops before a command is complete, or
right after a keyword that needs a value, is ``syntax error, expecting <...>.`` with the caret one
column after the last word; a command still missing a required option says which
(``syntax error, expecting <template-name>.``).

`candidates(line)` runs the same machine over every word but the one being typed and lists what may
come next, so Tab, Space and `?` can never disagree with what Enter accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from shell.commands import (
    ENTER_HELP,
    ENTER_WORD,
    EXPECTING_COMMAND,
    HELP_WIDTH,
    PIPE_HELP,
    PIPE_WORD,
    SYNTAX_ERROR,
    UNKNOWN_COMMAND,
    Ambiguous,
    Candidate,
    Command,
    Configured,
    Failure,
    GrammarError,
    Incomplete,
    Invalid,
    Level,
    Listing,
    Match,
    Opt,
    Pipe,
    PipeCall,
    Result,
    Statement,
    Word,
)
from shell.tokens import Choice, ValueType


@dataclass(slots=True)
class _Node:
    word: str
    help: str
    children: dict[str, _Node] = field(default_factory=dict)
    command: Command | None = None


class _Phase(Enum):
    COMMAND = "command"
    OPT_VALUE = "opt-value"
    STATEMENT = "statement"
    PIPE_KEYWORD = "pipe-keyword"
    PIPE_WORD = "pipe-word"
    PIPE_VALUE = "pipe-value"
    PIPE_DONE = "pipe-done"


@dataclass(slots=True)
class _State:
    node: _Node
    phase: _Phase = _Phase.COMMAND
    params: dict[str, Any] = field(default_factory=dict)
    level: str | None = None
    used: set[str] = field(default_factory=set)
    pending_opt: Opt | None = None
    pending_pipe: Pipe | None = None
    pipes: list[PipeCall] = field(default_factory=list)
    options_started: bool = False
    words_seen: int = 0
    statement: list[str] = field(default_factory=list)  # the words of a `Statement` option so far
    config: Configured | None = None  # the statement tree and configured names, when the shell has them


@dataclass(frozen=True, slots=True)
class _Choice:
    """A keyword valid at some point, with what taking it does."""

    word: str
    help: str
    target: _Node | Opt | Level | Pipe | str  # str: a pipe's keyword before its value (`rollback`)


def split_words(line: str) -> tuple[list[Word], bool]:
    """Split a line into words; the flag says whether it ends inside an unterminated quote."""
    words: list[Word] = []
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            i += 1
            continue
        if c == PIPE_WORD:
            words.append(Word(PIPE_WORD, i, i + 1))
            i += 1
            continue
        start, chars, quoted = i, [], False
        while i < n and not line[i].isspace() and line[i] != PIPE_WORD:
            if line[i] in "\"'":
                quote, quoted = line[i], True
                close = line.find(quote, i + 1)
                if close < 0:
                    chars.append(line[i + 1:])
                    words.append(Word("".join(chars), start, n, True))
                    return words, True
                chars.append(line[i + 1:close])
                i = close + 1
            else:
                chars.append(line[i])
                i += 1
        words.append(Word("".join(chars), start, i, quoted))
    return words, False


def split_commands(text: str) -> list[str]:
    """Split ``a; b`` into commands at every `;` outside quotes (a regex may hold a quoted `;`)."""
    out: list[str] = []
    quote = ""
    current: list[str] = []
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch == ";":
            out.append("".join(current))
            current = []
            continue
        current.append(ch)
    out.append("".join(current))
    return [part.strip() for part in out if part.strip()]


def format_candidates(candidates: Iterable[Candidate]) -> list[str]:
    """Junos `Possible completions:` block: two-space indent, word padded to 21 columns, help."""
    lines = ["Possible completions:"]
    for c in candidates:
        lines.append(f"  {c.word:<{HELP_WIDTH}} {c.help}".rstrip())
    return lines


def failure_lines(failure: Failure, prompt_width: int) -> list[str]:
    """The interactive error: caret under the bad word (counted from the prompt's start), message."""
    lines = [" " * (prompt_width + failure.column) + "^", failure.message]
    if isinstance(failure, Ambiguous):
        lines += format_candidates(failure.completions)
    return lines


def failure_text(failure: Failure) -> list[str]:
    """The non-interactive error: ``error: syntax error, expecting <command>: foo``."""
    if isinstance(failure, Ambiguous):
        return [f"error: {failure.message}", *format_candidates(failure.completions)]
    text = "error: " + failure.message.rstrip(".")
    return [f"{text}: {failure.word}" if failure.word else text]


def _pick(word: str, choices: Sequence[_Choice]) -> _Choice | list[_Choice]:
    """The choice `word` names (exact, unique prefix, or shortest common prefix), else all it prefixes."""
    for choice in choices:
        if choice.word == word:
            return choice
    hits = [c for c in choices if c.word.startswith(word)]
    if len(hits) == 1:
        return hits[0]
    for hit in hits:
        if all(other.word.startswith(hit.word) for other in hits):
            return hit
    return hits


class Parser:
    """A compiled command table: `resolve` a line, or list its `candidates`."""

    def __init__(self, commands: Sequence[Command], keyword_help: Mapping[str, str], pipes: Sequence[Pipe],
                 display_formats: Mapping[str, str]) -> None:
        self.commands = tuple(commands)
        self.pipes = tuple(pipes)
        self.display_formats = dict(display_formats)
        self.root = _Node("", "")
        for command in self.commands:
            self._add(command, keyword_help)

    def _add(self, command: Command, keyword_help: Mapping[str, str]) -> None:
        if (command.rpc is None) == (command.local is None):
            raise GrammarError(f"{command.path!r}: give exactly one of rpc= and local=")
        for fmt in command.displays:
            if fmt not in self.display_formats:
                raise GrammarError(f"{command.path!r}: unknown display format {fmt!r}")
        node = self.root
        words = command.words
        for depth, word in enumerate(words):
            child = node.children.get(word)
            if child is None:
                prefix = " ".join(words[:depth + 1])
                help_ = command.help if depth == len(words) - 1 else keyword_help.get(prefix)
                if help_ is None:
                    raise GrammarError(f"no help for keyword path {prefix!r} (add it to KEYWORD_HELP)")
                child = node.children[word] = _Node(word, help_)
            node = child
        if node.command is not None:
            raise GrammarError(f"command {command.path!r} is declared twice")
        node.command = command
        node.help = command.help
        option_words = [o.keyword for o in command.options if isinstance(o, Opt)]
        option_words += [w for o in command.options if isinstance(o, Level) for w, _ in o.words]
        if len(set(option_words)) != len(option_words):
            raise GrammarError(f"{command.path!r}: an option keyword is repeated")
        if clash := set(option_words) & set(node.children):
            raise GrammarError(f"{command.path!r}: options {sorted(clash)} clash with sub-commands")

    # -- the state machine --------------------------------------------------------------------

    def _keywords(self, st: _State) -> list[_Choice]:
        """Keywords valid in the COMMAND or PIPE_KEYWORD phase."""
        if st.phase is _Phase.PIPE_KEYWORD:
            compares = st.node.command is not None and bool(st.node.command.compare)
            return [_Choice(p.keyword, p.help, p) for p in self.pipes if compares or not p.compare]
        if st.phase is _Phase.PIPE_WORD and st.pending_pipe is not None and st.pending_pipe.word is not None:
            word, help_ = st.pending_pipe.word
            return [_Choice(word, help_, word)]
        if st.phase is not _Phase.COMMAND:
            return []
        out = [] if st.options_started else [_Choice(w, n.help, n) for w, n in st.node.children.items()]
        command = st.node.command
        if command is not None:
            for option in command.options:
                if isinstance(option, Opt):
                    if option.keyword not in st.used:
                        out.append(_Choice(option.keyword, option.help, option))
                elif isinstance(option, Level) and "level" not in st.used:
                    out += [_Choice(w, h, option) for w, h in option.words]
        return out

    def _value_type(self, st: _State) -> tuple[ValueType, str] | None:
        """The value type wanted next (with its help), in the OPT_VALUE or PIPE_VALUE phase."""
        if st.phase is _Phase.OPT_VALUE and st.pending_opt is not None:
            return st.pending_opt.value, st.pending_opt.help
        if st.phase is _Phase.PIPE_VALUE and st.pending_pipe is not None:
            return self._pipe_value(st.pending_pipe, st.node.command), st.pending_pipe.help
        return None

    def _pipe_value(self, pipe: Pipe, command: Command | None) -> ValueType:
        if pipe.display:
            allowed = command.displays if command is not None else ()
            return Choice(tuple((f, h) for f, h in self.display_formats.items() if f in allowed))
        assert pipe.value is not None
        return pipe.value

    @staticmethod
    def _missing(st: _State) -> Opt | None:
        """The first required option of the command reached that has not been given yet."""
        command = st.node.command
        if command is None:
            return None
        return next((o for o in command.options if isinstance(o, Opt) and o.required and o.keyword not in st.used),
                    None)

    def _complete_here(self, st: _State) -> bool:
        if st.phase is _Phase.PIPE_DONE:
            return True
        return st.phase in (_Phase.COMMAND, _Phase.STATEMENT) and st.node.command is not None and \
            self._missing(st) is None

    def _pipe_allowed(self, st: _State) -> bool:
        return self._complete_here(st) and st.node.command is not None and st.node.command.pipes

    def _feed(self, st: _State, word: Word) -> Failure | None:
        """Advance the state by one word, or say why the word does not fit."""
        first = st.words_seen == 0
        st.words_seen += 1
        if word.is_pipe:
            if self._pipe_allowed(st):
                st.phase = _Phase.PIPE_KEYWORD
                return None
            return Invalid(f"syntax error, expecting {self._expected(st)}.", word.text, word.start)
        if st.phase in (_Phase.OPT_VALUE, _Phase.PIPE_VALUE):
            wanted = self._value_type(st)
            assert wanted is not None
            try:
                value = wanted[0].match(word.text)
            except ValueError:
                return Invalid(SYNTAX_ERROR, word.text, word.start)
            if st.phase is _Phase.OPT_VALUE:
                assert st.pending_opt is not None
                st.params[st.pending_opt.param_name] = value
                st.phase, st.pending_opt = _Phase.COMMAND, None
            else:
                assert st.pending_pipe is not None
                st.pipes.append(PipeCall(st.pending_pipe.keyword, value))
                st.phase, st.pending_pipe = _Phase.PIPE_DONE, None
            return None
        if st.phase is _Phase.PIPE_DONE:
            return Invalid(EXPECTING_COMMAND, word.text, word.start)
        statement = st.node.command.statement if st.node.command is not None else None
        if statement is not None and st.phase in (_Phase.COMMAND, _Phase.STATEMENT):
            return self._statement_word(st, statement, word)
        choices = self._keywords(st)
        picked = _pick(word.text, choices) if word.text else []
        if isinstance(picked, list):
            if picked:
                listing = tuple(sorted((Candidate(c.word, c.help) for c in picked), key=lambda c: c.order))
                return Ambiguous(word.text, word.start, listing)
            return Invalid(UNKNOWN_COMMAND if first else EXPECTING_COMMAND, word.text, word.start)
        target = picked.target
        if isinstance(target, _Node):
            st.node = target
        elif isinstance(target, Opt):
            st.used.add(target.keyword)
            st.options_started = True
            st.pending_opt, st.phase = target, _Phase.OPT_VALUE
        elif isinstance(target, Level):
            st.used.add("level")
            st.options_started = True
            st.level = picked.word
        elif isinstance(target, str):
            st.phase = _Phase.PIPE_VALUE
        elif target.value is None and not target.display:
            st.pipes.append(PipeCall(target.keyword))
            st.phase = _Phase.PIPE_DONE
        else:
            st.pending_pipe = target
            st.phase = _Phase.PIPE_WORD if target.word is not None else _Phase.PIPE_VALUE
        return None

    @staticmethod
    def _statement_word(st: _State, statement: Statement, word: Word) -> Failure | None:
        """One more word of the command's statement: checked against the statement tree when there is one."""
        st.phase = _Phase.STATEMENT
        if st.config is not None and (error := st.config.error([*st.statement, word.text])) is not None \
                and error.word >= len(st.statement):
            return Invalid(SYNTAX_ERROR if error.message.endswith(SYNTAX_ERROR) else error.message, word.text,
                           word.start)
        st.statement.append(word.text)
        st.params[statement.param] = list(st.statement)
        return None

    def _walk(self, words: Iterable[Word], config: Configured | None) -> tuple[_State, Failure | None]:
        st = _State(self.root, config=config)
        for word in words:
            if failure := self._feed(st, word):
                return st, failure
        return st, None

    def _expected(self, st: _State) -> str:
        if st.phase is _Phase.OPT_VALUE and st.pending_opt is not None:
            return st.pending_opt.placeholder
        if st.phase is _Phase.PIPE_WORD and st.pending_pipe is not None and st.pending_pipe.word is not None:
            return st.pending_pipe.word[0]
        if st.phase is _Phase.PIPE_VALUE and st.pending_pipe is not None and st.pending_pipe.value is not None:
            return st.pending_pipe.value.placeholder
        if st.phase is _Phase.COMMAND and (missing := self._missing(st)) is not None:
            return f"<{missing.keyword}>"
        return "<command>"

    def resolve(self, line: str, config: Configured | None = None) -> Result | None:
        """Match a whole line; None for a blank line. ``config`` checks statement words and lists names."""
        words, _ = split_words(line)
        if not words:
            return None
        st, failure = self._walk(words, config)
        if failure is not None:
            return failure
        if not self._complete_here(st):
            return Incomplete(self._expected(st), len(line.rstrip()) + 1,
                              completions=self._listing(st, "").candidates)
        command = st.node.command
        assert command is not None
        level = st.level
        if level is None and command.level is not None:
            level = command.level.default
        return Match(command, dict(st.params), level, tuple(st.pipes))

    def _listing(self, st: _State, partial: str) -> Listing:
        items: list[Candidate] = []
        wanted = self._value_type(st)
        if wanted is not None:
            value_type, help_ = wanted
            if value_type.placeholder:
                note = f" {value_type.note}" if value_type.note else ""
                items.append(Candidate(value_type.placeholder, help_ + note, insertable=False))
            items += [Candidate(w, h) for w, h in value_type.choices() if w.startswith(partial)]
            opt = st.pending_opt if st.phase is _Phase.OPT_VALUE else None
            if opt is not None and opt.configured and st.config is not None:
                items += [Candidate(n, opt.named.format(at=at)) for n, at in st.config.names(opt.configured, st.params)
                          if n.startswith(partial) and n not in {c.word for c in items}]
        elif (statement := self._statement_here(st)) is not None:
            items += self._statement_candidates(st, statement, partial)
        else:
            items += [Candidate(c.word, c.help) for c in self._keywords(st) if c.word.startswith(partial)]
        if not partial:
            if self._complete_here(st):
                items.append(Candidate(ENTER_WORD, ENTER_HELP, insertable=False))
            if self._pipe_allowed(st):
                items.append(Candidate(PIPE_WORD, PIPE_HELP, insertable=False))
        free = wanted is not None and bool(wanted[0].placeholder)
        free = free or any(not c.insertable and c.word.startswith("<") for c in items)
        return Listing(tuple(sorted(items, key=lambda c: c.order)), partial, free_value=free)

    @staticmethod
    def _statement_here(st: _State) -> Statement | None:
        command = st.node.command
        if command is None or st.phase not in (_Phase.COMMAND, _Phase.STATEMENT):
            return None
        return command.statement

    @staticmethod
    def _statement_candidates(st: _State, statement: Statement, partial: str) -> list[Candidate]:
        """The statement's next words from the tree (keywords, configured names; placeholders for `?` only)."""
        if st.config is None:
            return [Candidate(statement.placeholder, statement.help, insertable=False)] if not partial else []
        return [Candidate(w, h, insertable=not w.startswith("<")) for w, h in st.config.statements(st.statement)
                if w.startswith(partial) or (w.startswith("<") and not partial)]

    def candidates(self, line: str, config: Configured | None = None) -> Listing:
        """What may follow the line; the word being typed (if any) filters the list by prefix."""
        words, open_quote = split_words(line)
        partial_word: Word | None = None
        if words and (open_quote or not (line[-1:].isspace() or words[-1].is_pipe)):
            partial_word = words.pop()
        start = partial_word.start if partial_word is not None else len(line)
        st, failure = self._walk(words, config)
        if failure is not None:
            return Listing((), "", failure, start)
        partial = partial_word.text if partial_word is not None else ""
        listing = replace(self._listing(st, partial), start=start)
        if partial_word is not None and not listing.candidates and self._value_type(st) is None \
                and not (self._statement_here(st) is not None and st.config is None):
            # Nothing continues the word: say why, as Enter would.
            return Listing((), partial, self._feed(st, partial_word), start)
        return listing

    def needs_configuration(self, line: str) -> bool:
        """Whether the line's next word (or the one being typed) is a statement's or a configured name (so the
        shell fetches the configuration before listing, completing or checking it)."""
        words, open_quote = split_words(line)
        if words and (open_quote or not (line[-1:].isspace() or words[-1].is_pipe)):
            words.pop()
        st, failure = self._walk(words, None)
        if failure is not None:
            return False
        if st.phase is _Phase.OPT_VALUE and st.pending_opt is not None:
            return bool(st.pending_opt.configured)
        return self._value_type(st) is None and self._statement_here(st) is not None

    def help_lines(self, line: str, prompt_width: int, config: Configured | None = None) -> list[str]:
        """What `?` prints for the line: the listing, or the error Enter would give."""
        listing = self.candidates(line, config)
        if listing.failure is not None:
            return failure_lines(listing.failure, prompt_width)
        return format_candidates(listing.candidates)
