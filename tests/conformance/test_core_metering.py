"""OCTT 1.6 Core, meter values: TC_070 sampled, TC_071 clock-aligned (OCPP 1.6 §3.16, §4.7; errata 3.13-3.16).

Intervals are shortened to 1-2 s (the tool uses tens of seconds) to keep the suite fast.
"""

import time
from datetime import datetime

import pytest

from tests.conformance.conftest import reach_charging, start_fresh

pytestmark = pytest.mark.timeout(90)

ENERGY = "Energy.Active.Import.Register"


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _samples(csms, tx: int, context: str, n: int, timeout: float = 15) -> list:
    """The first n MeterValues of transaction tx whose values have `context` (absent = Sample.Periodic)."""
    def find():
        found = [r for r in csms.received if r.action == "MeterValues" and r.payload.get("transactionId") == tx
                 and any(v.get("context", "Sample.Periodic") == context
                         for mv in r.payload["meterValue"] for v in mv["sampledValue"])]
        return found[:n] if len(found) >= n else None
    return csms.wait_until(find, timeout, f"{n} MeterValues ({context}) of transaction {tx}")


def _check_values(record, context: str, measurands: list[str]) -> datetime:
    assert record.payload["connectorId"] == 1
    (mv,) = record.payload["meterValue"]
    got = [v.get("measurand", ENERGY) for v in mv["sampledValue"]]
    assert sorted(got) == sorted(measurands), f"one sampledValue per configured measurand: {got}"
    for v in mv["sampledValue"]:
        assert v.get("context", "Sample.Periodic") == context
        float(v["value"])
    energy = next(v for v in mv["sampledValue"] if v.get("measurand", ENERGY) == ENERGY)
    assert energy.get("unit", "Wh") in ("Wh", "kWh")
    return _stamp(mv["timestamp"])


def test_tc_070_sampled_meter_values(csms, make_station):
    """Charging with MeterValueSampleInterval 1 s: MeterValues every interval, context
    Sample.Periodic, the transactionId, one sampledValue per measurand of MeterValuesSampledData;
    timestamps exactly one interval apart."""
    measurands = [ENERGY, "Power.Active.Import"]
    station = start_fresh(make_station, csms, configuration={"MeterValueSampleInterval": 1,
                                                              "MeterValuesSampledData": ",".join(measurands)})
    _, tx = reach_charging(csms, station, "OCTT1")
    samples = _samples(csms, tx, "Sample.Periodic", 3)
    stamps = [_check_values(r, "Sample.Periodic", measurands) for r in samples]
    assert [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])] == [1.0, 1.0]
    assert samples[2].time - samples[0].time >= 1.0, "samples sent faster than the interval"


def test_tc_070_sampled_meter_values_empty_key_defaults_to_energy_register(csms, make_station):
    """TC_070, second reading of the case: with MeterValuesSampledData empty the sampled value is
    the default measurand, Energy.Active.Import.Register."""
    station = start_fresh(make_station, csms, configuration={"MeterValueSampleInterval": 1,
                                                              "MeterValuesSampledData": ""})
    _, tx = reach_charging(csms, station, "OCTT1")
    samples = _samples(csms, tx, "Sample.Periodic", 2, timeout=6)
    for r in samples:
        _check_values(r, "Sample.Periodic", [ENERGY])


def test_tc_071_clock_aligned_meter_values(csms, make_station):
    """Charging with MeterValueSampleInterval 0 and ClockAlignedDataInterval 2 s: MeterValues with
    timestamps exactly on the 2 s boundaries counted from midnight (:00, :02, ...), context
    Sample.Clock, the measurands of MeterValuesAlignedData, sent at the boundary, each boundary once.
    The CSMS's clock runs 50 ms behind the station host's (as any real CSMS's differs a little),
    so the BootNotification.conf sets the station's clock back a little."""
    csms.clock_offset_s = -0.05
    measurands = [ENERGY, "Power.Active.Import"]
    wall_minus_mono = time.time() - time.monotonic()
    station = start_fresh(make_station, csms, configuration={
        "MeterValueSampleInterval": 0, "ClockAlignedDataInterval": 2, "MeterValuesAlignedData": ",".join(measurands)})
    _, tx = reach_charging(csms, station, "OCTT1")
    samples = _samples(csms, tx, "Sample.Clock", 3)
    stamps = [_check_values(r, "Sample.Clock", measurands) for r in samples]
    for stamp, record in zip(stamps, samples):
        assert stamp.microsecond == 0 and stamp.timestamp() % 2 == 0, f"not on a 2 s boundary: {stamp}"
        late = record.time + wall_minus_mono - stamp.timestamp()
        assert -0.5 <= late <= 1.5, f"sent {late:.3f} s after its boundary"
    aligned = [r.payload["meterValue"][0]["timestamp"] for r in csms.received if r.action == "MeterValues"
               and r.payload["connectorId"] == 1 and r.payload["meterValue"][0]["sampledValue"][0].get("context")
               == "Sample.Clock"]
    assert len(aligned) == len(set(aligned)), f"a boundary reported twice: {aligned}"
    assert [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:])] == [2.0, 2.0]
    assert not [r for r in samples if any(v.get("context") == "Sample.Periodic"
                                          for v in r.payload["meterValue"][0]["sampledValue"])]
