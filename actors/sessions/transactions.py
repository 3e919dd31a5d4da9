"""A transaction's life on a connector: hardware events, start, stop, StartTransaction.conf (OCPP 1.6 §3.6, §4.8,
§4.10).

Plain functions over a `SessionState`, each returning the effects to carry out (see `effects`).
StartTransaction is recorded before the contactor closes; on a stop the contactor is told to open
first (safety before bookkeeping), then the StopTransaction is recorded.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Iterable

from actors.infra.clock import parse_time
from actors.metering.meterdata import ENERGY, transaction_data
from actors.sessions.connector import Connector, Session, set_fault
from actors.sessions import reservations
from actors.sessions.book import MAX_TRANSACTION_DATA
from actors.sessions.effects import CancelTimer, Effect, Publish, RecordMeter, RecordStart, RecordStop
from actors.sessions.state import PendingStart, SessionState
from messages.events import (CableDetached, ConnectorFaultChanged, EvDrawChanged, MeterSampled, PlugConnected,
                             PlugDisconnected, SetConnectorLock, SetContactor, TransactionBegan, TransactionDataSampled,
                             TransactionEnded, TransactionIdAssigned, TransactionMessagesQueued)
from messages.frozen import thaw
from messages.ticks import ConnectionTimeoutDue

if TYPE_CHECKING:
    from actors.sessions.book import Interrupted

log = logging.getLogger(__name__)



def recover(s: SessionState, interrupted: Iterable[Interrupted]) -> list[Effect]:
    """Stop what a crash or power cut interrupted (OCPP 1.6 §4.10: reason PowerLoss).

    meterStop is the last reading persisted for the transaction, stamped with its time, but never
    before nor below a value already reported or queued for it (its MeterValues still in the queue,
    its StopTxn*Data values): the sampler stamps a value at its sampling instant, which may be after
    the reading was taken. The StopTransaction carries the StopTxn*Data values collected before the
    crash, and is queued behind the interrupted transaction's other messages."""
    out: list[Effect] = []
    for tx in interrupted:
        log.warning("transaction %s on connector %s interrupted: stopping it (PowerLoss)", tx.local_id, tx.connector)
        stop_wh, stop_at = tx.last_meter_wh, tx.last_meter_at
        for at, energy_wh in _energy_values((*tx.transaction_data, *tx.meter_values)):
            stop_at = max(stop_at, at)
            if energy_wh is not None:
                stop_wh = max(stop_wh, energy_wh)
        data = transaction_data(s.config, tx.meter_start_wh, tx.started_at, list(tx.transaction_data), None,
                                stop_wh, stop_at)
        out.append(RecordStop(tx.local_id, tx.id_tag, stop_wh, stop_at, "PowerLoss", tuple(data)))
        # Its connector is not marked Finishing: whether its cable is still in is for the EVSE to say, and a
        # plug it reports after start-up may as well be a new driver's. Either way the connector shows
        # Preparing and takes a new session (errata 3.20: Finishing after ConnectionTimeOut without one).
    return out + [Publish(TransactionMessagesQueued())]


def _energy_values(meter_values: Iterable[dict]) -> Iterable[tuple[datetime, int | None]]:
    """(timestamp, Energy.Active.Import.Register in Wh or None) of each MeterValue object."""
    for mv in meter_values:
        try:
            at = parse_time(mv["timestamp"])
        except (KeyError, TypeError, ValueError):
            continue
        energy = None
        for v in mv.get("sampledValue", ()):
            if v.get("measurand", ENERGY) == ENERGY and v.get("unit", "Wh") in ("Wh", "kWh"):
                try:
                    wh = float(v["value"]) * (1000 if v.get("unit") == "kWh" else 1)
                except (KeyError, TypeError, ValueError):
                    continue
                energy = max(energy or 0, int(round(wh)))
        yield at, energy


# --- the hardware ---------------------------------------------------------------------------------


def plug_connected(s: SessionState, event: PlugConnected) -> list[Effect]:
    c = s.connector(event.connector)
    c.plugged = True
    if not s.fixed_cable:
        c.cable_in_socket = True
    if c.authorized_tag is not None and c.session is None and c.usable:
        return begin(s, c, c.authorized_tag, c.authorized_parent)
    return []


def plug_disconnected(s: SessionState, event: PlugDisconnected) -> list[Effect]:
    c = s.connector(event.connector)
    c.plugged = c.ev_drawing = False
    c.finishing = c.finishing and c.cable_in_socket  # Finishing while a socket still holds the cable
    if c.session is not None and s.config["StopTransactionOnEVSideDisconnect"]:
        return stop(s, c, "EVDisconnected", None)
    return []


def cable_detached(s: SessionState, event: CableDetached) -> list[Effect]:
    c = s.connector(event.connector)
    c.cable_in_socket = c.finishing = False
    c.faults.pop("lock", None)  # a failed lock is over once its cable is out (OCTT TC_024)
    c.held_for = None
    return []


