"""OCTT TC_001 (cold boot) against the second test CSMS: ocpp-rpc in strict mode (OCPP 1.6 §4.2, §4.9)."""

import pytest

from tests.conformance.conftest import AnyOrder, M, SN, expect_sequence
from tests.support.rpc_csms import make_rpc_station, rpc_csms  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)


def test_tc_001_cold_boot_charge_point_ocpp_rpc(rpc_csms, make_rpc_station):
    """As test_core_boot.py's TC_001: the first BootNotification is answered Rejected (interval
    1 s): the station sends nothing until it boots again after the interval; on Accepted
    (interval 2 s): StatusNotification(Available) for connector 0 and the connector, then a
    Heartbeat every interval."""
    rpc_csms.configure(boot_sequence=[("Rejected", 1), ("Accepted", 2)])
    make_rpc_station()
    boot = M("BootNotification", chargePointVendor="OpenStation", chargePointModel="AC22-PY")
    boot1, boot2, *_, beat1, beat2 = expect_sequence(rpc_csms, 0, [
        boot,
        boot,  # nothing but BootNotification before it was Accepted (§4.2.1)
        AnyOrder(SN(0, "Available", errorCode="NoError"), SN(1, "Available", errorCode="NoError")),
        M("Heartbeat"),
        M("Heartbeat"),
    ], timeout=15, ignore={"MeterValues"})
    assert boot1.charge_point_id == "CP001"
    answers = [x["payload"]["status"] for x in rpc_csms.lines
               if x.get("dir") == "out" and x.get("action") == "BootNotification"]
    assert answers[:2] == ["Rejected", "Accepted"], answers
    assert boot2.time - boot1.time >= 0.9, "BootNotification repeated before the Rejected interval"
    assert 1.5 <= beat2.time - beat1.time <= 4.0, "Heartbeats not at the accepted interval (2 s)"
