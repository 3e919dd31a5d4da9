"""Reset and orderly shutdown: transactions stopped, then the process exits for the supervisor (OCPP 1.6 §5.14)."""

import pytest
from ocpp.v16 import call

from tests.integration.conftest import session_started

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_reset_stops_the_transaction_then_exits_75_and_boots_again(csms, make_station, kind):
    station = make_station()
    session_started(csms, station)
    assert csms.call(call.Reset(type=kind)).status == "Accepted"
    stop = csms.wait_for("StopTransaction")
    assert stop.payload["reason"] == f"{kind}Reset"
    assert station.proc.wait(30) == 75  # "restart me now": scripts/supervise and systemd restart at once
    mark = csms.mark()
    station.start()
    csms.wait_for("BootNotification", after=mark)
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, after=mark)
    assert len([r for r in csms.received if r.action == "StopTransaction"]) == 1


def test_unavailable_survives_a_reset(csms, make_station):
    station = make_station()
    csms.wait_for("BootNotification")
    assert csms.call(call.ChangeAvailability(connector_id=1, type="Inoperative")).status == "Accepted"
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Unavailable")
    assert csms.call(call.Reset(type="Hard")).status == "Accepted"
    assert station.proc.wait(30) == 75
    mark = csms.mark()
    station.start()
    sn = csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, after=mark)
    assert sn.payload["status"] == "Unavailable"
    assert csms.call(call.ChangeAvailability(connector_id=1, type="Operative")).status == "Accepted"
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Available", after=mark)


def test_stop_txn_sampled_data_fills_transaction_data(csms, make_station):
    station = make_station(configuration={"StopTxnSampledData": "Energy.Active.Import.Register",
                                          "MeterValueSampleInterval": 1})
    session_started(csms, station)
    csms.wait_count("MeterValues", 2)
    station.sim(cmd="swipe", id_tag="TAG1")
    data = csms.wait_for("StopTransaction").payload["transactionData"]
    contexts = [v["sampledValue"][0]["context"] for v in data]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert "Sample.Periodic" in contexts
