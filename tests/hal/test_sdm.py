"""The Eastron SDM120/SDM630 Modbus RTU driver (hal/sdm.py) against an emulated meter on a pty.

The driver opens the emulator's port with pyserial as it would open /dev/ttyUSB0. Nothing waits
with a fixed sleep: failures are timed as they happen, recoveries are polled with a deadline.
"""

from __future__ import annotations

import math
import struct
import threading
import time

import pytest
import serial

from hal import HalError
from hal.sdm import (DRIVER_KEYS, ENERGY, ModbusExceptionError, SdmMeter, crc16, from_settings, make_plan,
                     read_request)
from tests.hal.modbus_emulator import SdmEmulator, crc16 as emulator_crc16, frame

pytestmark = pytest.mark.timeout(30)

ALL = ("Energy.Active.Import.Register", "Power.Active.Import", "Current.Import", "Voltage", "Frequency")
TIMEOUT = 0.2
SLACK = 0.2  # scheduling slack on a loaded test machine


@pytest.fixture
def emu630():
    with SdmEmulator("SDM630", unit_ids=(1,)) as emu:
        yield emu


@pytest.fixture
def emu120():
    with SdmEmulator("SDM120", unit_ids=(1,)) as emu:
        yield emu


@pytest.fixture
def meters():
    """Drivers made by a test, closed after it."""
    made = []

    def make(emu, **kwargs):
        kwargs.setdefault("model", emu.model)
        kwargs.setdefault("timeout_s", TIMEOUT)
        m = SdmMeter(emu.port, **kwargs)
        made.append(m)
        return m

    yield make
    for m in made:
        m.close()


def by_key(reading):
    return {(v.measurand, v.phase): (v.value, v.unit) for v in reading.values}


def timed(fn, *args):
    t0 = time.monotonic()
    try:
        return fn(*args), time.monotonic() - t0
    except HalError as exc:
        return exc, time.monotonic() - t0


def float32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


# --- frames ---------------------------------------------------------------------------------------

def test_crc16_modbus_check_value_and_the_classic_sdm_request():
    assert crc16(b"123456789") == 0x4B37 == emulator_crc16(b"123456789")  # CRC-16/MODBUS check value
    assert read_request(1, 0x0000, 2) == bytes.fromhex("010400000002" "71CB")  # SDM voltage request


def test_plans_read_contiguous_blocks():
    blocks = lambda model, ms: [(b.start, b.count) for b in make_plan(model, ms).blocks]  # noqa: E731
    assert blocks("SDM630", ()) == [(0x48, 2)]
    assert blocks("SDM630", ALL) == [(0x00, 18), (0x34, 2), (0x46, 4)]
    assert blocks("SDM630", ("Voltage", "Power.Active.Import")) == [(0x00, 18), (0x34, 2), (0x48, 2)]
    assert blocks("SDM630", ("Voltage",)) == [(0x00, 6), (0x48, 2)]
    # SDM120: 0x0002-0x0005 are not known registers there, so V, I and P are separate requests.
    assert blocks("SDM120", ALL) == [(0x00, 2), (0x06, 2), (0x0C, 2), (0x46, 4)]


# --- register maps and values ---------------------------------------------------------------------

def test_sdm630_map_every_measurand_in_three_requests(emu630, meters):
    values = {"voltage_l1": 230.1, "voltage_l2": 231.2, "voltage_l3": 229.3, "current_l1": 16.01,
              "current_l2": 15.5, "current_l3": 0.25, "power_l1": 3680.5, "power_l2": 3500.0,
              "power_l3": 57.0, "power": 7237.5, "frequency": 49.98, "energy": 1234.5678}
    for name, v in values.items():
        emu630.set(1, name, v)
    meter = meters(emu630)
    meter.open()
    reading = meter.read(1, ALL)
    assert reading.connector == 1 and reading.energy_wh == 1234568 and reading.taken_at is not None
    assert by_key(reading) == {
        (ENERGY, None): (1234568.0, "Wh"),
        ("Power.Active.Import", None): (7237.5, "W"),
        ("Power.Active.Import", "L1"): (3680.5, "W"),
        ("Power.Active.Import", "L2"): (3500.0, "W"),
        ("Power.Active.Import", "L3"): (57.0, "W"),
        ("Current.Import", "L1"): (16.01, "A"),
        ("Current.Import", "L2"): (15.5, "A"),
        ("Current.Import", "L3"): (0.25, "A"),
        ("Voltage", "L1-N"): (230.1, "V"),
        ("Voltage", "L2-N"): (231.2, "V"),
        ("Voltage", "L3-N"): (229.3, "V"),
        ("Frequency", None): (49.98, "Hertz"),
    }
    assert reading.values[0].measurand == ENERGY and all(v.location == "Outlet" for v in reading.values)
    assert emu630.requests == [(1, 4, 0x00, 18), (1, 4, 0x34, 2), (1, 4, 0x46, 4)]


