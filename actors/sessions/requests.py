"""The CSMS's requests about connectors, and the station-wide stops (OCPP 1.6 §5).

RemoteStartTransaction (§5.11), RemoteStopTransaction (§5.12), UnlockConnector (§5.18),
ChangeAvailability (§5.2), StopAllTransactions (Reset) and mains power loss. Plain functions over
a `SessionState`, returning effects. No answer ever blocks: the two that wait (an unlock for the
lock motor, a RemoteStop for the StartTransaction.conf it overtook) keep the request in the state
and arm a deadline, and whichever comes first answers it once.
"""

from __future__ import annotations

import logging

from actors.reset.actor import EXIT_POWER_LOSS
from actors.sessions.effects import CancelTimer, Effect, Publish, RecordAvailability, Reply, StartTimer, Tell
from actors.sessions.identify import authorize, authorize_connector, free_connector
from actors.sessions.reservations import admits, may_be_admitted
from actors.sessions.state import SessionState
from actors.sessions.transactions import drop_authorization, stop
from messages.events import AllTransactionsStopped, MainsPowerChanged, SetConnectorLock, ShutDown, StopAllTransactions
from messages.requests import ChangeAvailability, RemoteStartTransaction, RemoteStopTransaction, UnlockConnector
from messages.ticks import RemoteStopDeadlineDue, UnlockDeadlineDue

log = logging.getLogger(__name__)

DEFERRED_STOP_S = 5.0  # longest wait for a StartTransaction.conf a RemoteStop overtook
UNLOCK_TIMEOUT_S = 5.0  # longest wait for the lock motor before answering UnlockFailed


def remote_start(s: SessionState, request: RemoteStartTransaction) -> list[Effect]:
    """OCPP 1.6 §5.11: Accepted means "will try"; connectorId 0 is not a connector. On a reserved connector
    (§5.13) another idTag is Rejected, unless the reservation is for a group (parentIdTag): then the
    idTag is authorized first, whatever AuthorizeRemoteTxRequests says, to learn its parentIdTag (§5.13:
    the Authorize.conf tells it), and the session starts only if it is of the group."""
    if request.connector_id is not None:
        c = s.connectors.get(request.connector_id)
        if c is None or c.busy or c.authorizing_tag is not None or not may_be_admitted(c, request.id_tag):
            return [Reply(request, "Rejected")]
    else:
        c = free_connector(s, request.id_tag)
        if c is None:
            return [Reply(request, "Rejected")]
    if s.config["AuthorizeRemoteTxRequests"] or not admits(c, request.id_tag, None):
        c.authorizing_tag = request.id_tag
        out = [authorize(s, request.id_tag, ("remote", request.id_tag, c.id))]
    else:
        out = authorize_connector(s, c, request.id_tag, None)
    return out + [Reply(request, "Accepted")]


def remote_stop(s: SessionState, request: RemoteStopTransaction) -> list[Effect]:
    stopped = _stop_transaction(s, request.transaction_id)
    if stopped is not None:
        return stopped + [Reply(request, "Accepted")]
    if _answer_pending(s):
        # The CSMS learnt this id from a StartTransaction.conf that may still be on its way to
        # us through the message queue (CALLs reach this actor by a shorter path): wait for it.
        s.deferred_stops[request.unique_id] = request
        return [StartTimer(RemoteStopDeadlineDue(request.unique_id), DEFERRED_STOP_S)]
    return [Reply(request, "Rejected")]


def _answer_pending(s: SessionState) -> bool:
    """A running session still waits for its StartTransaction.conf (a dropped one has id -1: errata 3.18)."""
    return any(c.session is not None and c.session.transaction_id is None for c in s.connectors.values())


def retry_deferred_stops(s: SessionState) -> list[Effect]:
    """A transaction id arrived (or -1: the StartTransaction was dropped): the RemoteStops that waited for
    it are answered now; once no answer can come any more, those that match nothing are Rejected."""
    out: list[Effect] = []
    pending = _answer_pending(s)
    for uid, request in list(s.deferred_stops.items()):
        stopped = _stop_transaction(s, request.transaction_id)
        if stopped is not None:
            del s.deferred_stops[uid]
            out += stopped + [CancelTimer(RemoteStopDeadlineDue(uid)), Reply(request, "Accepted")]
        elif not pending:
            del s.deferred_stops[uid]
            out += [CancelTimer(RemoteStopDeadlineDue(uid)), Reply(request, "Rejected")]
    return out


