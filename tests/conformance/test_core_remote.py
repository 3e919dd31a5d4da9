"""OCTT 1.6 Core, remote control of sessions: TC_010, TC_011_1/2, TC_012, TC_024, TC_026, TC_027, TC_028
(OCPP 1.6 §5.11, §5.12; errata 3.21, 3.32)."""

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import (AnyOrder, M, SN, authorize_remote_tx_requests, expect_sequence,
                                        note_triggered, poll, reach_charging, start_fresh)

pytestmark = pytest.mark.timeout(90)


def test_tc_010_remote_start_charging_session_cable_plugged_in_first(csms, make_station):
    """Reusable state Charging reached through RemoteStart: plug in -> Preparing ->
    RemoteStartTransaction(connectorId 1) Accepted -> Authorize (AuthorizeRemoteTxRequests is true)
    -> StartTransaction(the same idTag) + StatusNotification(Charging), either order."""
    station = start_fresh(make_station, csms, configuration={"AuthorizeRemoteTxRequests": True})
    start, tx = reach_charging(csms, station, "OCTT1", exact=True)
    assert start.payload["connectorId"] == 1 and isinstance(tx, int)
    assert station.state()["contactor"] is True


def test_tc_011_1_remote_start_charging_session_remote_start_first(csms, make_station):
    """The tool reads AuthorizeRemoteTxRequests, sends RemoteStartTransaction (no cable yet) ->
    Accepted; Authorize if the key is true, and StatusNotification(Preparing); plug in ->
    StartTransaction + StatusNotification(Charging), either order."""
    station = start_fresh(make_station, csms)
    authorize = authorize_remote_tx_requests(csms)
    after = csms.mark()
    assert csms.call(call.RemoteStartTransaction(id_tag="OCTT1", connector_id=1)).status == "Accepted"
    first = [M("Authorize", idTag="OCTT1"), SN(1, "Preparing")] if authorize else [SN(1, "Preparing")]
    records = expect_sequence(csms, after, [AnyOrder(*first)], exact=True)  # nothing starts without a cable
    note_triggered(csms, "RemoteStartTransaction", min(records, key=lambda r: r.time))
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    expect_sequence(csms, after, [AnyOrder(M("StartTransaction", connectorId=1, idTag="OCTT1"),
                                           SN(1, "Charging"))], exact=True)


def test_tc_011_2_remote_start_charging_session_time_out(csms, make_station):
    """RemoteStartTransaction Accepted, no cable comes: after ConnectionTimeOut (2 s here,
    shortened) StatusNotification(Available); no transaction."""
    station = start_fresh(make_station, csms, configuration={"ConnectionTimeOut": 2})
    authorize = authorize_remote_tx_requests(csms)
    after = csms.mark()
    assert csms.call(call.RemoteStartTransaction(id_tag="OCTT1", connector_id=1)).status == "Accepted"
    first = [M("Authorize", idTag="OCTT1"), SN(1, "Preparing")] if authorize else [SN(1, "Preparing")]
    records = expect_sequence(csms, after, [AnyOrder(*first), SN(1, "Available")], timeout=15, exact=True)
    preparing = next(r for r in records if r.payload.get("status") == "Preparing")
    assert records[-1].time - preparing.time >= 1.8, "Available before ConnectionTimeOut"
    assert not [r for r in csms.received if r.action == "StartTransaction"]
    assert station.state()["contactor"] is False


@pytest.mark.parametrize("connectors", [1, 2, 4], ids=["1-connector", "2-connectors", "4-connectors"])
def test_tc_012_remote_stop_charging_session(csms, make_station, connectors):
    """Charging, then RemoteStopTransaction(transactionId) -> Accepted; StopTransaction(reason
    Remote) + StatusNotification(Finishing), either order. On the 2-connector station both
    connectors charge and only connector 2's transaction stops."""
    station = start_fresh(make_station, csms, connectors)
    if connectors > 1:
        reach_charging(csms, station, "OTHER", connector=1)
    start, tx = reach_charging(csms, station, "OCTT1", connector=connectors)
    after = csms.mark()
    assert csms.call(call.RemoteStopTransaction(transaction_id=tx)).status == "Accepted"
    records = expect_sequence(csms, after, [AnyOrder(
        M("StopTransaction", reason="Remote", transactionId=tx,
          meterStop=lambda v: isinstance(v, int) and v >= start.payload["meterStart"]),
        SN(connectors, "Finishing"))], exact=True)  # the other connector's transaction goes on
    note_triggered(csms, "RemoteStopTransaction", min(records, key=lambda r: r.time))
    assert station.state(connectors)["contactor"] is False
    if connectors > 1:
        assert station.state(1)["contactor"] is True


def test_tc_024_start_charging_session_lock_failure(csms, make_station):
    """Socket station whose connector lock fails: Preparing -> RemoteStartTransaction Accepted ->
    (Authorize) -> StatusNotification(Faulted, errorCode ConnectorLockFailure); no transaction."""
    station = start_fresh(make_station, csms, station={"fixed_cable": False})
    authorize = authorize_remote_tx_requests(csms)
    station.sim(cmd="lock_fails", connector=1, value=True)
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    expect_sequence(csms, after, [SN(1, "Preparing")])
    after = csms.mark()
    assert csms.call(call.RemoteStartTransaction(id_tag="OCTT1", connector_id=1)).status == "Accepted"
    steps = [M("Authorize", idTag="OCTT1")] if authorize else []
    # ... and nothing else: no StartTransaction.
    expect_sequence(csms, after, steps + [SN(1, "Faulted", errorCode="ConnectorLockFailure")], exact=True)
    assert station.state()["contactor"] is False


def test_tc_026_remote_start_charging_session_rejected(csms, make_station):
    """LocalPreAuthorize=false; RemoteStartTransaction on the connector that is already Charging ->
    Rejected, and nothing else happens."""
    station = start_fresh(make_station, csms, configuration={"LocalPreAuthorize": False})
    reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    assert csms.call(call.RemoteStartTransaction(id_tag="OCTT2", connector_id=1)).status == "Rejected"
    expect_sequence(csms, after, [], exact=True)  # nothing: no Authorize, no Start/StopTransaction


def test_tc_027_remote_start_transaction_connector_id_0(csms, make_station):
    """RemoteStartTransaction with connectorId 0 -> Rejected; no Authorize, no Preparing."""
    start_fresh(make_station, csms)
    after = csms.mark()
    assert csms.call(call.RemoteStartTransaction(id_tag="OCTT1", connector_id=0)).status == "Rejected"
    expect_sequence(csms, after, [], exact=True)  # nothing: no Preparing, no Authorize, no StartTransaction


def test_tc_028_remote_stop_transaction_rejected(csms, make_station):
    """Charging; RemoteStopTransaction with an unknown transactionId (487249487) -> Rejected; no
    StopTransaction."""
    station = start_fresh(make_station, csms)
    reach_charging(csms, station, "OCTT1")
    poll(lambda: station.queued() == [], what="StartTransaction.conf processed")
    after = csms.mark()
    assert csms.call(call.RemoteStopTransaction(transaction_id=487249487)).status == "Rejected"
    expect_sequence(csms, after, [], exact=True)  # nothing: no StopTransaction, no status change
    assert station.state()["contactor"] is True
