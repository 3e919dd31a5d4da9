"""hal.pcsc.PcscReader against the real PC/SC stack: pcscd + vpcd + a virtual card (see conftest).

Waiting is on the queue of emitted events, with deadlines; the only fixed windows are those of
negative checks ("no second tap"), and those are followed by a positive check whenever one
exists (the next card's tap is the next event). A few tests at the end use a scripted stand-in
for smartcard.scard, for what vpcd cannot do (a reader unplugged from the list, a card lifted
and put back between two polls).
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from hal import HalError
from hal.pcsc import DRIVER_KEYS, PcscReader, format_uid, from_settings
from messages.events import CardPresented, ConnectorFaultChanged
from tests.hal.conftest import EventLog
from tests.hal.vcard import SW_FUNCTION_NOT_SUPPORTED

pytestmark = pytest.mark.timeout(60)

UID_A = "04A1B2C3D4E5F6"  # a 7-byte NXP UID
UID_B = "DEADBEEF"  # a 4-byte UID
RESTING = 1.5  # seconds a card rests on the reader in the "still one tap" checks (> 3 pcscd polls)


# --- taps -----------------------------------------------------------------------------------------


def test_insert_gives_one_tap_and_a_resting_card_no_more(pcsc):
    reader, events = pcsc.driver()
    card = pcsc.card(UID_A)
    card.insert()
    events.expect_tap(UID_A)
    events.expect_no_tap(RESTING)
    assert card.uid_apdus() == 1
    # the driver is still listening: the next tap is the next card's
    card.remove()
    other = pcsc.card(UID_B)
    other.insert()
    events.expect_tap(UID_B)
    assert events.taps() == [UID_A, UID_B]
    assert events.faults() == []
    assert reader.reader_name == pcsc.daemon.slot_name(0)


def test_remove_and_present_again_is_a_second_tap(pcsc):
    _, events = pcsc.driver()
    card = pcsc.card(UID_A)
    card.insert()
    events.expect_tap(UID_A)
    card.remove()
    pcsc.wait_slot(0, present=False)
    card.insert()
    events.expect_tap(UID_A)
    card.remove()
    pcsc.wait_slot(0, present=False)
    card.insert()
    events.expect_tap(UID_A)
    assert events.taps() == [UID_A] * 3


def test_two_different_cards(pcsc):
    _, events = pcsc.driver()
    first, second = pcsc.card(UID_A), pcsc.card(UID_B)
    first.insert()
    events.expect_tap(UID_A)
    first.remove()
    second.insert()
    events.expect_tap(UID_B)
    assert events.taps() == [UID_A, UID_B]


def test_card_answering_6a81_gives_no_tap(pcsc, caplog):
    caplog.set_level(logging.WARNING, logger="hal.pcsc")
    _, events = pcsc.driver()
    refusing = pcsc.card("11223344", uid_sw=SW_FUNCTION_NOT_SUPPORTED)
    refusing.insert()
    events.expect_no_tap(RESTING)
    assert refusing.uid_apdus() == 1, "the driver asked once and did not retry a status word"
    refusing.remove()
    good = pcsc.card(UID_B)
    good.insert()
    events.expect_tap(UID_B)  # the next tap is the good card's: none came from the refusing one
    assert events.taps() == [UID_B]
    assert any("6A81" in r.getMessage() for r in caplog.records)


def test_card_removed_too_fast_gives_no_tap(pcsc, caplog):
    caplog.set_level(logging.INFO, logger="hal.pcsc")
    _, events = pcsc.driver()
    fleeing = pcsc.card(UID_A, vanish_on_uid=True)  # leaves the field when asked for its UID
    fleeing.insert()
    fleeing.wait_gone()
    pcsc.wait_slot(0, present=False)
    good = pcsc.card(UID_B)
    good.insert()
    events.expect_tap(UID_B)
    assert events.taps() == [UID_B]
    assert events.faults() == []
    assert any("removed too fast" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("uid_format, uid, id_tag", [
    ("hex-upper", "04a1b2c3", "04A1B2C3"),
    ("hex-lower", "04A1B2C3", "04a1b2c3"),
    ("decimal", "04A1B2C3", str(0x04A1B2C3)),
    ("decimal", "0000000000000001", "1"),
    ("hex-upper", "00112233445566778899", "00112233445566778899"),  # 10 bytes: exactly 20 characters
])
def test_uid_formats(pcsc, uid_format, uid, id_tag):
    _, events = pcsc.driver(uid_format=uid_format)
    pcsc.card(uid).insert()
    events.expect_tap(id_tag)


def test_uid_too_long_for_an_id_tag_is_refused(pcsc, caplog):
    caplog.set_level(logging.WARNING, logger="hal.pcsc")
    _, events = pcsc.driver(uid_format="decimal")
    long_decimal = pcsc.card("FF" * 10)  # 25 decimal digits > 20
    long_decimal.insert()
    events.expect_no_tap(RESTING)
    long_decimal.remove()
    too_many_bytes = pcsc.card("01" * 11)  # 11 bytes > max_uid_bytes
    too_many_bytes.insert()
    events.expect_no_tap(RESTING)
    too_many_bytes.remove()
    good = pcsc.card("01020304")
    good.insert()
    events.expect_tap(str(0x01020304))
    assert events.taps() == [str(0x01020304)]
    messages = [r.getMessage() for r in caplog.records]
    assert any("refused" in m and "idTag" in m for m in messages)
    assert any("refused" in m and "longer than 10 bytes" in m for m in messages)


# --- choosing the reader --------------------------------------------------------------------------


def test_reader_match_chooses_the_reader(pcsc):
    reader, events = pcsc.driver(reader_match="virtual pcd 00 01")  # case-insensitive substring
    on_slot0 = pcsc.card(UID_A, slot=0)
    on_slot0.insert()
    pcsc.wait_slot(0, present=True)
    events.expect_no_tap(RESTING)
    on_slot1 = pcsc.card(UID_B, slot=1)
    on_slot1.insert()
    events.expect_tap(UID_B)
    assert events.taps() == [UID_B]
    assert reader.reader_name == "Virtual PCD 00 01"


def test_reader_match_without_a_match_reports_reader_failure(pcsc):
    reader, events = pcsc.driver(reader_match="ACR122")
    fault = events.expect_fault("ReaderFailure", "no reader")
    assert fault.info == "no reader matching 'ACR122'"
    pcsc.card(UID_A).insert()
    pcsc.wait_slot(0, present=True)
    events.expect_no_tap(RESTING)
    assert reader._thread is not None and reader._thread.is_alive(), "the driver keeps looking"
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 1.0
    assert events.faults() == [("ReaderFailure", "no reader matching 'ACR122'")], "reported once"


# --- pcscd going away and coming back -------------------------------------------------------------


def test_pcscd_restart_while_running(pcsc):
    reader, events = pcsc.driver()
    card = pcsc.card(UID_A)
    card.insert()
    events.expect_tap(UID_A)
    pcsc.daemon.stop()
    card.wait_gone()  # vpcd went with pcscd: the card is off the reader
    events.expect_fault("ReaderFailure", "no PC/SC service")
    pcsc.daemon.start()
    events.expect_fault("NoError")
    card.insert()
    events.expect_tap(UID_A)
    assert events.taps() == [UID_A, UID_A]
    assert events.faults() == [("ReaderFailure", "no PC/SC service"), ("NoError", "")]
    assert reader._thread is not None and reader._thread.is_alive()


def test_driver_opened_before_pcscd_runs(pcsc):
    pcsc.daemon.stop()
    reader, events = pcsc.driver()
    events.expect_fault("ReaderFailure", "no PC/SC service")
    pcsc.daemon.start()
    events.expect_fault("NoError")
    pcsc.card(UID_B).insert()
    events.expect_tap(UID_B)
    assert events.faults() == [("ReaderFailure", "no PC/SC service"), ("NoError", "")]


# --- close() --------------------------------------------------------------------------------------


def test_close_interrupts_the_wait_promptly(pcsc):
    # poll_s = 30: only SCardCancel can end the wait within a second
    reader, events = pcsc.driver(poll_s=30.0)
    pcsc.card(UID_A).insert()
    events.expect_tap(UID_A)  # the thread is now inside SCardGetStatusChange
    thread = reader._thread
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 1.0
    assert not thread.is_alive()


def test_close_during_back_off_is_prompt(pcsc):
    pcsc.daemon.stop()
    reader, events = pcsc.driver()
    events.expect_fault("ReaderFailure", "no PC/SC service")
    thread = reader._thread
    started = time.monotonic()
    reader.close()
    assert time.monotonic() - started < 1.0
    assert not thread.is_alive()


def test_reopen_after_close(pcsc):
    reader, events = pcsc.driver()
    card = pcsc.card(UID_A)
    card.insert()
    events.expect_tap(UID_A)
    reader.close()
    card.remove()
    pcsc.wait_slot(0, present=False)
    again = EventLog()
    reader.open(again)
    card.insert()
    again.expect_tap(UID_A)


# --- settings, formats, no pyscard (no PC/SC stack needed) ----------------------------------------


def test_from_settings():
    reader = from_settings({"driver": "pcsc", "reader": "ACR122", "uid_format": "hex-lower"})
    assert (reader.reader_match, reader.uid_format) == ("ACR122", "hex-lower")
    default = from_settings({"driver": "pcsc"})
    assert (default.reader_match, default.uid_format) == ("", "hex-upper")
    assert DRIVER_KEYS == {"reader": str, "uid_format": str}


@pytest.mark.parametrize("section, key", [
    ({"uid_format": "hex"}, "hal.rfid.uid_format"),
    ({"uid_format": 1}, "hal.rfid.uid_format"),
    ({"reader": 5}, "hal.rfid.reader"),
    ({"port": "/dev/ttyUSB0"}, "hal.rfid.port"),
])
def test_from_settings_rejects(section, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        from_settings({"driver": "pcsc", **section})


def test_constructor_rejects_bad_values():
    for kwargs in ({"uid_format": "HEX"}, {"poll_s": 0}, {"max_uid_bytes": 0}, {"read_retries": -1}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            PcscReader(**kwargs)


def test_format_uid():
    uid = bytes.fromhex("04A1B2C3D4E5F6")
    assert format_uid(uid, "hex-upper") == "04A1B2C3D4E5F6"
    assert format_uid(uid, "hex-lower") == "04a1b2c3d4e5f6"
    assert format_uid(uid, "decimal") == str(int("04A1B2C3D4E5F6", 16))


def test_module_imports_without_pyscard_and_open_says_why(monkeypatch):
    root = Path(__file__).resolve().parents[2]
    code = "import sys, hal.pcsc; assert 'smartcard' not in sys.modules, 'pyscard imported at module import'"
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=30)
    monkeypatch.setitem(sys.modules, "smartcard", None)  # makes `from smartcard import scard` fail
    reader = PcscReader()
    with pytest.raises(HalError, match="pyscard") as raised:
        reader.open(EventLog())
    assert raised.value.error_code == "ReaderFailure"


# --- a scripted smartcard.scard, for what vpcd cannot show ----------------------------------------


class FakeScard:
    """Enough of smartcard.scard for the driver: readers that can be unplugged, cards that can be
    swapped within one poll, with pcsc-lite's event counter in the upper 16 bits of the state."""

    SCARD_S_SUCCESS = 0
    SCARD_SCOPE_USER = 0
    SCARD_SHARE_SHARED = 2
    SCARD_PROTOCOL_T0, SCARD_PROTOCOL_T1 = 1, 2
    SCARD_LEAVE_CARD = 0
    SCARD_STATE_CHANGED = 0x2

    def __init__(self, *readers: str):
        self.cond = threading.Condition()
        self.readers: dict[str, dict] = {name: {"uid": None, "counter": 0} for name in readers}
        self._next_ctx = 0
        self._waiting: set[int] = set()
        self._cancelled: set[int] = set()

    # test controls
    def put(self, name: str, uid: str) -> None:
        with self.cond:
            slot = self.readers[name]
            slot["uid"], slot["counter"] = bytes.fromhex(uid), slot["counter"] + 1
            self.cond.notify_all()

    def take(self, name: str) -> None:
        with self.cond:
            slot = self.readers[name]
            slot["uid"], slot["counter"] = None, slot["counter"] + 1
            self.cond.notify_all()

    def swap_within_one_poll(self, name: str, uid: str) -> None:
        with self.cond:
            self.take(name)
            self.put(name, uid)

    def unplug(self, name: str) -> None:
        with self.cond:
            del self.readers[name]
            self.cond.notify_all()

    def plug(self, name: str) -> None:
        with self.cond:
            self.readers[name] = {"uid": None, "counter": 0}
            self.cond.notify_all()

    # the API
    def SCardEstablishContext(self, scope):
        with self.cond:
            self._next_ctx += 1
            return 0, self._next_ctx

    def SCardReleaseContext(self, ctx):
        return 0

    def SCardCancel(self, ctx):
        with self.cond:
            if ctx in self._waiting:  # like pcsc-lite: only a waiting call is cancelled
                self._cancelled.add(ctx)
                self.cond.notify_all()
        return 0

    def SCardListReaders(self, ctx, groups):
        with self.cond:
            return (0, list(self.readers)) if self.readers else (0x8010002E, [])

    def _state(self, name: str) -> int:
        if name not in self.readers:
            return 0x4  # UNKNOWN
        slot = self.readers[name]
        return (slot["counter"] << 16) | (0x20 if slot["uid"] is not None else 0x10)

    def SCardGetStatusChange(self, ctx, timeout_ms, states):
        (name, current), = states
        deadline = time.monotonic() + timeout_ms / 1000
        with self.cond:
            if name not in self.readers:
                return 0x80100009, []
            self._waiting.add(ctx)
            try:
                while True:
                    if ctx in self._cancelled:
                        self._cancelled.discard(ctx)
                        return 0x80100002, []
                    state = self._state(name)
                    if state != current:
                        return 0, [(name, state | 0x2, [])]
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return 0x8010000A, [(name, current, [])]
                    self.cond.wait(remaining)
            finally:
                self._waiting.discard(ctx)

    def SCardConnect(self, ctx, name, share, protocols):
        with self.cond:
            if name not in self.readers:
                return 0x80100009, 0, 0
            if self.readers[name]["uid"] is None:
                return 0x8010000C, 0, 0
            return 0, name, 2

    def SCardTransmit(self, card, protocol, apdu):
        with self.cond:
            slot = self.readers.get(card)
            if slot is None or slot["uid"] is None:
                return 0x80100069, []
            return 0, list(slot["uid"]) + [0x90, 0x00]

    def SCardDisconnect(self, card, disposition):
        return 0

    def SCardGetErrorMessage(self, rc):
        return "(fake)"


