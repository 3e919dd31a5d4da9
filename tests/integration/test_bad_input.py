"""Bad input from the CSMS gets the right CALLERROR and the station keeps serving (OCPP-J 1.6 §4.2.3)."""

import json

import pytest
from ocpp.v16 import call

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def station(csms, make_station):
    s = make_station()
    csms.wait_count("StatusNotification", 2)
    return s


def _still_serving(csms):
    conf = csms.call(call.GetConfiguration(key=["HeartbeatInterval"]))
    assert conf.configuration_key[0]["value"] == "300"


@pytest.mark.parametrize("frame, unique_id, code", [
    ('[2,"m1","GetConfiguration",{"key":["HeartbeatInterval"]', "m1", "FormationViolation"),  # not JSON
    ('{"not": "an array"}', "-1", "FormationViolation"),
    ('[9,"m2","GetConfiguration",{}]', "m2", "FormationViolation"),  # unknown message type id
    ('[2,"m3","GetConfiguration"]', "m3", "ProtocolError"),  # payload missing: incomplete
    ('[2,"m4","GetConfiguration",{},{}]', "m4", "ProtocolError"),  # a CALL has four elements
    ('[2,"m5","GetConfiguration",[]]', "m5", "FormationViolation"),  # payload not an object
    ('[2,"m6","FlyToTheMoon",{}]', "m6", "NotImplemented"),
    ('[2,"m7","UpdateFirmware",{"location":"ftp://x/y","retrieveDate":"2026-01-01T00:00:00Z"}]', "m7",
     "NotSupported"),  # a real OCPP action this station does not handle (yet)
    ('[2,"m8","ChangeConfiguration",{"key":"HeartbeatInterval"}]', "m8", "OccurenceConstraintViolation"),
    ('[2,"m9","ChangeConfiguration",{"key":5,"value":"1"}]', "m9", "TypeConstraintViolation"),
    ('[2,"m10","ChangeConfiguration",{"key":"' + "K" * 51 + '","value":"1"}]', "m10",
     "PropertyConstraintViolation"),
    ('[2,"m11","ChangeConfiguration",{"key":"a","value":"1","extra":1}]', "m11", "FormationViolation"),
    ('[2,"m12","RemoteStartTransaction",{"idTag":"T","connectorId":"1"}]', "m12", "TypeConstraintViolation"),
    ('[2,"m13","RemoteStartTransaction",{"idTag":"T","chargingProfile":{"chargingProfileId":1,"stackLevel":0,'
     '"chargingProfilePurpose":"Nope","chargingProfileKind":"Absolute","chargingSchedule":'
     '{"chargingRateUnit":"A","chargingSchedulePeriod":[{"startPeriod":0,"limit":6}]}}}]', "m13",
     "PropertyConstraintViolation"),
])
def test_malformed_or_invalid_calls_get_the_matching_call_error(csms, station, frame, unique_id, code):
    csms.send_raw(frame)
    reply = csms.next_raw_reply(unique_id)
    assert reply[0] == 4 and reply[2] == code, reply
    _still_serving(csms)


def test_an_oversized_frame_is_answered_without_being_parsed(csms, station):
    csms.send_raw(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "A" * 100_000}]))
    reply = csms.next_raw_reply("big")
    assert reply[0] == 4 and reply[2] == "FormationViolation"
    _still_serving(csms)


def test_responses_to_nothing_and_broken_responses_are_ignored(csms, station):
    csms.send_raw('[3,"never-sent",{}]')
    csms.send_raw('[4,"never-sent-either","GenericError","x",{}]')
    csms.send_raw('[3]')
    _still_serving(csms)


def test_a_csms_that_never_answers_times_out_and_the_station_keeps_serving(csms, make_station):
    station = make_station(configuration={"MessageTimeout": 1, "HeartbeatInterval": 300})
    csms.wait_count("StatusNotification", 2)
    csms.silent = True
    mark = csms.mark()
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", after=mark)
    station.sim(cmd="unplug", connector=1)
    # The first call got no answer; after MessageTimeout the next one goes out.
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Available", after=mark, timeout=10)
    csms.silent = False
    _still_serving(csms)
