"""OCTT 1.6 Core, booting: TC_001 Cold Boot, TC_002 Cold Boot Pending (OCPP 1.6 §4.2, §4.6, errata 3.22)."""

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import AnyOrder, M, SN, expect_sequence

pytestmark = pytest.mark.timeout(90)


def test_tc_001_cold_boot_charge_point(csms, make_station):
    """The CSMS answers the first BootNotification Rejected (interval 1 s, shortened from the
    tool's value): the station sends nothing until it boots again after the interval; on Accepted
    (interval 1 s): StatusNotification(Available) for connector 0 and the connector, then a
    Heartbeat every interval."""
    csms.boot_response = [("Rejected", 1), ("Accepted", 1)]
    make_station()
    boot1, boot2, *_, beat1, beat2 = expect_sequence(csms, 0, [
        M("BootNotification", chargePointVendor="OpenStation", chargePointModel="AC22-PY"),
        M("BootNotification", chargePointVendor="OpenStation", chargePointModel="AC22-PY"),
        AnyOrder(SN(0, "Available", errorCode="NoError"), SN(1, "Available", errorCode="NoError")),
        M("Heartbeat"),
        M("Heartbeat"),
    ], timeout=15, ignore={"MeterValues"})
    assert boot2.time - boot1.time >= 0.9, "BootNotification repeated before the Rejected interval"
    assert 0.7 <= beat2.time - beat1.time <= 2.5, "Heartbeats not at the accepted interval (1 s)"


def test_tc_002_cold_boot_pending(csms, make_station):
    """Boot answered Pending (interval 3 s, shortened): the station sends no CALL of its own, but
    answers GetConfiguration (all keys) and ChangeConfiguration(MeterValueSampleInterval) with
    Accepted; it boots again after the interval, then StatusNotification(Available) for every
    connector and connector 0, then Heartbeats (interval 1 s)."""
    csms.boot_response = [("Pending", 3), ("Accepted", 1)]
    make_station()
    expect_sequence(csms, 0, [M("BootNotification")])
    conf = csms.call(call.GetConfiguration())
    keys = {k["key"]: k for k in conf.configuration_key}
    assert not conf.unknown_key
    assert "MeterValueSampleInterval" in keys and "HeartbeatInterval" in keys
    assert csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="30")).status == "Accepted"
    boot1, boot2, *_ = expect_sequence(csms, 0, [
        M("BootNotification"),
        M("BootNotification"),
        AnyOrder(SN(0, "Available", errorCode="NoError"), SN(1, "Available", errorCode="NoError")),
        M("Heartbeat"),
    ], timeout=15, ignore={"MeterValues"})
    assert boot2.time - boot1.time >= 2.7, "BootNotification repeated before the Pending interval"
    value = csms.call(call.GetConfiguration(key=["MeterValueSampleInterval"])).configuration_key[0]["value"]
    assert value == "30"
