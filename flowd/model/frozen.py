"""`Frozen`: equality, hashing and repr over a frozen dataclass's fields, written once instead of per class.

`@dataclass` compiles each method it generates on its own when the class is defined (Python 3.11), which
adds up at start-up for a module of many classes (the configuration schema). A class declared
``@dataclass(frozen=True, eq=False, repr=False)`` that derives from `Frozen` compares, hashes and prints as
``@dataclass(frozen=True)`` would have it: equal to an instance of the same class with equal fields, the
hash of the field values, ``Name(field=value, ...)``.
"""

from __future__ import annotations

from dataclasses import fields


class Frozen:
    """The base of a frozen dataclass declared with ``eq=False, repr=False`` (see the module docstring)."""

    __slots__ = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({shown})"
