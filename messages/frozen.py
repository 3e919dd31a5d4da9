"""Deep-frozen JSON values, so OCPP payloads can cross actor boundaries without shared mutable state.

pykka does not copy messages: a dict handed to another actor is the same dict. Objects become
read-only `FrozenDict` mappings and arrays become tuples; `thaw` turns them back at the wire.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping


class FrozenDict(Mapping):
    """An immutable, hashable mapping (JSON object)."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] = MappingProxyType({})):
        # Deep: a list handed to the constructor must not stay shared and mutable (nor unhashable).
        self._data = {k: freeze(v) for k, v in data.items()}
        self._hash = None

    @classmethod
    def _wrap(cls, frozen: dict) -> "FrozenDict":
        """Adopt a dict whose values are already frozen (no second deep copy)."""
        obj = cls.__new__(cls)
        obj._data = frozen
        obj._hash = None
        return obj

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __hash__(self):
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __eq__(self, other):
        if isinstance(other, FrozenDict):
            return self._data == other._data
        if isinstance(other, Mapping):
            # Compare as JSON: a frozen array (tuple) equals the plain list it was made from.
            return thaw(self._data) == thaw(other)
        return NotImplemented

    def __repr__(self):
        return f"FrozenDict({self._data!r})"


_SCALARS = (str, int, float, bool, type(None))


def freeze(value: Any) -> Any:
    # Exact type checks first: this runs on every OCPP frame, and isinstance(x, Mapping) is slow.
    t = type(value)
    if t in _SCALARS or t is FrozenDict:
        return value
    if t is dict:
        return FrozenDict._wrap({k: freeze(v) for k, v in value.items()})
    if t is list or t is tuple:
        return tuple([freeze(v) for v in value])
    if isinstance(value, Mapping):
        return FrozenDict._wrap({k: freeze(v) for k, v in value.items()})
    return value


def thaw(value: Any) -> Any:
    t = type(value)
    if t in _SCALARS:
        return value
    if t is FrozenDict:
        return {k: thaw(v) for k, v in value._data.items()}
    if t is tuple or t is list:
        return [thaw(v) for v in value]
    if t is dict or isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    return value
