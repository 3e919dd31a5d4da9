"""OCPP-J 1.6 RPC framing: the one place that turns wire text into frames and back.

A frame is a JSON array (OCPP-J 1.6 §4.2):
  CALL       [2, "<uniqueId>", "<Action>", {payload}]
  CALLRESULT [3, "<uniqueId>", {payload}]
  CALLERROR  [4, "<uniqueId>", "<errorCode>", "<errorDescription>", {errorDetails}]

`parse` raises `FrameError` carrying the CALLERROR to answer with. Parsed payloads are plain
JSON (the schema validator needs dicts); the link freezes them before they leave it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from messages.frozen import thaw

CALL, CALLRESULT, CALLERROR = 2, 3, 4
MAX_UNIQUE_ID = 36  # OCPP-J 1.6 §4.1.4


class ErrorCode(StrEnum):
    """OCPP-J 1.6 §4.2.3, with the spec's own spellings (OCPP-J errata 5.1/5.2: never fixed)."""

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMATION_VIOLATION = "FormationViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURENCE_CONSTRAINT_VIOLATION = "OccurenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"


@dataclass(frozen=True)
class Call:
    unique_id: str
    action: str
    payload: Any


@dataclass(frozen=True)
class CallResult:
    unique_id: str
    payload: Any


@dataclass(frozen=True)
class CallError:
    unique_id: str
    error_code: str
    description: str = ""
    details: Any = None


Frame = Call | CallResult | CallError


class FrameError(Exception):
    """An inbound frame that cannot be processed; `reply` is the CALLERROR to send, if any.

    `reply` is None when the bad frame was itself a response: nobody can be answered then.
    """

    def __init__(self, reply: CallError | None, reason: str):
        super().__init__(reason)
        self.reply = reply
        self.reason = reason


# Used only to recover the uniqueId of a frame too large or too broken to parse,
# so the CSMS still gets an answer it can match.
_ID_PREFIX = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,36})"')
# A frame that starts like a CALLRESULT or CALLERROR: a response, which is never answered.
_RESPONSE_PREFIX = re.compile(r'^\s*\[\s*[34](?:\.0*)?\s*[,\]]')


def _error(unique_id: str, code: ErrorCode, description: str) -> FrameError:
    return FrameError(CallError(unique_id, code.value, description[:255], {}), description)


def _reject(text: str, code: ErrorCode, description: str) -> FrameError:
    """The FrameError for text that could not be parsed into an array: answer only what looks like a CALL."""
    if _RESPONSE_PREFIX.match(text[:200]):
        return FrameError(None, f"malformed response: {description}")
    return _error(guess_call_id(text), code, description)


def _is_response_type(type_id: Any) -> bool:
    # 3.0 is a malformed type id, but still recognisably a response: nobody to answer.
    return isinstance(type_id, (int, float)) and not isinstance(type_id, bool) and type_id in (CALLRESULT, CALLERROR)


def _valid_id(unique_id: Any) -> bool:
    return isinstance(unique_id, str) and 0 < len(unique_id) <= MAX_UNIQUE_ID


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # json.loads accepts NaN/Infinity by default; RFC 8259 does not


def guess_call_id(text: str) -> str:
    """The uniqueId of what looks like a CALL, or "-1" when none can be found."""
    m = _ID_PREFIX.match(text[:200])
    return m.group(1) if m else "-1"


def _utf8_size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def parse(text: str, max_bytes: int | None = None) -> Frame:
    """Parse one WebSocket text message into a frame, or raise FrameError."""
    # The limit is in bytes on the wire (UTF-8), not in characters; skip encoding when the length decides.
    if max_bytes is not None and (len(text) > max_bytes
                                  or (len(text) * 4 > max_bytes and _utf8_size(text) > max_bytes)):
        raise _reject(text, ErrorCode.FORMATION_VIOLATION,
                      f"frame of {_utf8_size(text)} bytes exceeds the limit of {max_bytes}")
    try:
        data = json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError) as exc:
        raise _reject(text, ErrorCode.FORMATION_VIOLATION, f"not JSON: {exc}") from None
    if not isinstance(data, list) or len(data) < 3:
        if isinstance(data, list) and data and _is_response_type(data[0]):
            raise FrameError(None, "response with fewer than 3 elements")
        raise _error(guess_call_id(text), ErrorCode.FORMATION_VIOLATION, "frame is not a JSON array of 3 to 5 elements")
    type_id, unique_id = data[0], data[1]
    if _is_response_type(type_id) and (type(type_id) is not int or not _valid_id(unique_id)):
        raise FrameError(None, f"response with a malformed message type id {type_id!r} or uniqueId {unique_id!r}")
    if not _valid_id(unique_id):
        raise _error("-1", ErrorCode.FORMATION_VIOLATION, "uniqueId must be a string of 1 to 36 characters")
    if type(type_id) is not int or type_id not in (CALL, CALLRESULT, CALLERROR):
        raise _error(unique_id, ErrorCode.FORMATION_VIOLATION, f"unknown message type id {type_id!r}")
    if type_id == CALL:
        if len(data) != 4:
            raise _error(unique_id, ErrorCode.PROTOCOL_ERROR, "CALL must have exactly 4 elements")
        action, payload = data[2], data[3]
        if not isinstance(action, str) or not action:
            raise _error(unique_id, ErrorCode.FORMATION_VIOLATION, "action must be a non-empty string")
        if not isinstance(payload, dict):
            raise _error(unique_id, ErrorCode.FORMATION_VIOLATION, "CALL payload must be a JSON object")
        return Call(unique_id, action, payload)
    if type_id == CALLRESULT:
        if len(data) != 3 or not isinstance(data[2], dict):
            raise FrameError(None, "CALLRESULT must be [3, id, {payload}]")
        return CallResult(unique_id, data[2])
    if len(data) not in (4, 5) or not isinstance(data[2], str):
        raise FrameError(None, "CALLERROR must be [4, id, code, description, {details}]")
    description = data[3] if isinstance(data[3], str) else str(data[3])
    details = data[4] if len(data) == 5 else {}
    return CallError(unique_id, data[2], description, details)


def encode(frame: Frame) -> str:
    """Serialise a frame compactly (no spaces: smaller frames, and what most CSMSs log)."""
    match frame:
        case Call(unique_id, action, payload):
            body: list = [CALL, unique_id, action, thaw(payload)]
        case CallResult(unique_id, payload):
            body = [CALLRESULT, unique_id, thaw(payload)]
        case CallError(unique_id, code, description, details):
            body = [CALLERROR, unique_id, code, description, thaw(details) if details is not None else {}]
        case _:
            raise TypeError(f"not a frame: {frame!r}")
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False)
