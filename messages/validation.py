"""Validation of OCPP 1.6 payloads against the official JSON schemas (draft-04).

The files in `messages/schemas/` are the OCA's OCPP 1.6 schemas including the security
extension, as corrected by the OCPP-J 1.6 errata sheet 2025-04 (StopTransaction `reason`
optional §2.6, SendLocalList §2.3, BootNotificationResponse §2.4, UpdateFirmware §2.5, both
spellings of Celsius §2.1). Each is compiled once, on first use, with fastjsonschema.

A violation maps to the OCPP-J 1.6 §4.2.3 CALLERROR code for its kind:
missing field → OccurenceConstraintViolation, wrong JSON type or malformed dateTime →
TypeConstraintViolation, value outside enum/length/range → PropertyConstraintViolation,
a field the PDU does not have → FormationViolation.
"""

from __future__ import annotations

import json
import threading
from importlib import resources
from typing import Any, Callable

import fastjsonschema

from messages.ocppj import ErrorCode

_RULE_CODES = {
    "required": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURENCE_CONSTRAINT_VIOLATION,
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "format": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "additionalProperties": ErrorCode.FORMATION_VIOLATION,
}

_lock = threading.Lock()
_compiled: dict[str, Callable[[Any], Any]] = {}
_names: frozenset[str] | None = None


class SchemaViolation(Exception):
    def __init__(self, code: ErrorCode, description: str):
        super().__init__(description)
        self.code = code
        self.description = description


def _schema_names() -> frozenset[str]:
    global _names
    if _names is None:
        folder = resources.files("messages") / "schemas"
        _names = frozenset(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))
    return _names


def known_actions() -> frozenset[str]:
    """Every OCPP 1.6 action (core profiles and security extension) this schema set defines."""
    return frozenset(n for n in _schema_names() if not n.endswith("Response"))


def _validator(name: str) -> Callable[[Any], Any]:
    with _lock:
        fn = _compiled.get(name)
        if fn is None:
            text = (resources.files("messages") / "schemas" / f"{name}.json").read_text()
            fn = fastjsonschema.compile(json.loads(text))
            _compiled[name] = fn
        return fn


def precompile() -> None:
    """Compile every schema now (start-up), so the first CALL does not pay for it."""
    for name in _schema_names():
        _validator(name)


def validate(action: str, payload: Any, response: bool = False) -> None:
    """Raise SchemaViolation if `payload` is not a valid request (or response) of `action`."""
    name = f"{action}Response" if response else action
    if name not in _schema_names():
        raise SchemaViolation(ErrorCode.NOT_IMPLEMENTED, f"no schema for {name}")
    try:
        _validator(name)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        code = _RULE_CODES.get(exc.rule, ErrorCode.PROPERTY_CONSTRAINT_VIOLATION)
        field = exc.name.removeprefix("data").lstrip(".") or "payload"
        raise SchemaViolation(code, f"{field}: {exc.message.removeprefix(exc.name).strip()}") from None
