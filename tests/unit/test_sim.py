"""Tests for the hardware simulator (hal/sim), its drivers and scripts/simctl.

Events are awaited with queue.get(timeout=...); the only real waits are where the test
measures time itself (energy over ~0.2 s, a 0.5 s stall).
"""

from __future__ import annotations

import json
import queue
import socket
import subprocess
import sys
import threading
import time
from datetime import timezone
from pathlib import Path

import pytest

from hal import ConnectorHardwareState, HalError
from hal.sim import SimEvse, SimMeter, SimReader, Simulator
from messages.events import (CableDetached, 
    CardPresented,
    ConnectorFaultChanged,
    EvDrawChanged,
    PlugConnected,
    PlugDisconnected,
)

pytestmark = pytest.mark.timeout(10)

SIMCTL = Path(__file__).resolve().parents[2] / "scripts" / "simctl"


class Control:
    """A control-socket client: one JSON line out, one JSON line back."""

    def __init__(self, address):
        self.sock = socket.create_connection(address, timeout=5)
        self.file = self.sock.makefile("rwb")

    def raw(self, line: bytes) -> dict:
        self.file.write(line + b"\n")
        self.file.flush()
        return json.loads(self.file.readline())

    def __call__(self, cmd: str, **fields) -> dict:
        return self.raw(json.dumps({"cmd": cmd, **fields}).encode())

    def ok(self, cmd: str, **fields) -> dict:
        reply = self(cmd, **fields)
        assert reply["ok"] is True, reply
        return reply

    def error(self, cmd: str, **fields) -> str:
        reply = self(cmd, **fields)
        assert reply["ok"] is False, reply
        assert reply["error"]
        return reply["error"]

    def connector(self, n: int) -> dict:
        return self.ok("state")["connectors"][n - 1]

    def close(self):
        self.file.close()
        self.sock.close()


class Events:
    """An emitter that records; events are emitted before the control reply is written."""

    def __init__(self):
        self.queue: queue.Queue = queue.Queue()

    def __call__(self, event):
        self.queue.put(event)

    def next(self, timeout: float = 2):
        return self.queue.get(timeout=timeout)

    def none(self):
        assert self.queue.empty(), self.queue.get_nowait()


@pytest.fixture
def sim():
    simulator = Simulator("127.0.0.1:0", connectors=2).start()
    yield simulator
    simulator.close()


@pytest.fixture
def control(sim):
    client = Control(sim.address)
    yield client
    client.close()


@pytest.fixture
def events():
    return Events()


@pytest.fixture
def evse(sim, events):
    driver = SimEvse(sim)
    driver.open(events)
    yield driver
    driver.close()


@pytest.fixture
def meter(sim):
    driver = SimMeter(sim)
    driver.open()
    yield driver
    driver.close()


@pytest.fixture
def reader(sim, events):
    driver = SimReader(sim)
    driver.open(events)
    yield driver
    driver.close()


def energy(meter: SimMeter, connector: int = 1) -> float:
    return meter.read(connector, ()).energy_wh


# --- lifecycle -----------------------------------------------------------------------------------


def test_port_zero_binds_an_ephemeral_loopback_port(sim):
    host, port = sim.address
    assert host == "127.0.0.1" and port > 0


@pytest.mark.parametrize("control", ["0.0.0.0:7700", "192.168.1.10:7700", "example.com:7700", "7700", "127.0.0.1:x"])
def test_refuses_a_non_loopback_or_malformed_address(control):
    with pytest.raises(ValueError):
        Simulator(control)


def test_shared_returns_one_simulator_per_address_until_closed():
    first = Simulator.shared("127.0.0.1:0", 2, False)
    try:
        assert Simulator.shared("127.0.0.1:0", 2, False) is first
        with pytest.raises(ValueError):
            Simulator.shared("127.0.0.1:0", 3, False)
    finally:
        first.close()
    second = Simulator.shared("localhost:0", 2, False)
    try:
        assert second is not first
        assert Control(second.address).ok("state")["mains"] is True
    finally:
        second.close()


def test_close_hangs_up_on_connected_clients(sim, control):
    control.ok("state")
    sim.close()
    assert control.file.readline() == b""


# --- protocol errors -----------------------------------------------------------------------------