@pytest.fixture
def fake_scard(monkeypatch):
    fake = FakeScard("Generic Reader 00 00", "ACS ACR122U PICC Interface 00 00")
    monkeypatch.setitem(sys.modules, "smartcard", types.SimpleNamespace(scard=fake))
    return fake


@pytest.fixture
def fake_driver(fake_scard):
    reader = PcscReader(reader_match="acr122u")
    events = EventLog()
    reader.open(events)
    yield reader, events
    reader.close()


ACR = "ACS ACR122U PICC Interface 00 00"


def test_reader_unplugged_and_plugged_back(fake_scard, fake_driver):
    reader, events = fake_driver
    fake_scard.put(ACR, UID_A)
    events.expect_tap(UID_A)
    assert reader.reader_name == ACR
    fake_scard.unplug(ACR)
    events.expect_fault("ReaderFailure")
    events.expect_fault("ReaderFailure", "no reader matching 'acr122u'")
    fake_scard.plug(ACR)
    events.expect_fault("NoError")
    fake_scard.put(ACR, UID_B)
    events.expect_tap(UID_B)
    assert events.taps() == [UID_A, UID_B]
    assert events.faults() == [("ReaderFailure", "reader gone"),
                               ("ReaderFailure", "no reader matching 'acr122u'"), ("NoError", "")]


