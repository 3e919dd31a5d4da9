"""What the session core asks its actor to do: the core decides, the actor carries these out, in order.

Four kinds: messages to other actors (Publish, Tell), durable writes to the TransactionBook
(Record*, DropReservation), timers (StartTimer, CancelTimer) and answers to CSMS requests (Reply). The order of a
list is the order of the world: a RecordStart comes before the Publish(SetContactor(closed=True))
it allows, and a stop's Publish(SetContactor(closed=False)) before its RecordStop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

from actors.sessions.connector import Reservation
from messages.requests import CsmsRequest


@dataclass(frozen=True)
class Publish:
    """Tell `message` to every actor subscribed to its type."""

    message: Any


@dataclass(frozen=True)
class Tell:
    """Tell `message` to one actor (whoever asked, e.g. StopAllTransactions.reply_to)."""

    to: Any
    message: Any


@dataclass(frozen=True)
class Reply:
    """Answer a CSMS request: its .conf is {"status": status}."""

    request: CsmsRequest
    status: str


@dataclass(frozen=True)
class RecordStart:
    """Record a new transaction and queue its StartTransaction, in one commit; a reservation it ends
    (its reservationId goes in the StartTransaction, §5.13) is deleted in the same commit."""

    local_id: int
    connector: int
    id_tag: str
    meter_start_wh: int
    at: datetime
    reservation_id: int | None = None


@dataclass(frozen=True)
class RecordStop:
    """Close a transaction's record and queue its StopTransaction, in one commit."""

    local_id: int
    id_tag: str | None
    meter_stop_wh: int
    at: datetime
    reason: str
    transaction_data: tuple = ()


@dataclass(frozen=True)
class RecordMeter:
    """The latest reading of a running transaction: its meterStop should the power go."""

    local_id: int
    energy_wh: int
    at: datetime


@dataclass(frozen=True)
class RecordAvailability:
    """ChangeAvailability, persisted (connector 0 = the station)."""

    connector: int
    operative: bool


@dataclass(frozen=True)
class RecordReservation:
    """A reservation accepted (or one replaced by a ReserveNow with its reservationId), persisted."""

    reservation: Reservation


@dataclass(frozen=True)
class DropReservation:
    """A reservation ended (cancelled, expired, the connector Faulted or Unavailable), persisted."""

    reservation_id: int


@dataclass(frozen=True)
class StartTimer:
    """Tell `tick` back to the actor after `seconds`; replaces a timer with the same tick."""

    tick: Any
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    tick: Any


Effect = Union[Publish, Tell, Reply, RecordStart, RecordStop, RecordMeter, RecordAvailability,
               RecordReservation, DropReservation, StartTimer, CancelTimer]