def test_sdm120_map_single_phase(emu120, meters):
    for name, v in {"voltage": 229.9, "current": 7.25, "power": 1666.5, "frequency": 50.01,
                    "energy": 42.125}.items():
        emu120.set(1, name, v)
    reading = meters(emu120, model="SDM120").read(1, ALL)
    assert reading.energy_wh == 42125
    assert by_key(reading) == {
        (ENERGY, None): (42125.0, "Wh"),
        ("Power.Active.Import", None): (1666.5, "W"),
        ("Current.Import", "L1"): (7.25, "A"),
        ("Voltage", "L1-N"): (229.9, "V"),
        ("Frequency", None): (50.01, "Hertz"),
    }
    assert [r[2:] for r in emu120.requests] == [(0x00, 2), (0x06, 2), (0x0C, 2), (0x46, 4)]


def test_energy_rounds_to_whole_wh(emu630, meters):
    meter = meters(emu630)
    for kwh, wh in ((0.0, 0), (0.0004, 0), (0.0006, 1), (12.3456, 12346), (999.9994, 999999), (1000.0, 1000000)):
        emu630.set(1, "energy", kwh)
        reading = meter.read(1, ())
        assert reading.energy_wh == wh == round(float32(kwh) * 1000), kwh
        assert isinstance(reading.energy_wh, int)
        assert reading.values == (reading.values[0],) and reading.values[0].value == float(wh)


def test_a_large_register_is_exact_to_float32_resolution(emu630, meters):
    meter = meters(emu630)
    emu630.set(1, "energy", 100000.0)
    assert meter.read(1, ()).energy_wh == 100_000_000
    # float32 has a 24-bit mantissa: between 65536 and 131072 kWh, steps of 2**-7 kWh = 7.8125 Wh.
    emu630.set(1, "energy", 100000.0123)
    wh = meter.read(1, ()).energy_wh
    assert wh == round(float32(100000.0123) * 1000) == 100_000_016  # nearest float32, not 100000012
    assert abs(wh - 100_000_012.3) <= 7.8125 / 2 + 0.5


def test_only_the_measurands_asked_for_plus_energy(emu630, meters):
    meter = meters(emu630)
    assert [(v.measurand, v.phase) for v in meter.read(1, ()).values] == [(ENERGY, None)]
    assert emu630.requests == [(1, 4, 0x48, 2)]
    reading = meter.read(1, ("Current.Import", "Temperature", "Current.Offered", "SoC", "Current.Import"))
    assert [(v.measurand, v.phase) for v in reading.values] == [
        (ENERGY, None), ("Current.Import", "L1"), ("Current.Import", "L2"), ("Current.Import", "L3")]
    reading = meter.read(1, ("Frequency", "Voltage"))
    assert [(v.measurand, v.phase) for v in reading.values] == [
        (ENERGY, None), ("Frequency", None), ("Voltage", "L1-N"), ("Voltage", "L2-N"), ("Voltage", "L3-N")]


def test_export_power_is_not_reported_as_import_and_export_energy_is_available(emu630, meters):
    emu630.set(1, "power", -1500.0)
    emu630.set(1, "power_l1", -1500.0)
    emu630.set(1, "export_energy", 3.5)
    reading = meters(emu630).read(1, ("Power.Active.Import", "Energy.Active.Export.Register"))
    got = by_key(reading)
    assert got[("Power.Active.Import", None)] == (0.0, "W") and got[("Power.Active.Import", "L1")] == (0.0, "W")
    assert got[("Energy.Active.Export.Register", None)] == (3500.0, "Wh")


