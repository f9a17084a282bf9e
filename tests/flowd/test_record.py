"""flowd.model.record: a Record or Frozen dataclass compares, hashes and prints as the methods @dataclass would
generate for it, held against a generated twin of real instances (the configuration's classes: test_config)."""

from __future__ import annotations

from dataclasses import fields, make_dataclass

import pytest

from flowd.core.table_counters import TableCounters
from flowd.export.exporter import ExportCounters
from flowd.export.udp import Destination, DestinationStats
from flowd.model.flowkey import FlowKey
from flowd.model.record import Frozen, Record
from flowd.runtime.batch_plan import Step
from flowd.runtime.batch_summary import ServerLine


def twin(obj: object) -> object:
    """The same class and values, with the methods @dataclass generates."""
    cls = type(obj)
    frozen = isinstance(obj, Frozen)
    made = make_dataclass(cls.__qualname__, [(f.name, f.type) for f in fields(cls)], frozen=frozen)  # type: ignore[arg-type]
    return made(*(getattr(obj, f.name) for f in fields(cls)))  # type: ignore[arg-type]


INSTANCES = [
    TableCounters(packets=3, bytes=120, flows_created=1),
    ExportCounters(flows_exported=2),
    DestinationStats(datagrams_sent=1, last_error="refused"),
    Destination("127.0.0.1", 2055, None, 46),
    FlowKey.unpack(bytes(range(40))),
    Step(1.0, 2.0, [], "damaged"),
    ServerLine("inet", "127.0.0.1:2055", "5", "udp", 4, 0, None),
]


@pytest.mark.parametrize("obj", INSTANCES, ids=lambda obj: type(obj).__name__)
def test_methods_match_the_generated_ones(obj: object) -> None:
    assert isinstance(obj, Record)
    same = type(obj)(*(getattr(obj, f.name) for f in fields(obj)))  # type: ignore[arg-type]
    other = twin(obj)
    assert repr(obj) == repr(other)
    assert obj == same and not obj != same and obj is not same
    assert obj != other and obj.__eq__(other) is NotImplemented  # another class, as @dataclass has it
    assert hashed(obj) == hashed(same) == hashed(other)
    assert isinstance(obj, Frozen) or hashed(obj) == "unhashable"


def hashed(obj: object) -> int | str:
    try:
        return hash(obj)
    except TypeError:  # a mutable dataclass, or a frozen one with a list field
        return "unhashable"


def test_a_field_that_differs_makes_them_differ() -> None:
    assert TableCounters(packets=1) != TableCounters(packets=2)
    assert Destination("127.0.0.1", 2055) != Destination("127.0.0.1", 2056)
    assert len({Destination("127.0.0.1", 2055), Destination("127.0.0.1", 2055), Destination("::1", 2055)}) == 2


def test_one_field_and_none_hash_and_compare_as_generated() -> None:
    """The field values are read by one call per class; with one field or none that call still gives a tuple."""
    one = make_dataclass("One", [("a", int)], bases=(Frozen,), frozen=True, slots=True, eq=False, repr=False)
    none = make_dataclass("Nothing", [], bases=(Frozen,), frozen=True, slots=True, eq=False, repr=False)
    generated = make_dataclass("One", [("a", int)], frozen=True)
    assert one(1) == one(1) and one(1) != one(2) and hash(one(5)) == hash(generated(5))
    assert repr(one(5)) == repr(generated(5)) and none() == none()
    assert hash(none()) == hash(make_dataclass("Nothing", [], frozen=True)())
