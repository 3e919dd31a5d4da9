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


def freeze(value: Any) -> Any:
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping):
        return FrozenDict({k: freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value
