"""A stalled device never blocks the station's answers to the CSMS: only the actor owning that
device waits.

The device (simulated EVSE controller or meter) stops answering for STALL_S seconds. Meanwhile
the CSMS sends requests that each cross to an actor: ChangeConfiguration (the Configuration
actor), ClearCache (Authorization), RemoteStartTransaction, RemoteStopTransaction and
UnlockConnector (the TransactionManager). Each must be answered within REPLY_S (GetConfiguration
is answered on the socket thread without any actor, so it would prove nothing here), with the
right status, and the station must send nothing else meanwhile but what the requests cause.
"""

import json
import time

import pytest
from ocpp.v16 import call

from actors.sessions.requests import UNLOCK_TIMEOUT_S
from tests.integration.conftest import session_started
from tests.support.harness import call_ids, unexpected_frames

pytestmark = pytest.mark.timeout(90)

STALL_S = 10  # the device stops answering this long
REPLY_S = 2.0  # each answer comes within this, far less than the stall (a noisy 2-core box)


def _frames(csms) -> tuple[int, int]:
    return len(csms.frames_in), len(csms.frames_out)


def _answered_in_time(csms, payload) -> str:
    """The status the station answers `payload` with, which must come within REPLY_S."""
    started = time.monotonic()
    status = csms.call(payload, timeout=REPLY_S).status  # no answer in time: AssertionError
    took = time.monotonic() - started
    assert took <= REPLY_S, f"{type(payload).__name__} answered after {took:.2f} s"
    return status


def _sent_besides_answers(csms, since: tuple[int, int], also_answered=()) -> list:
    """What the station sent since `since` besides one answer to each of our CALLs (parsed)."""
    ours = call_ids(f.text for f in csms.frames_out[since[1]:]) | set(also_answered)
    return [json.loads(t) for t in unexpected_frames([f.text for f in csms.frames_in[since[0]:]], ours)]


def _calls(frames: list, action: str) -> list:
    return [m for m in frames if isinstance(m, list) and m[0] == 2 and m[2] == action]


def test_meter_stall_does_not_delay_answers_from_the_actors(csms, make_station):
    """Two socket connectors, a session on connector 1 sampling every second; the meter stalls."""
    station = make_station(configuration={"MeterValueSampleInterval": 1},
                           station={"connectors": 2, "fixed_cable": False})
    session_started(csms, station)
    csms.wait_for("MeterValues", after=csms.mark())  # sampling runs: the meter is read every second
    since = _frames(csms)
    stalled_at = time.monotonic()
    station.sim(cmd="stall", device="meter", seconds=STALL_S)
    # A metering key, while the metering actor is stuck in the meter.
    assert _answered_in_time(csms, call.ChangeConfiguration(key="MeterValueSampleInterval", value="2")) == "Accepted"
    assert _answered_in_time(csms, call.ClearCache()) == "Accepted"
    assert _answered_in_time(csms, call.RemoteStartTransaction(id_tag="TAG2", connector_id=1)) == "Rejected"  # busy
    assert _answered_in_time(csms, call.UnlockConnector(connector_id=2)) == "Unlocked"  # through the EVSE actor
    assert time.monotonic() - stalled_at < STALL_S, "answered only once the meter was back"
    extra = _sent_besides_answers(csms, since)
    # A MeterValues read just before the stall may still go out; nothing else may.
    assert [m for m in extra if m not in _calls(extra, "MeterValues")] == [], extra
    assert station.state(2)["locked"] is False and station.state(1)["contactor"] is True
    mark = csms.mark()
    csms.wait_for("MeterValues", after=mark, timeout=STALL_S + 10)  # and sampling resumes after it
    conf = csms.call(call.GetConfiguration(key=["MeterValueSampleInterval"]))
    assert conf.configuration_key[0]["value"] == "2"


def test_evse_stall_does_not_delay_answers_or_the_stop_transaction(csms, make_station):
    """One fixed-cable connector charging; the EVSE controller stalls (the contactor cannot be
    opened): the answers and the StopTransaction of a RemoteStop still come at once."""
    station = make_station()
    start = session_started(csms, station)
    since, mark = _frames(csms), csms.mark()
    stalled_at = time.monotonic()
    station.sim(cmd="stall", device="evse", seconds=STALL_S)
    assert _answered_in_time(csms, call.ChangeConfiguration(key="MeterValueSampleInterval", value="5")) == "Accepted"
    assert _answered_in_time(csms, call.ClearCache()) == "Accepted"
    assert _answered_in_time(csms, call.RemoteStartTransaction(id_tag="TAG2", connector_id=1)) == "Rejected"  # busy
    assert _answered_in_time(csms, call.UnlockConnector(connector_id=1)) == "NotSupported"  # fixed cable
    assert _answered_in_time(csms, call.RemoteStopTransaction(transaction_id=1)) == "Accepted"
    stop = csms.wait_for("StopTransaction", after=mark, timeout=STALL_S)
    assert stop.payload["transactionId"] == 1 and stop.payload["reason"] == "Remote"
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Finishing",
                  after=mark, timeout=STALL_S)
    assert time.monotonic() - stalled_at < STALL_S, "answered only once the EVSE controller was back"
    extra = _sent_besides_answers(csms, since)
    # Besides the answers, only what the RemoteStop causes: StopTransaction + StatusNotification(Finishing).
    assert sorted((m[0], m[2], m[3].get("status")) for m in extra) == [
        (2, "StatusNotification", "Finishing"), (2, "StopTransaction", None)], extra
    csms.wait_until(lambda: station.state()["contactor"] is False, timeout=STALL_S + 10, what="contactor open")


def test_evse_stall_an_unlock_waiting_for_the_lock_motor_gives_up_in_time(csms, make_station):
    """A socket connector; the EVSE controller stalls: UnlockConnector waits for the lock motor at
    most UNLOCK_TIMEOUT_S, then answers UnlockFailed, long before the stall is over; the
    TransactionManager then answers at once again (a CSMS sends one CALL at a time, OCPP-J 1.6
    §4.1.1, so nothing else is asked while the unlock waits)."""
    stall_s = STALL_S + UNLOCK_TIMEOUT_S  # the unlock's wait comes out of the stall
    station = make_station(station={"fixed_cable": False})
    csms.wait_count("StatusNotification", 2)
    since = _frames(csms)
    stalled_at = time.monotonic()
    station.sim(cmd="stall", device="evse", seconds=stall_s)
    status = csms.call(call.UnlockConnector(connector_id=1), timeout=stall_s).status
    took = time.monotonic() - stalled_at
    assert status == "UnlockFailed" and took <= UNLOCK_TIMEOUT_S + REPLY_S, (status, took)
    assert _answered_in_time(csms, call.ClearCache()) == "Accepted"
    assert _answered_in_time(csms, call.RemoteStartTransaction(id_tag="TAG2", connector_id=2)) == "Rejected"
    assert _answered_in_time(csms, call.UnlockConnector(connector_id=2)) == "NotSupported"  # no connector 2
    assert _answered_in_time(csms, call.ChangeConfiguration(key="ConnectionTimeOut", value="33")) == "Accepted"
    assert time.monotonic() - stalled_at < stall_s, "answered only once the EVSE controller was back"
    assert _sent_besides_answers(csms, since) == []
