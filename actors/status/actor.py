"""StatusDebouncer: StatusNotification for every status change that lasts (OCPP 1.6 §4.9, errata 3.19).

Takes: ConnectorStatusChanged (from the TransactionManager), CsmsOnline,
ConfigurationChanged(MinimumStatusDuration), StatusReportDue, answers to its StatusNotifications,
FlushStatus (the station is going down), StatusNotificationTriggered (TriggerMessage: the current
status now, reported or not, also while the BootNotification is Pending: OCPP 1.6 §4.2, §5.17).
Emits: SendCall(StatusNotification); StatusFlushed to who asked for the flush.

A status is reported once it has held for MinimumStatusDuration seconds (0 = at once, as the
test tool wants), SuspendedEV at least SETTLE_S; a status that flips back before then is never
reported. The timestamp is
when the status began. After BootNotification is Accepted every connector, 0 included, is
reported (errata 3.22); after a reconnect, whatever changed while offline.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.infra.base import StationActor
from actors.infra.clock import format_time
from actors.infra.ticker import Scheduler
from messages.events import (CallAnswered, CallFailed, ConfigurationChanged, ConnectorStatusChanged, CsmsOnline,
                             FlushStatus, SendCall, StatusFlushed, StatusNotificationTriggered)
from messages.frozen import freeze
from messages.ticks import StatusReportDue

log = logging.getLogger(__name__)

# The manufacturer's delay added to MinimumStatusDuration (OCPP 1.6 §4.9 allows it): an EV takes a
# moment to ask for energy after the contactor closes or a session starts, so a SuspendedEV that
# lasts less than this is the gap between two events, not a state worth a StatusNotification.
SETTLE_S = {"SuspendedEV": 0.5}


class StatusDebouncer(StationActor):
    subscribes = (ConnectorStatusChanged, CsmsOnline, FlushStatus, StatusNotificationTriggered)
    watches = ("MinimumStatusDuration",)
    emits = (SendCall,)

    def __init__(self, minimum_status_duration_s: int, scheduler: Scheduler | None = None):
        super().__init__(scheduler=scheduler)
        self._minimum_s = minimum_status_duration_s
        self._current: dict[int, ConnectorStatusChanged] = {}
        self._reported: dict[int, tuple] = {}  # connector -> (status, errorCode, info) the CSMS has
        self._timers: dict[int, int] = {}
        self._online = False  # reachable and Accepted
        self._unanswered = 0  # StatusNotifications sent and not yet answered
        self._flush_waiters: list = []

    def receive(self, message: Any) -> Any:
        match message:
            case ConnectorStatusChanged(connector):
                self._changed(message)
            case StatusReportDue(connector):
                self._timers.pop(connector, None)
                self._report(connector)
            case CsmsOnline(online, registered):
                self._online = online
                if registered:
                    self._reported.clear()  # a (re)boot: the CSMS knows nothing yet
                if online:
                    self._report_all()
            case CallFailed("StatusNotification", _, connector):
                self._reported.pop(connector, None)  # not delivered: report again when possible
                self._answered()
            case CallAnswered("StatusNotification"):
                self._answered()
            case FlushStatus(reply_to):
                # OCPP 1.6 §4.9 lets a status wait MinimumStatusDuration, but not past the station's end
                # (OCTT TC_016, TC_032_1 expect Finishing before the process goes down).
                for connector in list(self._timers):
                    self._ticker.cancel(self._timers.pop(connector))
                self._report_all()
                self._flush_waiters.append(reply_to)
                self._answered(0)
            case StatusNotificationTriggered(connector):
                targets = sorted(self._current) if connector is None else [connector]
                for c in targets:
                    # The status as it is now, even one still waiting out MinimumStatusDuration.
                    self._ticker.cancel(self._timers.pop(c, None))
                    self._report(c, triggered=True)
            case ConfigurationChanged("MinimumStatusDuration", value):
                self._minimum_s = int(value)
            case ConfigurationChanged():
                pass
            case _:
                self.unexpected(message)

    def _answered(self, count: int = 1) -> None:
        self._unanswered = max(0, self._unanswered - count)
        if self._unanswered == 0 or not self._online:
            for ref in self._flush_waiters:
                ref.tell(StatusFlushed())
            self._flush_waiters = []

    def _key(self, m: ConnectorStatusChanged) -> tuple:
        return (m.status, m.error_code, m.info)

    def _changed(self, m: ConnectorStatusChanged) -> None:
        old = self._current.get(m.connector)
        if old is not None and self._key(old) == self._key(m):
            return  # same status again: keep its original start time
        self._current[m.connector] = m
        self._ticker.cancel(self._timers.pop(m.connector, None))
        delay = max(self._minimum_s, SETTLE_S.get(m.status, 0.0))
        if delay > 0 and m.connector in self._reported:
            self._timers[m.connector] = self._ticker.after(delay, StatusReportDue(m.connector))
        else:
            self._report(m.connector)

    def _report_all(self) -> None:
        for connector in sorted(self._current):
            if connector not in self._timers:
                self._report(connector)

    def _report(self, connector: int, triggered: bool = False) -> None:
        m = self._current.get(connector)
        if m is None:
            return
        if not triggered and (not self._online or self._reported.get(connector) == self._key(m)):
            return
        payload = {"connectorId": connector, "status": m.status, "errorCode": m.error_code}
        if m.timestamp is not None:
            payload["timestamp"] = format_time(m.timestamp)
        if m.info:
            payload["info"] = m.info[:50]
        if m.vendor_error_code:
            payload["vendorErrorCode"] = m.vendor_error_code[:50]
        self._reported[connector] = self._key(m)
        self._unanswered += 1
        self.publish(SendCall("StatusNotification", freeze(payload), self.actor_ref, connector, before_boot=triggered))