def test_two_meters_on_one_bus(meters):
    with SdmEmulator("SDM630", unit_ids=(1, 2)) as emu:
        emu.set(1, "energy", 10.0)
        emu.set(2, "energy", 20.0)
        emu.set(2, "voltage_l1", 240.0)
        meter = meters(emu, unit_ids=(1, 2), timeout_s=1.0)  # the polling below may run on a busy machine
        assert meter.read(1, ()).energy_wh == 10000
        r2 = meter.read(2, ("Voltage",))
        assert (r2.connector, r2.energy_wh, by_key(r2)[("Voltage", "L1-N")][0]) == (2, 20000, 240.0)
        assert [r[0] for r in emu.requests] == [1, 2, 2]
        with pytest.raises(HalError) as info:
            meter.read(3, ())
        assert info.value.error_code == "PowerMeterFailure"

        # Two threads polling both meters at once: the bus lock keeps every reply with its request.
        errors: list[object] = []

        reads: list[int] = []

        def poll(connector, wh):
            try:
                for _ in range(40):
                    r = meter.read(connector, ALL)
                    reads.append(connector)
                    if r.energy_wh != wh or r.connector != connector:
                        errors.append(r)
            except BaseException as exc:  # anything a driver thread raises reaches the test
                errors.append(exc)

        threads = [threading.Thread(target=poll, args=(c, wh)) for c, wh in ((1, 10000), (2, 20000))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        assert not any(t.is_alive() for t in threads)
        assert errors == []
        assert sorted(reads) == [1] * 40 + [2] * 40


def test_requests_are_separated_by_three_and_a_half_characters(emu630, meters):
    meter = meters(emu630, baudrate=9600)
    assert meter.frame_gap_s == pytest.approx(3.5 * 11 / 9600)  # 4.0 ms
    for _ in range(5):
        meter.read(1, ALL)
    events = emu630.timeline
    gaps = [b[0] - a[0] for a, b in zip(events, events[1:]) if (a[1], b[1]) == ("tx", "rx")]
    assert len(gaps) == 14 and min(gaps) >= meter.frame_gap_s


# --- bad replies ------------------------------------------------------------------------------------

def test_a_corrupted_reply_is_retried_never_decoded(emu630, meters):
    emu630.set(1, "energy", 5.0)
    meter = meters(emu630, retries=1)
    emu630.corrupt_next_reply()
    reading, took = timed(meter.read, 1, ())
    assert reading.energy_wh == 5000 and len(emu630.requests) == 2
    assert took < TIMEOUT  # a complete frame with a bad CRC ends the attempt without waiting out the timeout

    meter.close()
    no_retry = meters(emu630, retries=0)
    emu630.corrupt_next_reply()
    exc, took = timed(no_retry.read, 1, ())
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "CRC" in str(exc)
    assert no_retry.read(1, ()).energy_wh == 5000


def test_garbage_before_a_reply_is_skipped(emu630, meters):
    emu630.set(1, "energy", 7.0)
    meter = meters(emu630, retries=0)
    emu630.garbage(b"\x00\xff\x13\x37")
    assert meter.read(1, ()).energy_wh == 7000
    emu630.garbage(b"\x01\x04\x02\x99")  # looks like the start of a reply from unit 1
    assert meter.read(1, ALL).energy_wh == 7000
    emu630.garbage(b"\x01\x84")  # half an exception frame
    assert meter.read(1, ()).energy_wh == 7000
    emu630.garbage(b"noise between polls\x01\x04", now=True)  # unsolicited: flushed before the request
    assert meter.read(1, ()).energy_wh == 7000
    assert len(emu630.requests) == 6  # one request per block (3 for ALL): no retries were needed


def test_wrong_or_short_replies_fail(emu630, meters):
    meter = meters(emu630, retries=0)
    emu630.reply_with(frame(bytes((1, 4, 2, 0x43, 0x66))))  # CRC-valid, 2 data bytes for 2 registers
    exc, _ = timed(meter.read, 1, ())
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "data bytes" in str(exc)
    emu630.reply_with(frame(bytes((1, 4, 4)) + struct.pack(">f", 1.0))[:-3])  # cut short
    exc, took = timed(meter.read, 1, ())
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "short" in str(exc)
    assert TIMEOUT - 0.01 <= took <= TIMEOUT + SLACK
    emu630.reply_with(frame(bytes((2, 4, 4)) + struct.pack(">f", 1.0)))  # another unit's reply
    exc, _ = timed(meter.read, 1, ())
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure"
    emu630.reply_with(frame(bytes((1, 3, 4)) + struct.pack(">f", 1.0)))  # another function's reply
    exc, _ = timed(meter.read, 1, ())
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure"
    assert meter.read(1, ()).energy_wh == 0


def test_no_reply_fails_within_retries_plus_one_timeouts(emu630, meters):
    emu630.mute(True)
    for retries in (0, 1, 2):
        meter = meters(emu630, retries=retries)
        before = emu630.request_count()
        exc, took = timed(meter.read, 1, ALL)
        assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "no reply" in str(exc)
        bound = (retries + 1) * TIMEOUT
        assert bound - 0.02 <= took <= bound + SLACK
        assert emu630.request_count() - before == retries + 1
        if retries < 2:
            meter.close()
    emu630.mute(False)
    assert meter.read(1, ALL).energy_wh == 0


def test_exception_replies_raise_with_their_code(emu630, meters):
    meter = meters(emu630, retries=2)
    emu630.exception(2)
    exc, took = timed(meter.read, 1, ())
    assert isinstance(exc, ModbusExceptionError) and isinstance(exc, HalError)
    assert exc.exception_code == 2 and exc.error_code == "PowerMeterFailure" and "exception 02" in str(exc)
    assert emu630.request_count() == 1 and took < TIMEOUT  # a definite answer is not retried
    emu630.exception(6)  # slave device busy: worth another try
    assert meter.read(1, ()).energy_wh == 0 and emu630.request_count() == 3


def test_the_emulator_refuses_unmapped_registers(emu630, meters):
    meter = meters(emu630)
    meter.open()
    port = meter._serial  # the driver's own port: ask for a register the SDM630 map lacks
    port.write(read_request(1, 0x0100, 2))
    deadline = time.monotonic() + 2
    reply = b""
    while len(reply) < 5 and time.monotonic() < deadline:
        reply += port.read(5 - len(reply))
    assert reply == frame(bytes((1, 0x84, 0x02)))


def test_nan_or_infinite_energy_is_a_meter_fault(emu630, meters):
    meter = meters(emu630)
    emu630.nan_energy(1)
    exc, _ = timed(meter.read, 1, ALL)
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "nan" in str(exc)
    emu630.set(1, "energy", math.inf)
    exc, _ = timed(meter.read, 1, ())
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure"
    emu630.set(1, "energy", 1.0)
    emu630.set(1, "voltage_l2", math.nan)  # a NaN measurand is left out; the reading stands
    reading = meter.read(1, ("Voltage",))
    assert reading.energy_wh == 1000 and [v.phase for v in reading.values[1:]] == ["L1-N", "L3-N"]


def test_energy_going_backwards_is_a_meter_fault_per_connector(meters):
    with SdmEmulator("SDM120", unit_ids=(1, 2)) as emu:
        meter = meters(emu, unit_ids=(1, 2))
        emu.set(1, "energy", 10.0)
        emu.set(2, "energy", 3.0)
        assert meter.read(1, ()).energy_wh == 10000
        assert meter.read(2, ()).energy_wh == 3000  # another meter: its own history
        emu.set(1, "energy", 9.999)
        exc, _ = timed(meter.read, 1, ())
        assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "backwards" in str(exc)
        emu.set(1, "energy", 10.001)
        assert meter.read(1, ()).energy_wh == 10001


# --- stalls and a vanishing port ------------------------------------------------------------------

def test_a_long_stall_fails_each_read_within_its_timeout_then_recovers(emu630, meters):
    meter = meters(emu630, retries=1)
    emu630.set(1, "energy", 2.0)
    assert meter.read(1, ALL).energy_wh == 2000
    emu630.stall(3.0)
    failures, started = 0, time.monotonic()
    while True:
        result, took = timed(meter.read, 1, ALL)
        assert took <= 2 * TIMEOUT + SLACK  # the caller is never held longer than (retries+1)*timeout_s
        if not isinstance(result, HalError):
            break
        assert result.error_code == "PowerMeterFailure"
        failures += 1
    assert result.energy_wh == 2000 and failures >= 6 and time.monotonic() - started >= 3.0


def test_the_port_vanishing_fails_at_once_and_reopens_when_it_is_back(emu630, meters, monkeypatch):
    opens = []
    real_open = serial.Serial.open

    def counting_open(self):
        opens.append(time.monotonic())
        return real_open(self)

    monkeypatch.setattr(serial.Serial, "open", counting_open)
    meter = meters(emu630)
    emu630.set(1, "energy", 3.0)
    meter.open()
    assert meter.read(1, ()).energy_wh == 3000
    emu630.vanish()

    exc, took = timed(meter.read, 1, ALL)  # the open fd fails: no waiting for a timeout
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "lost" in str(exc)
    assert took < TIMEOUT / 2
    exc, took = timed(meter.read, 1, ())  # next read tries to re-open: the port is missing
    assert isinstance(exc, HalError) and "cannot open" in str(exc) and took < TIMEOUT / 2
    assert len(opens) == 2
    for _ in range(20):  # polled in a tight loop: no open attempt within the 2 s back-off
        exc, took = timed(meter.read, 1, ())
        assert isinstance(exc, HalError) and "next open attempt" in str(exc) and took < 0.05
    assert len(opens) == 2

    emu630.reappear()
    emu630.set(1, "energy", 3.5)
    deadline = time.monotonic() + 2.0 + 1.0
    while True:
        result, took = timed(meter.read, 1, ())
        assert took < TIMEOUT + SLACK
        if not isinstance(result, HalError):
            break
        assert time.monotonic() < deadline, result
        time.sleep(0.05)  # a poll interval, not a wait for something
    assert result.energy_wh == 3500
    assert len(opens) == 3 and opens[2] - opens[1] >= 2.0  # one attempt per back-off period


def test_open_reports_a_missing_port_and_rs485_mode_on_a_pty(emu630, meters, tmp_path):
    missing = SdmMeter(str(tmp_path / "ttyUSB9"))
    exc, _ = timed(missing.open)
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "ttyUSB9" in str(exc)
    exc, _ = timed(meters(emu630, rs485=True).open)  # TIOCSRS485 is not a pty ioctl
    assert isinstance(exc, HalError) and "cannot open" in str(exc)


def test_exclusive_open(emu630, meters):
    first = meters(emu630, exclusive=True)
    first.open()
    exc, _ = timed(meters(emu630, exclusive=True).open)
    assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure"
    assert first.read(1, ()).energy_wh == 0


# --- settings ---------------------------------------------------------------------------------------

def test_from_settings_builds_and_defaults():
    m = from_settings({"driver": "sdm", "port": "/dev/ttyUSB0"}, 2)
    assert (m.port, m.model, m.baudrate, m.parity, m.timeout_s, m.unit_ids, m.rs485, m.exclusive, m.retries) == \
        ("/dev/ttyUSB0", "SDM630", 9600, "N", 0.5, (1, 2), False, True, 1)
    m = from_settings({"port": "/dev/ttyAMA0", "model": "sdm120", "baudrate": 2400, "parity": "e",
                       "timeout_s": 1, "unit_ids": [7], "rs485": True, "exclusive": False}, 1)
    assert (m.model, m.baudrate, m.parity, m.timeout_s, m.unit_ids, m.rs485, m.exclusive) == \
        ("SDM120", 2400, "E", 1.0, (7,), True, False)
    assert set(DRIVER_KEYS) >= {"port", "model", "baudrate", "parity", "timeout_s", "unit_ids", "rs485",
                                "exclusive"}


@pytest.mark.parametrize("section, key", [
    ({}, "port"),
    ({"port": ""}, "port"),
    ({"port": "/dev/x", "model": "SDM72"}, "model"),
    ({"port": "/dev/x", "parity": "M"}, "parity"),
    ({"port": "/dev/x", "baudrate": "9600"}, "baudrate"),
    ({"port": "/dev/x", "baudrate": 0}, "baudrate"),
    ({"port": "/dev/x", "timeout_s": 0}, "timeout_s"),
    ({"port": "/dev/x", "timeout_s": True}, "timeout_s"),
    ({"port": "/dev/x", "unit_ids": [1]}, "unit_ids"),  # two connectors
    ({"port": "/dev/x", "unit_ids": [1, 248]}, "unit_ids"),
    ({"port": "/dev/x", "unit_ids": [0, 1]}, "unit_ids"),
    ({"port": "/dev/x", "unit_ids": [3, 3]}, "unit_ids"),
    ({"port": "/dev/x", "unit_ids": "1,2"}, "unit_ids"),
    ({"port": "/dev/x", "rs485": "yes"}, "rs485"),
    ({"port": "/dev/x", "exclusive": 1}, "exclusive"),
    ({"port": "/dev/x", "retries": -1}, "retries"),
    ({"port": "/dev/x", "speed": 9600}, "speed"),
])
def test_from_settings_names_the_bad_key(section, key):
    with pytest.raises(ValueError, match=rf"\b{key}\b"):
        from_settings(section, 2)


# --- speed ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wire_baud", [None, 9600])
def test_time_per_read(emu630, meters, wire_baud, capsys):
    """Per read(): energy only (1 request) and every measurand (3 requests). With wire_baud the
    emulator delays each reply by its time on a 9600 Bd line (the pty itself has no baud rate)."""
    emu630.wire_baud = wire_baud
    meter = meters(emu630, baudrate=9600)
    meter.open()
    figures = {}
    for name, ms in (("energy only", ()), ("all measurands", ALL)):
        n = 10 if wire_baud else 50
        t0 = time.perf_counter()
        for _ in range(n):
            meter.read(1, ms)
        figures[name] = (time.perf_counter() - t0) / n * 1000
    with capsys.disabled():
        print(f"\nSDM630 read() on a pty (wire_baud={wire_baud}): "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in figures.items()))
    assert figures["all measurands"] < (150 if wire_baud else 50)