def ev_draw_changed(s: SessionState, event: EvDrawChanged) -> list[Effect]:
    s.connector(event.connector).ev_drawing = event.drawing
    return []


def fault_changed(s: SessionState, event: ConnectorFaultChanged) -> list[Effect]:
    """One source's fault appears, changes or clears (NoError): only that source's (see `connector`)."""
    if event.connector == 0:
        return _station_fault_changed(s, event)
    c = s.connector(event.connector)
    energy_was = c.energy_on
    set_fault(c.faults, event.source, event.error_code, event.info, event.vendor_error_code)
    return contactor_follows(c, energy_was)


def _station_fault_changed(s: SessionState, event: ConnectorFaultChanged) -> list[Effect]:
    """A blocking fault of the station as a whole opens every contactor; running sessions are
    suspended (SuspendedEVSE: §4.9 D5/C5, the EVSE does not allow charging) and no new one starts
    (Unavailable) until it clears; then the sessions get energy again."""
    energy_was = {c.id: c.energy_on for c in s.connectors.values()}
    held_before = s.station_blocked
    set_fault(s.station_faults, event.source, event.error_code, event.info, event.vendor_error_code)
    held = s.station_blocked
    out: list[Effect] = []
    for c in s.connectors.values():
        c.station_blocked = held
        if held and not held_before:
            out.append(Publish(SetContactor(c.id, False)))
            out += drop_authorization(c)
        else:
            out += contactor_follows(c, energy_was[c.id])
    return out


def contactor_follows(c: Connector, energy_was: bool) -> list[Effect]:
    """Tell the contactor when what it should be (`Connector.energy_on`) has changed."""
    return [Publish(SetContactor(c.id, c.energy_on))] if c.energy_on != energy_was else []


def drop_authorization(c: Connector) -> list[Effect]:
    """An identification waiting for the cable is void (the connector can no longer take it)."""
    if c.authorized_tag is None:
        return []
    c.authorized_tag = c.authorized_parent = None
    return [CancelTimer(ConnectionTimeoutDue(c.id))]


def meter_sampled(s: SessionState, event: MeterSampled) -> list[Effect]:
    reading = event.reading
    s.readings[reading.connector] = reading
    c = s.connectors.get(reading.connector)
    if c is None or c.session is None:
        return []
    out: list[Effect] = [RecordMeter(c.session.local_id, reading.energy_wh, reading.taken_at or s.now())]
    if c.session.invalid:
        out += _limit_invalid(s, c)
    return out


def transaction_data_sampled(s: SessionState, event: TransactionDataSampled) -> list[Effect]:
    session = s.connector(event.connector).session
    if session is None or session.local_id != event.local_id:
        return []
    meter_value = thaw(event.meter_value)
    data = session.transaction_data
    data.append(meter_value)
    if len(data) > MAX_TRANSACTION_DATA:  # keep the span, halve the resolution
        del data[1::2]
    return []  # the MeterSampler stored it, with the sample's MeterValues (actors/metering/book.py)


# --- starting and stopping ------------------------------------------------------------------------


def begin(s: SessionState, c: Connector, id_tag: str, parent: str | None) -> list[Effect]:
    """Lock the cable for a session; `lock_result` starts it when the lock motor answers."""
    out: list[Effect] = [CancelTimer(ConnectionTimeoutDue(c.id))] if c.authorized_tag is not None else []
    c.authorized_tag = c.authorized_parent = None
    c.starting = True
    s.lock_requests += 1
    request_id = f"start-{s.lock_requests}"
    s.pending_starts[request_id] = PendingStart(c.id, id_tag, parent)
    if s.fixed_cable:  # nothing to lock
        return out + lock_result(s, c, True, request_id)
    return out + [Publish(SetConnectorLock(c.id, True, s.me, request_id))]


def lock_result(s: SessionState, c: Connector, ok: bool, request_id: str) -> list[Effect]:
    pending = s.pending_starts.pop(request_id, None)
    if pending is None or not c.starting:
        return []
    c.starting = False
    if ok:
        c.faults.pop("lock", None)  # the lock works again
    if not c.plugged or not c.operative or c.station_blocked:
        # The cable left, or the connector was made Unavailable or the station faulted, while the lock
        # moved: no session.
        return [Publish(SetConnectorLock(c.id, False))] if ok and not s.fixed_cable else []
    if not ok:
        # OCTT TC_024: Faulted (ConnectorLockFailure) until the cable is out or a lock succeeds.
        set_fault(c.faults, "lock", "ConnectorLockFailure", "connector lock failed")
        return []
    meter_start = s.energy_wh(c.id, 0)
    now = s.now()
    s.last_local_id += 1
    local_id = s.last_local_id
    # §5.13: a transaction for the reserved idTag (or its group) ends the reservation; its StartTransaction
    # carries the reservationId, and the reservation's row goes in the same commit.
    reservation = reservations.used_by(s, c, pending.id_tag, pending.parent_id_tag)
    ended = reservations.take(s, reservation) if reservation is not None else []
    c.session = Session(local_id, pending.id_tag, pending.parent_id_tag, meter_start, now)
    log.info("transaction %s started on connector %s for %s at %s Wh", local_id, c.id, pending.id_tag, meter_start)
    return ended + [
            RecordStart(local_id, c.id, pending.id_tag, meter_start, now,
                        reservation.reservation_id if reservation is not None else None),
            Publish(TransactionMessagesQueued()),
            Publish(SetContactor(c.id, c.energy_on)),
            Publish(TransactionBegan(c.id, local_id, meter_start))]


