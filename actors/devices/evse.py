"""EvseDevice: the one actor that touches the EVSE controller (contactor, lock, pilot, indicator).

Takes: Wired (then opens the driver), SetContactor, SetConnectorLock, ShowStatus, and the
driver's own events (PlugConnected, PlugDisconnected, EvDrawChanged, ConnectorFaultChanged).
Emits: the driver's events to the TransactionManager; ConnectorLockResult to whoever asked.

Driver calls may block (serial timeouts, a stalled controller): only this actor waits. A call
that fails reports the connector Faulted with the driver's ChargePointErrorCode.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.infra.base import StationActor

from hal import EvseController, HalError
from messages.events import (CableDetached, ConnectorFaultChanged, ConnectorLockResult, EvDrawChanged, MainsPowerChanged,
                             PlugConnected, PlugDisconnected, SetConnectorLock, SetContactor, ShowStatus)
from messages.ticks import DeviceOpenDue

log = logging.getLogger(__name__)

OPEN_RETRY_MIN_S, OPEN_RETRY_MAX_S = 1.0, 30.0


class EvseDevice(StationActor):
    subscribes = (SetContactor, SetConnectorLock, ShowStatus)
    emits = (PlugConnected, PlugDisconnected, CableDetached, EvDrawChanged, ConnectorFaultChanged, MainsPowerChanged)
    stop_rank = 2  # last: the sessions may still open contactors while they stop

    def __init__(self, driver: EvseController):
        super().__init__()
        self._driver = driver
        self._opened = False
        self._failed: set[int] = set()  # connectors we reported Faulted because a call failed
        self._open_delay = OPEN_RETRY_MIN_S

    def closing(self) -> None:
        if self._opened:
            try:
                self._driver.close()
            except Exception:
                log.exception("closing the EVSE controller failed")

    def receive(self, message: Any) -> Any:
        match message:
            case DeviceOpenDue():
                self._open()
            case (PlugConnected() | PlugDisconnected() | CableDetached() | EvDrawChanged() | ConnectorFaultChanged()
                  | MainsPowerChanged()):  # from the driver's thread
                self.publish(message)
            case SetContactor(connector, closed):
                self._call(connector, self._driver.set_contactor, connector, closed)
            case SetConnectorLock(connector, locked, reply_to, request_id):
                ok = self._call(connector, self._driver.set_lock, connector, locked)
                if reply_to is not None:
                    reply_to.tell(ConnectorLockResult(connector, locked, bool(ok), request_id))
            case ShowStatus(connector, status, transaction_id):
                self._call(connector, self._driver.show_status, connector, status, transaction_id)
            case _:
                self.unexpected(message)

    def wired(self) -> None:
        self._open()

    def _open(self) -> None:
        """Open the controller; if it is not there (USB adapter missing at boot), report connector 0
        Faulted and try again with back-off until it is."""
        try:
            if not self._opened:
                self._driver.open(self.actor_ref.tell)
                self._opened = True
            states = self._driver.connector_states()
        except HalError as exc:
            if self._open_delay == OPEN_RETRY_MIN_S:
                log.error("EVSE controller unavailable: %s", exc)
                self.publish(ConnectorFaultChanged(0, exc.error_code, str(exc)[:50]))
            self._ticker.after(self._open_delay, DeviceOpenDue())
            self._open_delay = min(self._open_delay * 2, OPEN_RETRY_MAX_S)
            return
        if self._open_delay > OPEN_RETRY_MIN_S:
            log.info("EVSE controller available")
            self.publish(ConnectorFaultChanged(0, "NoError"))
        self._open_delay = OPEN_RETRY_MIN_S
        for s in states:
            if s.plugged:
                self.publish(PlugConnected(s.connector))
            if s.ev_drawing:
                self.publish(EvDrawChanged(s.connector, True))
            if s.error_code != "NoError":
                self.publish(ConnectorFaultChanged(s.connector, s.error_code, s.info))

    def _call(self, connector: int, fn, *args) -> Any:
        try:
            result = fn(*args)
        except HalError as exc:
            log.error("EVSE controller: %s failed: %s", fn.__name__, exc)
            self._failed.add(connector)
            self.publish(ConnectorFaultChanged(connector, exc.error_code, str(exc)[:50]))
            return None
        if connector in self._failed:  # the controller answers again: report what it says now, which
            self._failed.discard(connector)  # may be a real fault of its own (not a blanket NoError)
            log.info("EVSE controller answers again on connector %s", connector)
            try:
                state = next((s for s in self._driver.connector_states() if s.connector == connector), None)
            except HalError:
                state = None
            if state is not None:
                self.publish(ConnectorFaultChanged(connector, state.error_code, state.info))
        return result
