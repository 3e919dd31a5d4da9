"""RemoteTrigger: TriggerMessage (OCPP 1.6 §5.17, Remote Trigger profile).

Takes: TriggerMessage; RegistrationStatusChanged (a BootNotification trigger is Rejected once Accepted);
answers to the status notifications it sends itself.
Emits: the answer, then the request to send the message to the actor that owns it
(BootNotificationTriggered, HeartbeatTriggered to the BootNotifier; StatusNotificationTriggered to the
StatusDebouncer; MeterValuesTriggered to the MeterSampler); DiagnosticsStatusNotification and
FirmwareStatusNotification it sends itself (status Idle: this station runs no upload or update yet).

§5.17: the answer goes out before the requested message, and the message is the one the station would
send anyway (StatusNotification of the current status, MeterValues of the latest reading). A connectorId
that is not 0 or one of the station's connectors is Rejected (OCTT TC_055), whatever the message. Errata
3.35/3.40: after the BootNotification is Accepted, a BootNotification trigger is Rejected.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.infra.base import StationActor
from actors.infra.ticker import Scheduler
from messages.events import (BootNotificationTriggered, CallAnswered, CallFailed, HeartbeatTriggered,
                             MeterValuesTriggered, RegistrationStatusChanged, SendCall, StatusNotificationTriggered)
from messages.frozen import freeze
from messages.requests import TriggerMessage

log = logging.getLogger(__name__)

IDLE_NOTIFICATIONS = ("DiagnosticsStatusNotification", "FirmwareStatusNotification")


class RemoteTrigger(StationActor):
    handles = (TriggerMessage,)
    subscribes = (RegistrationStatusChanged,)
    emits = (BootNotificationTriggered, HeartbeatTriggered, StatusNotificationTriggered, MeterValuesTriggered,
             SendCall)

    def __init__(self, connectors: int, scheduler: Scheduler | None = None):
        super().__init__(scheduler=scheduler)
        self._connectors = connectors
        self._registration = "Unknown"

    def receive(self, message: Any) -> Any:
        match message:
            case TriggerMessage():
                self._trigger(message)
            case RegistrationStatusChanged(status):
                self._registration = status
            case CallAnswered() | CallFailed():
                pass  # nothing depends on the CSMS's answer to a status notification
            case _:
                self.unexpected(message)

    def _trigger(self, request: TriggerMessage) -> None:
        connector, wanted = request.connector_id, request.requested_message
        if connector is not None and not 0 <= connector <= self._connectors:
            request.reply(status="Rejected")
            return
        follow_up = self._follow_up(wanted, connector)
        if follow_up is None:
            request.reply(status="NotImplemented")
            return
        if wanted == "BootNotification" and self._registration == "Accepted":
            request.reply(status="Rejected")
            return
        request.reply(status="Accepted")  # first the answer, then the message (§5.17)
        log.info("TriggerMessage %s (connector %s)", wanted, connector)
        self.publish(follow_up)

    def _follow_up(self, wanted: str, connector: int | None) -> Any:
        """What sends the requested message, or None if this station cannot send it."""
        match wanted:
            case "BootNotification":
                return BootNotificationTriggered()
            case "Heartbeat":
                return HeartbeatTriggered()
            case "StatusNotification":
                return StatusNotificationTriggered(connector)
            case "MeterValues":
                return MeterValuesTriggered(connector or None)  # 0: the station, i.e. every connector
            case _ if wanted in IDLE_NOTIFICATIONS:
                return SendCall(wanted, freeze({"status": "Idle"}), self.actor_ref, wanted, before_boot=True)
            case _:
                return None
