"""Remote Trigger (OCPP 1.6 §5.17): the RemoteTrigger actor's answers, and each owner sending what it was asked."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from actors.boot.actor import BootNotifier
from actors.infra.clock import StationClock
from actors.infra.ticker import ManualScheduler
from actors.metering.actor import MeterSampler
from actors.status.actor import StatusDebouncer
from actors.trigger.actor import RemoteTrigger
from messages.events import (BootNotificationTriggered, CallAnswered, ConnectorStatusChanged, CsmsOnline,
                             HeartbeatTriggered, LinkUp, MeterReading, MeterSampled, MeterValuesTriggered,
                             RegistrationStatusChanged, ReplyResult, SendCall, SetConfigurationValue,
                             StatusNotificationTriggered)
from messages.frozen import freeze, thaw
from messages.requests import TriggerMessage
from tests.unit.fakes import Probe, sync, wire
from tests.unit.test_actor_boot import STATION

pytestmark = pytest.mark.timeout(20)

START = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
FOLLOW_UPS = (BootNotificationTriggered, HeartbeatTriggered, StatusNotificationTriggered, MeterValuesTriggered,
              SendCall)


class TriggerRig:
    def __init__(self, connectors=2):
        self.owners = Probe()  # every actor a triggered message goes to, and the link
        self.csms = Probe()  # the Replier
        self.trigger = RemoteTrigger.start(connectors)
        wire(self.trigger, {FOLLOW_UPS: self.owners})

    def ask(self, message, connector=None) -> str:
        self.trigger.tell(TriggerMessage(unique_id="t1", reply_to=self.csms.ref, requested_message=message,
                                         connector_id=connector))
        answer = self.csms.expect(ReplyResult)
        return thaw(answer.payload)["status"]

    def follow_ups(self) -> list:
        sync(self.trigger)
        got = self.owners.messages(lambda m: True)
        for _ in got:
            self.owners.expect(lambda m: True)
        return got


@pytest.fixture
def rig():
    return TriggerRig()


@pytest.mark.parametrize("message, follow_up", [
    ("Heartbeat", HeartbeatTriggered()),
    ("StatusNotification", StatusNotificationTriggered(None)),
    ("MeterValues", MeterValuesTriggered(None)),
    ("BootNotification", BootNotificationTriggered()),
])
def test_accepted_then_the_owner_is_asked_to_send_it(rig, message, follow_up):
    assert rig.ask(message) == "Accepted"
    assert rig.follow_ups() == [follow_up]


def test_a_connector_id_goes_with_the_request_and_0_means_the_station(rig):
    assert rig.ask("StatusNotification", 2) == "Accepted"
    assert rig.ask("StatusNotification", 0) == "Accepted"
    assert rig.ask("MeterValues", 1) == "Accepted"
    assert rig.ask("MeterValues", 0) == "Accepted"
    assert rig.follow_ups() == [StatusNotificationTriggered(2), StatusNotificationTriggered(0),
                                MeterValuesTriggered(1), MeterValuesTriggered(None)]


@pytest.mark.parametrize("message", ["MeterValues", "StatusNotification", "Heartbeat"])
def test_tc_055_a_connector_that_does_not_exist_is_rejected_and_nothing_is_sent(rig, message):
    assert rig.ask(message, 3) == "Rejected"
    assert rig.follow_ups() == []


@pytest.mark.parametrize("message", ["DiagnosticsStatusNotification", "FirmwareStatusNotification"])
def test_diagnostics_and_firmware_status_are_idle_and_go_out_while_pending_too(rig, message):
    assert rig.ask(message) == "Accepted"
    [call] = rig.follow_ups()
    assert (call.action, thaw(call.payload), call.before_boot) == (message, {"status": "Idle"}, True)


def test_after_the_boot_is_accepted_a_boot_notification_trigger_is_rejected(rig):
    rig.trigger.tell(RegistrationStatusChanged("Pending"))
    assert rig.ask("BootNotification") == "Accepted"
    rig.trigger.tell(RegistrationStatusChanged("Accepted"))
    assert rig.ask("BootNotification") == "Rejected"
    assert rig.follow_ups() == [BootNotificationTriggered()]


def test_the_answer_goes_before_the_owner_hears_of_it():
    """One probe for both: the order it received them in is the order they were sent."""
    both = Probe()
    trigger = RemoteTrigger.start(1)
    wire(trigger, {FOLLOW_UPS: both})
    trigger.tell(TriggerMessage(unique_id="t1", reply_to=both.ref, requested_message="Heartbeat"))
    assert isinstance(both.expect(lambda m: True), ReplyResult)
    assert both.expect(lambda m: True) == HeartbeatTriggered()


# --- the owners -------------------------------------------------------------------------------------


def is_call(action):
    return lambda m: isinstance(m, SendCall) and m.action == action


class BootRig:
    def __init__(self, db_path):
        self.scheduler = ManualScheduler()
        self.link = Probe()
        self.others = Probe()
        self.boot = BootNotifier.start(str(db_path), STATION, StationClock(system=START.timestamp,
                                                                            monotonic=self.scheduler.now),
                                       300, self.scheduler)
        wire(self.boot, {SendCall: self.link, (CsmsOnline, SetConfigurationValue, RegistrationStatusChanged):
                         self.others})

    def answer(self, status, interval=600):
        self.boot.tell(CallAnswered("BootNotification", freeze({"status": status, "interval": interval,
                                                                "currentTime": "2025-06-07T08:09:10.000Z"}),
                                    "boot", "b1"))
        sync(self.boot)


def test_a_triggered_boot_notification_goes_now_while_pending_not_at_the_retry_time(tmp_path):
    rig = BootRig(tmp_path / "s.db")
    rig.boot.tell(LinkUp())
    rig.link.expect(is_call("BootNotification"))
    rig.answer("Pending", interval=600)
    rig.boot.tell(BootNotificationTriggered())
    again = rig.link.expect(is_call("BootNotification"))
    assert again.before_boot
    rig.answer("Pending", interval=600)
    rig.scheduler.advance(599)
    sync(rig.boot)
    assert rig.link.messages(is_call("BootNotification")) == []  # the retry counts from the last answer


def test_a_triggered_boot_notification_while_one_is_in_flight_waits_for_its_answer(tmp_path):
    rig = BootRig(tmp_path / "s.db")
    rig.boot.tell(LinkUp())
    rig.link.expect(is_call("BootNotification"))
    rig.boot.tell(BootNotificationTriggered())
    sync(rig.boot)
    assert rig.link.messages(is_call("BootNotification")) == []  # not two in flight
    rig.answer("Pending", interval=600)  # the trigger was sent after this answer: a new one at once
    rig.link.expect(is_call("BootNotification"))
    rig.answer("Accepted")
    rig.boot.tell(LinkUp())
    sync(rig.boot)
    assert rig.link.messages(is_call("BootNotification")) == []


def test_a_triggered_boot_notification_whose_in_flight_one_is_accepted_sends_none(tmp_path):
    rig = BootRig(tmp_path / "s.db")
    rig.boot.tell(LinkUp())
    rig.link.expect(is_call("BootNotification"))
    rig.boot.tell(BootNotificationTriggered())
    rig.answer("Accepted")
    assert rig.link.messages(is_call("BootNotification")) == []


def test_a_triggered_heartbeat_goes_now_while_pending(tmp_path):
    rig = BootRig(tmp_path / "s.db")
    rig.boot.tell(LinkUp())
    rig.link.expect(is_call("BootNotification"))
    rig.answer("Pending")
    rig.boot.tell(HeartbeatTriggered())
    assert rig.link.expect(is_call("Heartbeat")).before_boot


def status_rig():
    link = Probe()
    status = StatusDebouncer.start(30, ManualScheduler())
    wire(status, {SendCall: link})
    for connector, state in ((0, "Available"), (1, "Available"), (2, "Preparing")):
        status.tell(ConnectorStatusChanged(connector, state, "NoError", "", "", START))
    return status, link


def test_a_triggered_status_notification_is_the_current_status_even_while_pending():
    status, link = status_rig()  # never online: the boot is not Accepted
    status.tell(StatusNotificationTriggered(2))
    call = link.expect(is_call("StatusNotification"))
    assert (thaw(call.payload)["connectorId"], thaw(call.payload)["status"], call.before_boot) == (2, "Preparing", True)


def test_a_triggered_status_notification_without_connector_reports_the_station_and_every_connector():
    status, link = status_rig()
    status.tell(StatusNotificationTriggered(None))
    sync(status)
    assert [thaw(c.payload)["connectorId"] for c in link.messages(is_call("StatusNotification"))] == [0, 1, 2]


def test_a_triggered_status_notification_reports_a_status_still_waiting_out_minimum_status_duration():
    status, link = status_rig()
    status.tell(CsmsOnline(True, registered=True))
    sync(status)
    for _ in range(3):
        link.expect(is_call("StatusNotification"))
    status.tell(ConnectorStatusChanged(1, "Preparing", "NoError", "", "", START))  # MinimumStatusDuration 30 s
    status.tell(StatusNotificationTriggered(1))
    assert thaw(link.expect(is_call("StatusNotification")).payload)["status"] == "Preparing"
    sync(status)
    assert link.messages(is_call("StatusNotification")) == []  # and not again when the 30 s pass


def test_triggered_meter_values_are_the_latest_reading_in_context_trigger_for_each_connector():
    scheduler = ManualScheduler()
    link = Probe()
    clock = StationClock(system=START.timestamp, monotonic=scheduler.now)
    config = {"MeterValueSampleInterval": 0, "ClockAlignedDataInterval": 0, "MeterValuesSampledData": "",
              "MeterValuesAlignedData": "", "StopTxnSampledData": "", "StopTxnAlignedData": ""}
    sampler = MeterSampler.start(":memory:", config, clock, scheduler)
    wire(sampler, {SendCall: link})
    sampler.tell(MeterSampled(MeterReading(1, 1234)))
    sampler.tell(MeterSampled(MeterReading(2, 99)))
    sampler.tell(MeterValuesTriggered(2))
    call = link.expect(is_call("MeterValues"))
    payload = thaw(call.payload)
    assert call.before_boot and payload["connectorId"] == 2 and "transactionId" not in payload
    [value] = payload["meterValue"][0]["sampledValue"]
    assert (value["value"], value["context"], value["measurand"]) == ("99", "Trigger", "Energy.Active.Import.Register")
    sampler.tell(MeterValuesTriggered(None))
    sync(sampler)
    assert [thaw(c.payload)["connectorId"] for c in link.messages(is_call("MeterValues"))] == [1, 2]
