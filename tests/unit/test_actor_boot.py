"""BootNotifier: BootNotification, registration status, the heartbeat and the station clock."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from actors.infra import store
from actors.boot.actor import BootNotifier
from actors.infra.clock import StationClock
from actors.shell.settings import StationSettings
from actors.infra.ticker import ManualScheduler
from messages.events import (CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline, LinkDown, LinkUp, SendCall,
                             SetConfigurationValue)
from messages.frozen import freeze
from tests.unit.fakes import Probe, sync, wire

pytestmark = pytest.mark.timeout(20)

STATION = StationSettings("CP1", "Acme", "Volt-1", "SN-0001", "1.2.3", 1, True, False)
START = datetime(2025, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def is_call(action):
    return lambda m: isinstance(m, SendCall) and m.action == action


class Rig:
    def __init__(self, db_path, heartbeat_interval_s=300, station=STATION):
        self.db_path = db_path
        self.scheduler = ManualScheduler()
        self.clock = StationClock(system=START.timestamp, monotonic=self.scheduler.now)
        self.link = Probe()
        self.subscriber = Probe()  # plays every actor that takes CsmsOnline
        self.configuration = Probe()
        self.boot = BootNotifier.start(str(db_path), station, self.clock, heartbeat_interval_s, self.scheduler)
        wire(self.boot, {SendCall: self.link, CsmsOnline: self.subscriber, SetConfigurationValue: self.configuration})

    def advance(self, seconds):
        sync(self.boot)  # its timers are armed before the clock moves
        self.scheduler.advance(seconds)
        sync(self.boot)

    def expect_boot(self) -> SendCall:
        return self.link.expect(is_call("BootNotification"))

    def answer_boot(self, status="Accepted", interval=120, current_time="2025-06-07T08:09:10.000Z"):
        self.boot.tell(CallAnswered("BootNotification", freeze({"status": status, "currentTime": current_time,
                                                                "interval": interval}), "boot", "b1"))

    def accepted(self, interval=120) -> CsmsOnline:
        self.boot.tell(LinkUp())
        self.expect_boot()
        self.answer_boot("Accepted", interval)
        online = self.subscriber.expect(CsmsOnline)
        sync(self.boot)
        return online

    def heartbeats(self) -> int:
        return len(self.link.messages(is_call("Heartbeat")))


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path / "station.db")


def test_link_up_sends_a_boot_notification_that_may_go_before_registration(rig):
    rig.boot.tell(LinkUp())
    call = rig.expect_boot()
    assert call.before_boot is True
    assert call.reply_to == rig.boot and call.tag == "boot"
    assert call.payload == {"chargePointVendor": "Acme", "chargePointModel": "Volt-1",
                            "chargePointSerialNumber": "SN-0001", "firmwareVersion": "1.2.3"}


def test_an_empty_serial_number_and_firmware_version_are_left_out(tmp_path):
    rig = Rig(tmp_path / "station.db", station=StationSettings("CP1", "Acme", "Volt-1", "", "", 1, True, False))
    rig.boot.tell(LinkUp())
    assert rig.expect_boot().payload == {"chargePointVendor": "Acme", "chargePointModel": "Volt-1"}


def test_accepted_is_told_to_subscribers_and_sets_and_persists_the_clock(rig):
    assert rig.accepted(interval=120) == CsmsOnline(True, registered=True)
    assert rig.clock.now() == datetime(2025, 6, 7, 8, 9, 10, tzinfo=timezone.utc)
    conn = store.open_database(rig.db_path)
    try:
        assert store.get_meta(conn, "last_time") == "2025-06-07T08:09:10.000Z"
    finally:
        conn.close()
    # the CSMS's interval is the HeartbeatInterval (OCPP 1.6 §4.2): set through the Configuration actor
    assert rig.configuration.expect(SetConfigurationValue) == SetConfigurationValue("HeartbeatInterval", 120)


def test_after_accepted_a_heartbeat_goes_every_interval(rig):
    rig.accepted(interval=120)
    rig.advance(119)
    assert rig.heartbeats() == 0
    rig.advance(1)
    hb = rig.link.expect(is_call("Heartbeat"))
    assert hb.payload == {} and hb.reply_to == rig.boot and not hb.before_boot
    rig.advance(120)
    rig.link.expect(is_call("Heartbeat"))
    assert rig.heartbeats() == 0


def test_a_heartbeat_answer_sets_the_clock(rig):
    rig.accepted(interval=120)
    rig.boot.tell(CallAnswered("Heartbeat", freeze({"currentTime": "2025-06-07T09:00:00Z"}), "heartbeat", "h1"))
    sync(rig.boot)
    assert rig.clock.now() == datetime(2025, 6, 7, 9, 0, 0, tzinfo=timezone.utc)


def test_a_heartbeat_interval_change_reschedules_the_heartbeat(rig):
    rig.accepted(interval=120)
    rig.advance(10)
    rig.boot.tell(ConfigurationChanged("HeartbeatInterval", 30))
    sync(rig.boot)
    for _ in range(4):  # at 40, 70, 100, 130: the tick the old interval set for 120 must not add one
        rig.advance(30)
        rig.link.expect(is_call("Heartbeat"))
        assert rig.heartbeats() == 0


def test_heartbeat_interval_zero_stops_the_heartbeat(rig):
    rig.accepted(interval=120)
    rig.boot.tell(ConfigurationChanged("HeartbeatInterval", 0))
    sync(rig.boot)
    rig.advance(1000)
    assert rig.heartbeats() == 0


@pytest.mark.parametrize("status", ["Pending", "Rejected"])
def test_pending_or_rejected_sends_boot_again_after_the_interval_and_no_heartbeat(rig, status):
    rig.boot.tell(LinkUp())
    rig.expect_boot()
    rig.answer_boot(status, interval=60)
    sync(rig.boot)
    rig.subscriber.expect_none(CsmsOnline)  # not registered: the CSMS is not online for the others
    rig.advance(59)
    rig.link.expect_none(is_call("BootNotification"))
    rig.advance(1)
    assert rig.expect_boot().before_boot
    assert rig.heartbeats() == 0


def test_a_reconnect_while_a_boot_retry_is_scheduled_does_not_send_a_second_boot(rig):
    rig.boot.tell(LinkUp())
    rig.expect_boot()
    rig.answer_boot("Pending", interval=60)
    rig.boot.tell(LinkDown("x"))
    rig.boot.tell(LinkUp())
    sync(rig.boot)
    rig.link.expect_none(is_call("BootNotification"))
    rig.advance(60)
    rig.expect_boot()
    rig.link.expect_none(is_call("BootNotification"))


def test_a_failed_boot_is_retried_with_growing_back_off(rig):
    rig.boot.tell(LinkUp())
    rig.expect_boot()
    rig.boot.tell(CallFailed("BootNotification", "Timeout", "boot", "b1"))
    sync(rig.boot)
    rig.advance(9)
    rig.link.expect_none(is_call("BootNotification"))
    rig.advance(1)
    rig.expect_boot()
    rig.boot.tell(CallFailed("BootNotification", "CallError", "boot", "b2", "SecurityError"))
    sync(rig.boot)
    rig.advance(19)
    rig.link.expect_none(is_call("BootNotification"))
    rig.advance(1)
    rig.expect_boot()


def test_a_boot_failed_by_a_lost_connection_goes_again_on_link_up(rig):
    rig.boot.tell(LinkUp())
    rig.expect_boot()
    rig.boot.tell(CallFailed("BootNotification", "Disconnected", "boot", "b1"))
    rig.boot.tell(LinkDown("x"))
    rig.boot.tell(LinkUp())
    rig.expect_boot()


def test_no_second_boot_after_a_reconnect_once_accepted(rig):
    rig.accepted()
    rig.boot.tell(LinkDown("x"))
    assert rig.subscriber.expect(CsmsOnline) == CsmsOnline(False)
    rig.boot.tell(LinkUp())
    sync(rig.boot)
    rig.link.expect_none(is_call("BootNotification"))
    assert rig.subscriber.expect(CsmsOnline) == CsmsOnline(True, registered=False)  # still Accepted
