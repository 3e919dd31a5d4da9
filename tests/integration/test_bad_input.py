"""Bad input from the CSMS gets the right CALLERROR and the station keeps serving (OCPP-J 1.6 §4.2.3).

"Keeps serving" is checked with requests that go through the station's actors (GetConfiguration
alone is answered on the socket thread and would pass with every actor stuck): ChangeConfiguration
(the Configuration actor), ClearCache (Authorization), RemoteStartTransaction and UnlockConnector
(the TransactionManager), each answered within REPLY_S, on the same connection; and the station
sent nothing else since the bad input: no CALL, no second answer, no answer to a non-CALL."""

import json

import pytest
from ocpp.v16 import call

from tests.support.harness import call_ids, unexpected_frames

pytestmark = pytest.mark.timeout(60)

REPLY_S = 5.0  # an idle station answers in milliseconds; a stuck actor never does


@pytest.fixture
def station(csms, make_station):
    s = make_station()  # one connector, fixed cable (station.toml)
    csms.wait_count("StatusNotification", 2)
    return s


def _frames(csms) -> tuple[int, int]:
    return len(csms.frames_in), len(csms.frames_out)


def _still_serving(csms, since: tuple[int, int], *answered: str) -> None:
    """Every actor-bound request is answered within REPLY_S on the first connection, and since
    `since` (a `_frames()` mark) the station sent only the answers to our CALLs and to the raw
    CALLs `answered`."""
    value = "23"  # MeterValueSampleInterval: 0 in the tests' station.toml
    assert csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value=value),
                     timeout=REPLY_S).status == "Accepted"
    conf = csms.call(call.GetConfiguration(key=["MeterValueSampleInterval"]), timeout=REPLY_S)
    assert conf.configuration_key[0]["value"] == value  # the Configuration actor took it
    assert csms.call(call.ClearCache(), timeout=REPLY_S).status == "Accepted"
    assert csms.call(call.RemoteStartTransaction(id_tag="TAG1", connector_id=2),
                     timeout=REPLY_S).status == "Rejected"  # no connector 2
    assert csms.call(call.UnlockConnector(connector_id=1), timeout=REPLY_S).status == "NotSupported"  # fixed cable
    assert csms.connections == 1, "the station reconnected"
    ours = call_ids(f.text for f in csms.frames_out[since[1]:]) | set(answered)
    extra = unexpected_frames([f.text for f in csms.frames_in[since[0]:]], ours)
    assert extra == [], f"the station sent what it was not asked for: {extra}"


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
    since = _frames(csms)
    csms.send_raw(frame)
    reply = csms.next_raw_reply(unique_id)
    assert reply[0] == 4 and reply[2] == code, reply
    _still_serving(csms, since, unique_id)


def test_an_oversized_frame_is_answered_without_being_parsed(csms, make_station):
    station = make_station(start=False)
    text = station.config_path.read_text()
    assert "# max_frame_bytes = 10485760" in text  # station.toml documents the 10 MiB default there
    station.config_path.write_text(text.replace("# max_frame_bytes = 10485760", "max_frame_bytes = 65536"))
    station.start()
    csms.wait_count("StatusNotification", 2)
    since = _frames(csms)
    csms.send_raw(json.dumps([2, "big", "DataTransfer", {"vendorId": "x", "data": "A" * 100_000}]))
    reply = csms.next_raw_reply("big")
    assert reply[0] == 4 and reply[2] == "FormationViolation"
    _still_serving(csms, since, "big")


def test_responses_to_nothing_and_broken_responses_are_ignored(csms, station):
    since = _frames(csms)
    csms.send_raw('[3,"never-sent",{}]')
    csms.send_raw('[4,"never-sent-either","GenericError","x",{}]')
    csms.send_raw('[3]')
    _still_serving(csms, since)  # nothing answers them


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
    since = _frames(csms)
    csms.silent = False
    _still_serving(csms, since)
