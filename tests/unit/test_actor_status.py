"""StatusDebouncer: which connector statuses reach the CSMS, and when (MinimumStatusDuration)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from actors.status.actor import StatusDebouncer
from actors.infra.ticker import ManualScheduler
from messages.events import (CallAnswered, CallFailed, ConfigurationChanged, ConnectorStatusChanged, CsmsOnline,
                             FlushStatus, SendCall, StatusFlushed)
from tests.unit.fakes import Probe, sync, wire

pytestmark = pytest.mark.timeout(20)

T0 = datetime(2025, 5, 1, 10, 0, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def status_call(m) -> bool:
    return isinstance(m, SendCall) and m.action == "StatusNotification"


class Rig:
    def __init__(self, minimum_s=0):
        self.scheduler = ManualScheduler()
        self.link = Probe()
        self.status = StatusDebouncer.start(minimum_s, self.scheduler)
        wire(self.status, {SendCall: self.link})

    def changed(self, connector, status, seconds=0.0, error_code="NoError", info=""):
        self.status.tell(ConnectorStatusChanged(connector, status, error_code, info, "", at(seconds)))

    def advance(self, seconds):
        sync(self.status)  # its timers are armed before the clock moves
        self.scheduler.advance(seconds)
        sync(self.status)

    def sent(self) -> list[dict]:
        """The StatusNotification payloads sent so far (consumed)."""
        sync(self.status)
        calls = self.link.messages(status_call)
        for _ in calls:
            self.link.expect(status_call)
        return [dict(c.payload) for c in calls]

    def registered(self):
        self.status.tell(CsmsOnline(True, registered=True))
        return self.sent()

    def link_down(self):
        self.status.tell(CsmsOnline(False))

    def link_up(self):
        """A reconnect while Accepted: online again, not a new registration."""
        self.status.tell(CsmsOnline(True))


def test_nothing_is_sent_before_accepted_and_link_up():
    rig = Rig()
    rig.changed(0, "Available")
    rig.changed(1, "Available")
    assert rig.sent() == []  # no CsmsOnline yet: link up but not Accepted publishes none
    rig.status.tell(CsmsOnline(False))
    assert rig.sent() == []


def test_on_accepted_every_connector_is_reported_with_when_its_status_began():
    rig = Rig(minimum_s=10)
    rig.changed(1, "Preparing", seconds=3)
    rig.changed(0, "Available", seconds=1)
    sent = rig.registered()
    assert sent == [
        {"connectorId": 0, "status": "Available", "errorCode": "NoError", "timestamp": "2025-05-01T10:00:01.000Z"},
        {"connectorId": 1, "status": "Preparing", "errorCode": "NoError", "timestamp": "2025-05-01T10:00:03.000Z"},
    ]
    assert rig.link.messages() == []  # nothing else went out


def test_the_calls_carry_the_debouncer_as_reply_to_and_the_connector_as_tag():
    rig = Rig()
    rig.changed(1, "Available")
    rig.status.tell(CsmsOnline(True, registered=True))
    call = rig.link.expect(status_call)
    assert (call.reply_to, call.tag) == (rig.status, 1)


def test_info_and_error_code_are_reported():
    rig = Rig()
    rig.registered()
    rig.changed(1, "Faulted", error_code="ConnectorLockFailure", info="lock failed")
    assert rig.sent() == [{"connectorId": 1, "status": "Faulted", "errorCode": "ConnectorLockFailure",
                           "timestamp": "2025-05-01T10:00:00.000Z", "info": "lock failed"}]


def test_with_a_minimum_duration_a_status_that_flips_back_in_time_is_never_sent():
    rig = Rig(minimum_s=5)
    rig.changed(1, "Available")
    assert len(rig.registered()) == 1
    rig.changed(1, "Preparing", seconds=10)
    rig.advance(4)
    rig.changed(1, "Available", seconds=14)
    assert rig.sent() == []
    rig.advance(20)
    assert rig.sent() == []


def test_with_a_minimum_duration_a_status_that_holds_is_sent_with_when_it_began():
    rig = Rig(minimum_s=5)
    rig.changed(1, "Available")
    rig.registered()
    rig.changed(1, "Preparing", seconds=10)
    rig.advance(4.9)
    assert rig.sent() == []
    rig.advance(0.1)
    assert rig.sent() == [{"connectorId": 1, "status": "Preparing", "errorCode": "NoError",
                           "timestamp": "2025-05-01T10:00:10.000Z"}]


def test_repeating_the_same_status_keeps_its_start_time_and_timer():
    rig = Rig(minimum_s=5)
    rig.changed(1, "Available")
    rig.registered()
    rig.changed(1, "Preparing", seconds=10)
    rig.advance(3)
    rig.changed(1, "Preparing", seconds=13)
    rig.advance(2)
    assert rig.sent()[0]["timestamp"] == "2025-05-01T10:00:10.000Z"


def test_minimum_duration_zero_reports_at_once():
    rig = Rig(minimum_s=0)
    rig.changed(1, "Available")
    rig.registered()
    rig.changed(1, "Preparing", seconds=1)
    rig.changed(1, "Available", seconds=2)
    assert [p["status"] for p in rig.sent()] == ["Preparing", "Available"]


def test_a_minimum_status_duration_change_takes_effect():
    rig = Rig(minimum_s=0)
    rig.changed(1, "Available")
    rig.registered()
    rig.status.tell(ConfigurationChanged("MinimumStatusDuration", 5))
    rig.changed(1, "Preparing", seconds=1)
    assert rig.sent() == []
    rig.advance(5)
    assert [p["status"] for p in rig.sent()] == ["Preparing"]


def test_changes_made_while_offline_are_reported_after_link_up():
    rig = Rig(minimum_s=0)
    rig.changed(1, "Available")
    rig.registered()
    rig.link_down()
    rig.changed(1, "Preparing", seconds=5)
    assert rig.sent() == []
    rig.link_up()
    assert rig.sent() == [{"connectorId": 1, "status": "Preparing", "errorCode": "NoError",
                           "timestamp": "2025-05-01T10:00:05.000Z"}]


def test_a_status_that_held_while_offline_is_reported_after_link_up():
    rig = Rig(minimum_s=5)
    rig.changed(1, "Available")
    rig.registered()
    rig.link_down()
    rig.changed(1, "Preparing", seconds=5)
    rig.advance(10)
    assert rig.sent() == []
    rig.link_up()
    assert [(p["status"], p["timestamp"]) for p in rig.sent()] == [("Preparing", "2025-05-01T10:00:05.000Z")]


def test_an_unchanged_status_is_not_reported_again_after_a_reconnect():
    rig = Rig()
    rig.changed(1, "Available")
    rig.registered()
    rig.link_down()
    rig.link_up()
    assert rig.sent() == []


def test_a_status_notification_that_failed_is_reported_again_after_link_up():
    rig = Rig()
    rig.changed(1, "Available")
    rig.registered()
    rig.status.tell(CallFailed("StatusNotification", "Disconnected", 1, "s1"))
    rig.link_down()
    rig.link_up()
    assert [p["status"] for p in rig.sent()] == ["Available"]


def test_a_flush_reports_a_status_still_within_minimum_status_duration_then_says_flushed_once_answered():
    """OCTT TC_016 / TC_032_1: a Reset or a shutdown on back-up power still reports Finishing."""
    rig = Rig(minimum_s=30)
    rig.changed(1, "Charging")
    rig.registered()
    rig.status.tell(CallAnswered("StatusNotification", {}, 1, "u0"))  # the CSMS has Charging
    rig.changed(1, "Finishing", seconds=2)
    assert rig.sent() == []  # debounced
    asker = Probe()
    rig.status.tell(FlushStatus(asker.ref))
    sync(rig.status)
    call = rig.link.expect(status_call)
    assert call.payload["status"] == "Finishing"
    asker.expect_none(StatusFlushed)  # not before the CSMS answered it
    rig.status.tell(CallAnswered("StatusNotification", {}, call.tag, "u1"))
    asker.expect(StatusFlushed)
    rig.advance(30)
    assert rig.sent() == []  # the debounce timer was cancelled: not reported twice


def test_a_flush_with_nothing_pending_or_offline_answers_at_once():
    rig = Rig(minimum_s=30)
    rig.registered()
    asker = Probe()
    rig.status.tell(FlushStatus(asker.ref))
    asker.expect(StatusFlushed)
    rig.link_down()
    rig.changed(1, "Finishing")
    rig.status.tell(FlushStatus(asker.ref))
    asker.expect(StatusFlushed)
    assert rig.sent() == []
