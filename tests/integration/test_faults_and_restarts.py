"""Faults and restarts end to end: the station process on simulated hardware against the loopback CSMS.

Faults (OCPP 1.6 §4.9, §7.6): one active fault per source, a failed lock that clears with its cable,
the station as a whole faulted. Restarts: what a connector shows after a crash is what it does.
The rules themselves are tested without threads in tests/unit/test_session_core*.py.
"""

from __future__ import annotations

import time

import pytest
from ocpp.v16 import call

from tests.integration.conftest import session_started

pytestmark = pytest.mark.timeout(90)


def status(connector: int, *statuses: str):
    return lambda p: p["connectorId"] == connector and p["status"] in statuses


def poll(predicate, what: str, timeout: float = 10):
    """Wait for what the CSMS does not see (the simulator's state)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


# --- faults ------------------------------------------------------------------------------------


def test_a_failed_lock_clears_when_the_cable_is_out_and_the_connector_is_usable_again(csms, make_station):
    """OCTT TC_024, then the cable out and in again: a new session starts, no restart needed."""
    station = make_station(station={"fixed_cable": False})
    csms.wait_for("StatusNotification", status(0, "Available"))
    station.sim(cmd="lock_fails", connector=1, value=True)
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StatusNotification", status(1, "Preparing"))
    mark = csms.mark()
    assert csms.call(call.RemoteStartTransaction(id_tag="R1", connector_id=1)).status == "Accepted"
    faulted = csms.wait_for("StatusNotification", status(1, "Faulted"), after=mark)
    assert faulted.payload["errorCode"] == "ConnectorLockFailure"
    station.sim(cmd="lock_fails", connector=1, value=False)
    mark = csms.mark()
    station.sim(cmd="unplug", connector=1)
    available = csms.wait_for("StatusNotification", status(1, "Available"), after=mark)
    assert available.payload["errorCode"] == "NoError"
    session_started(csms, station, "TAG2")
    assert station.state()["contactor"] is True and station.state()["locked"] is True


def test_a_station_fault_suspends_the_session_and_rejects_remote_starts_until_it_clears(csms, make_station):
    station = make_station(station={"connectors": 2})
    csms.wait_for("StatusNotification", status(0, "Available"))
    session_started(csms, station, connector=1)
    mark = csms.mark()
    station.sim(cmd="fault", connector=0, error_code="OtherError")
    zero = csms.wait_for("StatusNotification", status(0, "Faulted"), after=mark)
    assert zero.payload["errorCode"] == "OtherError"
    csms.wait_for("StatusNotification", status(1, "SuspendedEVSE"), after=mark)
    csms.wait_for("StatusNotification", status(2, "Unavailable"), after=mark)
    poll(lambda: station.state(1)["contactor"] is False, "the contactor open")
    assert csms.call(call.RemoteStartTransaction(id_tag="R2", connector_id=2)).status == "Rejected"
    assert csms.call(call.RemoteStartTransaction(id_tag="R2")).status == "Rejected"
    assert "StopTransaction" not in [r.action for r in csms.received[mark:]]  # suspended, not stopped
    mark = csms.mark()
    station.sim(cmd="fault", connector=0, error_code="NoError")
    csms.wait_for("StatusNotification", status(1, "Charging"), after=mark)
    csms.wait_for("StatusNotification", status(2, "Available"), after=mark)
    poll(lambda: station.state(1)["contactor"] is True, "the contactor closed again")
    assert csms.call(call.RemoteStartTransaction(id_tag="R2", connector_id=2)).status == "Accepted"


# --- restarts ----------------------------------------------------------------------------------


def _crash_mid_session(csms, station, **wait):
    session_started(csms, station)
    csms.wait_count("MeterValues", 2, timeout=10)
    station.kill()
    csms.wait_disconnected()
    mark = csms.mark()
    station.start()
    csms.wait_for("StopTransaction", after=mark, timeout=20)
    return mark


def test_after_a_crash_an_available_connector_takes_a_new_session(csms, make_station):
    """The crash soak: after the PowerLoss recovery the connector said Available, yet a plug went to
    Finishing and RemoteStartTransaction was Rejected. The simulated EV leaves with the process."""
    station = make_station(configuration={"MeterValueSampleInterval": 1})
    mark = _crash_mid_session(csms, station)
    csms.wait_for("StatusNotification", status(1, "Available"), after=mark)
    assert csms.call(call.RemoteStartTransaction(id_tag="R1", connector_id=1)).status == "Accepted"
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StartTransaction", lambda p: p["idTag"] == "R1", after=mark)
    csms.wait_for("StatusNotification", status(1, "Charging"), after=mark)


def test_after_a_crash_a_cable_still_in_is_preparing_and_takes_a_card(csms, make_station):
    station = make_station(configuration={"MeterValueSampleInterval": 1})
    mark = _crash_mid_session(csms, station)
    station.sim(cmd="plug", connector=1)  # the cable still in: the EVSE reports it
    csms.wait_for("StatusNotification", status(1, "Preparing"), after=mark)
    station.sim(cmd="swipe", id_tag="TAG2")
    csms.wait_for("StartTransaction", lambda p: p["idTag"] == "TAG2", after=mark)


def test_the_power_loss_stop_is_not_before_the_last_meter_values_and_carries_the_sampled_data(csms, make_station):
    station = make_station(configuration={"MeterValueSampleInterval": 1,
                                          "StopTxnSampledData": "Energy.Active.Import.Register"})
    mark = _crash_mid_session(csms, station)
    stop = csms.wait_for("StopTransaction", after=mark).payload
    samples = [r.payload for r in csms.received if r.action == "MeterValues"]
    last = max(s["meterValue"][0]["timestamp"] for s in samples)
    assert stop["timestamp"] >= last, (stop, last)
    contexts = [d["sampledValue"][0]["context"] for d in stop["transactionData"]]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert contexts.count("Sample.Periodic") >= 2, contexts  # collected before the crash


# --- ConnectionTimeOut ---------------------------------------------------------------------------


def test_a_cable_without_identification_times_out_to_finishing_and_takes_no_card(csms, make_station):
    """Errata 3.20/3.21: ConnectionTimeOut from the start of Preparing; the abandoned cable is Finishing
    (no card is given to it) until it is removed."""
    station = make_station(configuration={"ConnectionTimeOut": 2})
    csms.wait_for("StatusNotification", status(0, "Available"))
    mark = csms.mark()
    station.sim(cmd="plug", connector=1)
    preparing = csms.wait_for("StatusNotification", status(1, "Preparing"), after=mark)
    finishing = csms.wait_for("StatusNotification", status(1, "Finishing"), after=mark, timeout=10)
    assert finishing.time - preparing.time >= 1.8
    station.sim(cmd="swipe", id_tag="TAG1")
    assert csms.call(call.RemoteStartTransaction(id_tag="R1", connector_id=1)).status == "Rejected"
    station.sim(cmd="unplug", connector=1)
    csms.wait_for("StatusNotification", status(1, "Available"), after=mark)
    assert not [r for r in csms.received[mark:] if r.action in ("Authorize", "StartTransaction")]


# --- back-up power -------------------------------------------------------------------------------


def test_mains_lost_on_back_up_power_stops_the_transaction_and_exits_69_to_be_started_again(csms, make_station):
    """Exit 69 (EX_UNAVAILABLE), not 0: scripts/supervise and the systemd unit start the station again,
    so it is back when power returns (tests/unit/test_supervise.py)."""
    station = make_station(station={"backup_power": True})
    session_started(csms, station)
    station.sim(cmd="power_cut")
    assert csms.wait_for("StopTransaction").payload["reason"] == "PowerLoss"
    assert station.proc.wait(30) == 69, station.log_tail()


# --- StartTransaction.conf not Accepted ----------------------------------------------------------


def test_a_deauthorized_stop_keeps_the_cable_locked_until_the_same_card_comes_back(csms, make_station):
    """OCPP 1.6 §4.8, errata 3.5/3.17, StopTransactionOnInvalidId=true (the default)."""
    csms.start_transaction_status = {"TAG1": "Invalid"}
    station = make_station(station={"fixed_cable": False})
    csms.wait_for("StatusNotification", status(0, "Available"))
    station.sim(cmd="plug", connector=1)
    station.sim(cmd="swipe", id_tag="TAG1")
    stop = csms.wait_for("StopTransaction")
    assert stop.payload["reason"] == "DeAuthorized"
    csms.wait_for("StatusNotification", status(1, "Finishing"))
    assert station.state()["locked"] is True
    station.sim(cmd="swipe", id_tag="SOMEONE")
    station.sim(cmd="unplug", connector=1, side="ev")
    poll(lambda: "card SOMEONE presented but no connector is free" in station.log_path.read_text(),
         "the other card seen")
    assert station.state()["locked"] is True
    station.sim(cmd="swipe", id_tag="TAG1")
    poll(lambda: station.state()["locked"] is False, "the cable released")


def test_concurrent_tx_to_a_first_start_transaction_stops_the_session_deauthorized(csms, make_station):
    """OCPP 1.6 §4.8, errata 3.17: ConcurrentTx is a status other than Accepted (StopTransactionOnInvalidId).
    Only a re-sent StartTransaction whose earlier send may have reached the CSMS is exempt (unit tests)."""
    csms.start_transaction_status = {"TAG1": "ConcurrentTx"}
    station = make_station()
    csms.wait_for("StatusNotification", status(0, "Available"))
    station.sim(cmd="plug", connector=1)
    station.sim(cmd="swipe", id_tag="TAG1")
    assert csms.wait_for("StopTransaction").payload["reason"] == "DeAuthorized"
    csms.wait_for("StatusNotification", status(1, "Finishing"))
    poll(lambda: station.state()["contactor"] is False, "the contactor open")
