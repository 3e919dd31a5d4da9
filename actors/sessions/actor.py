"""TransactionManager: the connectors' sessions, from plug or card to StopTransaction (OCPP 1.6 §3.6, §4.8, §4.10).

Takes: hardware events (PlugConnected, PlugDisconnected, CableDetached, EvDrawChanged,
ConnectorFaultChanged, CardPresented, MeterSampled, MainsPowerChanged), CSMS requests
(RemoteStartTransaction, RemoteStopTransaction, UnlockConnector, ChangeAvailability),
TagAuthorized, ConnectorLockResult, TransactionIdAssigned, TransactionDataSampled,
StopAllTransactions, ConfigurationChanged, and its own ticks.
Emits: SetContactor / SetConnectorLock / ShowStatus to the EVSE actor, ConnectorStatusChanged to
the StatusDebouncer, TransactionBegan/Ended to the MeterSampler, Authorize via the link, and
Start/StopTransaction into the durable queue. StartTransaction is committed before the contactor
closes; on a stop the contactor is told to open first (safety before bookkeeping), then the
StopTransaction is committed.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from actors.infra.base import StationActor

from actors.infra.clock import StationClock
from actors.sessions.connector import Connector, Session, station_status
from actors.sessions.connector_requests import ConnectorRequests
from actors.sessions.identification import Identification
from actors.sessions.book import TransactionBook
from actors.metering.meterdata import transaction_data
from actors.infra.ticker import Scheduler
from messages.events import (AuthorizeTag, CableDetached, CardPresented, ConfigurationChanged, ConnectorFaultChanged,
                             ConnectorLockResult, ConnectorStatusChanged, EvDrawChanged, MainsPowerChanged,
                             MeterReading, MeterSampled, PlugConnected, PlugDisconnected, SetConnectorLock,
                             SetContactor, ShowStatus, ShutDown, StopAllTransactions, TagAuthorized, TransactionBegan,
                             TransactionDataSampled, TransactionEnded, TransactionIdAssigned,
                             TransactionMessagesQueued)
from messages.frozen import thaw
from messages.requests import ChangeAvailability, RemoteStartTransaction, RemoteStopTransaction, UnlockConnector
from messages.ticks import ConnectionTimeoutDue, RemoteStopDeadlineDue, UnlockDeadlineDue

log = logging.getLogger(__name__)

MAX_TRANSACTION_DATA = 100  # MeterValues kept for one StopTransaction


class TransactionManager(Identification, ConnectorRequests, StationActor):
    handles = (RemoteStartTransaction, RemoteStopTransaction, UnlockConnector, ChangeAvailability)
    subscribes = (PlugConnected, PlugDisconnected, CableDetached, EvDrawChanged, ConnectorFaultChanged, CardPresented,
                  MeterSampled, MainsPowerChanged, TransactionIdAssigned, TransactionDataSampled, StopAllTransactions,
                  ConfigurationChanged)
    emits = (SetContactor, SetConnectorLock, ShowStatus, ConnectorStatusChanged, TransactionBegan, TransactionEnded,
             TransactionMessagesQueued, AuthorizeTag, ShutDown)

    def __init__(self, db_path: str, connectors: int, fixed_cable: bool, config: Any, clock: StationClock,
                 scheduler: Scheduler | None = None, backup_power: bool = False):
        super().__init__(db_path, scheduler)
        self._fixed_cable = fixed_cable
        self._backup_power = backup_power
        self._config = dict(config)
        self._clock = clock
        self._connectors = {c: Connector(c) for c in range(1, connectors + 1)}
        self._station_error = "NoError"
        self._readings: dict[int, MeterReading] = {}
        self._station_operative = True
        self._pending_start: dict[str, tuple[str, str | None]] = {}  # lock request -> (idTag, parent)
        self._connection_timers: dict[int, int] = {}  # connector -> ConnectionTimeOut timer
        self._unlocks: dict[str, tuple] = {}  # UnlockConnector unique id -> (request, deadline timer)
        self._deferred_stops: dict[str, tuple] = {}  # RemoteStop unique id -> (request, timer)

    # --- life cycle --------------------------------------------------------------------------

    def opened(self) -> None:
        self._book = TransactionBook(self._db)
        availability = self._book.availability()
        self._station_operative = availability.get(0, True)
        for c in self._connectors.values():
            c.operative = availability.get(c.id, True) and self._station_operative

    def _recover(self) -> None:
        """Stop what a crash or power cut interrupted (OCPP 1.6 §4.10: reason PowerLoss).

        meterStop is the last reading persisted for the transaction, stamped with its time;
        the StopTransaction is queued behind the interrupted transaction's other messages.
        """
        for tx in self._book.interrupted():
            log.warning("transaction %s on connector %s interrupted: stopping it (PowerLoss)", tx.local_id,
                        tx.connector)
            session = Session(tx.local_id, tx.id_tag, None, tx.meter_start_wh, tx.started_at)
            self._book.stop(tx.local_id, tx.id_tag, tx.last_meter_wh, tx.last_meter_at, "PowerLoss",
                            transaction_data(self._config, session.meter_start_wh, session.started_at, session.transaction_data, None,
                                             tx.last_meter_wh, tx.last_meter_at))
            connector = self._connectors.get(tx.connector)
            if connector is not None:
                connector.finishing = True
        self._wake_queue()

    # --- messages ------------------------------------------------------------------------------

    def receive(self, message: Any) -> Any:
        match message:
            case PlugConnected(c) if c in self._connectors:
                self._plug(self._connectors[c], True)
            case PlugDisconnected(c) if c in self._connectors:
                self._plug(self._connectors[c], False)
            case CableDetached(c) if c in self._connectors:
                self._connectors[c].cable_in_socket = False
                self._connectors[c].finishing = False
                self._publish(c)
            case EvDrawChanged(c, drawing) if c in self._connectors:
                self._connectors[c].ev_drawing = drawing
                self._publish(c)
            case ConnectorFaultChanged(0, code, info, _):
                self._station_error = code
                self._publish(0)
            case ConnectorFaultChanged(c, code, info, _) if c in self._connectors:
                self._fault(self._connectors[c], code, info)
            case CardPresented(id_tag):
                self._card(id_tag)
            case MeterSampled(reading):
                self._meter(reading)
            case RemoteStartTransaction():
                message.reply(status=self._remote_start(message))
            case RemoteStopTransaction():
                self._remote_stop_request(message)
            case RemoteStopDeadlineDue(uid):
                self._answer_deferred_stop(uid, "Rejected")
            case TagAuthorized(_, info, _, tag):
                self._authorized(tag, info)
            case ConnectorLockResult(c, True, ok, request_id) if c in self._connectors:
                self._locked(self._connectors[c], ok, request_id)
            case ConnectorLockResult(c, False, ok, request_id):
                self._unlocked(request_id, ok)
            case UnlockConnector():
                self._unlock_request(message)
            case UnlockDeadlineDue(uid):
                self._unlocked(uid, False)
            case ChangeAvailability(connector_id=connector_id, operative=operative):
                message.reply(status=self._change_availability(connector_id, operative))
            case StopAllTransactions(reason, reply_to):
                self._stop_all(reason, reply_to)
            case MainsPowerChanged(on):
                self._mains(on)
            case TransactionDataSampled(c, local_id, mv) if c in self._connectors:
                self._keep_transaction_data(self._connectors[c], local_id, mv)
            case TransactionIdAssigned(local_id, transaction_id, id_tag_info):
                self._id_assigned(local_id, transaction_id, id_tag_info)
                self._retry_deferred_stops()
            case ConnectionTimeoutDue(c) if c in self._connectors:
                self._connection_timeout(self._connectors[c])
            case ConfigurationChanged(key, value):
                self._config[key] = value
            case _:
                self.unexpected(message)

    def wired(self) -> None:
        self._recover()
        for c in self._connectors:
            self._publish(c)
        self._publish(0)

    # --- hardware --------------------------------------------------------------------------------

    def _plug(self, c: Connector, plugged: bool) -> None:
        c.plugged = plugged
        if plugged and not self._fixed_cable:
            c.cable_in_socket = True
        if plugged:
            if c.authorized_tag is not None and c.session is None and c.operative and not c.faulted:
                self._begin(c, c.authorized_tag, c.authorized_parent)
        else:
            c.ev_drawing = False
            c.finishing = c.finishing and c.cable_in_socket  # Finishing while a socket still holds the cable
            if c.session is not None and self._config["StopTransactionOnEVSideDisconnect"]:
                self._stop_transaction(c, "EVDisconnected", None)
        self._publish(c.id)

    def _fault(self, c: Connector, code: str, info: str) -> None:
        was = c.faulted
        c.error_code, c.error_info = code, info
        if c.session is not None and c.faulted != was:
            # No energy through a faulted connector; it resumes when the fault clears.
            self._evse(SetContactor(c.id, not c.faulted and not c.session.suspended_evse))
        self._publish(c.id)

    def _meter(self, reading: MeterReading) -> None:
        self._readings[reading.connector] = reading
        c = self._connectors.get(reading.connector)
        if c is not None and c.session is not None:
            self._book.meter(c.session.local_id, reading.energy_wh, reading.taken_at or self._clock.now())
            if c.session.invalid:
                self._limit_invalid(c)

    # --- starting and stopping ---------------------------------------------------------------------

    def _begin(self, c: Connector, id_tag: str, parent: str | None) -> None:
        c.authorized_tag = c.authorized_parent = None
        self._ticker.cancel(self._connection_timers.pop(c.id, None))
        c.starting = True
        request_id = uuid.uuid4().hex
        self._pending_start[request_id] = (id_tag, parent)
        if self._fixed_cable:
            self._locked(c, True, request_id)
        else:
            self._evse(SetConnectorLock(c.id, True, self.actor_ref, request_id))

    def _locked(self, c: Connector, ok: bool, request_id: str) -> None:
        pending = self._pending_start.pop(request_id, None)
        if pending is None or not c.starting:
            return
        c.starting = False
        if not c.plugged or not c.operative:  # the cable left, or the connector was made Unavailable,
            # while the lock moved: no session
            if ok and not self._fixed_cable:
                self._evse(SetConnectorLock(c.id, False))
            self._publish(c.id)
            return
        if not ok:
            c.error_code, c.error_info = "ConnectorLockFailure", "connector lock failed"
            self._publish(c.id)
            return
        id_tag, parent = pending
        reading = self._readings.get(c.id)
        meter_start = reading.energy_wh if reading else 0
        now = self._clock.now()
        local_id = self._book.begin(c.id, id_tag, meter_start, now)
        c.session = Session(local_id, id_tag, parent, meter_start, now)
        self._wake_queue()
        self._evse(SetContactor(c.id, not c.faulted))
        self.publish(TransactionBegan(c.id, local_id, meter_start))
        log.info("transaction %s started on connector %s for %s at %s Wh", local_id, c.id, id_tag, meter_start)
        self._publish(c.id)

    def _stop_transaction(self, c: Connector, reason: str, id_tag: str | None) -> None:
        session = c.session
        assert session is not None
        reading = self._readings.get(c.id)
        meter_stop = reading.energy_wh if reading else session.meter_start_wh
        self._evse(SetContactor(c.id, False))
        now = self._clock.now()
        self._book.stop(session.local_id, id_tag, meter_stop, now, reason,
                        transaction_data(self._config, session.meter_start_wh, session.started_at,
                                         session.transaction_data, reading, meter_stop, now))
        self._wake_queue()
        c.session = None
        c.finishing = c.plugged or c.cable_in_socket
        if c.pending_operative is not None:
            c.operative, c.pending_operative = c.pending_operative, None
        # OCPP 1.6 §9.1: after an EV-side unplug the socket is unlocked only if
        # UnlockConnectorOnEVSideDisconnect; any other stop releases the cable.
        if not self._fixed_cable and (reason != "EVDisconnected" or self._config["UnlockConnectorOnEVSideDisconnect"]):
            self._evse(SetConnectorLock(c.id, False))
        self.publish(TransactionEnded(c.id, session.local_id))
        log.info("transaction %s stopped on connector %s (%s) at %s Wh", session.local_id, c.id, reason, meter_stop)

    def _keep_transaction_data(self, c: Connector, local_id: int, mv: Any) -> None:
        if c.session is None or c.session.local_id != local_id:
            return
        data = c.session.transaction_data
        data.append(thaw(mv))
        if len(data) > MAX_TRANSACTION_DATA:  # keep the span, halve the resolution
            del data[1::2]

    def _id_assigned(self, local_id: int, transaction_id: int, info: Any) -> None:
        for c in self._connectors.values():
            s = c.session
            if s is None or s.local_id != local_id:
                continue
            s.transaction_id = transaction_id
            info = info or {}
            if info.get("parentIdTag") and not s.parent_id_tag:
                s.parent_id_tag = info["parentIdTag"]
            status = info.get("status", "Accepted")
            if status == "ConcurrentTx":
                # A StartTransaction re-sent after a crash looks to the CSMS like a second session
                # of the same tag: never end a session that is really running for that.
                log.warning("StartTransaction of %s answered ConcurrentTx: the session goes on", local_id)
            elif status != "Accepted":  # OCPP 1.6 §3.5, errata 3.5/3.17
                if self._config["StopTransactionOnInvalidId"]:
                    self._stop_transaction(c, "DeAuthorized", None)
                else:
                    s.invalid = True
                    self._limit_invalid(c)
            self._publish(c.id)

    def _limit_invalid(self, c: Connector) -> None:
        """StopTransactionOnInvalidId=false: energy up to MaxEnergyOnInvalidId, then SuspendedEVSE."""
        s = c.session
        reading = self._readings.get(c.id)
        used = (reading.energy_wh if reading else s.meter_start_wh) - s.meter_start_wh
        if not s.suspended_evse and used >= self._config["MaxEnergyOnInvalidId"]:
            s.suspended_evse = True
            self._evse(SetContactor(c.id, False))
            self._publish(c.id)

    # --- output ----------------------------------------------------------------------------------

    def _publish(self, connector_id: int) -> None:
        if connector_id == 0:
            status, code, info, tx = station_status(self._station_operative, self._station_error), \
                self._station_error, "", None
        else:
            c = self._connectors[connector_id]
            status, code, info = c.status(), c.error_code, c.info()
            tx = c.session.transaction_id if c.session else None
        self.publish(ConnectorStatusChanged(connector_id, status, code, info, "", self._clock.now()))
        self._evse(ShowStatus(connector_id, status, tx))

    def _wake_queue(self) -> None:
        self.publish(TransactionMessagesQueued())

    def _evse(self, message: Any) -> None:
        self.publish(message)
