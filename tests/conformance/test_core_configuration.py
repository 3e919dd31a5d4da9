"""OCTT 1.6 Core, configuration: TC_019, TC_021, TC_040_1, TC_040_2 (OCPP 1.6 §5.3, §5.8, §9.1)."""

import pytest
from ocpp.exceptions import OCPPError
from ocpp.v16 import call

from tests.conformance.conftest import config_value, note_meta, start_fresh
from tests.support.harness import CORE_KEYS, RW, R, check_access

pytestmark = pytest.mark.timeout(90)
# Keys a profile requires (OCPP 1.6 §9.2-9.4) when SupportedFeatureProfiles claims it.
PROFILE_KEYS = {
    "Core": CORE_KEYS,
    "LocalAuthListManagement": {"LocalAuthListEnabled": RW, "LocalAuthListMaxLength": R,
                                "SendLocalListMaxLength": R},
    "SmartCharging": {"ChargeProfileMaxStackLevel": R, "ChargingScheduleAllowedChargingRateUnit": R,
                      "ChargingScheduleMaxPeriods": R, "MaxChargingProfilesInstalled": R},
    "FirmwareManagement": {}, "Reservation": {}, "RemoteTrigger": {},
}


def test_tc_019_retrieve_configuration(csms, make_station):
    """GetConfiguration(SupportedFeatureProfiles), then GetConfiguration() with no key: no
    unknownKey, every required key of every supported profile present with the expected
    accessibility, values strings; NumberOfConnectors tells the truth."""
    start_fresh(make_station, csms)
    conf = csms.call(call.GetConfiguration(key=["SupportedFeatureProfiles"]))
    assert not conf.unknown_key
    (entry,) = conf.configuration_key
    profiles = [p.strip() for p in entry["value"].split(",") if p.strip()]
    note_meta("SupportedFeatureProfiles", profiles)
    assert "Core" in profiles and set(profiles) <= set(PROFILE_KEYS), profiles

    conf = csms.call(call.GetConfiguration())
    assert not conf.unknown_key
    keys = {k["key"]: k for k in conf.configuration_key}
    assert len(keys) == len(conf.configuration_key), "a key listed twice"
    for profile in profiles:
        for name, access in PROFILE_KEYS[profile].items():
            assert name in keys, f"{profile} key {name} missing"
            check_access(keys[name], access)
    for k in keys.values():
        assert isinstance(k.get("value"), str), k
    assert keys["NumberOfConnectors"]["value"] == "1"
    assert keys["SupportedFeatureProfiles"]["value"] == entry["value"]


def test_tc_021_change_set_configuration(csms, make_station):
    """ChangeConfiguration(MeterValueSampleInterval) -> Accepted; GetConfiguration reads back the
    new value."""
    start_fresh(make_station, csms)
    old = config_value(csms, "MeterValueSampleInterval")
    new = "17" if old != "17" else "18"
    assert csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value=new)).status == "Accepted"
    assert config_value(csms, "MeterValueSampleInterval") == new


def test_tc_040_1_configuration_keys_not_supported(csms, make_station):
    """ChangeConfiguration(key "Testing") -> NotSupported."""
    start_fresh(make_station, csms)
    assert csms.call(call.ChangeConfiguration(key="Testing", value="1")).status == "NotSupported"


def test_tc_040_2_configuration_keys_invalid_value(csms, make_station):
    """ChangeConfiguration(MeterValueSampleInterval = -1) -> Rejected, or CALLERROR
    PropertyConstraintViolation; the value is unchanged."""
    start_fresh(make_station, csms)
    old = config_value(csms, "MeterValueSampleInterval")
    try:
        status = csms.call(call.ChangeConfiguration(key="MeterValueSampleInterval", value="-1")).status
    except OCPPError as exc:
        assert exc.code == "PropertyConstraintViolation", exc
    else:
        assert status == "Rejected"
    assert config_value(csms, "MeterValueSampleInterval") == old
