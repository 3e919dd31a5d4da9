"""SessionCore: the connectors' sessions as a plain object, no threads, no I/O.

`handle(event)` looks the event's type up in HANDLERS (event type -> the function that decides),
lets that function change the `SessionState` and returns the effects to carry out, in order
(`effects`). After every event the status of each connector is derived again from its facts
(`connector.STATUS_RULES`); each one that changed is published (ConnectorStatusChanged and
ShowStatus: errata 3.19, a StatusNotification for every change), checked against the OCPP 1.6
§4.9 transitions (`connector.ALLOWED`), and the ConnectionTimeOut of each Preparing connector is
armed (counted from the start of Preparing: `identify.connection_timeouts`). Answers to CSMS requests
come first (after the one commit an answer may promise), answers to other actors last.

The TransactionManager feeds it and performs the effects; tests drive it directly.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Callable, Iterable

from actors.sessions import identify, requests, reservations, transactions
from actors.sessions.connector import ALLOWED, Connector, Reservation, shown_fault, station_status
from actors.sessions.effects import (DropReservation, Effect, Publish, RecordAvailability, RecordMeter,
                                     RecordReservation, RecordStart, RecordStop, Reply, Tell)
from actors.sessions.state import SessionState, Unexpected
from messages.events import (CableDetached, CardPresented, ConfigurationChanged, ConnectorFaultChanged,
                             ConnectorLockResult, ConnectorStatusChanged, EvDrawChanged, MainsPowerChanged,
                             MeterSampled, PlugConnected, PlugDisconnected, ShowStatus, StopAllTransactions,
                             TagAuthorized, TransactionDataSampled, TransactionIdAssigned)
from messages.requests import (CancelReservation, ChangeAvailability, RemoteStartTransaction, RemoteStopTransaction,
                               ReserveNow, UnlockConnector)
from messages.ticks import ConnectionTimeoutDue, RemoteStopDeadlineDue, ReservationExpiryDue, UnlockDeadlineDue

log = logging.getLogger(__name__)


def _lock_moved(s: SessionState, event: ConnectorLockResult) -> list[Effect]:
    if event.locked:  # a session's lock
        return transactions.lock_result(s, s.connector(event.connector), event.ok, event.request_id)
    return requests.unlocked(s, event.request_id, event.ok)  # an UnlockConnector's


def _id_assigned(s: SessionState, event: TransactionIdAssigned) -> list[Effect]:
    return transactions.id_assigned(s, event) + requests.retry_deferred_stops(s)


def _configuration_changed(s: SessionState, event: ConfigurationChanged) -> list[Effect]:
    s.config[event.key] = event.value
    return []


SESSION_STATUSES = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})

DURABLE_WRITES = (RecordStart, RecordStop, RecordMeter, RecordAvailability, RecordReservation, DropReservation)
# §4.9: the availability answered survives a reboot, and so does a reservation made or cancelled: committed first
DURABLE_ANSWERS = (ChangeAvailability, ReserveNow, CancelReservation)

HANDLERS: dict[type, Callable[[SessionState, Any], list[Effect]]] = {
    # the hardware
    PlugConnected: transactions.plug_connected,
    PlugDisconnected: transactions.plug_disconnected,
    CableDetached: transactions.cable_detached,
    EvDrawChanged: transactions.ev_draw_changed,
    ConnectorFaultChanged: transactions.fault_changed,
    ConnectorLockResult: _lock_moved,
    MeterSampled: transactions.meter_sampled,
    MainsPowerChanged: requests.mains_changed,
    # identification
    CardPresented: identify.card_presented,
    TagAuthorized: identify.tag_authorized,
    ConnectionTimeoutDue: identify.connection_timeout,
    # the CSMS
    RemoteStartTransaction: requests.remote_start,
    RemoteStopTransaction: requests.remote_stop,
    RemoteStopDeadlineDue: requests.remote_stop_deadline,
    UnlockConnector: requests.unlock_connector,
    UnlockDeadlineDue: requests.unlock_deadline,
    ChangeAvailability: requests.change_availability,
    ReserveNow: reservations.reserve_now,
    CancelReservation: reservations.cancel_reservation,
    ReservationExpiryDue: reservations.expiry_due,
    # the rest of the station
    TransactionIdAssigned: _id_assigned,
    TransactionDataSampled: transactions.transaction_data_sampled,
    StopAllTransactions: requests.stop_all,
    ConfigurationChanged: _configuration_changed,
}


class SessionCore:
    def __init__(self, connectors: int, config: Any, now: Callable[[], datetime], me: Any = None,
                 fixed_cable: bool = False, backup_power: bool = False, availability: dict[int, bool] | None = None,
                 last_local_id: int = 0, reserved: Iterable[Reservation] = (), accept_reservations: bool = True):
        """`availability`: connector (0 = station) -> operative, as persisted; `last_local_id` and the
        reservations (`reserved`): the book's; `accept_reservations`: station.toml `[station] reservations`."""
        availability = dict(availability or {})
        station = availability.get(0, True)
        self.state = SessionState(
            connectors={c: Connector(c, operative=availability.get(c, True) and station)
                        for c in range(1, connectors + 1)},
            config=dict(config), now=now, me=me, fixed_cable=fixed_cable, backup_power=backup_power,
            station_operative=station, availability=availability, last_local_id=last_local_id,
            reservations={r.reservation_id: r for r in reserved}, accept_reservations=accept_reservations)

    def start(self, interrupted: Iterable = ()) -> list[Effect]:
        """Once the station is wired: stop the `interrupted` transactions (the book's), arm the reservations'
        expiry, publish every status (a reservation restored is Reserved from the first one on)."""
        return self._settle(transactions.recover(self.state, interrupted) + reservations.restored(self.state))

    def handle(self, event: Any) -> list[Effect] | None:
        """The effects of `event`, or None if it is not one for the sessions."""
        handler = HANDLERS.get(type(event))
        if handler is None:
            return None
        try:
            effects = handler(self.state, event)
        except Unexpected:
            return None
        return self._settle(effects)

    def _settle(self, effects: list[Effect]) -> list[Effect]:
        """Answers to the CSMS go first: Accepted promises an attempt (§5.11, §5.12), so nothing the
        station does next needs to wait behind them, and the CSMS hears the answer before the
        StatusNotification it causes. An answer that promises a persisted state (DURABLE_ANSWERS) goes
        right after the writes before it, so it costs one commit and no more. Tells (answers to other
        actors, e.g. AllTransactionsStopped) come last, once the state they report is recorded. Before
        the statuses are derived, the reservations are kept up (`reservations.upkeep`: expired ones and
        those of a Faulted or Unavailable connector end; each connector learns the reservation holding it)."""
        effects = effects + reservations.upkeep(self.state)
        replies = [e for e in effects if isinstance(e, Reply)]
        tells = [e for e in effects if isinstance(e, Tell)]
        rest = [e for e in effects if not isinstance(e, (Reply, Tell))]
        early = [r for r in replies if not isinstance(r.request, DURABLE_ANSWERS)]
        late = [r for r in replies if isinstance(r.request, DURABLE_ANSWERS)]
        if late:
            cut = max((i + 1 for i, e in enumerate(rest) if isinstance(e, DURABLE_WRITES)), default=0)
            rest = rest[:cut] + late + rest[cut:]
        return early + rest + identify.connection_timeouts(self.state) + self._status_changes() + tells

    def _status_changes(self) -> list[Effect]:
        s = self.state
        out: list[Effect] = []
        for connector_id in (*s.connectors, 0):
            view = self._view(connector_id)
            before = s.published.get(connector_id)
            if view == before:
                continue
            if before is not None and view[:5] == before[:5]:
                # Only the reservation holding it changed (a connector-0 reservation moved here, or a
                # ReserveNow replaced the one it had): the indicator learns it, the CSMS heard the status already.
                s.published[connector_id] = view
                out.append(Publish(ShowStatus(connector_id, view[0], view[4], view[5])))
                continue
            if before is not None and before[0] == "Reserved" and view[0] in SESSION_STATUSES:
                # The reserved identity was presented with the cable in and the session started at once
                # (a fixed cable: no lock to wait for): G2 then B3/B4, the §4.9 table has no G3.
                out += self._publish(connector_id, ("Preparing", *view[1:4], None, None))
                before = s.published[connector_id]
            if before is not None and (before[0], view[0]) not in ALLOWED and before[0] != view[0]:
                log.warning("connector %s: %s -> %s is not a transition of OCPP 1.6 §4.9", connector_id, before[0],
                            view[0])
            out += self._publish(connector_id, view)
        return out

    def _publish(self, connector_id: int, view: tuple) -> list[Effect]:
        self.state.published[connector_id] = view
        status, error_code, info, vendor_error_code, transaction_id, reservation_id = view
        return [Publish(ConnectorStatusChanged(connector_id, status, error_code, info, vendor_error_code,
                                               self.state.now())),
                Publish(ShowStatus(connector_id, status, transaction_id, reservation_id))]

    def _view(self, connector_id: int) -> tuple:
        """What is published of a connector: (status, errorCode, info, vendorErrorCode, transactionId,
        reservationId: the reservation holding it, for the indicator)."""
        s = self.state
        reservation_id = None
        if connector_id == 0:
            status = station_status(s.station_operative, s.station_faults)
            fault = shown_fault(s.station_faults, status)
            transaction_id = None
            info = fault.info if fault else ""
        else:
            c = s.connectors[connector_id]
            status = c.status()
            fault = c.shown_fault(status)
            transaction_id = c.session.transaction_id if c.session else None
            info = c.info(status)
            reservation_id = c.reservation.reservation_id if c.reservation is not None else None
        if fault is None:
            return status, "NoError", info, "", transaction_id, reservation_id
        return status, fault.error_code, info, fault.vendor_error_code, transaction_id, reservation_id
