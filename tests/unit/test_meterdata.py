"""actors.metering.meterdata: meter readings as OCPP 1.6 MeterValue / SampledValue objects (§7.30, §7.44)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from actors.metering.meterdata import ENERGY, measurand_list, meter_value, sampled_values
from messages import validation
from messages.events import MeterReading, SampledValue

pytestmark = pytest.mark.timeout(30)

NOW = datetime(2024, 5, 1, 10, 0, 0, 250000, tzinfo=timezone.utc)

THREE_PHASE = MeterReading(connector=1, energy_wh=12345, values=(
    SampledValue("Power.Active.Import", 11040.0, "W"),
    SampledValue("Current.Import", 16.0, "A", phase="L1"),
    SampledValue("Current.Import", 15.5, "A", phase="L2"),
    SampledValue("Current.Import", 15.25, "A", phase="L3"),
    SampledValue("Voltage", 230.1, "V", phase="L1-N"),
    SampledValue("Temperature", 41.5, "Celsius", location="Body"),
))


def test_energy_is_reported_from_the_register_in_wh():
    [energy] = sampled_values(THREE_PHASE, (ENERGY,), "Sample.Periodic")
    assert energy == {"value": "12345", "context": "Sample.Periodic", "format": "Raw", "measurand": ENERGY,
                      "location": "Outlet", "unit": "Wh"}


def test_every_phase_of_a_measurand_is_reported_with_its_phase():
    values = sampled_values(THREE_PHASE, ("Current.Import",), "Sample.Periodic")
    assert [(v["phase"], v["value"], v["unit"]) for v in values] == [("L1", "16", "A"), ("L2", "15.5", "A"),
                                                                      ("L3", "15.25", "A")]


def test_a_value_without_a_phase_has_no_phase_field():
    [power] = sampled_values(THREE_PHASE, ("Power.Active.Import",), "Sample.Clock")
    assert "phase" not in power
    assert (power["value"], power["unit"], power["context"]) == ("11040", "W", "Sample.Clock")


def test_units_and_locations_come_from_the_reading():
    [voltage] = sampled_values(THREE_PHASE, ("Voltage",), "Sample.Periodic")
    [temperature] = sampled_values(THREE_PHASE, ("Temperature",), "Sample.Periodic")
    assert (voltage["unit"], voltage["phase"], voltage["value"]) == ("V", "L1-N", "230.1")
    assert (temperature["unit"], temperature["location"]) == ("Celsius", "Body")


def test_values_come_in_the_order_of_the_measurands_asked_for():
    values = sampled_values(THREE_PHASE, ("Voltage", ENERGY, "Power.Active.Import"), "Transaction.End")
    assert [v["measurand"] for v in values] == ["Voltage", ENERGY, "Power.Active.Import"]
    assert {v["context"] for v in values} == {"Transaction.End"}


def test_measurands_the_reading_lacks_are_skipped():
    reading = MeterReading(connector=1, energy_wh=5)
    assert sampled_values(reading, ("Current.Offered", "Voltage"), "Sample.Periodic") == []
    assert [v["measurand"] for v in sampled_values(reading, ("Voltage", ENERGY), "Sample.Periodic")] == [ENERGY]


@pytest.mark.parametrize("value, text", [(16.0, "16"), (0.5, "0.5"), (1.23456, "1.235"), (230.10, "230.1"),
                                         (0.0, "0"), (-0.0001, "0"), (-2.5, "-2.5"), (7, "7")])
def test_numbers_are_written_without_needless_digits(value, text):
    reading = MeterReading(connector=1, energy_wh=0, values=(SampledValue("Voltage", value, "V"),))
    assert sampled_values(reading, ("Voltage",), "Sample.Periodic")[0]["value"] == text


def test_meter_value_stamps_the_values_with_the_time():
    value = meter_value(THREE_PHASE, (ENERGY, "Power.Active.Import"), "Sample.Periodic", NOW)
    assert value["timestamp"] == "2024-05-01T10:00:00.250Z"
    assert [v["measurand"] for v in value["sampledValue"]] == [ENERGY, "Power.Active.Import"]


def test_meter_value_is_none_when_there_is_nothing_to_report():
    assert meter_value(THREE_PHASE, (), "Sample.Periodic", NOW) is None
    assert meter_value(MeterReading(connector=1, energy_wh=1), ("Voltage",), "Sample.Clock", NOW) is None


def test_a_meter_value_passes_the_meter_values_schema():
    value = meter_value(THREE_PHASE, (ENERGY, "Power.Active.Import", "Current.Import", "Voltage", "Temperature"),
                        "Sample.Periodic", NOW)
    validation.validate("MeterValues", {"connectorId": 1, "transactionId": 3, "meterValue": [value]})


def test_measurand_list_splits_a_csl_and_drops_blanks():
    assert measurand_list(" Voltage, Energy.Active.Import.Register ,,") == ("Voltage", ENERGY)
    assert measurand_list("") == ()
