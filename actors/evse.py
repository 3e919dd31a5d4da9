"""EvseDevice: the one actor that touches the EVSE controller (contactor, lock, pilot, indicator).

Takes: Peers (then opens the driver), SetContactor, SetConnectorLock, ShowStatus, and the
driver's own events (PlugConnected, PlugDisconnected, EvDrawChanged, ConnectorFaultChanged).
Emits: the driver's events to the TransactionManager; ConnectorLockResult to whoever asked.

Driver calls may block (serial timeouts, a stalled controller): only this actor waits. A call
that fails reports the connector Faulted with the driver's ChargePointErrorCode.
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from hal import EvseController, HalError
from messages.events import (HealthCheck, MainsPowerChanged, ConnectorFaultChanged, ConnectorLockResult, EvDrawChanged, Peers, PlugConnected,
                             PlugDisconnected, SetConnectorLock, SetContactor, ShowStatus)

log = logging.getLogger(__name__)


class EvseDevice(pykka.ThreadingActor):
    def __init__(self, driver: EvseController):
        super().__init__()
        self._driver = driver
        self._peers: Peers | None = None
        self._opened = False
        self._failed: set[int] = set()  # connectors we reported Faulted because a call failed

    def on_stop(self) -> None:
        if self._opened:
            try:
                self._driver.close()
            except Exception:
                log.exception("closing the EVSE controller failed")

    def on_receive(self, message: Any) -> Any:
        match message:
            case HealthCheck():
                return True
            case Peers():
                self._peers = message
                self._open()
            case PlugConnected() | PlugDisconnected() | EvDrawChanged() | ConnectorFaultChanged() | MainsPowerChanged():
                self._peers.transactions.tell(message)
            case SetContactor(connector, closed):
                self._call(connector, self._driver.set_contactor, connector, closed)
            case SetConnectorLock(connector, locked, reply_to, request_id):
                ok = self._call(connector, self._driver.set_lock, connector, locked)
                if reply_to is not None:
                    reply_to.tell(ConnectorLockResult(connector, locked, bool(ok), request_id))
            case ShowStatus(connector, status, transaction_id):
                self._call(connector, self._driver.show_status, connector, status, transaction_id)
            case _:
                log.warning("EvseDevice: unexpected message %r", message)

    def _open(self) -> None:
        try:
            self._driver.open(self.actor_ref.tell)
            self._opened = True
            states = self._driver.connector_states()
        except HalError as exc:
            log.error("EVSE controller unavailable: %s", exc)
            self._peers.transactions.tell(ConnectorFaultChanged(0, exc.error_code, str(exc)[:50]))
            return
        for s in states:
            if s.plugged:
                self._peers.transactions.tell(PlugConnected(s.connector))
            if s.ev_drawing:
                self._peers.transactions.tell(EvDrawChanged(s.connector, True))
            if s.error_code != "NoError":
                self._peers.transactions.tell(ConnectorFaultChanged(s.connector, s.error_code, s.info))

    def _call(self, connector: int, fn, *args) -> Any:
        try:
            result = fn(*args)
        except HalError as exc:
            log.error("EVSE controller: %s failed: %s", fn.__name__, exc)
            self._failed.add(connector)
            self._peers.transactions.tell(ConnectorFaultChanged(connector, exc.error_code, str(exc)[:50]))
            return None
        if connector in self._failed:  # the controller answers again: the fault we raised is over
            self._failed.discard(connector)
            log.info("EVSE controller answers again on connector %s", connector)
            self._peers.transactions.tell(ConnectorFaultChanged(connector, "NoError"))
        return result
