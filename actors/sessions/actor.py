"""TransactionManager: the connectors' sessions, from plug or card to StopTransaction (OCPP 1.6 §3.6, §4.8, §4.10).

The shell around `core.SessionCore`, which makes every decision: this actor feeds it each message
and carries out the effects it returns, in order (publish, tell, reply, write the TransactionBook,
arm or cancel a timer). StartTransaction is committed before the contactor closes; on a stop the
contactor is told to open first (safety before bookkeeping), then the StopTransaction is committed:
the core orders the effects so, this actor keeps the order.

Takes: hardware events (PlugConnected, PlugDisconnected, CableDetached, EvDrawChanged,
ConnectorFaultChanged, CardPresented, MeterSampled, MainsPowerChanged), CSMS requests
(RemoteStartTransaction, RemoteStopTransaction, UnlockConnector, ChangeAvailability, ReserveNow,
CancelReservation), TagAuthorized, ConnectorLockResult, TransactionIdAssigned, TransactionDataSampled,
StopAllTransactions, ConfigurationChanged, and its own ticks (ConnectionTimeoutDue,
UnlockDeadlineDue, RemoteStopDeadlineDue, ReservationExpiryDue).
Emits: SetContactor / SetConnectorLock / ShowStatus to the EVSE actor, ConnectorStatusChanged to
the StatusDebouncer, TransactionBegan/Ended to the MeterSampler, AuthorizeTag to the Authorization
actor, TransactionMessagesQueued to the queue once Start/StopTransaction are committed to it,
ShutDown (mains lost on back-up power); AllTransactionsStopped to whoever asked.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.infra.base import StationActor
from actors.infra.clock import StationClock
from actors.infra.ticker import Scheduler
from actors.sessions.book import TransactionBook
from actors.sessions.core import SessionCore
from actors.sessions.effects import (CancelTimer, DropReservation, Effect, Publish, RecordAvailability, RecordMeter,
                                     RecordReservation, RecordStart, RecordStop, Reply, StartTimer, Tell)
from messages.events import (AuthorizeTag, CableDetached, CardPresented, ConfigurationChanged, ConnectorFaultChanged,
                             ConnectorStatusChanged, EvDrawChanged, MainsPowerChanged, MeterSampled, PlugConnected,
                             PlugDisconnected, SetConnectorLock, SetContactor, ShowStatus, ShutDown,
                             StopAllTransactions, TransactionBegan, TransactionDataSampled, TransactionEnded,
                             TransactionIdAssigned, TransactionMessagesQueued)
from messages.requests import (CancelReservation, ChangeAvailability, RemoteStartTransaction, RemoteStopTransaction,
                               ReserveNow, UnlockConnector)
from messages.ticks import ConnectionTimeoutDue, RemoteStopDeadlineDue, ReservationExpiryDue, UnlockDeadlineDue

log = logging.getLogger(__name__)

TICKS = (ConnectionTimeoutDue, UnlockDeadlineDue, RemoteStopDeadlineDue, ReservationExpiryDue)


class TransactionManager(StationActor):
    handles = (RemoteStartTransaction, RemoteStopTransaction, UnlockConnector, ChangeAvailability, ReserveNow,
               CancelReservation)
    subscribes = (PlugConnected, PlugDisconnected, CableDetached, EvDrawChanged, ConnectorFaultChanged, CardPresented,
                  MeterSampled, MainsPowerChanged, TransactionIdAssigned, TransactionDataSampled, StopAllTransactions)
    watches = ("AuthorizeRemoteTxRequests", "ConnectionTimeOut", "MaxEnergyOnInvalidId", "StopTransactionOnEVSideDisconnect",
               "StopTransactionOnInvalidId", "UnlockConnectorOnEVSideDisconnect", "StopTxnSampledData",
               "StopTxnAlignedData", "ReserveConnectorZeroSupported")
    emits = (SetContactor, SetConnectorLock, ShowStatus, ConnectorStatusChanged, TransactionBegan, TransactionEnded,
             TransactionMessagesQueued, AuthorizeTag, ShutDown)

    def __init__(self, db_path: str, connectors: int, fixed_cable: bool, config: Any, clock: StationClock,
                 scheduler: Scheduler | None = None, backup_power: bool = False, reservations: bool = True):
        super().__init__(db_path, scheduler)
        self._reservations = reservations
        self._connectors = connectors
        self._fixed_cable = fixed_cable
        self._backup_power = backup_power
        self._config = dict(config)
        self._clock = clock
        self._timers: dict[Any, int] = {}  # tick -> its ticker handle

    def opened(self) -> None:
        self._book = TransactionBook(self._db)
        self._core = SessionCore(self._connectors, self._config, self._clock.now, self.actor_ref, self._fixed_cable,
                                 self._backup_power, self._book.availability(), self._book.last_local_id(),
                                 self._book.reservations(), self._reservations)

    def wired(self) -> None:
        self._perform(self._core.start(self._book.interrupted()))

    def receive(self, message: Any) -> Any:
        if isinstance(message, TICKS):
            self._timers.pop(message, None)  # fired
        effects = self._core.handle(message)
        if effects is None:
            self.unexpected(message)
        else:
            self._perform(effects)

    def _perform(self, effects: list[Effect]) -> None:
        for effect in effects:
            match effect:
                case Publish(message):
                    self.publish(message)
                case Tell(to, message):
                    to.tell(message)
                case Reply(request, status):
                    request.reply(status=status)
                case RecordStart(local_id, connector, id_tag, meter_start_wh, at, reservation_id):
                    self._book.begin(local_id, connector, id_tag, meter_start_wh, at, reservation_id)
                case RecordStop(local_id, id_tag, meter_stop_wh, at, reason, data):
                    self._book.stop(local_id, id_tag, meter_stop_wh, at, reason, list(data))
                case RecordMeter(local_id, energy_wh, at):
                    self._book.meter(local_id, energy_wh, at)
                case RecordAvailability(connector, operative):
                    self._book.set_availability(connector, operative)
                case RecordReservation(reservation):
                    self._book.reserve(reservation)
                case DropReservation(reservation_id):
                    self._book.end_reservation(reservation_id)
                case StartTimer(tick, seconds):
                    self._ticker.cancel(self._timers.pop(tick, None))
                    self._timers[tick] = self._ticker.after(seconds, tick)
                case CancelTimer(tick):
                    self._ticker.cancel(self._timers.pop(tick, None))
                case _:
                    raise TypeError(f"not an effect: {effect!r}")
