"""OpenEvse (RAPI over serial) against an emulated OpenEVSE on a real pseudo-terminal.

The driver opens the emulator's port with pyserial exactly as it would open /dev/ttyUSB0.
Nothing here sleeps a fixed time: tests wait on the driver's events (a queue) or on the
emulator's conditions, each with a deadline.
"""

from __future__ import annotations

import queue
import threading
import time

import pytest

from hal import HalError
from hal.openevse import DRIVER_KEYS, OpenEvse, checksum, frame, from_settings, parse_line
from messages.events import ConnectorFaultChanged, EvDrawChanged, PlugConnected, PlugDisconnected
from tests.hal.rapi_emulator import RapiEmulator

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 0.2  # per try, in these tests (the driver's default is the firmware's 0.5 s)


@pytest.fixture
def emu(tmp_path):
    emulator = RapiEmulator(tmp_path).start()
    yield emulator
    emulator.close()


@pytest.fixture
def make(emu):
    drivers = []

    def make_driver(**kwargs):
        kwargs.setdefault("timeout_s", TIMEOUT)
        kwargs.setdefault("heartbeat_s", 60)
        driver = OpenEvse(emu.port, **kwargs)
        events: queue.Queue = queue.Queue()
        driver.open(events.put)
        drivers.append(driver)
        return driver, events

    yield make_driver
    for driver in drivers:
        driver.close()


