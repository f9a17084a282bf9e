"""`Record` and `Frozen`: a dataclass's equality, hash and repr over its fields, written once for many classes.

`@dataclass` compiles each method it generates on its own when the class is defined (Python 3.11): some
80 µs a method, which the modules a short run imports paid for some 15 ms at every start. A class declared
``@dataclass(slots=True, eq=False, repr=False)`` that derives from `Record` compares and prints as
``@dataclass(slots=True)`` would have it, and one declared ``@dataclass(frozen=True, slots=True, eq=False,
repr=False)`` that derives from `Frozen` also hashes as ``@dataclass(frozen=True)`` would: equal to an
instance of the same class with equal fields (compared as a tuple), ``Name(field=value, ...)``, the hash of
the field values; a `Record` is unhashable, as a mutable dataclass with equality is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from operator import attrgetter

_VALUES: dict[type, Callable[[object], tuple[object, ...]]] = {}  # per class: its field values as a tuple


def _values_of(cls: type) -> Callable[[object], tuple[object, ...]]:
    """One call that reads every field (``fields()`` per comparison would cost several times the comparison)."""
    names = [f.name for f in fields(cls)]
    if len(names) > 1:
        get: Callable[[object], tuple[object, ...]] = attrgetter(*names)
        return get
    return lambda obj: tuple(getattr(obj, name) for name in names)  # attrgetter of one name gives no tuple


class Record:
    """The base of a dataclass declared with ``eq=False, repr=False`` (see the module docstring)."""

    __slots__ = ()

    def _values(self) -> tuple[object, ...]:
        cls = self.__class__
        values = _VALUES.get(cls)
        if values is None:
            values = _VALUES[cls] = _values_of(cls)
        return values(self)

    def __eq__(self, other: object) -> bool:  # and no __hash__: Python makes the class unhashable
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({shown})"


class Frozen(Record):
    """The base of a frozen dataclass declared with ``eq=False, repr=False``: a `Record` that hashes."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._values())
