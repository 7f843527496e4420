"""`wsgid.frozen_record.FrozenRecord`, the base of the settings' typed attributes.

A record is built by keyword with each attribute exactly once (a missing or unknown name is a
`TypeError` that names it), is copied with changes the same way, has no attribute but its
slots, refuses assignment and deletion, compares, prints, pickles and copies by value, and a
subclass that adds only properties (as `RuntimeSettings` does) keeps all of this. mypy's view
of it (a frozen dataclass) is checked in tests/unit/test_settings_typed.py.
"""

from __future__ import annotations

import copy
import pickle

import pytest

from wsgid.frozen_record import FrozenRecord


class Point(FrozenRecord):
    __slots__ = ("tags", "x")

    tags: dict[str, str]
    x: int


class Named(Point):
    __slots__ = ("name",)

    name: str


class Derived(Named):
    __slots__ = ()

    @property
    def label(self) -> str:
        return f"{self.name}@{self.x}"


def test_a_record_is_built_by_keyword_with_each_attribute_once() -> None:
    point = Named(x=1, tags={"a": "b"}, name="p")
    assert (point.x, point.tags, point.name) == (1, {"a": "b"}, "p")
    with pytest.raises(TypeError, match=r"Named: missing \['name'\], unknown \['y'\]"):
        Named(x=1, tags={}, y=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point({}, 1)  # type: ignore[call-arg]


def test_a_record_refuses_assignment_deletion_and_other_attributes() -> None:
    point = Point(x=1, tags={})
    with pytest.raises(AttributeError, match="Point is read-only: cannot assign to 'x'"):
        point.x = 2  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot delete 'x'"):
        del point.x
    with pytest.raises(AttributeError):
        object.__setattr__(point, "y", 2)  # no __dict__: only the slots exist
    assert point.x == 1


def test_records_compare_print_pickle_and_copy_by_value() -> None:
    point = Derived(x=1, tags={"a": "b"}, name="p")
    assert point == Derived(x=1, tags={"a": "b"}, name="p")
    assert point != Derived(x=2, tags={"a": "b"}, name="p")
    assert point != Named(x=1, tags={"a": "b"}, name="p")  # another type is never equal
    assert repr(point) == "Derived(tags={'a': 'b'}, x=1, name='p')"
    for clone in (pickle.loads(pickle.dumps(point)), copy.deepcopy(point), copy.copy(point)):
        assert type(clone) is Derived and clone == point and clone.label == "p@1"
    with pytest.raises(TypeError):
        hash(point)  # equal records may hold dicts: not hashable


def test_a_changed_copy_is_a_new_record_and_checks_its_names() -> None:
    point = Derived(x=1, tags={}, name="p")
    moved = point.replace(x=2)
    assert type(moved) is Derived and (moved.x, moved.name) == (2, "p") and point.x == 1
    with pytest.raises(TypeError, match=r"unknown \['y'\]"):
        point.replace(y=3)
