"""OCTT 1.6 Core, local charging sessions: TC_003, TC_004_1/2, TC_068, TC_069, TC_005_1/2/3
(OCPP 1.6 §3.6, §4.8, §4.9, §4.10; errata 3.21)."""

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import (ABSENT, AnyOrder, M, SN, expect_none, expect_sequence,
                                        reach_charging, start_fresh)

pytestmark = pytest.mark.timeout(90)

SOCKET = {"fixed_cable": False}
LOCAL = ("Local", ABSENT)  # StopTransaction.reason is optional, default Local (JERR 2.6)


@pytest.mark.parametrize("connectors", [1, 2, 4], ids=["1-connector", "2-connectors", "4-connectors"])
def test_tc_003_regular_charging_session_plugin_first(csms, make_station, connectors):
    """Plug in -> StatusNotification(Preparing) -> present an idTag -> Authorize(Accepted) ->
    StartTransaction + StatusNotification(Charging), either order. On the 2-connector station the
    session runs on connector 2 and connector 1 stays silent."""
    station = start_fresh(make_station, csms, connectors)
    connector = connectors
    after = csms.mark()
    station.sim(cmd="plug", connector=connector)
    expect_sequence(csms, after, [SN(connector, "Preparing", errorCode="NoError")])
    station.sim(cmd="swipe", id_tag="OCTT1")
    records = expect_sequence(csms, after, [
        SN(connector, "Preparing"),
        M("Authorize", idTag="OCTT1"),
        AnyOrder(M("StartTransaction", connectorId=connector, idTag="OCTT1"),
                 SN(connector, "Charging", errorCode="NoError")),
    ], exact=True)  # the other connectors stay silent
    start = next(r for r in records if r.action == "StartTransaction")
    assert isinstance(start.payload["meterStart"], int) and start.payload["meterStart"] >= 0
    assert start.payload["timestamp"].endswith("Z") and not start.payload["timestamp"].startswith("1970")
    assert station.state(connector)["contactor"] is True
    if connectors > 1:
        assert station.state(1)["contactor"] is False


def test_tc_004_1_regular_charging_session_identification_first(csms, make_station):
    """Reusable state Authorized (idTag presented, Authorize Accepted, no cable yet), then plug in
    -> StartTransaction + StatusNotification(Charging), either order."""
    station = start_fresh(make_station, csms)
    after = csms.mark()
    station.sim(cmd="swipe", id_tag="OCTT1")
    expect_sequence(csms, after, [AnyOrder(M("Authorize", idTag="OCTT1"), SN(1, "Preparing"))])
    expect_none(csms, after, M("StartTransaction"))  # nothing starts without a cable
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    expect_sequence(csms, after, [AnyOrder(M("StartTransaction", connectorId=1, idTag="OCTT1"),
                                           SN(1, "Charging"))], exact=True)


def test_tc_004_2_regular_charging_session_connection_timeout(csms, make_station):
    """Authorized but never plugged in: after ConnectionTimeOut (2 s here, shortened from the
    tool's value) StatusNotification(Available); no transaction."""
    station = start_fresh(make_station, csms, configuration={"ConnectionTimeOut": 2})
    after = csms.mark()
    station.sim(cmd="swipe", id_tag="OCTT1")
    records = expect_sequence(csms, after, [AnyOrder(M("Authorize", idTag="OCTT1"), SN(1, "Preparing")),
                                            SN(1, "Available")], timeout=15, exact=True)
    preparing = next(r for r in records if r.action == "StatusNotification" and r.payload["status"] == "Preparing")
    assert records[-1].time - preparing.time >= 1.8, "Available before ConnectionTimeOut"
    assert not [r for r in csms.received if r.action == "StartTransaction"]


def test_tc_068_stop_transaction_idtag_matches(csms, make_station):
    """While Charging, a different idTag is presented: no Authorize and no StopTransaction (the
    tool monitors 30 s; 2 s here). The original idTag is presented: StopTransaction(idTag =
    original) + StatusNotification(Finishing), either order, still no Authorize."""
    station = start_fresh(make_station, csms)
    start, tx = reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    station.sim(cmd="swipe", id_tag="OTHER")
    expect_none(csms, after, M("Authorize"), 1.0)
    expect_none(csms, after, M("StopTransaction"), 1.0)
    station.sim(cmd="swipe", id_tag="OCTT1")
    expect_sequence(csms, after, [AnyOrder(
        M("StopTransaction", idTag="OCTT1", transactionId=tx, reason=LOCAL,
          meterStop=lambda v: v >= start.payload["meterStart"]),
        SN(1, "Finishing"))], exact=True)  # and still no Authorize