def stop(s: SessionState, c: Connector, reason: str, id_tag: str | None) -> list[Effect]:
    session = c.session
    assert session is not None
    meter_stop = s.energy_wh(c.id, session.meter_start_wh)
    now = s.now()
    data = transaction_data(s.config, session.meter_start_wh, session.started_at, session.transaction_data,
                            s.readings.get(c.id), meter_stop, now)
    c.session = None
    c.finishing = c.plugged or c.cable_in_socket
    if c.pending_operative is not None:
        c.operative, c.pending_operative = c.pending_operative, None
    out: list[Effect] = [Publish(SetContactor(c.id, False)),
                         RecordStop(session.local_id, id_tag, meter_stop, now, reason, tuple(data)),
                         Publish(TransactionMessagesQueued())]
    # OCPP 1.6 §9.1: after an EV-side unplug the socket is unlocked only if
    # UnlockConnectorOnEVSideDisconnect. §4.8, errata 3.5/3.17: after a DeAuthorized stop the cable stays
    # locked until the same idTag, or one with the same parentIdTag, is presented (`release_held`).
    # Any other stop releases the cable.
    if s.fixed_cable:
        pass
    elif reason == "DeAuthorized":
        c.held_for = (session.id_tag, session.parent_id_tag)
        log.info("connector %s: cable kept locked for %s", c.id, session.id_tag)
    elif reason != "EVDisconnected" or s.config["UnlockConnectorOnEVSideDisconnect"]:
        out.append(Publish(SetConnectorLock(c.id, False)))
    log.info("transaction %s stopped on connector %s (%s) at %s Wh", session.local_id, c.id, reason, meter_stop)
    return out + [Publish(TransactionEnded(c.id, session.local_id))]


def release_held(s: SessionState, id_tag: str, parent: str | None = None) -> list[Effect]:
    """Unlock the cables a DeAuthorized stop kept for `id_tag` (or, given `parent`, for its group)."""
    out: list[Effect] = []
    for c in s.connectors.values():
        if c.held_for is None:
            continue
        held_tag, held_parent = c.held_for
        if held_tag.lower() == id_tag.lower() or (parent and held_parent and held_parent.lower() == parent.lower()):
            log.info("connector %s: cable released for %s", c.id, id_tag)
            c.held_for = None
            out.append(Publish(SetConnectorLock(c.id, False)))
    return out


# --- StartTransaction answered --------------------------------------------------------------------


def id_assigned(s: SessionState, event: TransactionIdAssigned) -> list[Effect]:
    out: list[Effect] = []
    for c in s.connectors.values():
        session = c.session
        if session is None or session.local_id != event.local_id:
            continue
        session.transaction_id = event.transaction_id
        info = event.id_tag_info or {}
        if info.get("parentIdTag") and not session.parent_id_tag:
            session.parent_id_tag = info["parentIdTag"]
        status = info.get("status", "Accepted")
        if status == "Accepted":
            continue
        if status == "ConcurrentTx" and event.resent:
            # An earlier send of this StartTransaction may have reached the CSMS (it timed out, or the link or
            # the station went down while it was in flight): the CSMS may be seeing this very session twice.
            # Never end a session that is really running for that.
            log.warning("re-sent StartTransaction of %s answered ConcurrentTx: the session goes on", event.local_id)
        else:  # OCPP 1.6 §4.8, errata 3.5/3.17: any other status, ConcurrentTx included
            if s.config["StopTransactionOnInvalidId"]:
                out += stop(s, c, "DeAuthorized", None)
            else:
                session.invalid = True
                out += _limit_invalid(s, c)
    return out


def _limit_invalid(s: SessionState, c: Connector) -> list[Effect]:
    """StopTransactionOnInvalidId=false: energy up to MaxEnergyOnInvalidId, then SuspendedEVSE."""
    session = c.session
    used = s.energy_wh(c.id, session.meter_start_wh) - session.meter_start_wh
    if session.suspended_evse or used < s.config["MaxEnergyOnInvalidId"]:
        return []
    energy_was = c.energy_on
    session.suspended_evse = True
    return contactor_follows(c, energy_was)
