"""BootNotifier: registration with the CSMS and the heartbeat (OCPP 1.6 §4.2, §4.6).

Takes: LinkUp / LinkDown, CallAnswered / CallFailed for BootNotification and Heartbeat,
ConfigurationChanged(HeartbeatInterval), Due("boot") / Due("heartbeat").
Emits: SendCall(BootNotification, before_boot) and SendCall(Heartbeat); RegistrationChanged to
its subscribers (the link holds every other CALL until Accepted); sets the StationClock from
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
from messages.events import (Peers, SetConfigurationValue, CallAnswered, CallFailed, ConfigurationChanged, Due, LinkDown, LinkUp,
                             RegistrationChanged, SendCall)
from messages.frozen import freeze

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 10, 600  # when the CSMS gives no usable interval


class BootNotifier(StationActor):
    def __init__(self, db_path: str, station: StationSettings, clock: StationClock, link: Any,
                 subscribers: tuple, heartbeat_interval_s: int, scheduler: Scheduler | None = None):
        super().__init__(db_path, scheduler)
        self._station = station
        self._clock = clock
        self._link = link
        self._subscribers = subscribers
        self._heartbeat_s = heartbeat_interval_s
        self._status = "Unknown"
        self._boot_waiting = False  # a BootNotification in flight or scheduled
        self._failures = 0
        self._heartbeat_generation = 0
        self._peers: Peers | None = None

    def receive(self, message: Any) -> Any:
        match message:
            case LinkUp():
                if self._status != "Accepted" and not self._boot_waiting:
                    self._send_boot()
            case LinkDown():
                pass
            case Peers():
                self._peers = message
            case Due("boot"):
                self._boot_waiting = False
                self._send_boot()
            case CallAnswered("BootNotification", payload):
                self._booted(payload)
            case CallFailed("BootNotification", reason, _, _, code):
                self._failures += 1
                delay = min(RETRY_MAX_S, RETRY_MIN_S * 2 ** min(self._failures - 1, 6))
                log.warning("BootNotification failed (%s %s): again in %d s", reason, code, delay)
                if reason == "Disconnected":
                    self._boot_waiting = False  # LinkUp sends it again
                else:
                    self._ticker.after(delay, Due("boot"))
            case Due("heartbeat", generation) if generation == self._heartbeat_generation:
                self._link.tell(SendCall("Heartbeat", freeze({}), self.actor_ref, "heartbeat"))
                self._schedule_heartbeat()
            case Due("heartbeat"):
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
            case "status":
                return self._status
            case _:
                self.unexpected(message)

    def _send_boot(self) -> None:
        s = self._station
        payload = {"chargePointVendor": s.vendor, "chargePointModel": s.model}
        if s.serial_number:
            payload["chargePointSerialNumber"] = s.serial_number[:25]
        if s.firmware_version:
            payload["firmwareVersion"] = s.firmware_version[:50]
        self._boot_waiting = True
        self._link.tell(SendCall("BootNotification", freeze(payload), self.actor_ref, "boot", before_boot=True))

    def _booted(self, payload: Any) -> None:
        self._set_clock(payload["currentTime"])
        status, interval = payload["status"], int(payload["interval"])
        self._status = status
        self._failures = 0
        log.info("BootNotification %s (interval %d s)", status, interval)
        for ref in self._subscribers:
            ref.tell(RegistrationChanged(status, interval))
        if status == "Accepted":
            self._boot_waiting = False
            if interval > 0:
                self._heartbeat_s = interval  # OCPP 1.6 §4.2: the CSMS's interval is the heartbeat interval
                if self._peers is not None:  # ... and GetConfiguration(HeartbeatInterval) says so
                    self._peers.configuration.tell(SetConfigurationValue("HeartbeatInterval", interval))
            self._schedule_heartbeat()
        else:
            self._ticker.after(interval if interval > 0 else RETRY_MIN_S, Due("boot"))

    def _schedule_heartbeat(self) -> None:
        self._heartbeat_generation += 1
        if self._heartbeat_s > 0:
            self._ticker.after(self._heartbeat_s, Due("heartbeat", self._heartbeat_generation))

    def _set_clock(self, text: str) -> None:
        try:
            now = parse_time(text)
        except ValueError:
            log.warning("unusable currentTime %r from the CSMS", text)
            return
        self._clock.set(now)
        store.set_meta(self._db, "last_time", format_time(now))
