"""OCTT TC_019, TC_021, TC_040_1, TC_040_2 (configuration keys) against the second test CSMS:
ocpp-rpc in strict mode (OCPP 1.6 §5.3, §5.8, §9.1)."""

import pytest

from tests.support.harness import CORE_KEYS, check_access
from tests.support.rpc_csms import make_rpc_station, rpc_csms  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def station(rpc_csms, make_rpc_station):
    s = make_rpc_station(configuration={"MeterValueSampleInterval": 60})
    rpc_csms.wait_for("BootNotification")
    return s


def _value(csms, key):
    conf = csms.call("GetConfiguration", {"key": [key]})
    assert conf.get("unknownKey", []) == []
    return conf["configurationKey"][0]["value"]


def test_tc_019_retrieve_all_configuration_keys_ocpp_rpc(rpc_csms, station):
    conf = rpc_csms.call("GetConfiguration", {})
    keys = {k["key"]: k for k in conf["configurationKey"]}
    assert len(keys) == len(conf["configurationKey"])  # no key twice
    assert not conf.get("unknownKey")
    for name, access in CORE_KEYS.items():
        assert name in keys, f"{name} missing"
        check_access(keys[name], access)
    assert keys["NumberOfConnectors"]["value"] == "1"
    assert keys["MeterValueSampleInterval"]["value"] == "60"
    assert "Core" in keys["SupportedFeatureProfiles"]["value"].split(",")


def test_tc_021_change_set_configuration_ocpp_rpc(rpc_csms, station):
    answer = rpc_csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "15"})
    assert answer == {"status": "Accepted"}
    assert _value(rpc_csms, "MeterValueSampleInterval") == "15"
    answer = rpc_csms.call("ChangeConfiguration", {"key": "StopTransactionOnEVSideDisconnect", "value": "false"})
    assert answer == {"status": "Accepted"}
    assert _value(rpc_csms, "StopTransactionOnEVSideDisconnect").lower() == "false"


def test_tc_040_1_configuration_keys_not_supported_ocpp_rpc(rpc_csms, station):
    """ChangeConfiguration(key "Testing", the case's key) -> NotSupported; the key stays unknown."""
    answer = rpc_csms.call("ChangeConfiguration", {"key": "Testing", "value": "1"})
    assert answer == {"status": "NotSupported"}
    conf = rpc_csms.call("GetConfiguration", {"key": ["Testing"]})
    assert conf.get("configurationKey", []) == [] and conf["unknownKey"] == ["Testing"]


def test_tc_040_2_configuration_keys_invalid_value_ocpp_rpc(rpc_csms, station):
    for value in ("-1", "soon", ""):
        answer = rpc_csms.call("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": value})
        assert answer == {"status": "Rejected"}, value
    assert _value(rpc_csms, "MeterValueSampleInterval") == "60"  # unchanged
