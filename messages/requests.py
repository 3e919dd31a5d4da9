"""CSMS-initiated requests as typed frozen messages, made once at the link after schema validation.

One class per OCPP 1.6 action the station handles, named after the action (OCPP 1.6 §5), with
its fields in snake_case. The link builds it with `from_payload` from a payload that already
passed the official JSON schema, so every field here is present and of the right type. The
handler answers with `reply(**conf)` or `fail(code, description)`; the answer goes straight to the
connection (the `reply_to` is the link's Replier), validated against the .conf schema there.

A feature that handles a new action adds its class here and lists it in its actor's `handles`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from messages.events import ReplyError, ReplyResult
from messages.frozen import freeze

REQUESTS: dict[str, type["CsmsRequest"]] = {}  # action -> class


@dataclass(frozen=True, kw_only=True)
class CsmsRequest:
    """A validated CALL from the CSMS; `unique_id` is its OCPP-J message id."""

    ACTION: ClassVar[str] = ""
    unique_id: str
    reply_to: Any

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        REQUESTS[cls.ACTION] = cls

    @classmethod
    def from_payload(cls, unique_id: str, reply_to: Any, payload: Mapping[str, Any]) -> "CsmsRequest":
        return cls(unique_id=unique_id, reply_to=reply_to)

    def reply(self, **conf: Any) -> None:
        """Answer with a CALLRESULT whose payload is `conf` (the action's .conf fields, OCPP spelling)."""
        self.reply_to.tell(ReplyResult(self.unique_id, self.ACTION, freeze(conf)))

    def fail(self, error_code: str, description: str = "") -> None:
        self.reply_to.tell(ReplyError(self.unique_id, error_code, description))


@dataclass(frozen=True, kw_only=True)
class GetConfiguration(CsmsRequest):
    """OCPP 1.6 §5.8; `keys` None means every key."""

    ACTION: ClassVar[str] = "GetConfiguration"
    keys: tuple[str, ...] | None = None

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        keys = payload.get("key")
        return cls(unique_id=unique_id, reply_to=reply_to, keys=None if keys is None else tuple(keys))


@dataclass(frozen=True, kw_only=True)
class ChangeConfiguration(CsmsRequest):
    """OCPP 1.6 §5.3."""

    ACTION: ClassVar[str] = "ChangeConfiguration"
    key: str
    value: str

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, key=payload["key"], value=payload["value"])


@dataclass(frozen=True, kw_only=True)
class RemoteStartTransaction(CsmsRequest):
    """OCPP 1.6 §5.11; `connector_id` None lets the station choose."""

    ACTION: ClassVar[str] = "RemoteStartTransaction"
    id_tag: str
    connector_id: int | None = None
    charging_profile: Any = None  # frozen ChargingProfile (Smart Charging)

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, id_tag=payload["idTag"],
                   connector_id=payload.get("connectorId"), charging_profile=freeze(payload.get("chargingProfile")))


@dataclass(frozen=True, kw_only=True)
class RemoteStopTransaction(CsmsRequest):
    """OCPP 1.6 §5.12."""

    ACTION: ClassVar[str] = "RemoteStopTransaction"
    transaction_id: int

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, transaction_id=payload["transactionId"])


@dataclass(frozen=True, kw_only=True)
class UnlockConnector(CsmsRequest):
    """OCPP 1.6 §5.18."""

    ACTION: ClassVar[str] = "UnlockConnector"
    connector_id: int

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, connector_id=payload["connectorId"])


@dataclass(frozen=True, kw_only=True)
class ChangeAvailability(CsmsRequest):
    """OCPP 1.6 §5.2; connector 0 is the whole station."""

    ACTION: ClassVar[str] = "ChangeAvailability"
    connector_id: int
    operative: bool  # type Operative (True) or Inoperative (False)

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, connector_id=payload["connectorId"],
                   operative=payload["type"] == "Operative")


@dataclass(frozen=True, kw_only=True)
class ClearCache(CsmsRequest):
    """OCPP 1.6 §5.4."""

    ACTION: ClassVar[str] = "ClearCache"


@dataclass(frozen=True, kw_only=True)
class Reset(CsmsRequest):
    """OCPP 1.6 §5.14."""

    ACTION: ClassVar[str] = "Reset"
    hard: bool  # type Hard (True) or Soft (False)

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, hard=payload["type"] == "Hard")


@dataclass(frozen=True, kw_only=True)
class DataTransfer(CsmsRequest):
    """OCPP 1.6 §5.6 (CSMS to station)."""

    ACTION: ClassVar[str] = "DataTransfer"
    vendor_id: str
    message_id: str | None = None
    data: str | None = None

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, vendor_id=payload["vendorId"],
                   message_id=payload.get("messageId"), data=payload.get("data"))


# --- Remote Trigger and Local Authorization List profiles ---------------------------------


@dataclass(frozen=True, kw_only=True)
class TriggerMessage(CsmsRequest):
    """OCPP 1.6 §5.17; `connector_id` None: the whole station (or every connector, for the message)."""

    ACTION: ClassVar[str] = "TriggerMessage"
    requested_message: str  # BootNotification | DiagnosticsStatusNotification | FirmwareStatusNotification | ...
    connector_id: int | None = None

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, requested_message=payload["requestedMessage"],
                   connector_id=payload.get("connectorId"))


@dataclass(frozen=True, kw_only=True)
class GetLocalListVersion(CsmsRequest):
    """OCPP 1.6 §5.10."""

    ACTION: ClassVar[str] = "GetLocalListVersion"


@dataclass(frozen=True, kw_only=True)
class SendLocalList(CsmsRequest):
    """OCPP 1.6 §5.15. `entries`: (idTag, frozen IdTagInfo or None) pairs in the order sent; an entry
    without IdTagInfo removes its idTag in a Differential update."""

    ACTION: ClassVar[str] = "SendLocalList"
    list_version: int
    full: bool  # updateType Full (True) or Differential (False)
    entries: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        entries = tuple((e["idTag"], freeze(e.get("idTagInfo"))) for e in payload.get("localAuthorizationList") or ())
        return cls(unique_id=unique_id, reply_to=reply_to, list_version=payload["listVersion"],
                   full=payload["updateType"] == "Full", entries=entries)


# --- Reservation profile ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReserveNow(CsmsRequest):
    """OCPP 1.6 §5.13; connector 0: any connector (ReserveConnectorZeroSupported). `expiry_date` is
    the schema-checked dateTime text (parse with actors.infra.clock.parse_time)."""

    ACTION: ClassVar[str] = "ReserveNow"
    connector_id: int
    expiry_date: str
    id_tag: str
    reservation_id: int
    parent_id_tag: str | None = None

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, connector_id=payload["connectorId"],
                   expiry_date=payload["expiryDate"], id_tag=payload["idTag"],
                   reservation_id=payload["reservationId"], parent_id_tag=payload.get("parentIdTag"))


@dataclass(frozen=True, kw_only=True)
class CancelReservation(CsmsRequest):
    """OCPP 1.6 §5.1."""

    ACTION: ClassVar[str] = "CancelReservation"
    reservation_id: int

    @classmethod
    def from_payload(cls, unique_id, reply_to, payload):
        return cls(unique_id=unique_id, reply_to=reply_to, reservation_id=payload["reservationId"])
