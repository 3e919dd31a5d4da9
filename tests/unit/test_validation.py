"""messages.validation: OCPP 1.6 JSON schemas (with the 2025-04 errata) and the CALLERROR code of each violation."""

from __future__ import annotations

from importlib import resources

import pytest

from messages import validation
from messages.validation import SchemaViolation

pytestmark = pytest.mark.timeout(60)

BOOT = {"chargePointVendor": "OpenStation", "chargePointModel": "AC22-PY"}
STOP = {"transactionId": 5, "timestamp": "2024-05-01T10:00:00Z", "meterStop": 1200}


def violation(action: str, payload, response: bool = False) -> SchemaViolation:
    with pytest.raises(SchemaViolation) as info:
        validation.validate(action, payload, response=response)
    return info.value


def meter_values_with_unit(unit: str) -> dict:
    return {"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [
        {"value": "21.5", "measurand": "Temperature", "unit": unit}]}]}


# --- valid payloads ---------------------------------------------------------------------------


def test_a_valid_boot_notification_passes():
    validation.validate("BootNotification", BOOT)


def test_a_valid_response_passes():
    validation.validate("BootNotification", {"status": "Accepted", "currentTime": "2024-05-01T10:00:00.123Z",
                                             "interval": 300}, response=True)


# --- each rule maps to its OCPP-J §4.2.3 code ---------------------------------------------------


def test_a_missing_required_field_is_an_occurence_constraint_violation_naming_the_field():
    error = violation("BootNotification", {"chargePointVendor": "OpenStation"})
    assert error.code == "OccurenceConstraintViolation"
    assert "chargePointModel" in error.description


def test_a_missing_required_field_deep_inside_is_named_with_its_path():
    payload = {"connectorId": 1, "meterValue": [{"sampledValue": [{"value": "1"}]}]}
    error = violation("MeterValues", payload)
    assert error.code == "OccurenceConstraintViolation"
    assert "meterValue[0]" in error.description and "timestamp" in error.description


def test_a_wrong_json_type_is_a_type_constraint_violation_naming_the_field():
    error = violation("StartTransaction", {
        "connectorId": "1", "idTag": "ABC", "meterStart": 0, "timestamp": "2024-05-01T10:00:00Z"})
    assert error.code == "TypeConstraintViolation"
    assert "connectorId" in error.description


def test_a_float_for_an_integer_is_a_type_constraint_violation():
    error = violation("StopTransaction", {**STOP, "meterStop": 1200.5})
    assert (error.code, "meterStop" in error.description) == ("TypeConstraintViolation", True)


def test_a_boolean_for_an_integer_is_a_type_constraint_violation():
    assert violation("StopTransaction", {**STOP, "meterStop": True}).code == "TypeConstraintViolation"


@pytest.mark.parametrize("stamp", ["yesterday", "2024-05-01", "2024-02-30T10:00:00Z", "2024-05-01 10:00:00Z"])
def test_a_malformed_date_time_is_a_type_constraint_violation(stamp):
    error = violation("StopTransaction", {**STOP, "timestamp": stamp})
    assert error.code == "TypeConstraintViolation"
    assert "timestamp" in error.description


def test_a_value_outside_its_enum_is_a_property_constraint_violation():
    error = violation("ChangeAvailability", {"connectorId": 0, "type": "Broken"})
    assert error.code == "PropertyConstraintViolation"
    assert "type" in error.description


def test_a_string_over_its_max_length_is_a_property_constraint_violation():
    error = violation("Authorize", {"idTag": "X" * 21})
    assert error.code == "PropertyConstraintViolation"
    assert "idTag" in error.description