@pytest.mark.parametrize("line", [b"not json", b"[1, 2]", b'"plug"', b"{}", b'{"cmd": 7}', b'{"cmd": ["plug"]}',
                                  b'{"cmd": "explode"}', b"\xff\xfe{"])
def test_bad_lines_get_an_error_and_the_connection_stays_usable(control, line):
    reply = control.raw(line)
    assert reply["ok"] is False and reply["error"]
    assert control.ok("state")["connectors"][0]["connector"] == 1


@pytest.mark.parametrize("connector", [None, 0, 3, -1, "1", True, 1.0])
def test_connector_out_of_range_or_wrong_type_is_refused(control, connector):
    fields = {} if connector is None else {"connector": connector}
    assert "connector" in control.error("plug", **fields)


# --- plug, unplug, lock --------------------------------------------------------------------------


def test_plug_emits_plug_connected_once(control, evse, events):
    assert control.ok("plug", connector=1)["connector"]["plugged"] is True
    assert events.next() == PlugConnected(1)
    assert events.next() == EvDrawChanged(1, True)  # the EV asks for energy at once (state C)
    control.ok("plug", connector=1)  # already plugged: nothing happens at the pilot
    events.none()
    assert evse.connector_states() == (ConnectorHardwareState(1, True, True), ConnectorHardwareState(2, False))


def test_unplug_emits_plug_disconnected_and_releases_a_socket_lock(control, evse, events):
    control.ok("plug", connector=2)
    assert evse.set_lock(2, True) is True
    assert control.connector(2)["locked"] is True
    reply = control.ok("unplug", connector=2)
    assert reply["connector"]["plugged"] is False and reply["connector"]["locked"] is False
    assert [events.next() for _ in range(5)] == [
        PlugConnected(2), EvDrawChanged(2, True), PlugDisconnected(2), EvDrawChanged(2, False), CableDetached(2)]
    control.ok("unplug", connector=2)
    events.none()


def test_lock_fails(control, evse):
    assert control.ok("lock_fails", connector=1, value=True)["connector"]["lock_fails"] is True
    assert evse.set_lock(1, True) is False
    assert control.connector(1)["locked"] is False
    control.ok("lock_fails", connector=1, value=False)
    assert evse.set_lock(1, True) is True
    assert control.connector(1)["locked"] is True


@pytest.mark.parametrize("fields", [{"connector": 1}, {"connector": 1, "value": "true"}, {"connector": 1, "value": 1}])
def test_lock_fails_needs_a_boolean(control, fields):
    control.error("lock_fails", **fields)


def test_fixed_cable_lock_always_succeeds_and_unplug_keeps_it():
    sim = Simulator("127.0.0.1:0", connectors=1, fixed_cable=True).start()
    control = Control(sim.address)
    try:
        evse = SimEvse(sim)
        control.ok("lock_fails", connector=1, value=True)
        assert evse.set_lock(1, True) is True
        control.ok("plug", connector=1)
        assert control.ok("unplug", connector=1)["connector"]["locked"] is True
    finally:
        control.close()
        sim.close()


def test_evse_out_of_range_connector_raises_hal_error(evse):
    for call in (lambda: evse.set_contactor(3, True), lambda: evse.set_lock(0, True),
                 lambda: evse.set_current_limit(9, 16), lambda: evse.show_status(3, "Available", None)):
        with pytest.raises(HalError):
            call()
    with pytest.raises(HalError):
        evse.set_current_limit(1, -1)


# --- EV draw, power, energy ----------------------------------------------------------------------


def test_contactor_and_ev_state_emit_ev_draw_changed(control, evse, events):
    # EvDrawChanged follows the EV's request for energy (J1772 B/C), whatever the contactor does.
    control.ok("plug", connector=1)
    assert [events.next(), events.next()] == [PlugConnected(1), EvDrawChanged(1, True)]
    control.ok("ev", connector=1, state="suspended")
    assert events.next() == EvDrawChanged(1, False)
    evse.set_contactor(1, True)
    events.none()  # the contactor alone changes nothing the EV asks for
    assert control.ok("ev", connector=1, state="charging")["connector"]["ev_state"] == "charging"
    assert events.next() == EvDrawChanged(1, True)
    assert evse.connector_states()[0].ev_drawing is True
    evse.set_contactor(1, False)
    events.none()
    assert control.connector(1)["contactor"] is False


