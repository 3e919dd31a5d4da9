"""OpenEVSE over RAPI (serial): the EvseController for one single-connector OpenEVSE.

Wire format (OpenEVSE firmware `rapi_proc.cpp`, RAPI 5.x):

- A command is ``$cc p1 p2 :ss^XX\\r``: ``ss`` a rolling sequence id (2 hex digits, never 00),
  sent as its own token; ``XX`` the 8-bit XOR of every character before ``^``, upper-case hex.
- A reply is ``$OK ...`` or ``$NK ...`` with the same ``:ss`` token and a checksum. A command
  that reaches the EVSE with a bad checksum is answered ``$NK^20`` without a sequence id.
- Asynchronous lines arrive between replies: ``$AT evsestate pilotstate amps vflags`` on every
  state change, ``$AB postcode fwrev`` after a reboot (and ``$AN``/``$WF``, ignored here).

Threads. The driver owns two daemon threads:

- the *reader* reads the port, verifies the checksum of every line (a bad or missing checksum is
  logged, counted and dropped), hands ``$OK``/``$NK`` to the waiting command when the sequence id
  matches (anything else is dropped) and turns ``$AT`` into events. When the port vanishes (USB
  unplug: pyserial raises SerialException/OSError) it reports ``InternalError`` and
  re-opens the port with back-off (0.5 s doubling to 10 s);
- the *supervisor* pulses the EVSE's heartbeat supervision (``SY``) every ``heartbeat_s / 2`` s and
  re-synchronises the EVSE after a re-open, a reboot (``$AB``), a missed pulse or a silence:
  it re-arms ``SY``, acknowledges a missed pulse, re-applies the contactor and current limit
  the station last asked for, re-reads ``GS`` and emits what changed, then ``NoError`` (or the
  EVSE's own fault).

Commands are serialised (one outstanding at a time); each try waits ``timeout_s`` for its reply,
a command is tried ``retries + 1`` times, then HalError(..., "InternalError"). A reply to
any try of the current command is accepted (they are the same command), nothing else. While the
port is gone, commands fail at once. The serial link is the station's own, to its EVSE controller: its
loss is ``InternalError`` (OCPP 1.6 §4.9 keeps ``EVCommunicationError``, a warning, for the link to the
EV, e.g. the EVSE's failed diode check).

Heartbeat supervision (``SY interval limit``): if the station process hangs or dies, the EVSE
falls back to ``safe_current_a`` by itself after ``heartbeat_s``. It then answers every pulse
``$NK`` until acknowledged (``SY 165``, cookie 0xA5), which restores its maximum current: the
driver re-applies the station's limit right after. ``close`` stops pulsing on purpose.

Contactor. ``set_contactor(1, True)`` enables the EVSE (``FE``), ``False`` puts it to sleep
(``FS``: the relay opens, the pilot stays on so the car is still detected). An OpenEVSE boots
enabled, so ``open`` puts it to sleep: the HAL starts with the contactor open.

Not controlled through RAPI: the socket lock (``set_lock`` reports success; OpenEVSE stations
have a fixed cable, or a lock wired to the EVSE's own logic) and the status indicator
(``show_status`` is a no-op; the EVSE's LCD/LED shows its own state).

Requires RAPI >= 3.0.0 (sequence ids); checksummed replies (>= 2.0.0).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Mapping

import serial
import serial.rs485

from hal import ConnectorHardwareState, Emit, HalError
from messages.events import ConnectorFaultChanged, EvDrawChanged, PlugConnected, PlugDisconnected

log = logging.getLogger(__name__)

CONNECTOR = 1

# station.toml keys of `[hal.evse] driver = "openevse"` and their TOML types.
DRIVER_KEYS: dict[str, type] = {
    "port": str,
    "baudrate": int,
    "timeout_s": float,
    "parity": str,
    "rs485": bool,
    "exclusive": bool,
    "heartbeat_s": int,
    "safe_current_a": int,
}

# EVSE states (open_evse.h)
STATE_UNKNOWN = 0x00
STATE_A, STATE_B, STATE_C, STATE_D = 0x01, 0x02, 0x03, 0x04
STATE_SLEEPING, STATE_DISABLED = 0xFE, 0xFF
FAULT_FIRST, FAULT_LAST = 0x05, 0x0E

# fault state -> (ChargePointErrorCode, info); 04 (vent required) is handled as "EV asking".
FAULTS: dict[int, tuple[str, str]] = {
    0x05: ("EVCommunicationError", "diode check failed"),
    0x06: ("GroundFailure", "GFCI fault"),
    0x07: ("GroundFailure", "no ground"),
    0x08: ("PowerSwitchFailure", "stuck relay"),
    0x09: ("GroundFailure", "GFI self-test failed"),
    0x0A: ("HighTemperature", "over temperature"),
    0x0B: ("OverCurrentFailure", "over current"),
    0x0E: ("PowerSwitchFailure", "relay closure fault"),
}

HS_ACK_COOKIE = 0xA5  # `SY 165` acknowledges a missed heartbeat pulse
HS_MISSED_NOACK = 2  # third field of an SY reply: a pulse was missed, not yet acknowledged

MAX_LINE = 256  # a line longer than this without CR is garbage
REOPEN_FIRST_S, REOPEN_MAX_S = 0.5, 10.0
MIN_AMPS, MAX_AMPS = 6, 80  # J1772 minimum; OpenEVSE maximum


def checksum(text: str) -> int:
    """RAPI checksum: the 8-bit XOR of every character."""
    x = 0
    for ch in text.encode("latin-1", "replace"):
        x ^= ch
    return x


def frame(words: tuple[str, ...] | list[str], seq: int | None = None) -> bytes:
    """``$cc p1 p2 :ss^XX\\r`` as bytes."""
    body = "$" + " ".join(words)
    if seq is not None:
        body += f" :{seq:02X}"
    return f"{body}^{checksum(body):02X}\r".encode("ascii")


def parse_line(line: str) -> list[str] | None:
    """The tokens of a checksummed line (``$OK 01 :1A^XX`` -> ``["OK", "01", ":1A"]``), or None
    when the checksum is bad or missing."""
    body, sep, chk = line.rpartition("^")
    if not sep or not body.startswith("$") or len(chk) != 2:
        return None
    try:
        want = int(chk, 16)
    except ValueError:
        return None
    if checksum(body) != want:
        return None
    tokens = body[1:].split()
    return tokens or None


def _hex(token: str) -> int:
    return int(token, 16)


@dataclass(frozen=True)
class _View:
    """What the station was told (or will be told) about the connector."""

    plugged: bool = False
    asking: bool = False
    evse_state: int = STATE_UNKNOWN
    error_code: str = "NoError"  # the EVSE's own fault
    info: str = ""


class _Waiter:
    """The one outstanding command: which sequence ids answer it, and the answer."""

    def __init__(self) -> None:
        self.seqs: set[int] = set()
        self.event = threading.Event()
        self.ok = False
        self.tokens: list[str] = []
        self.rx = 0  # reader line number of the reply (orders it against $AT lines)
        self.aborted = ""  # why the wait ended without a reply: the port vanished, the driver closed


class OpenEvse:
    """EvseController for one OpenEVSE (connector 1) over RAPI."""

    def __init__(self, port: str, baudrate: int = 115200, timeout_s: float = 0.5, parity: str = "N",
                 rs485: bool = False, exclusive: bool = True, heartbeat_s: int = 10,
                 safe_current_a: int = 6, retries: int = 2):
        _validate(port=port, baudrate=baudrate, timeout_s=timeout_s, parity=parity, rs485=rs485,
                  exclusive=exclusive, heartbeat_s=heartbeat_s, safe_current_a=safe_current_a)
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an integer >= 0, got {retries!r}")
        self.port, self.baudrate, self.timeout_s = port, baudrate, float(timeout_s)
        self.parity, self.rs485, self.exclusive = parity.upper(), rs485, exclusive
        self.heartbeat_s, self.safe_current_a, self.retries = heartbeat_s, safe_current_a, retries

        self.versions: tuple[str, ...] = ()  # from GV: firmware, RAPI
        self.counters = {"bad_checksum": 0, "garbage": 0, "unmatched": 0, "reopened": 0}

        self._lock = threading.RLock()  # guards everything below but the command lock
        self._cmd_lock = threading.Lock()  # one command outstanding at a time
        self._ser: serial.Serial | None = None
        self._emit: Emit | None = None
        self._emitting = False  # open() finished: changes become events
        self._closing = threading.Event()
        self._wake = threading.Event()  # wakes the supervisor
        self._reader: threading.Thread | None = None
        self._supervisor: threading.Thread | None = None
        self._waiter: _Waiter | None = None
        self._seq = 0
        self._rx = 0  # number of lines the reader handled
        self._applied_rx = -1  # line number of the state last applied
        self._view = _View()
        self._reported = "NoError"  # the error code last told (or returned by connector_states)
        self._link_error: str | None = None  # why the EVSE cannot be reached, while it cannot
        self._resync_needed = False
        self._want_enabled = False  # the contactor the station asked for (False until told)
        self._want_amps: int | None = None  # the current limit the station asked for
        self._vent_noted = False

    # --- EvseController ---------------------------------------------------------------------

    def open(self, emit: Emit) -> None:
        with self._lock:
            if self._reader is not None:
                raise HalError("OpenEVSE driver already open", "OtherError")
            self._emit, self._emitting = emit, False
            self._closing, self._wake = threading.Event(), threading.Event()
            self._view, self._reported, self._link_error = _View(), "NoError", None
            self._applied_rx, self._resync_needed = -1, False
            self._want_enabled, self._want_amps = False, None  # the HAL starts with the contactor open
            self._ser = self._open_port()
            self._reader = threading.Thread(target=self._read_loop, args=(self._closing,),
                                            name="openevse-reader", daemon=True)
        self._reader.start()
        try:
            tokens = self._expect_ok("GV")
            self.versions = tuple(tokens)
            log.info("OpenEVSE on %s: firmware %s, RAPI %s", self.port,
                     tokens[0] if tokens else "?", tokens[1] if len(tokens) > 1 else "?")
            self._sync(emit_changes=False)
        except BaseException:
            self.close()
            raise
        with self._lock:
            self._emitting = True
            self._supervisor = threading.Thread(target=self._supervise, args=(self._closing, self._wake),
                                                name="openevse-heartbeat", daemon=True)
        self._supervisor.start()

    def close(self) -> None:
        """Stop pulsing (the EVSE falls back to safe_current_a after heartbeat_s) and close the port."""
        with self._lock:
            reader, supervisor = self._reader, self._supervisor
            self._reader = self._supervisor = None
            self._emitting = False
            self._closing.set()
            self._wake.set()
            if self._waiter is not None:  # a command waiting for a reply gives up now
                self._waiter.aborted = "OpenEVSE driver closed"
                self._waiter.event.set()
            ser = self._ser
        if reader is None:
            return
        if supervisor is not None and supervisor is not threading.current_thread():
            supervisor.join(timeout=(self.retries + 1) * self.timeout_s * 4 + 5)
        if ser is not None:
            try:
                ser.cancel_read()
            except Exception:
                pass
        if reader is not threading.current_thread():
            reader.join(timeout=5)
        with self._lock:
            ser, self._ser = self._ser, None
            self._emit = None
        _close_quietly(ser)

    def connector_states(self) -> tuple[ConnectorHardwareState, ...]:
        """Reads GS now. The caller learns the state from the answer: it is not also emitted."""
        state, elapsed, pilot, vflags, rx = self._read_gs()
        with self._lock:
            self._apply(state, pilot, vflags, rx, emit_changes=False)
            view = self._view
            code, info = self._error_locked()
            self._reported = code
        return (ConnectorHardwareState(CONNECTOR, view.plugged, view.asking, code, info),)

    def set_contactor(self, connector: int, closed: bool) -> None:
        self._check_connector(connector)
        with self._lock:
            self._want_enabled = bool(closed)  # re-applied after a re-open even if this call fails
        self._expect_ok("FE" if closed else "FS")

    def set_lock(self, connector: int, locked: bool) -> bool:
        """RAPI has no lock motor command: an OpenEVSE station has a fixed cable (or a lock the
        EVSE drives by itself), so there is nothing to fail here."""
        self._check_connector(connector)
        return True

    def set_current_limit(self, connector: int, amps: float) -> None:
        """``SC amps V``: the volatile form, no EEPROM write. Whole amps, rounded down; the EVSE
        clamps to its range and answers ``$NK <amps set>`` (logged, not an error)."""
        self._check_connector(connector)
        if isinstance(amps, bool) or not isinstance(amps, (int, float)) or not amps >= 0 or math.isinf(amps):
            raise HalError(f"current limit must be a number >= 0 A, got {amps!r}", "OtherError")
        whole = int(math.floor(amps))
        with self._lock:
            self._want_amps = whole
        self._set_current(whole)

    def show_status(self, connector: int, status: str, transaction_id: int | None,
                    reservation_id: int | None = None) -> None:
        """No-op: the OpenEVSE's display shows its own state."""
        if connector not in (0, CONNECTOR):
            self._check_connector(connector)

    # --- extra readings (not in the EvseController Protocol) -----------------------------------

    def charging_current_a(self) -> float | None:
        """``GG``: the EVSE's ammeter in A, None when it has no ammeter."""
        tokens = self._expect_ok("GG")
        milliamps = int(tokens[0])
        return None if milliamps < 0 else milliamps / 1000.0

    def session_energy_wh(self) -> float:
        """``GU``: energy of the present session in Wh (the EVSE counts watt-seconds)."""
        tokens = self._expect_ok("GU")
        return int(tokens[0]) / 3600.0

    # --- port ----------------------------------------------------------------------------------

    def _open_port(self) -> serial.Serial:
        try:
            ser = serial.Serial(self.port, self.baudrate, timeout=self.timeout_s, write_timeout=self.timeout_s,
                                parity=self.parity, exclusive=self.exclusive)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise HalError(f"cannot open EVSE port {self.port}: {exc}", "InternalError") from exc
        if self.rs485:
            try:
                ser.rs485_mode = serial.rs485.RS485Settings()
            except (ValueError, OSError, serial.SerialException) as exc:
                _close_quietly(ser)
                raise HalError(f"RS-485 mode not supported on {self.port} ({exc}); set rs485 = false "
                               "for an RS-232/USB adapter", "OtherError") from exc
        return ser

    def _port_lost(self, ser: serial.Serial, exc: BaseException) -> None:
        with self._lock:
            if self._ser is not ser:
                return
            self._ser = None
            log.error("EVSE port %s is gone: %s", self.port, exc)
            if self._waiter is not None:
                self._waiter.aborted = f"EVSE port {self.port} is gone"
                self._waiter.event.set()
            self._link_error = "EVSE serial port gone"
            self._update_fault_locked()
        _close_quietly(ser)

    # --- reader thread -------------------------------------------------------------------------

    def _read_loop(self, closing: threading.Event) -> None:
        buf = bytearray()
        delay = REOPEN_FIRST_S
        while not closing.is_set():
            ser = self._ser
            if ser is None:  # gone: re-open with back-off
                if closing.wait(delay):
                    break
                try:
                    ser = self._open_port()
                except HalError as exc:
                    log.debug("EVSE port still gone: %s", exc)
                    delay = min(delay * 2, REOPEN_MAX_S)
                    continue
                with self._lock:
                    if closing.is_set():
                        _close_quietly(ser)
                        break
                    self._ser, self._resync_needed = ser, True
                    self.counters["reopened"] += 1
                log.warning("EVSE port %s is back", self.port)
                buf.clear()
                delay = REOPEN_FIRST_S
                self._wake.set()
                continue
            try:
                data = ser.read(max(1, ser.in_waiting))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                # TypeError/AttributeError: pyserial's read on a port closed under it
                if closing.is_set():
                    break
                self._port_lost(ser, exc)
                continue
            if not data:
                continue
            buf += data
            while True:
                end = buf.find(b"\r")
                if end < 0:
                    break
                raw = bytes(buf[:end])
                del buf[:end + 1]
                self._handle_raw(raw)
            if len(buf) > MAX_LINE:
                self._count("garbage")
                log.warning("EVSE: dropped %d bytes without a line end", len(buf))
                buf.clear()

    def _handle_raw(self, raw: bytes) -> None:
        text = raw.decode("latin-1").strip()
        if not text:
            return
        start = text.rfind("$")  # like the firmware: a '$' starts a new frame
        if start < 0:
            self._count("garbage")
            log.debug("EVSE: garbage %r", raw[:60])
            return
        if start > 0:
            self._count("garbage")
            log.debug("EVSE: garbage before a frame %r", text[:start][:60])
        line = text[start:]
        tokens = parse_line(line)
        if tokens is None:
            self._count("bad_checksum")
            log.warning("EVSE: dropped a line with a bad or missing checksum: %r", line[:60])
            return
        with self._lock:
            self._rx += 1
            rx = self._rx
        head = tokens[0]
        if head in ("OK", "NK"):
            self._reply(head == "OK", tokens[1:], rx)
        elif head == "AT":
            self._async_state(tokens[1:], rx)
        elif head == "AB":
            log.warning("EVSE rebooted (post code %s, firmware %s): re-synchronising",
                        tokens[1] if len(tokens) > 1 else "?", tokens[2] if len(tokens) > 2 else "?")
            with self._lock:
                self._resync_needed = True
            self._wake.set()
        else:
            log.debug("EVSE: ignored %s", line)

    def _reply(self, ok: bool, args: list[str], rx: int) -> None:
        seq = None
        if args and args[-1].startswith(":"):
            try:
                seq = _hex(args[-1][1:])
            except ValueError:
                seq = None
            args = args[:-1]
        with self._lock:
            waiter = self._waiter
            if waiter is None or seq is None or seq not in waiter.seqs or waiter.event.is_set():
                self.counters["unmatched"] += 1
                log.debug("EVSE: dropped a reply without a waiting command (seq %s)", seq)
                return
            waiter.ok, waiter.tokens, waiter.rx = ok, args, rx
            waiter.event.set()

    def _async_state(self, args: list[str], rx: int) -> None:
        try:
            state, pilot, vflags = _hex(args[0]), _hex(args[1]), _hex(args[3]) if len(args) > 3 else 0
        except (IndexError, ValueError):
            log.warning("EVSE: malformed $AT %s", args)
            return
        with self._lock:
            self._apply(state, pilot, vflags, rx, emit_changes=self._emitting)

    def _count(self, name: str) -> None:
        with self._lock:
            self.counters[name] += 1

    # --- commands ------------------------------------------------------------------------------

    def _next_seq(self) -> int:
        self._seq = self._seq % 255 + 1  # 01..FF, never 00
        return self._seq

    def _command(self, *words: str) -> tuple[bool, list[str], int]:
        """Send a command, wait for its reply; (ok, reply tokens, reader line number)."""
        tries = self.retries + 1
        with self._cmd_lock:
            waiter = _Waiter()
            try:
                for attempt in range(1, tries + 1):
                    with self._lock:
                        ser = self._ser
                        if ser is None or self._closing.is_set():
                            raise HalError(f"EVSE port {self.port} is gone", "InternalError")
                        seq = self._next_seq()
                        waiter.seqs.add(seq)
                        self._waiter = waiter
                    try:
                        ser.write(frame(words, seq))
                    except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                        raise HalError(f"EVSE port {self.port} write failed: {exc}", "InternalError") from exc
                    got = waiter.event.wait(self.timeout_s)
                    if waiter.aborted:
                        raise HalError(waiter.aborted, "InternalError")
                    if got:
                        if not waiter.ok:
                            log.debug("EVSE: %s -> $NK %s", words[0], " ".join(waiter.tokens))
                        return waiter.ok, waiter.tokens, waiter.rx
                    log.warning("EVSE: no reply to %s within %.2f s (try %d of %d)", words[0], self.timeout_s,
                                attempt, tries)
            finally:
                with self._lock:
                    if self._waiter is waiter:
                        self._waiter = None
        raise HalError(f"no reply from the EVSE to {words[0]} ({tries} tries)", "InternalError")

    def _expect_ok(self, *words: str) -> list[str]:
        ok, tokens, _ = self._command(*words)
        if not ok:
            raise HalError(f"EVSE refused {' '.join(words)}", "OtherError")
        return tokens

    def _set_current(self, amps: int) -> None:
        ok, tokens, _ = self._command("SC", str(amps), "V")
        if not ok:
            log.warning("EVSE: current limit %d A not taken as is; the EVSE set %s A", amps,
                        tokens[0] if tokens else "?")

    def _read_gs(self) -> tuple[int, int, int, int, int]:
        ok, tokens, rx = self._command("GS")
        if not ok:
            raise HalError("EVSE refused GS", "OtherError")
        return self._parse_gs(tokens, rx)

    @staticmethod
    def _parse_gs(tokens: list[str], rx: int) -> tuple[int, int, int, int, int]:
        try:
            state, elapsed, pilot = _hex(tokens[0]), int(tokens[1]), _hex(tokens[2])
            vflags = _hex(tokens[3]) if len(tokens) > 3 else 0
        except (IndexError, ValueError) as exc:
            raise HalError(f"EVSE: malformed GS reply {' '.join(tokens)[:20]}", "InternalError") from exc
        return state, elapsed, pilot, vflags, rx

    # --- supervisor thread: heartbeat pulses and re-synchronisation -------------------------------

    def _sync(self, emit_changes: bool) -> None:
        """Arm SY (acknowledging a missed pulse), re-apply contactor and limit, read GS."""
        ok, tokens, _ = self._command("SY", str(self.heartbeat_s), str(self.safe_current_a))
        if not ok:
            raise HalError("EVSE refused heartbeat supervision (SY)", "OtherError")
        if len(tokens) >= 3 and tokens[2].isdigit() and int(tokens[2]) == HS_MISSED_NOACK:
            self._acknowledge_missed_pulse()
        with self._lock:
            enabled, amps = self._want_enabled, self._want_amps
        self._expect_ok("FE" if enabled else "FS")
        if amps is not None:
            self._set_current(amps)
        state, _elapsed, pilot, vflags, rx = self._read_gs()
        with self._lock:
            self._resync_needed = False
            self._link_error = None
            self._apply(state, pilot, vflags, rx, emit_changes=emit_changes)
            if emit_changes:
                self._update_fault_locked()  # also when a newer $AT made this GS stale
            else:
                self._reported = self._error_locked()[0]

    def _acknowledge_missed_pulse(self) -> None:
        log.warning("EVSE missed heartbeat pulses and fell back to %d A; acknowledging", self.safe_current_a)
        ok, _, _ = self._command("SY", str(HS_ACK_COOKIE))
        if not ok:
            log.warning("EVSE did not restore its current after the acknowledgement")

    def _supervise(self, closing: threading.Event, wake: threading.Event) -> None:
        period = self.heartbeat_s / 2.0
        next_pulse = time.monotonic() + period
        while not closing.is_set():
            wake.wait(max(0.0, next_pulse - time.monotonic()))
            wake.clear()
            if closing.is_set():
                break
            with self._lock:
                port_up, resync = self._ser is not None, self._resync_needed
            if not port_up:
                next_pulse = time.monotonic() + period
                continue
            if resync:
                self._try_resync()
                next_pulse = time.monotonic() + period
            elif time.monotonic() >= next_pulse:
                self._pulse()
                next_pulse = time.monotonic() + period

    def _try_resync(self) -> None:
        try:
            self._sync(emit_changes=True)
        except HalError as exc:
            log.warning("EVSE: re-synchronisation failed: %s", exc)
            with self._lock:
                if self._ser is not None:
                    self._link_error = "EVSE controller not answering"
                    self._update_fault_locked()
        else:
            log.info("EVSE: re-synchronised")

    def _pulse(self) -> None:
        try:
            ok, _, _ = self._command("SY")
        except HalError as exc:
            log.warning("EVSE: heartbeat pulse failed: %s", exc)
            with self._lock:
                if self._ser is not None:  # a vanished port is the reader's to report
                    self._link_error = "EVSE controller not answering"
                    self._resync_needed = True
                    self._update_fault_locked()
            return
        if not ok:  # $NK: the EVSE missed pulses and fell back to the safe current
            self._try_resync()

    # --- state ---------------------------------------------------------------------------------

    def _apply(self, state: int, pilot: int, vflags: int, rx: int, emit_changes: bool) -> None:
        """Apply an EVSE state read at reader line `rx` (older than the last applied: ignored).
        Caller holds self._lock. Emits what changed, in order: draw off, plug, draw on, fault."""
        if rx < self._applied_rx:
            return
        self._applied_rx = rx
        old = self._view
        new = _interpret(state, pilot, old)
        if state == STATE_D and not self._vent_noted:
            log.warning("EVSE: the EV requires ventilation (J1772 state D); treated as asking for energy")
        self._vent_noted = state == STATE_D
        self._view = new
        if not emit_changes:
            return
        events: list[Any] = []
        if old.asking and not new.asking:
            events.append(EvDrawChanged(CONNECTOR, False))
        if new.plugged != old.plugged:
            events.append(PlugConnected(CONNECTOR) if new.plugged else PlugDisconnected(CONNECTOR))
        if new.asking and not old.asking:
            events.append(EvDrawChanged(CONNECTOR, True))
        for event in events:
            self._send(event)
        self._update_fault_locked()

    def _error_locked(self) -> tuple[str, str]:
        if self._link_error is not None:
            return "InternalError", self._link_error
        return self._view.error_code, self._view.info

    def _update_fault_locked(self) -> None:
        if not self._emitting:
            return
        code, info = self._error_locked()
        if code == self._reported:
            return
        self._reported = code
        vendor = f"{self._view.evse_state:02X}" if code != "NoError" and self._link_error is None else ""
        self._send(ConnectorFaultChanged(CONNECTOR, code, info, vendor))

    def _send(self, event: Any) -> None:
        emit = self._emit
        if emit is None or not self._emitting:
            return
        try:
            emit(event)
        except Exception:  # the owner is gone; keep running until closed
            log.exception("EVSE: could not hand on %r", event)

    @staticmethod
    def _check_connector(connector: int) -> None:
        if connector != CONNECTOR:
            raise HalError(f"an OpenEVSE has connector 1 only, not {connector}", "OtherError")