def remote_stop_deadline(s: SessionState, tick: RemoteStopDeadlineDue) -> list[Effect]:
    request = s.deferred_stops.pop(tick.unique_id, None)
    return [Reply(request, "Rejected")] if request is not None else []


def _stop_transaction(s: SessionState, transaction_id: int) -> list[Effect] | None:
    for c in s.connectors.values():
        if c.session is not None and c.session.transaction_id == transaction_id:
            return stop(s, c, "Remote", None)
    return None


def unlock_connector(s: SessionState, request: UnlockConnector) -> list[Effect]:
    """OCPP 1.6 §5.18; errata 3.87: an unknown connector is NotSupported, and so is a fixed cable
    (nothing to unlock). A running transaction is stopped first (reason UnlockCommand). The answer
    waits for the lock motor at most UNLOCK_TIMEOUT_S, then says UnlockFailed."""
    c = s.connectors.get(request.connector_id)
    if c is None or s.fixed_cable:
        return [Reply(request, "NotSupported")]
    out = stop(s, c, "UnlockCommand", None) if c.session is not None else []
    c.held_for = None  # the CSMS releases a cable a DeAuthorized stop kept
    s.unlocks[request.unique_id] = request
    return out + [StartTimer(UnlockDeadlineDue(request.unique_id), UNLOCK_TIMEOUT_S),
                  Publish(SetConnectorLock(c.id, False, s.me, request.unique_id))]


def unlocked(s: SessionState, unique_id: str, ok: bool) -> list[Effect]:
    request = s.unlocks.pop(unique_id, None)
    if request is None:
        return []  # an unlock nobody waits for (after a stop), or an answer after the deadline
    return [CancelTimer(UnlockDeadlineDue(unique_id)), Reply(request, "Unlocked" if ok else "UnlockFailed")]


def unlock_deadline(s: SessionState, tick: UnlockDeadlineDue) -> list[Effect]:
    request = s.unlocks.pop(tick.unique_id, None)
    return [Reply(request, "UnlockFailed")] if request is not None else []


def change_availability(s: SessionState, request: ChangeAvailability) -> list[Effect]:
    """OCPP 1.6 §5.2: Scheduled while a transaction runs (applied when it ends); persisted,
    connector 0 too, so it survives reboots and power cuts (§4.9; OCTT TC_013, TC_034). Operative for a
    connector while connector 0 is Inoperative: Rejected, nothing stored."""
    connector_id, operative = request.connector_id, request.operative
    if connector_id != 0 and connector_id not in s.connectors:
        return [Reply(request, "Rejected")]
    if connector_id != 0 and operative and not s.station_operative:
        # The connector would stay Unavailable while the station (connector 0) is Inoperative: the answer
        # says what really happens, and nothing is stored (a later Operative for connector 0 restores
        # the connector's own availability as it was).
        return [Reply(request, "Rejected")]
    s.availability[connector_id] = operative
    if connector_id == 0:
        s.station_operative = operative
    out: list[Effect] = [RecordAvailability(connector_id, operative)]
    targets = list(s.connectors.values()) if connector_id == 0 else [s.connectors[connector_id]]
    scheduled = False
    for c in targets:  # a connector is usable when both it and the station are Operative
        wanted = operative and (s.station_operative if connector_id != 0 else s.availability.get(c.id, True))
        if c.session is not None and not wanted:
            c.pending_operative = False
            scheduled = True
        else:
            c.operative, c.pending_operative = wanted, None
            if not wanted:
                out += drop_authorization(c)
    return out + [Reply(request, "Scheduled" if scheduled else "Accepted")]


def stop_all(s: SessionState, event: StopAllTransactions) -> list[Effect]:
    out: list[Effect] = []
    count = 0
    for c in s.connectors.values():
        if c.session is not None:
            out += stop(s, c, event.reason, None)
            count += 1
    if event.reply_to is not None:
        out.append(Tell(event.reply_to, AllTransactionsStopped(count)))
    return out


def mains_changed(s: SessionState, event: MainsPowerChanged) -> list[Effect]:
    """Mains power lost: with back-up power, stop every transaction (PowerLoss) and shut down in order
    (OCTT TC_032_1), exiting EXIT_POWER_LOSS; without it this process dies with the controller anyway."""
    if event.on or not s.backup_power:
        return []
    log.warning("mains power lost: stopping transactions on back-up power")
    # Not a clean stop (exit 0): the supervisor and systemd start the station again, back when power returns.
    return [Publish(ShutDown("PowerLoss", EXIT_POWER_LOSS, 10.0))]
