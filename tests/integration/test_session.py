"""Charging sessions end to end: hardware simulator → station → loopback CSMS (OCPP 1.6 §3.6, §4.8, §4.10)."""

import pytest
from ocpp.v16 import call

from tests.integration.conftest import session_started

pytestmark = pytest.mark.timeout(60)


def test_plug_then_card_charges_meters_and_stops_with_the_same_card(csms, make_station):
    station = make_station(configuration={"MeterValueSampleInterval": 1,
                                          "MeterValuesSampledData": "Energy.Active.Import.Register,Power.Active.Import"})
    csms.wait_count("StatusNotification", 2)
    start = session_started(csms, station)
    assert start.payload["idTag"] == "TAG1" and start.payload["connectorId"] == 1
    assert [r.action for r in csms.received].index("Authorize") < [r.action for r in csms.received].index(
        "StartTransaction")
    assert station.state()["contactor"] is True
    samples = csms.wait_count("MeterValues", 2, timeout=10)
    tx_id = 1  # the harness hands out 1, 2, ...
    for mv in samples:
        assert mv.payload["transactionId"] == tx_id
        values = {v["measurand"]: v for v in mv.payload["meterValue"][0]["sampledValue"]}
        assert values["Energy.Active.Import.Register"]["unit"] == "Wh"
        assert values["Energy.Active.Import.Register"]["context"] == "Sample.Periodic"
        assert "Power.Active.Import" in values
    mark = csms.mark()
    station.sim(cmd="swipe", id_tag="TAG1")
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop.payload["transactionId"] == tx_id
    assert stop.payload["reason"] == "Local"
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    assert "Authorize" not in [r.action for r in csms.received[mark:]]  # the same card: no Authorize
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Finishing", after=mark)
    assert station.state()["contactor"] is False
    station.sim(cmd="unplug", connector=1)
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Available", after=mark)


def test_card_first_then_plug_starts_the_transaction(csms, make_station):
    station = make_station()
    csms.wait_count("StatusNotification", 2)
    station.sim(cmd="swipe", id_tag="EARLY")
    csms.wait_for("Authorize")
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing")
    assert not [r for r in csms.received if r.action == "StartTransaction"]
    station.sim(cmd="plug", connector=1)
    assert csms.wait_for("StartTransaction").payload["idTag"] == "EARLY"
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging")


def test_identification_without_a_cable_times_out_back_to_available(csms, make_station):
    station = make_station(configuration={"ConnectionTimeOut": 1})
    csms.wait_count("StatusNotification", 2)
    station.sim(cmd="swipe", id_tag="EARLY")
    mark = csms.mark()
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", after=mark - 1)
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Available", after=mark, timeout=10)
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing", after=mark)
    assert not [r for r in csms.received if r.action == "StartTransaction"]


def test_invalid_card_starts_nothing(csms, make_station):
    csms.authorize_status = {"BAD": "Invalid"}
    station = make_station()
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing")
    station.sim(cmd="swipe", id_tag="BAD")
    csms.wait_for("Authorize")
    # A card presented while another is being authorized is ignored, so wait for the answer.
    csms.wait_until(lambda: "idTag BAD not accepted" in station.log_path.read_text(), what="BAD rejected")
    assert not [r for r in csms.received if r.action == "StartTransaction"]
    station.sim(cmd="swipe", id_tag="GOOD")
    assert csms.wait_for("StartTransaction").payload["idTag"] == "GOOD"


def test_unplugging_the_ev_stops_the_transaction_with_ev_disconnected(csms, make_station):
    station = make_station(configuration={"StopTransactionOnEVSideDisconnect": True})
    session_started(csms, station)
    station.sim(cmd="unplug", connector=1)
    assert csms.wait_for("StopTransaction").payload["reason"] == "EVDisconnected"
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Available")


