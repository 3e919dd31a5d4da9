"""The whole state the session decisions read and write, in one plain object.

The functions of `transactions`, `identify`, `requests` and `reservations` take it as their first argument and
return the effects to carry out; `core.SessionCore` owns one. Nothing here does I/O: time comes
from `now`, and `me` is only a value put in the `reply_to` of the requests the core makes
(the actor's own reference; any token in tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from actors.sessions.connector import Connector, Fault, Reservation, blocking
from messages.events import MeterReading
from messages.requests import RemoteStopTransaction, UnlockConnector


class Unexpected(Exception):
    """The event is not for these sessions (e.g. a connector this station does not have)."""


@dataclass(frozen=True)
class PendingStart:
    """A lock requested for a session about to start: the lock motor's answer decides."""

    connector: int
    id_tag: str
    parent_id_tag: str | None


@dataclass
class SessionState:
    connectors: dict[int, Connector]
    config: dict  # the OCPP configuration keys, kept current by ConfigurationChanged
    now: Callable[[], datetime]
    me: Any = None
    fixed_cable: bool = False
    backup_power: bool = False
    station_operative: bool = True  # connector 0's ChangeAvailability
    station_faults: dict[str, Fault] = field(default_factory=dict)  # connector 0's, by source (see connector)
    availability: dict[int, bool] = field(default_factory=dict)  # as persisted, per connector (0 = station)
    last_local_id: int = 0  # the book's highest; the next transaction takes the one after
    readings: dict[int, MeterReading] = field(default_factory=dict)  # the latest, per connector
    pending_starts: dict[str, PendingStart] = field(default_factory=dict)  # by lock request id
    lock_requests: int = 0  # lock request ids made so far
    unlocks: dict[str, UnlockConnector] = field(default_factory=dict)  # by unique id: waiting for the motor
    deferred_stops: dict[str, RemoteStopTransaction] = field(default_factory=dict)  # by unique id
    published: dict[int, tuple] = field(default_factory=dict)  # connector -> (status, error, info, transactionId)
    reservations: dict[int, Reservation] = field(default_factory=dict)  # by reservationId; persisted
    accept_reservations: bool = True  # false: configured not to accept reservations (§5.13: Rejected)
    holds: dict[int, int] = field(default_factory=dict)  # a connector-0 reservation's id -> the connector kept for it

    def connector(self, connector_id: int) -> Connector:
        """The connector an event names; Unexpected if the station has none of that number."""
        c = self.connectors.get(connector_id)
        if c is None:
            raise Unexpected(connector_id)
        return c

    @property
    def station_blocked(self) -> bool:
        """Connector 0 has a blocking fault: every connector is held."""
        return blocking(self.station_faults)

    def energy_wh(self, connector_id: int, otherwise: int) -> int:
        reading = self.readings.get(connector_id)
        return reading.energy_wh if reading else otherwise
