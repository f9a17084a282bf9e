"""Value types for command placeholders: each checks one typed word and says what may complete it.

`match(text)` returns the value sent to the daemon (or used by a pipe) and raises `ValueError` for a
word that is not one; `choices()` lists the literal words the type accepts besides free values (for
`?` and Tab), and `placeholder` names the free value in `?` listings (`<limit>`).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, Protocol


class ValueType(Protocol):
    """What every placeholder type provides."""

    @property
    def placeholder(self) -> str: ...

    @property
    def note(self) -> str: ...

    def match(self, text: str) -> Any: ...

    def choices(self) -> tuple[tuple[str, str], ...]: ...


@dataclass(frozen=True, slots=True)
class IntRange:
    """A decimal integer in ``lo..hi``."""

    lo: int
    hi: int
    placeholder: str = "<number>"

    @property
    def note(self) -> str:
        return f"({self.lo}..{self.hi})"

    def match(self, text: str) -> int:
        if not text.isdigit():
            raise ValueError(f"expected a number {self.note}")
        value = int(text)
        if not self.lo <= value <= self.hi:
            raise ValueError(f"expected a number {self.note}")
        return value

    def choices(self) -> tuple[tuple[str, str], ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Prefix:
    """An IPv4 or IPv6 prefix (``10.0.0.0/8``) or address (a host prefix); host bits are cleared."""

    placeholder: str = "<prefix>"

    @property
    def note(self) -> str:
        return ""

    def match(self, text: str) -> str:
        try:
            return str(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError("expected an IPv4 or IPv6 prefix") from None

    def choices(self) -> tuple[tuple[str, str], ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Name:
    """Any word, with some literal words (`*`, `all`) listed for completion."""

    placeholder: str = "<name>"
    literals: tuple[tuple[str, str], ...] = ()

    @property
    def note(self) -> str:
        return ""

    def match(self, text: str) -> str:
        if not text:
            raise ValueError("expected a name")
        return text

    def choices(self) -> tuple[tuple[str, str], ...]:
        return self.literals


@dataclass(frozen=True, slots=True)
class Choice:
    """One of fixed words; an unambiguous prefix is accepted."""

    words: tuple[tuple[str, str], ...]
    placeholder: str = ""

    @property
    def note(self) -> str:
        return ""

    def match(self, text: str) -> str:
        names = [word for word, _ in self.words]
        if text in names:
            return text
        hits = [word for word in names if word.startswith(text)] if text else []
        if len(hits) == 1:
            return hits[0]
        raise ValueError("expected one of " + ", ".join(names))

    def choices(self) -> tuple[tuple[str, str], ...]:
        return self.words


@dataclass(frozen=True, slots=True)
class Regex:
    """A Python regular expression (quote it when it holds spaces or `|`)."""

    placeholder: str = "<regular-expression>"

    @property
    def note(self) -> str:
        return ""

    def match(self, text: str) -> str:
        try:
            re.compile(text)
        except re.error as exc:
            raise ValueError(f"bad regular expression: {exc}") from None
        return text

    def choices(self) -> tuple[tuple[str, str], ...]:
        return ()


@dataclass(frozen=True, slots=True)
class Filename:
    """A file path (``~`` is expanded when the file is written)."""

    placeholder: str = "<filename>"

    @property
    def note(self) -> str:
        return ""

    def match(self, text: str) -> str:
        if not text:
            raise ValueError("expected a file name")
        return text

    def choices(self) -> tuple[tuple[str, str], ...]:
        return ()