def expect(events: queue.Queue, *expected, timeout: float = 5.0) -> None:
    """The next events are exactly `expected`, in order."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < len(expected):
        try:
            got.append(events.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            break
    assert got == list(expected)


def quiet(driver: OpenEvse, events: queue.Queue) -> None:
    """No event pending: a round trip (GG) after the emulator's last line proves the reader has
    handled every earlier line."""
    driver.charging_current_a()
    assert events.empty(), list(events.queue)


# --- frames ----------------------------------------------------------------------------------------


def test_frame_and_checksum_match_the_firmware():
    assert frame(["GS"]) == b"$GS^30\r"  # the example of test-environment.md
    assert frame(["SC", "16", "V"], 0x1A) == f"$SC 16 V :1A^{checksum('$SC 16 V :1A'):02X}\r".encode()
    assert parse_line("$OK 01 0 01 0000 :1A^" + f"{checksum('$OK 01 0 01 0000 :1A'):02X}") == \
        ["OK", "01", "0", "01", "0000", ":1A"]
    assert parse_line("$OK 01 0 01 0000 :1A^00") is None  # bad checksum
    assert parse_line("$OK 01 0 01 0000 :1A") is None  # missing checksum
    assert parse_line("$OK*4F") is None  # the legacy additive form is not accepted


# --- happy path ------------------------------------------------------------------------------------


def test_open_arms_supervision_and_opens_the_contactor(emu, make):
    driver, events = make(heartbeat_s=12, safe_current_a=8)
    assert driver.versions[:2] == ("8.2.3", "5.2.1")
    assert emu.names()[:4] == ["GV", "SY", "FS", "GS"]
    assert emu.commands[1].args == ("12", "8")
    assert (emu.sy_interval, emu.sy_limit) == (12, 8)
    assert emu.mode == "sleeping"  # an OpenEVSE boots enabled: no energy before the station says so
    # every command carries a sequence id, rolling and never 00, and a checksum the EVSE accepted
    seqs = [c.seq for c in emu.commands]
    assert None not in seqs and 0 not in seqs and len(set(seqs)) == len(seqs)
    assert emu.bad_frames == 0
    (state,) = driver.connector_states()
    assert (state.connector, state.plugged, state.ev_drawing, state.error_code) == (1, False, False, "NoError")
    quiet(driver, events)


def test_plug_ev_asks_contactor_and_current_limit(emu, make):
    driver, events = make()
    emu.plug()
    expect(events, PlugConnected(1))
    emu.ev_asks(True)  # asking while the EVSE sleeps: the contactor is still open
    expect(events, EvDrawChanged(1, True))
    before = len(emu.commands)
    driver.set_contactor(1, True)
    assert emu.names(before) == ["FE"] and emu.mode == "enabled" and emu.evse_state() == 0x03
    driver.set_current_limit(1, 16.7)
    assert emu.sc_history[-1] == (16, "V")  # whole amps, rounded down; the volatile form
    assert emu.eeprom_writes == 0 and emu.current_a == 16
    quiet(driver, events)  # closing the contactor changes nothing the station does not know
    (state,) = driver.connector_states()
    assert (state.plugged, state.ev_drawing) == (True, True)
    driver.set_contactor(1, False)
    assert emu.names(before)[-1] == "FS" and emu.evse_state() == 0xFE
    quiet(driver, events)  # sleeping is not a fault and the car is still there
    emu.ev_asks(False)
    expect(events, EvDrawChanged(1, False))
    emu.ev_asks(True)
    emu.unplug()
    expect(events, EvDrawChanged(1, True), EvDrawChanged(1, False), PlugDisconnected(1))


def test_clamped_current_is_fine_and_a_second_connector_is_not(emu, make):
    driver, events = make()
    driver.set_current_limit(1, 2)  # below the J1772 minimum: the EVSE answers $NK 6
    assert emu.sc_history[-1] == (2, "V") and emu.current_a == 6
    with pytest.raises(HalError):
        driver.set_current_limit(1, -1)
    for call in (lambda: driver.set_contactor(2, True), lambda: driver.set_current_limit(2, 10),
                 lambda: driver.set_lock(2, True)):
        with pytest.raises(HalError):
            call()
    assert driver.set_lock(1, True) is True  # no lock motor on RAPI: documented
    driver.show_status(1, "Charging", 5)
    driver.show_status(0, "Available", None)


def test_state_d_counts_as_asking(emu, make):
    driver, events = make()
    driver.set_contactor(1, True)
    emu.plug()
    emu.ev_asks(True, vent=True)
    expect(events, PlugConnected(1), EvDrawChanged(1, True))
    (state,) = driver.connector_states()
    assert state.ev_drawing and state.error_code == "NoError"


def test_disabled_is_not_a_fault_and_the_pilot_tells_the_plug(emu, make):
    driver, events = make()
    emu.plug()
    expect(events, PlugConnected(1))
    emu.set_mode("disabled")
    quiet(driver, events)
    emu.unplug()
    expect(events, PlugDisconnected(1))


def test_readings(emu, make):
    driver, _ = make()
    emu.charging_ma, emu.session_ws = 15500, 7200
    assert driver.charging_current_a() == 15.5
    assert driver.session_energy_wh() == 2.0


# --- faults ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("code,error", [
    (0x05, "EVCommunicationError"), (0x06, "GroundFailure"), (0x07, "GroundFailure"),
    (0x08, "PowerSwitchFailure"), (0x09, "GroundFailure"), (0x0A, "HighTemperature"),
    (0x0B, "OverCurrentFailure"), (0x0E, "PowerSwitchFailure"),
])
def test_fault_states_map_to_error_codes_and_clear(emu, make, code, error):
    driver, events = make()
    emu.plug()
    expect(events, PlugConnected(1))
    emu.fault(code)
    event = events.get(timeout=5)
    assert isinstance(event, ConnectorFaultChanged)
    assert (event.connector, event.error_code, event.vendor_error_code) == (1, error, f"{code:02X}")
    assert event.info and len(event.info) <= 50
    (state,) = driver.connector_states()
    assert state.error_code == error and state.plugged  # the plug is not forgotten during a fault
    emu.send_async_at()  # the same fault again: no new event
    quiet(driver, events)
    emu.clear_fault()
    expect(events, ConnectorFaultChanged(1, "NoError", ""))
    quiet(driver, events)


def test_fault_present_at_open_is_returned_not_emitted(emu, make):
    emu.plug()
    emu.fault(0x06)
    driver, events = make()
    (state,) = driver.connector_states()
    assert state.error_code == "GroundFailure"
    quiet(driver, events)
    emu.clear_fault()
    expect(events, ConnectorFaultChanged(1, "NoError", ""))


# --- a bad line --------------------------------------------------------------------------------------


def test_corrupted_reply_is_not_accepted_and_the_command_is_retried(emu, make):
    driver, events = make()
    emu.plug()
    expect(events, PlugConnected(1))
    emu.corrupt_next_reply()
    before = len(emu.commands)
    (state,) = driver.connector_states()
    assert state.plugged
    assert emu.names(before) == ["GS", "GS"]  # the corrupted answer was not taken
    assert driver.counters["bad_checksum"] == 1


def test_corrupted_replies_every_time_fail_after_the_retries(emu, make):
    driver, _ = make(retries=2)
    emu.corrupt_next_reply(3)
    with pytest.raises(HalError) as err:
        driver.set_contactor(1, True)
    assert err.value.error_code == "InternalError"
    assert driver.counters["bad_checksum"] == 3
    driver.set_contactor(1, True)  # the line is fine again


def test_corrupted_async_line_is_ignored(emu, make):
    driver, events = make()
    emu.plug(announce=False)  # no automatic $AT: send one, corrupted
    emu.send_async_at(corrupt=True)
    quiet(driver, events)
    assert driver.counters["bad_checksum"] == 1
    emu.send_async_at()
    expect(events, PlugConnected(1))


def test_garbage_is_ignored(emu, make):
    driver, events = make()
    emu.garbage(b"\x00\xff\x13noise\r\r\n$$$\r$OK 01 0 01 0000 :01\r")  # the last one has no checksum
    emu.garbage(b"\x07junk")  # no line end: glued in front of the next reply
    (state,) = driver.connector_states()
    assert not state.plugged
    assert driver.counters["garbage"] >= 2 and driver.counters["bad_checksum"] >= 2
    quiet(driver, events)


def test_replies_are_matched_by_sequence_id_with_async_lines_in_between(emu, make):
    driver, events = make()
    emu.interleave_at(True)
    emu.stale_reply_next(2)  # a reply to another sequence id saying "charging", then $AT
    (state,) = driver.connector_states()
    assert (state.plugged, state.ev_drawing) == (False, False)
    driver.set_contactor(1, True)
    assert driver.counters["unmatched"] >= 2
    emu.plug()
    expect(events, PlugConnected(1))
    quiet(driver, events)


# --- no reply, stall ----------------------------------------------------------------------------------


def test_no_reply_raises_within_the_retries(emu, make):
    driver, _ = make(retries=2)
    emu.mute(True)
    started = time.monotonic()
    with pytest.raises(HalError) as err:
        driver.set_contactor(1, True)
    took = time.monotonic() - started
    assert err.value.error_code == "InternalError" and "no reply" in str(err.value)
    assert 3 * TIMEOUT * 0.9 <= took < 3 * TIMEOUT + 0.5
    emu.mute(False)
    driver.set_contactor(1, True)
    assert emu.mode == "enabled"


def test_stall_longer_than_the_timeout_then_recovery(emu, make):
    driver, _ = make(retries=1)
    emu.stall(1.0)
    with pytest.raises(HalError) as err:
        driver.connector_states()
    assert err.value.error_code == "InternalError"
    assert emu.wait_for(emu.stall_over, timeout=5)
    before = len(emu.commands)
    driver.set_contactor(1, True)  # late answers to the stalled GS are dropped by their ids
    assert emu.mode == "enabled"
    assert emu.wait_for(lambda: len(emu.commands) > before)
    assert driver.counters["unmatched"] >= 1


# --- heartbeat supervision -----------------------------------------------------------------------------


def test_heartbeat_keeps_supervision_alive_and_close_lets_it_expire(emu, make):
    driver, _ = make(heartbeat_s=1, safe_current_a=6)
    driver.set_current_limit(1, 20)
    pulses = emu.pulses
    assert emu.wait_for(lambda: emu.pulses >= pulses + 4, timeout=10)  # a pulse every 0.5 s
    assert not emu.supervision_expired() and emu.current_a == 20
    driver.close()
    assert emu.fell_back.wait(timeout=5)
    assert emu.supervision_expired() and emu.current_a == 6


def test_silent_evse_is_reported_and_recovers_with_its_limit_restored(emu, make):
    driver, events = make(heartbeat_s=1, safe_current_a=6, retries=1)
    driver.set_current_limit(1, 24)
    emu.mute(True)  # a hung controller: pulses go unanswered, its supervision falls back
    expect(events, ConnectorFaultChanged(1, "InternalError", "EVSE controller not answering"))
    assert emu.fell_back.wait(timeout=5) and emu.current_a == 6
    before = len(emu.commands)
    emu.mute(False)
    expect(events, ConnectorFaultChanged(1, "NoError", ""))
    # re-armed, the missed pulse acknowledged (restores the maximum), then our limit again
    names = emu.names(before)
    assert names[:2] == ["SY", "SY"] and emu.commands[before + 1].args == ("165",)
    assert emu.sc_history[-1] == (24, "V") and emu.current_a == 24


def test_evse_reboot_is_resynchronised(emu, make):
    driver, events = make()
    driver.set_current_limit(1, 10)
    before = len(emu.commands)
    emu.reboot()  # boots enabled at its EEPROM current
    emu.wait_for_command("GS", after=before)
    assert emu.names(before) == ["SY", "FS", "SC", "GS"]
    assert emu.mode == "sleeping" and emu.current_a == 10
    quiet(driver, events)


# --- the port vanishing (USB unplug) -------------------------------------------------------------------


def test_port_vanishing_then_reappearing(emu, make):
    driver, events = make()
    emu.vanish()
    expect(events, ConnectorFaultChanged(1, "InternalError", "EVSE serial port gone"))
    started = time.monotonic()
    with pytest.raises(HalError) as err:
        driver.set_contactor(1, True)  # fails at once, and is remembered
    assert time.monotonic() - started < TIMEOUT
    assert err.value.error_code == "InternalError"
    with pytest.raises(HalError):
        driver.connector_states()
    emu.plug()  # the car arrives while the adapter is away
    emu.reappear()
    expect(events, PlugConnected(1), ConnectorFaultChanged(1, "NoError", ""))
    assert emu.arms == 2 and emu.mode == "enabled"  # SY re-armed, the contactor the station wants
    (state,) = driver.connector_states()
    assert state.plugged and state.error_code == "NoError"
    assert driver.counters["reopened"] == 1


def test_port_vanishing_during_a_command_fails_it_at_once(emu, make):
    driver, events = make(timeout_s=2.0)
    emu.mute(True)
    started = time.monotonic()
    threading.Timer(0.1, emu.vanish).start()  # the call is under way when the adapter goes
    with pytest.raises(HalError):
        driver.set_contactor(1, True)
    assert time.monotonic() - started < 1.5
    expect(events, ConnectorFaultChanged(1, "InternalError", "EVSE serial port gone"))


# --- opening -------------------------------------------------------------------------------------------


def test_open_errors(emu, tmp_path):
    with pytest.raises(HalError) as err:
        OpenEvse(str(tmp_path / "nothing"), timeout_s=TIMEOUT).open(lambda e: None)
    assert err.value.error_code == "InternalError"
    with pytest.raises(HalError) as err:
        OpenEvse(emu.port, timeout_s=TIMEOUT, rs485=True).open(lambda e: None)
    assert "RS-485" in str(err.value)
    emu.mute(True)
    with pytest.raises(HalError) as err:
        OpenEvse(emu.port, timeout_s=TIMEOUT, retries=0).open(lambda e: None)
    assert err.value.error_code == "InternalError"


def test_exclusive_open(emu, make):
    make()
    with pytest.raises(HalError):
        OpenEvse(emu.port, timeout_s=TIMEOUT).open(lambda e: None)


# --- settings ------------------------------------------------------------------------------------------


def test_from_settings():
    driver = from_settings({"driver": "openevse", "port": "/dev/ttyUSB0", "baudrate": 38400, "timeout_s": 1,
                            "parity": "e", "rs485": True, "exclusive": False, "heartbeat_s": 20,
                            "safe_current_a": 10})
    assert (driver.port, driver.baudrate, driver.timeout_s, driver.parity, driver.rs485, driver.exclusive,
            driver.heartbeat_s, driver.safe_current_a) == ("/dev/ttyUSB0", 38400, 1.0, "E", True, False, 20, 10)
    assert set(DRIVER_KEYS) == {"port", "baudrate", "timeout_s", "parity", "rs485", "exclusive", "heartbeat_s",
                                "safe_current_a"}


@pytest.mark.parametrize("section,key", [
    ({}, "port"),
    ({"port": ""}, "port"),
    ({"port": 3}, "port"),
    ({"port": "/dev/x", "parity": "X"}, "parity"),
    ({"port": "/dev/x", "baudrate": 0}, "baudrate"),
    ({"port": "/dev/x", "baudrate": True}, "baudrate"),
    ({"port": "/dev/x", "timeout_s": -1.0}, "timeout_s"),
    ({"port": "/dev/x", "timeout_s": "1"}, "timeout_s"),
    ({"port": "/dev/x", "heartbeat_s": 0}, "heartbeat_s"),
    ({"port": "/dev/x", "safe_current_a": 0}, "safe_current_a"),
    ({"port": "/dev/x", "rs485": "yes"}, "rs485"),
    ({"port": "/dev/x", "speed": 9600}, "speed"),
])
def test_from_settings_rejects(section, key):
    with pytest.raises(ValueError, match=key):
        from_settings(section)
