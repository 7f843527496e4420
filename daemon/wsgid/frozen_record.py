"""`FrozenRecord`: the base of a read-only record whose attributes are its `__slots__`.

What this module owns: how such a record is built (by keyword, each attribute exactly
once), copied with changes, kept read-only, compared, printed and pickled, all by value.
mypy treats a subclass as a frozen, keyword-only dataclass (PEP 681's
`dataclass_transform`): it knows the typed `__init__` and refuses an assignment to an
attribute.

Why not a dataclass: `dataclasses` writes and compiles each class's methods when the class is
made, about 3.5 ms of every start for `wsgid.runtime_fields.SettingFields` and its 150
settings. These methods are written once, here, and read the attribute names from the class.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from typing import dataclass_transform
else:

    def dataclass_transform(**_: object):  # only type checkers read it (Python 3.10 has none)
        return lambda cls: cls


Record = TypeVar("Record", bound="FrozenRecord")


@dataclass_transform(frozen_default=True, kw_only_default=True)
class FrozenRecord:
    """A subclass declares its attributes as `__slots__` and annotations, without defaults."""

    __slots__ = ()
    # Every attribute's name, the bases' first; and as a set, to check a build against.
    _names: ClassVar[tuple[str, ...]] = ()
    _name_set: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        slots = cls.__dict__.get("__slots__", ())
        cls._names = cls._names + ((slots,) if isinstance(slots, str) else tuple(slots))
        cls._name_set = frozenset(cls._names)

    def __init__(self, **values: Any) -> None:
        if values.keys() != self._name_set:
            missing = [name for name in self._names if name not in values]
            unknown = sorted(values.keys() - self._name_set)
            raise TypeError(f"{type(self).__name__}: missing {missing}, unknown {unknown}")
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def replace(self: Record, **changes: Any) -> Record:
        """A copy with `changes` (by name) made: `dataclasses.replace` of a record."""
        return type(self)(**{**self.__getstate__(), **changes})

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot assign to {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only: cannot delete {name!r}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self._names)

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._names)
        return f"{type(self).__name__}({values})"

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._names}

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
