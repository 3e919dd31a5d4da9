"""The CSMS's requests about connectors, as part of the TransactionManager (OCPP 1.6 §5).

RemoteStartTransaction (§5.11), RemoteStopTransaction (§5.12), UnlockConnector (§5.17),
ChangeAvailability (§5.2), and the station-wide stops used by Reset and power loss. A mixin of
the TransactionManager: these handlers change the same connectors, on the same actor thread;
they live in their own file only to keep each file readable.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.sessions.connector import Connector
from messages.events import AllTransactionsStopped, SetConnectorLock, ShutDown
from messages.requests import RemoteStartTransaction, RemoteStopTransaction, UnlockConnector
from messages.ticks import RemoteStopDeadlineDue, UnlockDeadlineDue

log = logging.getLogger("actors.sessions.actor")

DEFERRED_STOP_S = 5.0  # longest wait for a StartTransaction.conf a RemoteStop overtook
UNLOCK_TIMEOUT_S = 5.0  # longest wait for the lock motor before answering UnlockFailed


class ConnectorRequests:
    def _remote_start(self, request: RemoteStartTransaction) -> str:
        """OCPP 1.6 §5.11: Accepted means "will try"; connectorId 0 is not a connector."""
        connector_id = request.connector_id
        if connector_id is not None:
            c = self._connectors.get(connector_id)
            if c is None or c.busy or c.authorizing_tag is not None:
                return "Rejected"
        else:
            c = self._free_connector(prefer_plugged=True)
            if c is None:
                return "Rejected"
        id_tag = request.id_tag
        if self._config["AuthorizeRemoteTxRequests"]:
            c.authorizing_tag = id_tag
            self._authorize(id_tag, ("remote", id_tag, c.id))
            self._publish(c.id)
        else:
            self._authorize_connector(c, id_tag, None)
        return "Accepted"

    def _remote_stop_request(self, request: RemoteStopTransaction) -> None:
        status = self._remote_stop(request.transaction_id)
        if status == "Rejected" and any(c.session and c.session.transaction_id is None
                                        for c in self._connectors.values()):
            # The CSMS learnt this id from a StartTransaction.conf that may still be on its way to
            # us through the message queue (CALLs reach this actor by a shorter path): wait for it.
            timer = self._ticker.after(DEFERRED_STOP_S, RemoteStopDeadlineDue(request.unique_id))
            self._deferred_stops[request.unique_id] = (request, timer)
            return
        request.reply(status=status)

    def _retry_deferred_stops(self) -> None:
        for uid, (request, timer) in list(self._deferred_stops.items()):
            if self._remote_stop(request.transaction_id) == "Accepted":
                self._ticker.cancel(timer)
                self._answer_deferred_stop(uid, "Accepted")

    def _answer_deferred_stop(self, uid: str, status: str) -> None:
        deferred = self._deferred_stops.pop(uid, None)
        if deferred is not None:
            deferred[0].reply(status=status)

    def _remote_stop(self, transaction_id: int) -> str:
        for c in self._connectors.values():
            if c.session is not None and c.session.transaction_id == transaction_id:
                self._stop_transaction(c, "Remote", None)
                self._publish(c.id)
                return "Accepted"
        return "Rejected"

    def _unlock_request(self, request: UnlockConnector) -> None:
        """OCPP 1.6 §5.17; errata 3.87: an unknown connector is NotSupported, and so is a fixed cable
        (nothing to unlock). A running transaction is stopped first (reason UnlockCommand). The answer
        waits for the lock motor at most UNLOCK_TIMEOUT_S, then says UnlockFailed."""
        c = self._connectors.get(request.connector_id)
        if c is None or self._fixed_cable:
            request.reply(status="NotSupported")
            return
        if c.session is not None:
            self._stop_transaction(c, "UnlockCommand", None)
            self._publish(c.id)
        timer = self._ticker.after(UNLOCK_TIMEOUT_S, UnlockDeadlineDue(request.unique_id))
        self._unlocks[request.unique_id] = (request, timer)
        self._evse(SetConnectorLock(c.id, False, self.actor_ref, request.unique_id))

    def _unlocked(self, uid: str, ok: bool) -> None:
        pending = self._unlocks.pop(uid, None)
        if pending is None:
            return  # an unlock nobody waits for (after a stop), or an answer after the deadline
        request, timer = pending
        self._ticker.cancel(timer)
        request.reply(status="Unlocked" if ok else "UnlockFailed")

    def _change_availability(self, connector_id: int, operative: bool) -> str:
        """OCPP 1.6 §5.2: Scheduled while a transaction runs (applied when it ends); persisted,
        connector 0 too, so it survives reboots and power cuts (§4.9; OCTT TC_013, TC_034)."""
        if connector_id != 0 and connector_id not in self._connectors:
            return "Rejected"
        targets = list(self._connectors.values()) if connector_id == 0 else [self._connectors[connector_id]]
        self._book.set_availability(connector_id, operative)
        if connector_id == 0:
            self._station_operative = operative
        scheduled = False
        for c in targets:  # a connector is usable when both it and the station are Operative
            wanted = (operative and self._station_operative) if connector_id != 0 else \
                (operative and self._book.operative(c.id))
            if c.session is not None and not wanted:
                c.pending_operative = False
                scheduled = True
            else:
                c.operative, c.pending_operative = wanted, None
                if not wanted:
                    self._drop_authorization(c)
            self._publish(c.id)
        self._publish(0)
        return "Scheduled" if scheduled else "Accepted"

    def _drop_authorization(self, c: Connector) -> None:
        c.authorized_tag = c.authorized_parent = None
        self._ticker.cancel(self._connection_timers.pop(c.id, None))

    def _stop_all(self, reason: str, reply_to: Any) -> None:
        count = 0
        for c in self._connectors.values():
            if c.session is not None:
                self._stop_transaction(c, reason, None)
                self._publish(c.id)
                count += 1
        if reply_to is not None:
            reply_to.tell(AllTransactionsStopped(count))

    def _mains(self, on: bool) -> None:
        """Mains power lost: with back-up power, stop every transaction (PowerLoss) and shut down
        cleanly (OCTT TC_032_1); without it this process dies with the controller anyway."""
        if on or not self._backup_power:
            return
        log.warning("mains power lost: stopping transactions on back-up power")
        self.publish(ShutDown("PowerLoss", 0, 10.0))