def test_unplugging_with_stop_on_ev_side_disconnect_off_suspends_the_transaction(csms, make_station):
    station = make_station(configuration={"StopTransactionOnEVSideDisconnect": False})
    start = session_started(csms, station)
    mark = csms.mark()
    station.sim(cmd="unplug", connector=1)
    sn = csms.wait_for("StatusNotification", lambda p: p["status"] == "SuspendedEV", after=mark)
    assert sn.payload.get("info") == "EV side disconnected"
    assert csms.call(call.RemoteStopTransaction(transaction_id=1)).status == "Accepted"
    assert csms.wait_for("StopTransaction", after=mark).payload["reason"] == "Remote"


def test_ev_pausing_shows_suspended_ev_and_resuming_shows_charging(csms, make_station):
    station = make_station()
    session_started(csms, station)
    mark = csms.mark()
    station.sim(cmd="ev", connector=1, state="suspended")
    csms.wait_for("StatusNotification", lambda p: p["status"] == "SuspendedEV", after=mark)
    station.sim(cmd="ev", connector=1, state="charging")
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging", after=mark)


def test_remote_start_with_cable_first_and_remote_stop(csms, make_station):
    station = make_station(configuration={"AuthorizeRemoteTxRequests": True})
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing")
    assert csms.call(call.RemoteStartTransaction(id_tag="REMOTE", connector_id=1)).status == "Accepted"
    csms.wait_for("Authorize", lambda p: p["idTag"] == "REMOTE")
    start = csms.wait_for("StartTransaction")
    assert start.payload["idTag"] == "REMOTE"
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging")
    assert csms.call(call.RemoteStopTransaction(transaction_id=1)).status == "Accepted"
    stop = csms.wait_for("StopTransaction")
    assert stop.payload["reason"] == "Remote" and stop.payload["transactionId"] == 1


def test_remote_start_first_without_authorization_then_plug(csms, make_station):
    station = make_station(configuration={"AuthorizeRemoteTxRequests": False})
    csms.wait_count("StatusNotification", 2)
    assert csms.call(call.RemoteStartTransaction(id_tag="REMOTE")).status == "Accepted"
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing")
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StartTransaction")
    assert "Authorize" not in [r.action for r in csms.received]


def test_remote_start_on_connector_0_busy_or_unknown_is_rejected_and_remote_stop_of_unknown_tx(csms, make_station):
    station = make_station()
    csms.wait_for("BootNotification")
    assert csms.call(call.RemoteStartTransaction(id_tag="R", connector_id=0)).status == "Rejected"
    assert csms.call(call.RemoteStartTransaction(id_tag="R", connector_id=7)).status == "Rejected"
    session_started(csms, station)
    assert csms.call(call.RemoteStartTransaction(id_tag="R", connector_id=1)).status == "Rejected"
    assert csms.call(call.RemoteStopTransaction(transaction_id=999)).status == "Rejected"


def test_a_fault_stops_energy_and_reports_faulted_then_recovers(csms, make_station):
    station = make_station()
    session_started(csms, station)
    mark = csms.mark()
    station.sim(cmd="fault", connector=1, error_code="GroundFailure")
    sn = csms.wait_for("StatusNotification", lambda p: p["status"] == "Faulted", after=mark)
    assert sn.payload["errorCode"] == "GroundFailure"
    csms.wait_until(lambda: station.state()["contactor"] is False, what="contactor open")
    station.sim(cmd="fault", connector=1, error_code="NoError")
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Charging", after=mark)


def test_two_connectors_charge_independently(csms, make_station):
    station = make_station(station={"connectors": 2})
    csms.wait_count("StatusNotification", 3)
    session_started(csms, station, "A", connector=1)
    session_started(csms, station, "B", connector=2)
    starts = [r.payload for r in csms.received if r.action == "StartTransaction"]
    assert [(s["connectorId"], s["idTag"]) for s in starts] == [(1, "A"), (2, "B")]
    mark = csms.mark()
    station.sim(cmd="swipe", id_tag="B")
    stop = csms.wait_for("StopTransaction", after=mark)
    assert stop.payload["transactionId"] == 2
    assert station.state(1)["contactor"] is True
