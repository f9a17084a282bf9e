"""Results too long to build at once: the head of a result and its long list, built batch by batch as sent.

A method returns a `Streamed` when its result may hold a list of any length (every cached flow). The
control server sends the head, then each batch as it is built, yielding to the event loop and waiting
for the client between batches, so neither the daemon's memory nor its loop depends on the list's
length. Another front end (a NETCONF server) frames the same batches its own way.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Streamed:
    """``head`` is the result with the list at path ``into`` empty; ``batches`` yields that list's rows."""

    head: dict[str, Any]
    into: tuple[str | int, ...]
    batches: Iterator[list[dict[str, Any]]]

    def whole(self) -> dict[str, Any]:
        """The complete result in one object (for callers that want it all, whatever its size)."""
        target: Any = self.head
        for step in self.into:
            target = target[step]
        for batch in self.batches:
            target.extend(batch)
        return self.head


def whole(result: dict[str, Any] | Streamed) -> dict[str, Any]:
    """A method's result in one object, streamed or not."""
    return result.whole() if isinstance(result, Streamed) else result