def _interpret(state: int, pilot: int, old: _View) -> _View:
    if state in (STATE_A, STATE_B, STATE_C, STATE_D):
        return _View(state != STATE_A, state in (STATE_C, STATE_D), state, "NoError",
                     "vent required" if state == STATE_D else "")
    if state in (STATE_SLEEPING, STATE_DISABLED):  # not a fault: the pilot says whether a car is there
        return _View(pilot in (STATE_B, STATE_C, STATE_D), pilot in (STATE_C, STATE_D), state, "NoError", "")
    if FAULT_FIRST <= state <= FAULT_LAST:
        # While it holds a fault the EVSE drives the pilot to -12 V and reports the pilot state it
        # measured last [inferred from J1772EvseController]: the best view there is (e.g. at open).
        code, info = FAULTS.get(state, ("OtherError", f"EVSE fault state {state:02X}"))
        if pilot in (STATE_A, STATE_B, STATE_C, STATE_D):
            return _View(pilot != STATE_A, pilot in (STATE_C, STATE_D), state, code, info)
        return replace(old, evse_state=state, error_code=code, info=info)
    log.warning("EVSE: unknown state %02X (pilot %02X); keeping the last view", state, pilot)
    return replace(old, evse_state=state)


def _close_quietly(ser: serial.Serial | None) -> None:
    if ser is None:
        return
    try:
        ser.close()
    except Exception:
        pass