def charging_profile(limit: float) -> dict:
    return {"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 1, "stackLevel": 0, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute", "chargingSchedule": {
            "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]}}}


def test_a_number_outside_its_numeric_range_is_a_property_constraint_violation():
    # OCPP 1.6 schemas have no minimum/maximum; their numeric constraint is limit's multipleOf 0.1.
    validation.validate("SetChargingProfile", charging_profile(16.3))  # no float rounding trap
    error = violation("SetChargingProfile", charging_profile(16.35))
    assert error.code == "PropertyConstraintViolation"
    assert "limit" in error.description


def test_an_empty_list_where_one_item_is_required_is_an_occurence_constraint_violation():
    error = violation("MeterValues", {"connectorId": 1, "meterValue": []})
    assert error.code == "OccurenceConstraintViolation"
    assert "meterValue" in error.description


def test_a_field_the_pdu_does_not_have_is_a_formation_violation():
    error = violation("Heartbeat", {"hello": 1})
    assert error.code == "FormationViolation"
    assert "hello" in error.description


def test_an_unknown_action_is_not_implemented():
    assert violation("SetDisplayMessage", {}).code == "NotImplemented"


# --- the schema set ---------------------------------------------------------------------------


def test_there_are_78_schema_files_and_every_one_compiles():
    folder = resources.files("messages") / "schemas"
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
    assert len(names) == 78
    validation.precompile()
    for name in names:
        assert callable(validation._validator(name[:-5]))


def test_known_actions_lists_the_39_actions_of_core_and_the_security_extension():
    actions = validation.known_actions()
    assert len(actions) == 39
    assert {"BootNotification", "Heartbeat", "StartTransaction", "StopTransaction", "MeterValues",
            "RemoteStartTransaction", "ChangeConfiguration", "GetConfiguration", "TriggerMessage",
            "SecurityEventNotification", "SignedUpdateFirmware", "ExtendedTriggerMessage"} <= actions
    assert not any(a.endswith("Response") for a in actions)


def test_every_action_has_a_response_schema():
    for action in validation.known_actions():
        with pytest.raises(SchemaViolation) as info:
            validation.validate(action, ["not an object"], response=True)
        assert info.value.code == "TypeConstraintViolation", action


# --- errata 2025-04 ----------------------------------------------------------------------------


def test_boot_notification_response_interval_must_be_an_integer():
    response = {"status": "Accepted", "currentTime": "2024-05-01T10:00:00Z", "interval": "300"}
    error = violation("BootNotification", response, response=True)
    assert error.code == "TypeConstraintViolation"
    assert "interval" in error.description


def test_boot_notification_response_without_interval_is_refused():
    error = violation("BootNotification", {"status": "Accepted", "currentTime": "2024-05-01T10:00:00Z"},
                      response=True)
    assert error.code == "OccurenceConstraintViolation"


def test_stop_transaction_without_a_reason_is_valid():
    validation.validate("StopTransaction", STOP)


def test_stop_transaction_with_an_unknown_reason_is_refused():
    assert violation("StopTransaction", {**STOP, "reason": "Bored"}).code == "PropertyConstraintViolation"


@pytest.mark.parametrize("unit", ["Celsius", "Celcius"])
def test_meter_values_accept_both_spellings_of_celsius(unit):
    validation.validate("MeterValues", meter_values_with_unit(unit))


@pytest.mark.parametrize("unit", ["Celsius", "Celcius"])
def test_stop_transaction_data_accepts_both_spellings_of_celsius(unit):
    data = meter_values_with_unit(unit)["meterValue"]
    validation.validate("StopTransaction", {**STOP, "transactionData": data})


def test_a_unit_that_is_not_in_the_list_is_refused():
    assert violation("MeterValues", meter_values_with_unit("Kelvin")).code == "PropertyConstraintViolation"


def test_validation_does_not_change_the_payload():
    payload = {"connectorId": 1, "meterValue": [{"timestamp": "2024-05-01T10:00:00Z",
                                                  "sampledValue": [{"value": "1"}]}]}
    before = repr(payload)
    validation.validate("MeterValues", payload)
    assert repr(payload) == before