def test_unplug_while_drawing_reports_the_plug_first(control, evse, events):
    control.ok("plug", connector=1)
    evse.set_contactor(1, True)
    control.ok("unplug", connector=1)
    assert [events.next() for _ in range(4)] == [
        PlugConnected(1), EvDrawChanged(1, True), PlugDisconnected(1), EvDrawChanged(1, False)]


@pytest.mark.parametrize("state", [None, "Charging", "driving", 1])
def test_ev_state_is_validated(control, state):
    fields = {"connector": 1} if state is None else {"connector": 1, "state": state}
    control.error("ev", **fields)


def test_power(control):
    assert control.connector(1)["power_w"] == 7400
    assert control.ok("power", connector=1, watts=11000)["connector"]["power_w"] == 11000
    assert control.ok("power", connector=1, watts=0)["connector"]["power_w"] == 0
    for watts in (-1, "7400", True, None):
        control.error("power", connector=1, watts=watts)
    control.error("power", connector=1)


def test_energy_grows_only_while_contactor_closed_plugged_and_charging(control, evse, meter):
    control.ok("power", connector=1, watts=3_600_000)  # 1 Wh per ms
    control.ok("plug", connector=1)
    assert energy(meter) == 0
    evse.set_contactor(1, True)
    start, t0 = energy(meter), time.monotonic()
    time.sleep(0.2)  # measuring a rate over real time
    grown, elapsed_ms = energy(meter) - start, (time.monotonic() - t0) * 1000
    assert 150 <= grown <= elapsed_ms + 50

    for stop, resume in [
        (lambda: control.ok("ev", connector=1, state="suspended"),
         lambda: control.ok("ev", connector=1, state="charging")),
        (lambda: evse.set_contactor(1, False), lambda: evse.set_contactor(1, True)),
        (lambda: control.ok("fault", connector=1, error_code="GroundFailure"),
         lambda: control.ok("fault", connector=1, error_code="NoError")),
        (lambda: control.ok("fault", connector=0, error_code="OverVoltage"),
         lambda: control.ok("fault", connector=0, error_code="NoError")),
        (lambda: control.ok("unplug", connector=1), lambda: control.ok("plug", connector=1)),
    ]:
        stop()
        frozen = energy(meter)
        time.sleep(0.05)
        assert energy(meter) == frozen
        resume()
    assert control.connector(1)["energy_wh"] >= frozen
    assert control.connector(2)["energy_wh"] == 0


def test_meter_reading_values(control, evse, meter):
    control.ok("plug", connector=1)
    control.ok("power", connector=1, watts=4600)
    evse.set_contactor(1, True)
    evse.set_current_limit(1, 16)
    reading = meter.read(1, ("Voltage", "Frequency", "Current.Import", "Power.Active.Import", "Current.Offered"))
    assert reading.connector == 1 and reading.taken_at.tzinfo is timezone.utc
    values = {v.measurand: v for v in reading.values}
    assert reading.values[0].measurand == "Energy.Active.Import.Register"
    assert values["Energy.Active.Import.Register"].unit == "Wh"
    assert values["Energy.Active.Import.Register"].value == reading.energy_wh
    assert (values["Power.Active.Import"].value, values["Power.Active.Import"].unit) == (4600, "W")
    assert (values["Current.Import"].value, values["Current.Import"].phase) == (20, "L1")
    assert (values["Voltage"].value, values["Voltage"].unit, values["Voltage"].phase) == (230.0, "V", "L1")
    assert (values["Current.Offered"].value, values["Current.Offered"].unit) == (16, "A")
    assert "Frequency" not in values
    control.ok("ev", connector=1, state="suspended")
    assert {v.measurand: v.value for v in meter.read(1, ("Power.Active.Import",)).values}["Power.Active.Import"] == 0


def test_meter_out_of_range_raises_power_meter_failure(meter):
    for connector in (0, 3):
        with pytest.raises(HalError) as failure:
            meter.read(connector, ())
        assert failure.value.error_code == "PowerMeterFailure"


# --- faults, mains -------------------------------------------------------------------------------


