"""Configuration keys over OCPP: read, change, persist; station.toml stays the operator's (OCPP 1.6 §5.3, §5.8)."""

import pytest
from ocpp.v16 import call

from actors import features

pytestmark = pytest.mark.timeout(60)


def _value(csms, key):
    conf = csms.call(call.GetConfiguration(key=[key]))
    return conf.configuration_key[0]["value"] if conf.configuration_key else None


def test_get_configuration_without_keys_lists_every_key_with_its_access(csms, make_station):
    make_station()
    csms.wait_for("BootNotification")
    conf = csms.call(call.GetConfiguration())
    keys = {k["key"]: k for k in conf.configuration_key}
    assert not conf.unknown_key
    for required in ("HeartbeatInterval", "MeterValueSampleInterval", "ConnectionTimeOut", "NumberOfConnectors",
                     "SupportedFeatureProfiles", "GetConfigurationMaxKeys", "TransactionMessageAttempts"):
        assert required in keys
    assert keys["NumberOfConnectors"]["readonly"] is True and keys["NumberOfConnectors"]["value"] == "1"
    assert keys["HeartbeatInterval"]["readonly"] is False
    assert keys["SupportedFeatureProfiles"]["value"] == ",".join(features.profiles())
    assert keys["SupportedFeatureProfiles"]["value"].split(",")[0] == "Core"


def test_unknown_keys_are_listed_as_unknown(csms, make_station):
    make_station()
    csms.wait_for("BootNotification")
    conf = csms.call(call.GetConfiguration(key=["HeartbeatInterval", "NoSuchKey"]))
    assert [k["key"] for k in conf.configuration_key] == ["HeartbeatInterval"]
    assert conf.unknown_key == ["NoSuchKey"]


def test_changes_are_validated_applied_and_survive_a_restart_over_the_file(csms, make_station):
    station = make_station(configuration={"MeterValueSampleInterval": 60})
    csms.wait_for("BootNotification")
    assert csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="15")).status == "Accepted"
    assert _value(csms, "MeterValueSampleInterval") == "15"
    assert csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="-1")).status == "Rejected"
    assert csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="soon")).status == "Rejected"
    assert csms.call(call.ChangeConfiguration(key="Testing", value="1")).status == "NotSupported"
    assert csms.call(call.ChangeConfiguration(key="NumberOfConnectors", value="3")).status == "Rejected"
    assert csms.call(call.ChangeConfiguration(key="MinimumStatusDuration", value="0")).status == "Accepted"
    assert csms.call(call.ChangeConfiguration(key="MeterValuesSampledData",
                                              value="Energy.Active.Import.Register,Bogus")).status == "Rejected"
    before = station.config_path.read_text()
    assert station.terminate() == 0
    mark = csms.mark()
    station.start()
    csms.wait_for("BootNotification", after=mark)
    assert _value(csms, "MeterValueSampleInterval") == "15"  # the CSMS's value wins over station.toml
    assert station.config_path.read_text() == before  # and the operator's file is untouched


def test_a_changed_sample_interval_takes_effect_in_the_running_session(csms, make_station):
    from tests.integration.conftest import session_started

    station = make_station(configuration={"MeterValueSampleInterval": 0})
    session_started(csms, station)
    assert csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="1")).status == "Accepted"
    samples = csms.wait_count("MeterValues", 2, timeout=10)
    assert samples[0].payload["transactionId"] == 1


def test_data_transfer_to_the_station_unknown_vendor_and_the_built_in_vendor(csms, make_station):
    make_station()
    csms.wait_for("BootNotification")
    assert csms.call(call.DataTransfer(vendor_id="com.nobody", message_id="x")).status == "UnknownVendorId"
    reply = csms.call(call.DataTransfer(vendor_id="org.openstation", message_id="Version"))
    assert reply.status == "Accepted" and reply.data == "0.1.0"
