"""The grammar's building blocks (commands, options, output levels, pipes) and what the parser answers (matches, failures, listings)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Protocol

from flowd.syntax.schema import KeyPath, StatementError
from shell.tokens import ValueType

HELP_WIDTH: Final = 20  # `?` listings: "  " + word padded to 20 + " " + help
ENTER_WORD: Final = "<[Enter]>"
ENTER_HELP: Final = "Execute this command"
PIPE_WORD: Final = "|"
PIPE_HELP: Final = "Pipe through a command"
UNKNOWN_COMMAND: Final = "unknown command."
EXPECTING_COMMAND: Final = "syntax error, expecting <command>."
SYNTAX_ERROR: Final = "syntax error."


class GrammarError(Exception):
    """The command table itself is inconsistent (found when it is compiled)."""


class Local(Enum):
    """Commands the shell carries out itself, without the daemon."""

    EXIT = "exit"
    HELP = "help"
    CONFIGURE = "configure"  # enter configuration mode (shell.configmode)
    SET_CLI = "set cli"  # shell.clisettings
    CLI_HISTORY = "show cli history"
    ALL_ACCOUNTING = "show services accounting"  # every section, one after the other


@dataclass(frozen=True, slots=True)
class Opt:
    """An option keyword followed by one value (``limit 10``); sent to the daemon as `param`."""

    keyword: str
    value: ValueType
    help: str
    param: str = ""
    required: bool = False  # the command is incomplete until this option is given
    configured: tuple[str, ...] = ()  # where the configuration defines its values (flowd.syntax.names patterns)
    named: str = ""  # the help each configured value is listed with (`{at}`: the entry it was found in)

    @property
    def param_name(self) -> str:
        return self.param or self.keyword.replace("-", "_")

    @property
    def placeholder(self) -> str:
        return self.value.placeholder or f"<{self.keyword}>"


@dataclass(frozen=True, slots=True)
class Level:
    """Mutually exclusive output-level words; only the renderer sees the chosen one."""

    words: tuple[tuple[str, str], ...]
    default: str


@dataclass(frozen=True, slots=True)
class Statement:
    """The words of a configuration statement (`show configuration forwarding-options sampling`), walked
    through the daemon's statement tree for Tab, `?` and errors; sent to the daemon as `param` (a list)."""

    placeholder: str
    help: str
    param: str = "words"


Option = Opt | Level | Statement


@dataclass(frozen=True, slots=True)
class Command:
    """One command: its keyword path, help, and either the daemon method or the local action."""

    path: str
    help: str
    rpc: str | None = None
    local: Local | None = None
    options: tuple[Option, ...] = ()
    pipes: bool = True
    displays: tuple[str, ...] = ("json", "xml")
    notes: str = ""
    xml_rpc: str = ""  # the Junos XML RPC name NETCONF clients call it by (junos-reference.md §1.0)
    compare: str = ""  # the method `| compare rollback N` calls instead of `rpc` (given the same params)

    @property
    def words(self) -> tuple[str, ...]:
        return tuple(self.path.split())

    @property
    def level(self) -> Level | None:
        return next((o for o in self.options if isinstance(o, Level)), None)

    @property
    def statement(self) -> Statement | None:
        return next((o for o in self.options if isinstance(o, Statement)), None)


@dataclass(frozen=True, slots=True)
class Pipe:
    """A `| keyword [value]` output filter; `display` takes one of the command's display formats."""

    keyword: str
    help: str
    value: ValueType | None = None
    display: bool = False
    word: tuple[str, str] | None = None  # a keyword (and its help) typed before the value: `compare rollback N`
    compare: bool = False  # only on commands with a `compare` method


@dataclass(frozen=True, slots=True)
class PipeCall:
    """One pipe as typed: its keyword and checked value (None when it takes none)."""

    keyword: str
    arg: Any = None


@dataclass(frozen=True, slots=True)
class Word:
    """One word of a typed line, quotes removed; `start` is its column in the line."""

    text: str
    start: int
    end: int
    quoted: bool = False

    @property
    def is_pipe(self) -> bool:
        return self.text == PIPE_WORD and not self.quoted


@dataclass(frozen=True, slots=True)
class Match:
    """A complete, valid line."""

    command: Command
    params: dict[str, Any]
    level: str | None = None
    pipes: tuple[PipeCall, ...] = ()

    @property
    def call(self) -> tuple[str, dict[str, Any]]:
        """The daemon method and params the line calls (with `| compare rollback N`, the command's `compare`)."""
        assert self.command.rpc is not None
        rollback = next((p.arg for p in self.pipes if p.keyword == "compare"), None)
        if rollback is not None and self.command.compare:
            return self.command.compare, {**self.params, "rollback": rollback}
        return self.command.rpc, self.params


@dataclass(frozen=True, slots=True)
class Invalid:
    """A word that fits nowhere, or a bad value."""

    message: str
    word: str
    column: int
    completions: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class Ambiguous:
    """A prefix of several keywords."""

    word: str
    column: int
    completions: tuple[Candidate, ...] = ()

    @property
    def message(self) -> str:
        return f"'{self.word}' is ambiguous."


@dataclass(frozen=True, slots=True)
class Incomplete:
    """The line stops before a command (or a value) is complete."""

    expected: str
    column: int
    word: str = ""
    completions: tuple[Candidate, ...] = ()

    @property
    def message(self) -> str:
        return f"syntax error, expecting {self.expected}."


class Configured(Protocol):
    """What the configuration defines, for completion and checks (flowd.syntax.names.Configuration)."""

    def statements(self, words: Sequence[str], base: KeyPath = (), *, several: bool = False
                   ) -> list[tuple[str, str]]: ...

    def error(self, words: Sequence[str], base: KeyPath = ()) -> StatementError | None: ...

    def names(self, patterns: Sequence[str], params: Mapping[str, Any] | None = None) -> list[tuple[str, str]]: ...


Failure = Invalid | Ambiguous | Incomplete
Result = Match | Failure


@dataclass(frozen=True, slots=True)
class Candidate:
    """One entry of a `?` listing."""

    word: str
    help: str
    insertable: bool = True

    @property
    def order(self) -> tuple[int, str]:
        """Junos order: `<[Enter]>`, placeholders (`<filter-name>`), words, then `|`."""
        if self.word == ENTER_WORD:
            return (0, "")
        if self.word == PIPE_WORD and not self.insertable:
            return (3, "")
        if self.word.startswith("<") and not self.insertable:
            return (1, self.word)
        return (2, self.word)


@dataclass(frozen=True, slots=True)
class Listing:
    """What may come next at the end of a line (or why nothing can)."""

    candidates: tuple[Candidate, ...]
    partial: str = ""
    failure: Failure | None = None
    start: int = 0  # column where the word being typed starts (the line's length when there is none)
    free_value: bool = False  # a value of any spelling fits here (not only the listed words)

    @property
    def words(self) -> list[str]:
        """Words Tab may insert, in listing order."""
        return [c.word for c in self.candidates if c.insertable]
