"""OCTT TC_003, TC_010, TC_012 (charging sessions) against the second test CSMS: ocpp-rpc in strict
mode (OCPP 1.6 §4.1, §4.8, §4.10, §5.11, §5.12).  Every frame both ways is checked against the
OCPP 1.6 schemas by ocpp-rpc; the rpc_csms fixture fails the test on any strict mode rejection."""

import pytest

from tests.support.rpc_csms import make_rpc_station, rpc_csms  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)


def _status(connector, status):
    return lambda p: p["connectorId"] == connector and p["status"] == status


@pytest.fixture
def station(rpc_csms, make_rpc_station):
    s = make_rpc_station()
    rpc_csms.wait_count("StatusNotification", 2)  # connectors 0 and 1 Available after the boot
    return s


def _charging(csms, station, id_tag="TAG1"):
    """Plug, swipe; the StartTransaction once Charging is reported."""
    mark = csms.mark()
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StatusNotification", _status(1, "Preparing"), after=mark)
    station.sim(cmd="swipe", id_tag=id_tag)
    authorize = csms.wait_for("Authorize", after=mark)
    assert authorize.payload == {"idTag": id_tag}
    start = csms.wait_for("StartTransaction", after=mark)
    csms.wait_for("StatusNotification", _status(1, "Charging"), after=mark)
    actions = [r.action for r in csms.received[mark:]]
    assert actions.index("Authorize") < actions.index("StartTransaction")
    return start


def test_tc_003_regular_charging_session_plugin_first_ocpp_rpc(rpc_csms, station):
    start = _charging(rpc_csms, station)
    assert start.payload["connectorId"] == 1 and start.payload["idTag"] == "TAG1"
    assert isinstance(start.payload["meterStart"], int)
    assert station.state()["contactor"] is True
    mark = rpc_csms.mark()
    station.sim(cmd="swipe", id_tag="TAG1")
    stop = rpc_csms.wait_for("StopTransaction", after=mark)
    assert stop.payload["transactionId"] == 1  # server.js hands out 1, 2, ...
    assert stop.payload["reason"] == "Local"
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    assert "Authorize" not in [r.action for r in rpc_csms.received[mark:]]  # the same card
    rpc_csms.wait_for("StatusNotification", _status(1, "Finishing"), after=mark)
    assert station.state()["contactor"] is False
    station.sim(cmd="unplug", connector=1)
    rpc_csms.wait_for("StatusNotification", _status(1, "Available"), after=mark)


def test_tc_010_remote_start_charging_session_cable_plugged_in_first_ocpp_rpc(rpc_csms, station):
    # AuthorizeRemoteTxRequests is true in station.toml: the station authorizes the idTag first.
    mark = rpc_csms.mark()
    station.sim(cmd="plug", connector=1)
    rpc_csms.wait_for("StatusNotification", _status(1, "Preparing"), after=mark)
    answer = rpc_csms.call("RemoteStartTransaction", {"connectorId": 1, "idTag": "REMOTE1"})
    assert answer == {"status": "Accepted"}
    rpc_csms.wait_for("Authorize", lambda p: p["idTag"] == "REMOTE1", after=mark)
    start = rpc_csms.wait_for("StartTransaction", after=mark)
    assert start.payload["idTag"] == "REMOTE1" and start.payload["connectorId"] == 1
    rpc_csms.wait_for("StatusNotification", _status(1, "Charging"), after=mark)


def test_tc_012_remote_stop_charging_session_ocpp_rpc(rpc_csms, station):
    _charging(rpc_csms, station)
    mark = rpc_csms.mark()
    assert rpc_csms.call("RemoteStopTransaction", {"transactionId": 1}) == {"status": "Accepted"}
    stop = rpc_csms.wait_for("StopTransaction", after=mark)
    assert stop.payload["transactionId"] == 1 and stop.payload["reason"] == "Remote"
    rpc_csms.wait_for("StatusNotification", _status(1, "Finishing"), after=mark)
    station.sim(cmd="unplug", connector=1)
    rpc_csms.wait_for("StatusNotification", _status(1, "Available"), after=mark)
    # An unknown transaction is Rejected (§5.12).
    assert rpc_csms.call("RemoteStopTransaction", {"transactionId": 999}) == {"status": "Rejected"}
