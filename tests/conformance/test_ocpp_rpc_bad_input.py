"""Malformed input from the CSMS, sent as raw frames through ocpp-rpc (client.sendRaw): the station
answers with the OCPP-J CALLERROR for the fault and keeps serving (OCPP-J 1.6 §4.2.3).

The station's replies carry ids ocpp-rpc never sent, so ocpp-rpc hands them to server.js's raw
channel ("raw_in") instead of a pending call; it must not answer them.

"Keeps serving" is checked with requests that go through the station's actors (GetConfiguration
is answered on the socket thread): ChangeConfiguration, ClearCache, RemoteStartTransaction and
UnlockConnector, each answered within REPLY_S; and the station sent nothing else since the bad
input."""

import json

import pytest

from tests.support.harness import call_ids, unexpected_frames
from tests.support.rpc_csms import make_rpc_station, rpc_csms  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)

REPLY_S = 5.0  # an idle station answers in milliseconds; a stuck actor never does


@pytest.fixture
def station(rpc_csms, make_rpc_station):
    s = make_rpc_station()  # one connector, fixed cable (station.toml)
    rpc_csms.wait_count("StatusNotification", 2)
    return s


def _frames(csms) -> tuple[int, int]:
    return len(csms.frames(outbound=False)), len(csms.frames(outbound=True))


def _still_serving(csms, since: tuple[int, int], *answered: str) -> None:
    """Every actor-bound request is answered within REPLY_S on the first connection, and since
    `since` the station sent only the answers to our CALLs and to the raw CALLs `answered`."""
    answer = csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "23"}, timeout=REPLY_S)
    assert answer == {"status": "Accepted"}
    conf = csms.call("GetConfiguration", {"key": ["MeterValueSampleInterval"]}, timeout=REPLY_S)
    assert conf["configurationKey"][0]["value"] == "23"  # the Configuration actor took it
    assert csms.call("ClearCache", {}, timeout=REPLY_S) == {"status": "Accepted"}
    answer = csms.call("RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 2}, timeout=REPLY_S)
    assert answer == {"status": "Rejected"}  # no connector 2
    answer = csms.call("UnlockConnector", {"connectorId": 1}, timeout=REPLY_S)
    assert answer == {"status": "NotSupported"}  # fixed cable
    assert csms.connections == 1, "the station reconnected"
    ours = call_ids(csms.frames(outbound=True)[since[1]:]) | set(answered)
    extra = unexpected_frames(csms.frames(outbound=False)[since[0]:], ours)
    assert extra == [], f"the station sent what it was not asked for: {extra}"


@pytest.mark.parametrize("frame, unique_id, code", [
    pytest.param("this is not JSON", "-1", "FormationViolation", id="not-json"),
    pytest.param('[2,"r2","FlyToTheMoon",{}]', "r2", "NotImplemented", id="unknown-action"),
    pytest.param('[2,"r3","ChangeConfiguration",{"key":"HeartbeatInterval"}]', "r3",
                 "OccurenceConstraintViolation", id="missing-field"),
    pytest.param('[2,"r4","ChangeConfiguration",{"key":5,"value":"1"}]', "r4",
                 "TypeConstraintViolation", id="wrong-type"),
])
def test_malformed_input_gets_the_call_error_and_the_station_keeps_serving_ocpp_rpc(
        rpc_csms, station, frame, unique_id, code):
    since = _frames(rpc_csms)
    rpc_csms.send_raw(frame)
    reply = rpc_csms.next_raw_reply(unique_id)
    assert reply[0] == 4 and reply[2] == code, reply
    assert len(reply) == 5 and isinstance(reply[3], str) and isinstance(reply[4], dict), reply
    _still_serving(rpc_csms, since, unique_id)
    # ocpp-rpc took the reply as a message it did not expect, and answered nothing to it (the
    # rpc_csms fixture also checks that the CSMS never sent a CALLERROR).
    assert [json.loads(x["text"]) for x in rpc_csms.bad_messages] == [reply]
    assert rpc_csms.bad_messages[0]["response"] is None


def test_a_run_of_malformed_frames_leaves_the_session_working_ocpp_rpc(rpc_csms, station):
    frames = ["not JSON", '[2,"s2","FlyToTheMoon",{}]', '[2,"s3","ChangeConfiguration",{"key":"HeartbeatInterval"}]',
              '[2,"s4","ChangeConfiguration",{"key":5,"value":"1"}]']
    since = _frames(rpc_csms)
    for frame in frames:
        rpc_csms.send_raw(frame)
    for unique_id in ("-1", "s2", "s3", "s4"):
        assert rpc_csms.next_raw_reply(unique_id)[0] == 4
    _still_serving(rpc_csms, since, "-1", "s2", "s3", "s4")
    mark = rpc_csms.mark()
    station.sim(cmd="plug", connector=1)  # and the station still reports to the CSMS
    rpc_csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", after=mark)
