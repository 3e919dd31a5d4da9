"""OCTT TC_001 (cold boot) against the second test CSMS: ocpp-rpc in strict mode (OCPP 1.6 §4.2, §4.9)."""

import pytest

from tests.support.rpc_csms import make_rpc_station, rpc_csms  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)


def test_tc_001_cold_boot_charge_point_ocpp_rpc(rpc_csms, make_rpc_station):
    rpc_csms.configure(boot_interval=2)  # short, so the first Heartbeat shows the interval was taken
    make_rpc_station()
    boot = rpc_csms.wait_for("BootNotification")
    assert boot.charge_point_id == "CP001"
    assert boot.payload["chargePointVendor"] == "OpenStation"
    assert boot.payload["chargePointModel"] == "AC22-PY"
    for connector in (0, 1):
        sn = rpc_csms.wait_for("StatusNotification", lambda p, c=connector: p["connectorId"] == c)
        assert sn.payload["status"] == "Available" and sn.payload["errorCode"] == "NoError"
    # Nothing but BootNotification before it was Accepted (§4.2.1).
    assert rpc_csms.received[0].action == "BootNotification"
    beats = rpc_csms.wait_count("Heartbeat", 2, timeout=10)  # at the accepted interval (§4.2.1)
    assert beats[1].time - beats[0].time > 1.0
