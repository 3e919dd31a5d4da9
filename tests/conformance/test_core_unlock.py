"""OCTT 1.6 Core, UnlockConnector: TC_017_1/2, TC_018_1/2, TC_030, TC_031 (OCPP 1.6 §5.18; errata 3.87).

`_1` cases run on a socket station (`[station] fixed_cable = false`, a lockable connector),
`_2` cases on a fixed-cable station, which has nothing to unlock (NotSupported).
"""

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import AnyOrder, M, SN, expect_sequence, note_triggered, reach_charging, start_fresh

pytestmark = pytest.mark.timeout(90)

SOCKET = {"fixed_cable": False}
FIXED = {"fixed_cable": True}


def test_tc_017_1_unlock_connector_no_charging_session_running_not_fixed_cable(csms, make_station):
    """Socket station, no session: UnlockConnector(1) -> Unlocked."""
    station = start_fresh(make_station, csms, station=SOCKET)
    after = csms.mark()
    assert csms.call(call.UnlockConnector(connector_id=1)).status == "Unlocked"
    assert station.state()["locked"] is False
    expect_sequence(csms, after, [], exact=True)  # nothing else: no status change


def test_tc_017_2_unlock_connector_no_charging_session_running_fixed_cable(csms, make_station):
    """Fixed-cable station, no session: UnlockConnector(1) -> NotSupported."""
    start_fresh(make_station, csms, station=FIXED)
    assert csms.call(call.UnlockConnector(connector_id=1)).status == "NotSupported"


def test_tc_018_1_unlock_connector_with_charging_session_not_fixed_cable(csms, make_station):
    """Socket station, Charging: UnlockConnector(1) -> Unlocked; StopTransaction(reason
    UnlockCommand) + StatusNotification(Finishing), either order; the cable is taken out ->
    StatusNotification(Available)."""
    station = start_fresh(make_station, csms, station=SOCKET)
    start, tx = reach_charging(csms, station, "OCTT1")
    assert station.state()["locked"] is True
    after = csms.mark()
    assert csms.call(call.UnlockConnector(connector_id=1)).status == "Unlocked"
    records = expect_sequence(csms, after, [AnyOrder(
        M("StopTransaction", reason="UnlockCommand", transactionId=tx,
          meterStop=lambda v: v >= start.payload["meterStart"]),
        SN(1, "Finishing"))], exact=True)
    note_triggered(csms, "UnlockConnector", min(records, key=lambda r: r.time))
    state = station.state()
    assert state["locked"] is False and state["contactor"] is False
    after = csms.mark()
    station.sim(cmd="unplug", connector=1)
    expect_sequence(csms, after, [SN(1, "Available")], exact=True)


def test_tc_018_2_unlock_connector_with_charging_session_fixed_cable(csms, make_station):
    """Fixed-cable station, Charging: UnlockConnector(1) -> NotSupported; the session goes on."""
    station = start_fresh(make_station, csms, station=FIXED)
    reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    assert csms.call(call.UnlockConnector(connector_id=1)).status == "NotSupported"
    expect_sequence(csms, after, [], exact=True)  # nothing: no StopTransaction, no status change
    assert station.state()["contactor"] is True


def test_tc_030_unlock_connector_unlock_failure(csms, make_station):
    """Socket station whose lock fails (forced by the tester): UnlockConnector(1) -> UnlockFailed."""
    station = start_fresh(make_station, csms, station=SOCKET)
    station.sim(cmd="lock_fails", connector=1, value=True)
    assert csms.call(call.UnlockConnector(connector_id=1)).status == "UnlockFailed"


def test_tc_031_unlock_connector_unknown_connector(csms, make_station):
    """UnlockConnector for connectorId NumberOfConnectors + 1 -> NotSupported (errata 3.87, not
    UnlockFailed). Socket station, so the answer is about the connector, not the cable."""
    start_fresh(make_station, csms, station=SOCKET)
    assert csms.call(call.UnlockConnector(connector_id=2)).status == "NotSupported"