def test_card_lifted_and_put_back_between_polls_is_a_new_tap(fake_scard, fake_driver):
    _, events = fake_driver
    fake_scard.put(ACR, UID_A)
    events.expect_tap(UID_A)
    fake_scard.swap_within_one_poll(ACR, UID_A)  # still PRESENT, but the event counter moved
    events.expect_tap(UID_A)
    events.expect_no_tap(0.5)
    assert events.taps() == [UID_A, UID_A]


def test_emit_failing_does_not_kill_the_loop(fake_scard):
    events = EventLog()
    failed: list[object] = []

    def emit(event: object) -> None:
        events(event)
        if not failed:
            failed.append(event)
            raise RuntimeError("owner stopping")

    reader = PcscReader()
    reader.open(emit)
    try:
        fake_scard.put("Generic Reader 00 00", UID_A)
        events.expect_tap(UID_A)
        fake_scard.take("Generic Reader 00 00")
        fake_scard.put("Generic Reader 00 00", UID_B)
        events.expect_tap(UID_B)
        assert failed == [CardPresented(UID_A)]
        assert reader._thread.is_alive()
    finally:
        reader.close()


def test_fault_events_are_connector_zero_reader_failure(fake_scard):
    fake_scard.unplug(ACR)
    fake_scard.unplug("Generic Reader 00 00")
    reader = PcscReader()
    events = EventLog()
    reader.open(events)
    try:
        fault = events.expect_fault("ReaderFailure", "no reader")
        assert fault == ConnectorFaultChanged(0, "ReaderFailure", "no reader")
    finally:
        reader.close()
