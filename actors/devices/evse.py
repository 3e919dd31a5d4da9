"""EvseDevice: the one actor that touches the EVSE controller (contactor, lock, pilot, indicator).

Takes: Wired (then opens the driver), SetContactor, SetConnectorLock, ShowStatus, and the
driver's own events (PlugConnected, PlugDisconnected, EvDrawChanged, ConnectorFaultChanged).
Emits: the driver's events to the TransactionManager; ConnectorLockResult to whoever asked.

Driver calls may block (serial timeouts, a stalled controller): only this actor waits. A call
that fails reports the connector Faulted with the driver's ChargePointErrorCode (source "evse"; a
failed lock: source "lock", which the sessions clear when the cable is out). A controller that cannot
be opened (e.g. missing at boot) faults the station (connector 0) until it opens. A failed call is
never reported as EVCommunicationError, which OCPP 1.6 §4.9 keeps for the link to the EV (a warning):
the station's own controller not answering is InternalError.
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


def _call_failure_code(code: str) -> str:
    """What a failed call to the controller is reported as: never the EV link's warning (§4.9)."""
    return "InternalError" if code in ("EVCommunicationError", "NoError") else code


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
                ok = self._call(connector, self._driver.set_lock, connector, locked, source="lock")
                if reply_to is not None:
                    reply_to.tell(ConnectorLockResult(connector, locked, bool(ok), request_id))
            case ShowStatus(connector, status, transaction_id, reservation_id):
                self._call(connector, self._driver.show_status, connector, status, transaction_id, reservation_id)
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
                self.publish(ConnectorFaultChanged(0, _call_failure_code(exc.error_code), str(exc)[:50]))
            self._ticker.after(self._open_delay, DeviceOpenDue())
            self._open_delay = min(self._open_delay * 2, OPEN_RETRY_MAX_S)
            return
        if self._open_delay > OPEN_RETRY_MIN_S or 0 in self._failed:
            log.info("EVSE controller available")
            self.publish(ConnectorFaultChanged(0, "NoError"))
        self._open_delay = OPEN_RETRY_MIN_S
        self._failed.discard(0)
        for s in states:
            if s.plugged:
                self.publish(PlugConnected(s.connector))
            if s.ev_drawing:
                self.publish(EvDrawChanged(s.connector, True))
            # A connector whose calls failed while the controller was away hears what it says now.
            if s.error_code != "NoError" or s.connector in self._failed:
                self._failed.discard(s.connector)
                self.publish(ConnectorFaultChanged(s.connector, s.error_code, s.info))

    def _call(self, connector: int, fn, *args, source: str = "evse") -> Any:
        try:
            result = fn(*args)
        except HalError as exc:
            log.error("EVSE controller: %s failed: %s", fn.__name__, exc)
            if source == "evse":  # a lock's failure is the lock's, over when its cable is out
                self._failed.add(connector)
            self.publish(ConnectorFaultChanged(connector, _call_failure_code(exc.error_code), str(exc)[:50],
                                               source=source))
            return None
        for failed in sorted(self._failed):
            # The controller answers again: report what it says now of each connector it failed on
            # (connector 0, the station: any answer will do), which may be a real fault of its own
            # (not a blanket NoError).
            if failed not in (connector, 0):
                continue
            self._failed.discard(failed)
            log.info("EVSE controller answers again (connector %s)", failed)
            if failed == 0:
                self.publish(ConnectorFaultChanged(0, "NoError"))
                continue
            try:
                state = next((s for s in self._driver.connector_states() if s.connector == failed), None)
            except HalError:
                state = None
            if state is not None:
                self.publish(ConnectorFaultChanged(failed, state.error_code, state.info))
        return result