def test_tc_069_stop_transaction_parent_idtag_matches(csms, make_station):
    """Both idTags have the same parentIdTag. While Charging (started by idTag1), idTag2 is
    presented: Authorize(idTag2) -> Accepted with the same parentIdTag -> StopTransaction(idTag =
    idTag2) + StatusNotification(Finishing), either order."""
    csms.parent_id = {"OCTT1": "PARENT", "OCTT2": "PARENT"}
    station = start_fresh(make_station, csms)
    _, tx = reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    station.sim(cmd="swipe", id_tag="OCTT2")
    expect_sequence(csms, after, [
        M("Authorize", idTag="OCTT2"),
        AnyOrder(M("StopTransaction", idTag="OCTT2", transactionId=tx, reason=LOCAL), SN(1, "Finishing")),
    ], exact=True)


def test_tc_005_1_ev_side_disconnected_stop_true_unlock_true(csms, make_station):
    """Socket station, StopTransactionOnEVSideDisconnect=true, UnlockConnectorOnEVSideDisconnect=true:
    the cable is pulled at the EV -> StopTransaction(reason EVDisconnected) +
    StatusNotification(Finishing), either order; the connector is unlocked."""
    station = start_fresh(make_station, csms, station=SOCKET, configuration={
        "StopTransactionOnEVSideDisconnect": True, "UnlockConnectorOnEVSideDisconnect": True})
    _, tx = reach_charging(csms, station, "OCTT1")
    assert station.state()["locked"] is True
    after = csms.mark()
    station.sim(cmd="unplug", connector=1, side="ev")  # the cable stays in the socket
    expect_sequence(csms, after, [AnyOrder(
        M("StopTransaction", reason="EVDisconnected", transactionId=tx),
        SN(1, "Finishing"))], exact=True)
    assert station.state()["locked"] is False


def test_tc_005_2_ev_side_disconnected_stop_true_unlock_false(csms, make_station):
    """Socket station, StopTransactionOnEVSideDisconnect=true, UnlockConnectorOnEVSideDisconnect=false:
    StopTransaction(reason EVDisconnected) + StatusNotification Finishing or Available; a following
    UnlockConnector -> Unlocked or NotSupported."""
    station = start_fresh(make_station, csms, station=SOCKET, configuration={
        "StopTransactionOnEVSideDisconnect": True, "UnlockConnectorOnEVSideDisconnect": False})
    _, tx = reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    station.sim(cmd="unplug", connector=1, side="ev")  # the cable stays in the socket
    expect_sequence(csms, after, [AnyOrder(
        M("StopTransaction", reason="EVDisconnected", transactionId=tx),
        SN(1, {"Finishing", "Available"}))], exact=True)
    assert csms.call(call.UnlockConnector(connector_id=1)).status in ("Unlocked", "NotSupported")


def test_tc_005_3_ev_side_disconnected_stop_false_unlock_false(csms, make_station):
    """Socket station, StopTransactionOnEVSideDisconnect=false, UnlockConnectorOnEVSideDisconnect=false:
    the cable is pulled at the EV -> StatusNotification SuspendedEV/SuspendedEVSE with info "EV side
    disconnected", the transaction goes on; RemoteStopTransaction -> StatusNotification(Finishing)
    (a socket) + StopTransaction(reason Remote), either order."""
    station = start_fresh(make_station, csms, station=SOCKET, configuration={
        "StopTransactionOnEVSideDisconnect": False, "UnlockConnectorOnEVSideDisconnect": False})
    _, tx = reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    station.sim(cmd="unplug", connector=1, side="ev")  # the cable stays in the socket
    # ... and nothing else: the transaction goes on (no StopTransaction).
    expect_sequence(csms, after, [SN(1, {"SuspendedEV", "SuspendedEVSE"}, info="EV side disconnected")],
                    exact=True)
    after = csms.mark()
    assert csms.call(call.RemoteStopTransaction(transaction_id=tx)).status == "Accepted"
    expect_sequence(csms, after, [AnyOrder(SN(1, "Finishing"),
                                           M("StopTransaction", reason="Remote", transactionId=tx))], exact=True)
