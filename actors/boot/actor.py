"""BootNotifier: registration with the CSMS and the heartbeat (OCPP 1.6 §4.2, §4.6).

Takes: LinkUp / LinkDown, CallAnswered / CallFailed for BootNotification and Heartbeat,
ConfigurationChanged(HeartbeatInterval), BootRetryDue / HeartbeatDue, BootNotificationTriggered /
HeartbeatTriggered (TriggerMessage: send it now; while Pending too, OCPP 1.6 §4.2, §5.17).
Emits: SendCall(BootNotification, before_boot) and SendCall(Heartbeat); CsmsOnline, the one
event that says the CSMS is reachable and has Accepted this station (the link sends no other
CALL until then); RegistrationStatusChanged (the link answers nothing while Rejected); SetConfigurationValue(HeartbeatInterval); sets the StationClock from
`currentTime` and persists it as the last known time.

Pending or Rejected: no other CALL goes out; BootNotification is sent again after `interval`
(OCPP 1.6 §4.2; errata 3.68: a Rejected station retries with back-off). A CALLERROR (e.g.
SecurityError before acceptance, OCPP-J errata 3.10) or a timeout is treated as "not accepted
yet" and retried with back-off. Registration survives reconnects: Boot is sent once per start.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.infra.base import StationActor
from actors.infra import store
from actors.infra.clock import StationClock, format_time, parse_time
from actors.shell.settings import StationSettings
from actors.infra.ticker import Scheduler
from messages.events import (BootNotificationTriggered, CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline,
                             HeartbeatTriggered, LinkDown, LinkUp, RegistrationStatusChanged, SendCall,
                             SetConfigurationValue)
from messages.frozen import freeze
from messages.ticks import BootRetryDue, HeartbeatDue

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 10, 600  # when the CSMS gives no usable interval


class BootNotifier(StationActor):
    subscribes = (LinkUp, LinkDown, BootNotificationTriggered, HeartbeatTriggered)
    watches = ("HeartbeatInterval",)
    emits = (SendCall, CsmsOnline, RegistrationStatusChanged, SetConfigurationValue)

    def __init__(self, db_path: str, station: StationSettings, clock: StationClock, heartbeat_interval_s: int,
                 scheduler: Scheduler | None = None):
        super().__init__(db_path, scheduler)
        self._station = station
        self._clock = clock
        self._heartbeat_s = heartbeat_interval_s
        self._status = "Unknown"
        self._boot_waiting = False  # a BootNotification in flight or scheduled
        self._boot_in_flight = False
        self._boot_retry: int | None = None  # the scheduled BootRetryDue
        self._boot_triggered = False  # a TriggerMessage asked for one while one was in flight
        self._failures = 0
        self._heartbeat_generation = 0
        self._link_up = False

    def receive(self, message: Any) -> Any:
        match message:
            case LinkUp():
                self._link_up = True
                if self._status == "Accepted":  # registration survives reconnects
                    self.publish(CsmsOnline(True))
                elif not self._boot_waiting:
                    self._send_boot()
            case LinkDown():
                if self._link_up and self._status == "Accepted":
                    self.publish(CsmsOnline(False))
                self._link_up = False
            case BootRetryDue() if self._boot_in_flight:
                pass  # a retry cancelled by a triggered BootNotification, already on its way to us
            case BootRetryDue():
                self._boot_retry = None
                self._boot_waiting = False
                self._send_boot()
            case BootNotificationTriggered():
                # Not Accepted yet (RemoteTrigger rejects it after): send now instead of at the retry time,
                # unless one is already on its way (its answer will do).
                if self._boot_in_flight:
                    # Its answer may be on its way to us still (the trigger and the answer come by different
                    # paths): if it is not Accepted, send again at once rather than at the retry time.
                    self._boot_triggered = True
                elif self._status != "Accepted":
                    self._send_triggered_boot()
            case HeartbeatTriggered():
                self.publish(SendCall("Heartbeat", freeze({}), self.actor_ref, "heartbeat", before_boot=True))
            case CallAnswered("BootNotification", payload):
                self._boot_in_flight = False
                self._booted(payload)
                if self._boot_triggered and self._status != "Accepted":
                    self._send_triggered_boot()
                self._boot_triggered = False
            case CallFailed("BootNotification", reason, _, _, code):
                self._boot_in_flight = False
                self._failures += 1
                delay = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** min(self._failures - 1, 6))
                log.warning("BootNotification failed (%s %s): again in %d s", reason, code, delay)
                if reason == "Disconnected":
                    self._boot_waiting = False  # LinkUp sends it again
                else:
                    self._boot_retry = self._ticker.after(delay, BootRetryDue())
            case HeartbeatDue(generation) if generation == self._heartbeat_generation:
                self.publish(SendCall("Heartbeat", freeze({}), self.actor_ref, "heartbeat"))
                self._schedule_heartbeat()
            case HeartbeatDue():
                pass  # a tick from an interval since changed
            case CallAnswered("Heartbeat", payload):
                self._set_clock(payload["currentTime"])
            case CallFailed("Heartbeat"):
                pass  # the next one is scheduled anyway
            case ConfigurationChanged("HeartbeatInterval", value):
                self._heartbeat_s = int(value)
                if self._status == "Accepted":
                    self._schedule_heartbeat()
            case ConfigurationChanged():
                pass
            case _:
                self.unexpected(message)

    def _send_triggered_boot(self) -> None:
        self._ticker.cancel(self._boot_retry)
        self._boot_retry = None
        self._send_boot()

    def _send_boot(self) -> None:
        s = self._station
        payload = {"chargePointVendor": s.vendor, "chargePointModel": s.model}
        if s.serial_number:
            payload["chargePointSerialNumber"] = s.serial_number[:25]
        if s.firmware_version:
            payload["firmwareVersion"] = s.firmware_version[:50]
        self._boot_waiting = self._boot_in_flight = True
        self.publish(SendCall("BootNotification", freeze(payload), self.actor_ref, "boot", before_boot=True))

    def _booted(self, payload: Any) -> None:
        self._set_clock(payload["currentTime"])
        status, interval = payload["status"], int(payload["interval"])
        was, self._status = self._status, status
        self._failures = 0
        log.info("BootNotification %s (interval %d s)", status, interval)
        self.publish(RegistrationStatusChanged(status))
        if status == "Accepted":
            self._boot_waiting = False
            if interval > 0:
                self._heartbeat_s = interval  # OCPP 1.6 §4.2: the CSMS's interval is the heartbeat interval
                # ... and GetConfiguration(HeartbeatInterval) says so
                self.publish(SetConfigurationValue("HeartbeatInterval", interval))
            if self._link_up:
                self.publish(CsmsOnline(True, registered=True))
            self._schedule_heartbeat()
        else:
            if was == "Accepted" and self._link_up:
                self.publish(CsmsOnline(False))
            self._boot_retry = self._ticker.after(interval if interval > 0 else RETRY_MIN_S, BootRetryDue())

    def _schedule_heartbeat(self) -> None:
        self._heartbeat_generation += 1
        if self._heartbeat_s > 0:
            self._ticker.after(self._heartbeat_s, HeartbeatDue(self._heartbeat_generation))

    def _set_clock(self, text: str) -> None:
        try:
            now = parse_time(text)
        except ValueError:
            log.warning("unusable currentTime %r from the CSMS", text)
            return
        self._clock.set(now)
        store.set_meta(self._db, "last_time", format_time(now))