def test_fault_emits_connector_fault_changed(control, evse, events):
    assert control.ok("fault", connector=1, error_code="GroundFailure")["connector"]["error_code"] == "GroundFailure"
    assert events.next() == ConnectorFaultChanged(1, "GroundFailure")
    assert evse.connector_states()[0].error_code == "GroundFailure"
    control.ok("fault", connector=1, error_code="NoError")
    assert events.next() == ConnectorFaultChanged(1, "NoError")
    assert control.ok("fault", connector=0, error_code="HighTemperature")["station"]["error_code"] == "HighTemperature"
    assert events.next() == ConnectorFaultChanged(0, "HighTemperature", source="station")
    assert control.ok("state")["station"]["error_code"] == "HighTemperature"


@pytest.mark.parametrize("fields", [
    {"connector": 1}, {"connector": 1, "error_code": "Meltdown"}, {"connector": 1, "error_code": "groundfailure"},
    {"connector": 3, "error_code": "NoError"}, {"error_code": "NoError"},
])
def test_fault_is_validated(control, fields):
    control.error("fault", **fields)


def test_power_cut_and_restore(sim, control):
    cut = threading.Event()
    sim.on_power_cut(cut.set)
    assert control.ok("power_cut")["mains"] is False
    assert cut.wait(2)
    assert control.ok("state")["mains"] is False
    assert control.ok("power_restore")["mains"] is True
    assert control.ok("state")["mains"] is True


# --- status shown by the firmware ----------------------------------------------------------------


def test_state_reports_what_show_status_showed(control, evse):
    assert control.connector(1)["status"] == "Unknown" and control.connector(1)["transaction_id"] is None
    evse.show_status(1, "Charging", 4711)
    evse.show_status(0, "Available", None)
    state = control.ok("state")
    assert (state["connectors"][0]["status"], state["connectors"][0]["transaction_id"]) == ("Charging", 4711)
    assert state["station"]["status"] == "Available"
    assert set(state["connectors"][1]) >= {"connector", "status", "transaction_id", "energy_wh", "contactor", "locked",
                                           "plugged", "ev_state", "power_w", "error_code"}


# --- stalls --------------------------------------------------------------------------------------


def test_meter_stall_blocks_reads_while_the_control_socket_answers(control, meter):
    reply = control.ok("stall", device="meter", seconds=0.5)
    stalled_at = time.monotonic()
    assert reply["device"] == "meter"
    done = queue.Queue()
    threading.Thread(target=lambda: done.put(meter.read(1, ())), daemon=True).start()
    t0 = time.monotonic()
    control.ok("plug", connector=1)
    control.ok("state")
    assert time.monotonic() - t0 < 0.25  # the control socket is not held up by the sleeping read
    done.get(timeout=3)
    assert time.monotonic() - stalled_at >= 0.45
    t0 = time.monotonic()
    meter.read(1, ())
    assert time.monotonic() - t0 < 0.25  # the stall is over


def test_evse_stall_blocks_driver_calls(control, evse):
    control.ok("stall", device="evse", seconds=0.5)
    t0 = time.monotonic()
    evse.set_contactor(1, True)
    assert time.monotonic() - t0 >= 0.45
    assert control.connector(1)["contactor"] is True


def test_rfid_stall_delays_a_swipe_until_it_ends(control, reader, events):
    control.ok("stall", device="rfid", seconds=0.5)
    t0 = time.monotonic()
    control.ok("swipe", id_tag="LATE")
    assert events.next(timeout=3) == CardPresented("LATE")
    assert time.monotonic() - t0 >= 0.45


def test_a_zero_stall_ends_a_stall_at_once(control, meter):
    control.ok("stall", device="meter", seconds=30)
    done = queue.Queue()
    reading = threading.Thread(target=lambda: done.put(meter.read(1, ())), daemon=True)
    reading.start()
    control.ok("stall", device="meter", seconds=0)
    assert done.get(timeout=3).connector == 1


@pytest.mark.parametrize("fields", [{"device": "printer", "seconds": 1}, {"device": "meter"}, {"seconds": 1},
                                    {"device": "meter", "seconds": -1}, {"device": "meter", "seconds": "5"},
                                    {"device": "meter", "seconds": 1e300}])
