"""A stalled device never blocks OCPP replies: only the actor owning that device waits."""

import time

import pytest
from ocpp.v16 import call

from tests.integration.conftest import session_started

pytestmark = pytest.mark.timeout(60)

STALL_S = 6


def test_meter_stall_does_not_delay_replies_to_the_csms(csms, make_station):
    station = make_station(configuration={"MeterValueSampleInterval": 1})
    session_started(csms, station)
    stalled_at = time.monotonic()
    station.sim(cmd="stall", device="meter", seconds=STALL_S)
    for _ in range(20):
        assert csms.call(call.GetConfiguration(key=["HeartbeatInterval"])).configuration_key
    assert time.monotonic() - stalled_at < STALL_S  # every answer came while the meter was still stuck
    mark = csms.mark()
    csms.wait_for("MeterValues", after=mark, timeout=STALL_S + 10)  # and sampling resumes after it


def test_evse_stall_does_not_delay_remote_stop_or_its_stop_transaction(csms, make_station):
    station = make_station()
    session_started(csms, station)
    stalled_at = time.monotonic()
    station.sim(cmd="stall", device="evse", seconds=STALL_S)
    assert csms.call(call.RemoteStopTransaction(transaction_id=1)).status == "Accepted"
    csms.wait_for("StopTransaction")
    assert time.monotonic() - stalled_at < STALL_S
    csms.wait_until(lambda: station.state()["contactor"] is False, timeout=STALL_S + 10, what="contactor open")
