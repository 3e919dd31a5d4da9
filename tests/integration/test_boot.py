"""Boot, registration and heartbeat against a real loopback CSMS (OCPP 1.6 §4.2, §4.6)."""

import time
from datetime import datetime

import pytest
from ocpp.v16 import call

pytestmark = pytest.mark.timeout(60)


def test_accepted_boot_reports_every_connector_then_heartbeats(csms, make_station):
    csms.boot_response = ("Accepted", 1)
    make_station(station={"connectors": 2})
    boot = csms.wait_for("BootNotification")
    assert boot.payload["chargePointVendor"] == "OpenStation"
    statuses = csms.wait_count("StatusNotification", 3)
    assert sorted(s.payload["connectorId"] for s in statuses) == [0, 1, 2]  # errata 3.22: connector 0 too
    assert all(s.payload["status"] == "Available" for s in statuses)
    beats = csms.wait_count("Heartbeat", 2, timeout=10)
    assert beats[1].time - beats[0].time > 0.5  # at the accepted interval, not back to back


def test_pending_boot_sends_nothing_else_but_answers_the_csms_then_boots_again(csms, make_station):
    csms.boot_response = [("Pending", 2), ("Accepted", 300)]
    station = make_station()
    csms.wait_for("BootNotification")
    station.sim(cmd="plug", connector=1)  # a status change while Pending must wait
    conf = csms.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert conf.configuration_key[0]["key"] == "HeartbeatInterval"
    assert csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="30")).status == "Accepted"
    boots = csms.wait_count("BootNotification", 2, timeout=10)
    actions_between = [r.action for r in csms.received if boots[0].time < r.time < boots[1].time]
    assert actions_between == []  # OCPP 1.6 §4.2: no CALL while Pending
    assert boots[1].time - boots[0].time >= 1.5  # re-sent after the interval
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Preparing")


def test_rejected_boot_is_retried_after_the_interval_and_nothing_else_is_sent(csms, make_station):
    csms.boot_response = [("Rejected", 1), ("Rejected", 1), ("Accepted", 300)]
    make_station()
    boots = csms.wait_count("BootNotification", 3, timeout=15)
    assert [r.action for r in csms.received[: csms.received.index(boots[2]) + 1]] == ["BootNotification"] * 3
    csms.wait_count("StatusNotification", 2)


def test_station_reconnects_after_the_csms_drops_it_and_does_not_boot_again(csms, make_station):
    make_station()
    csms.wait_count("StatusNotification", 2)
    csms.disconnect()
    csms.wait_until(lambda: csms.connections >= 2, timeout=15, what="a reconnect")
    assert csms.call(call.GetConfiguration(key=["NumberOfConnectors"])).configuration_key[0]["value"] == "1"
    assert len([r for r in csms.received if r.action == "BootNotification"]) == 1


def _behind_the_csms(csms, stamp: str) -> float:
    """Seconds from the station's timestamp to the CSMS's clock now (0: they agree)."""
    assert stamp.endswith("Z"), stamp
    return time.time() + csms.clock_offset_s - datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def test_clock_is_taken_from_the_csms_current_time(csms, make_station):
    """The station's timestamps follow the CSMS's currentTime, not the host's clock: the CSMS's
    clock runs 3 days behind the host's (BootNotification.conf sets the station's clock), then
    5 hours ahead of it (Heartbeat.conf sets it again)."""
    csms.clock_offset_s = -3 * 86400
    csms.boot_response = ("Accepted", 1)  # a Heartbeat every second
    station = make_station()
    csms.wait_count("StatusNotification", 2)  # sent once the station has taken the boot's answer
    mark = csms.mark()
    station.sim(cmd="plug", connector=1)
    sn = csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", after=mark)
    assert 0 <= _behind_the_csms(csms, sn.payload["timestamp"]) < 5, sn.payload  # not 3 days ahead

    csms.clock_offset_s = 5 * 3600
    mark = csms.mark()
    # Every Heartbeat from now on is answered with the new time; by the second one the station
    # has long taken the first answer.
    csms.wait_until(lambda: len([r for r in csms.received[mark:] if r.action == "Heartbeat"]) >= 2,
                    timeout=10, what="2 Heartbeats answered with the new time")
    mark = csms.mark()
    station.sim(cmd="unplug", connector=1)
    sn = csms.wait_for("StatusNotification", lambda p: p["status"] == "Available", after=mark)
    assert 0 <= _behind_the_csms(csms, sn.payload["timestamp"]) < 5, sn.payload  # not 5 hours behind