def test_stall_is_validated(control, fields):
    control.error("stall", **fields)


# --- card reader ---------------------------------------------------------------------------------


def test_swipe_goes_through_the_reader_thread(control, reader, events):
    assert control.ok("swipe", id_tag="04A2B3C4D5E6F7")["id_tag"] == "04A2B3C4D5E6F7"
    event = events.next()
    assert event == CardPresented("04A2B3C4D5E6F7")
    control.ok("swipe", id_tag="X" * 20)
    assert events.next() == CardPresented("X" * 20)


@pytest.mark.parametrize("id_tag", [None, "", "X" * 21, 1234])
def test_swipe_is_validated(control, reader, id_tag):
    control.error("swipe", **({} if id_tag is None else {"id_tag": id_tag}))


def test_swipe_without_an_open_reader_is_refused(sim, control, events):
    assert "reader" in control.error("swipe", id_tag="TAG")
    reader = SimReader(sim)
    reader.open(events)
    reader.close()
    assert "reader" in control.error("swipe", id_tag="TAG")


def test_reader_close_ends_its_thread_even_during_a_stall(control, sim, events):
    reader = SimReader(sim)
    reader.open(events)
    control.ok("stall", device="rfid", seconds=30)
    control.ok("swipe", id_tag="NEVER")
    t0 = time.monotonic()
    reader.close()
    assert time.monotonic() - t0 < 2
    assert not any(t.name == "sim-rfid" and t.is_alive() for t in threading.enumerate())
    events.none()


# --- simctl --------------------------------------------------------------------------------------


def simctl(sim_or_port, *args: str) -> subprocess.CompletedProcess:
    port = sim_or_port if isinstance(sim_or_port, int) else sim_or_port.address[1]
    return subprocess.run([sys.executable, str(SIMCTL), "--control", f"127.0.0.1:{port}", *args],
                          capture_output=True, text=True, timeout=8)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_simctl_end_to_end(sim, evse, events):
    done = simctl(sim, "plug", "1")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["connector"]["plugged"] is True
    assert events.next() == PlugConnected(1)
    for args in (["power", "1", "11000"], ["ev", "1", "suspended"], ["lock_fails", "1", "true"],
                 ["fault", "1", "GroundFailure"], ["stall", "meter", "0"], ["power_cut"], ["power_restore"]):
        done = simctl(sim, *args)
        assert done.returncode == 0, (args, done.stderr)
    first = json.loads(simctl(sim, "state").stdout)["connectors"][0]
    assert (first["plugged"], first["power_w"], first["ev_state"]) == (True, 11000, "suspended")
    assert (first["lock_fails"], first["error_code"]) == (True, "GroundFailure")
    assert json.loads(simctl(sim, "raw", '{"cmd": "unplug", "connector": 1}').stdout)["ok"] is True


def test_simctl_exit_codes(sim, reader, events):
    assert simctl(sim, "swipe", "TAG").returncode == 0
    assert events.next() == CardPresented("TAG")
    refused = simctl(sim, "fault", "1", "Meltdown")
    assert refused.returncode == 1 and json.loads(refused.stdout)["ok"] is False
    assert "error_code" in refused.stderr
    assert simctl(sim, "raw", "not json").returncode == 1
    assert simctl(sim, "plug", "9").returncode == 1
    for usage in ([], ["plug"], ["plug", "one"], ["ev", "1", "driving"], ["lock_fails", "1", "maybe"], ["frobnicate"]):
        done = simctl(sim, *usage)
        assert done.returncode == 2, usage
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    unreachable = simctl(closed_port(), "state")
    assert unreachable.returncode == 2 and "cannot talk" in unreachable.stderr



def test_unplugging_at_the_ev_side_leaves_the_cable_in_the_socket(control, evse, events):
    control.ok("plug", connector=2)
    assert control.ok("unplug", connector=2, side="ev")["connector"]["cable_in_socket"] is True
    assert [events.next() for _ in range(4)] == [
        PlugConnected(2), EvDrawChanged(2, True), PlugDisconnected(2), EvDrawChanged(2, False)]
    events.none()
    control.ok("unplug", connector=2)  # now the cable leaves the socket too
    assert events.next() == CableDetached(2)
    assert control.error("unplug", connector=2, side="car")