# --- with the MeterDevice actor ----------------------------------------------------------------------

def test_meter_device_reports_power_meter_failure_and_recovery_with_the_real_driver(meters):
    """The station's MeterDevice actor polling SdmMeter on a pty: two meters, one goes silent."""
    import pykka

    from actors.configuration import registry as keys
    from actors.devices.meter import MeterDevice
    from actors.infra.ticker import ManualScheduler
    from messages.events import ConnectorFaultChanged, MeterSampled
    from tests.unit.fakes import Probe, sync, wire

    config = {n: s.default for n, s in keys.registry(2, True).items()}
    config["MeterValuesSampledData"] = "Energy.Active.Import.Register,Voltage,Power.Active.Import"
    with SdmEmulator("SDM630", unit_ids=(1, 2)) as emu:
        emu.set(1, "energy", 1.0)
        emu.set(2, "energy", 2.0)
        driver = meters(emu, unit_ids=(1, 2))
        scheduler, transactions, sampler = ManualScheduler(), Probe(), Probe()
        device = MeterDevice.start(driver, 2, config, poll_interval_s=1.0, failures_before_fault=3,
                                   scheduler=scheduler)
        try:
            def poll():
                sync(device)
                scheduler.advance(1.0)
                sync(device)

            def drain(kind):
                found = transactions.messages(kind)
                for _ in found:
                    transactions.expect(kind)
                return found

            wire(device, {MeterSampled: [transactions, sampler], ConnectorFaultChanged: transactions})
            sync(device)
            first = drain(MeterSampled)
            assert [(m.reading.connector, m.reading.energy_wh) for m in first] == [(1, 1000), (2, 2000)]
            assert {(v.measurand, v.phase) for v in first[0].reading.values} >= {
                ("Voltage", "L3-N"), ("Power.Active.Import", None), ("Power.Active.Import", "L2")}

            emu.stall(60)  # both meters silent (they share the bus)
            for _ in range(3):
                t0 = time.monotonic()
                poll()
                assert time.monotonic() - t0 <= 2 * 2 * TIMEOUT + SLACK  # two connectors, (1+1) tries each
            assert [(f.connector, f.error_code) for f in drain(ConnectorFaultChanged)] == \
                [(1, "PowerMeterFailure"), (2, "PowerMeterFailure")]
            assert drain(MeterSampled) == []

            emu.stall(0)
            emu.set(1, "energy", 1.5)
            poll()
            assert [(f.connector, f.error_code) for f in drain(ConnectorFaultChanged)] == \
                [(1, "NoError"), (2, "NoError")]
            assert [m.reading.energy_wh for m in drain(MeterSampled)] == [1500, 2000]
        finally:
            pykka.ActorRegistry.stop_all()


def test_a_read_waiting_for_a_busy_bus_gives_up_within_its_bound(emu630, meters):
    meter = meters(emu630, retries=1)
    assert meter._bus.acquire(timeout=1)  # another thread's long transaction, as seen by this read
    try:
        exc, took = timed(meter.read, 1, ())
        assert isinstance(exc, HalError) and exc.error_code == "PowerMeterFailure" and "busy" in str(exc)
        assert 2 * TIMEOUT - 0.02 <= took <= 2 * TIMEOUT + SLACK
    finally:
        meter._bus.release()
    assert meter.read(1, ()).energy_wh == 0