# --- settings -------------------------------------------------------------------------------------


def _validate(**values: Any) -> None:
    for key, value in values.items():
        kind = DRIVER_KEYS[key]
        if kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{key} must be a number, got {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{key} must be an integer, got {value!r}")
        elif not isinstance(value, kind):
            raise ValueError(f"{key} must be a {kind.__name__}, got {value!r}")
    if not values["port"]:
        raise ValueError("port must name the serial device, e.g. /dev/ttyUSB0")
    if values["baudrate"] <= 0:
        raise ValueError(f"baudrate must be > 0, got {values['baudrate']}")
    if not values["timeout_s"] > 0 or math.isinf(values["timeout_s"]):
        raise ValueError(f"timeout_s must be > 0, got {values['timeout_s']}")
    if values["parity"].upper() not in ("N", "E", "O"):
        raise ValueError(f"parity must be N, E or O, got {values['parity']!r}")
    if not 1 <= values["heartbeat_s"] <= 65535:
        raise ValueError(f"heartbeat_s must be 1..65535 s, got {values['heartbeat_s']}")
    if not MIN_AMPS <= values["safe_current_a"] <= MAX_AMPS:
        raise ValueError(f"safe_current_a must be {MIN_AMPS}..{MAX_AMPS} A, got {values['safe_current_a']}")


def from_settings(section: Mapping[str, Any]) -> OpenEvse:
    """Build the driver from its station.toml section (`[hal.evse] driver = "openevse"` ...).
    Raises ValueError naming the offending key."""
    unknown = sorted(set(section) - set(DRIVER_KEYS) - {"driver"})
    if unknown:
        raise ValueError(f"unknown key(s) for the openevse driver: {', '.join(unknown)} "
                         f"(known: {', '.join(DRIVER_KEYS)})")
    if "port" not in section:
        raise ValueError("port is required for the openevse driver, e.g. port = \"/dev/ttyUSB0\"")
    kwargs = {key: section[key] for key in DRIVER_KEYS if key in section}
    if isinstance(kwargs.get("timeout_s"), int) and not isinstance(kwargs["timeout_s"], bool):
        kwargs["timeout_s"] = float(kwargs["timeout_s"])  # TOML `timeout_s = 1` is an integer
    defaults = dict(baudrate=115200, timeout_s=0.5, parity="N", rs485=False, exclusive=True, heartbeat_s=10,
                    safe_current_a=6)
    _validate(**{**defaults, **kwargs})
    return OpenEvse(**kwargs)
