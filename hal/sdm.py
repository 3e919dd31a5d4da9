"""EnergyMeter driver for Eastron SDM120 / SDM630 meters over Modbus RTU (RS-485), with pyserial.

One meter per connector: connector n is the meter at Modbus address `unit_ids[n-1]`. Several
meters may share one RS-485 bus (one serial port); a lock serialises the bus, so one request is
on the wire at a time and its reply is read before the next request goes out.

The Modbus RTU client is written here (no minimalmodbus) because the driver needs things a
one-value-per-call library does not give directly: one request for a whole block of float
registers, a hard bound on how long a read() may block (all retries included), framing on the
reply's length with resynchronisation past line noise, and port loss / re-open handled in one
place.

Register map (function 04, input registers, float32 big-endian, high word first; address =
register - 30001), from Eastron's protocol documents as quoted in ../shared/reference:

    quantity             SDM120   SDM630
    voltage L-N          0x0000   0x0000 / 0x0002 / 0x0004
    current              0x0006   0x0006 / 0x0008 / 0x000A   (sum 0x0030)
    active power         0x000C   0x000C / 0x000E / 0x0010   (total 0x0034)
    frequency            0x0046   0x0046
    import active kWh    0x0048   0x0048
    export active kWh    0x004A   0x004A
    total active kWh     0x0156   0x0156

What one read() does: it works out, once per measurand tuple, the registers it needs and groups
them into as few requests as possible. Two wanted ranges are merged into one request when only
registers known to exist on that model lie between them (a gap of unknown registers could be
refused with exception 02 by a real meter). SDM630 with V, I, P, f: 3 requests (0x0000-0x0011 =
V, I, P per phase in one 18-register read; 0x0034 total power; 0x0046-0x0049 frequency + import
energy); energy only: 1 request. SDM120 with V, I, P, f: 4 requests (0x0002-0x0005 and
0x0008-0x000B are not known registers on it).

Failures, all raised as `HalError(..., "PowerMeterFailure")`:
- no (complete) reply within `timeout_s`, retried `retries` times; a read() never blocks longer
  than (retries + 1) * timeout_s in total, whatever the number of requests it makes;
- a reply with a bad CRC, wrong address/function/byte count, or cut short (retried likewise);
- a Modbus exception reply (`ModbusExceptionError`, `.exception_code`); 05/06 (acknowledge,
  busy) are retried, the others raised at once;
- the port vanishing (USB unplug: SerialException/OSError/termios.error) fails at once, closes
  the port, and a later read() re-opens it, at most one attempt per `reopen_backoff_s` (2 s);
- an import energy register that is NaN, infinite, negative, or lower than the last good value
  for that connector (the MeterDevice actor checks "backwards" too; checking here as well keeps
  the driver safe for any other caller).
"""

from __future__ import annotations

import logging
import math
import select
import struct
import termios
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping

import serial
import serial.rs485

from hal import HalError
from messages.events import MeterReading, SampledValue

log = logging.getLogger(__name__)

FAILURE = "PowerMeterFailure"
ENERGY = "Energy.Active.Import.Register"
ENERGY_EXPORT = "Energy.Active.Export.Register"

READ_INPUT_REGISTERS = 0x04
MAX_REGISTERS_PER_REQUEST = 40  # Eastron meters answer up to 40 registers (20 floats) per request
MERGE_GAP_REGISTERS = 8  # a gap this small costs less wire time than a second request

# Registers (2 per float) known to exist on each model; the first column is the name.
REGISTERS: dict[str, dict[str, int]] = {
    "SDM120": {
        "voltage": 0x0000, "current": 0x0006, "power": 0x000C, "frequency": 0x0046,
        "import_kwh": 0x0048, "export_kwh": 0x004A, "total_kwh": 0x0156,
    },
    "SDM630": {
        "voltage_l1": 0x0000, "voltage_l2": 0x0002, "voltage_l3": 0x0004,
        "current_l1": 0x0006, "current_l2": 0x0008, "current_l3": 0x000A,
        "power_l1": 0x000C, "power_l2": 0x000E, "power_l3": 0x0010,
        "current_sum": 0x0030, "power": 0x0034, "frequency": 0x0046,
        "import_kwh": 0x0048, "export_kwh": 0x004A, "total_kwh": 0x0156,
    },
}

# OCPP measurand -> (unit, [(register name, phase)]) per model. Frequency's unit is "Hertz": the
# spelling the official OCPP 1.6 MeterValues schema accepts ("Hz" is not in its enum).
MEASURANDS: dict[str, dict[str, tuple[str, list[tuple[str, str | None]]]]] = {
    "SDM120": {
        "Voltage": ("V", [("voltage", "L1-N")]),
        "Current.Import": ("A", [("current", "L1")]),
        "Power.Active.Import": ("W", [("power", None)]),
        "Frequency": ("Hertz", [("frequency", None)]),
        ENERGY_EXPORT: ("Wh", [("export_kwh", None)]),
    },
    "SDM630": {
        "Voltage": ("V", [("voltage_l1", "L1-N"), ("voltage_l2", "L2-N"), ("voltage_l3", "L3-N")]),
        "Current.Import": ("A", [("current_l1", "L1"), ("current_l2", "L2"), ("current_l3", "L3")]),
        "Power.Active.Import": ("W", [("power", None), ("power_l1", "L1"), ("power_l2", "L2"),
                                      ("power_l3", "L3")]),
        "Frequency": ("Hertz", [("frequency", None)]),
        ENERGY_EXPORT: ("Wh", [("export_kwh", None)]),
    },
}

MODELS = tuple(REGISTERS)
PARITIES = {"N": serial.PARITY_NONE, "E": serial.PARITY_EVEN, "O": serial.PARITY_ODD}

EXCEPTION_NAMES = {1: "illegal function", 2: "illegal data address", 3: "illegal data value",
                   4: "slave device failure", 5: "acknowledge", 6: "slave device busy"}
RETRYABLE_EXCEPTIONS = {5, 6}

# station.toml keys of [hal.meter] with driver = "sdm" (besides "driver"), and their TOML types.
DRIVER_KEYS: dict[str, type] = {"port": str, "model": str, "baudrate": int, "parity": str, "timeout_s": float,
                                "unit_ids": list, "rs485": bool, "exclusive": bool, "retries": int}


# --- CRC-16/Modbus and frames --------------------------------------------------------------------

def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_CRC_TABLE = _crc_table()


def crc16(data: bytes) -> int:
    """CRC-16/Modbus (poly 0xA001 reflected, init 0xFFFF); sent low byte first."""
    crc = 0xFFFF
    for b in data:
        crc = (crc >> 8) ^ _CRC_TABLE[(crc ^ b) & 0xFF]
    return crc


def with_crc(body: bytes) -> bytes:
    return body + struct.pack("<H", crc16(body))


def crc_ok(frame: bytes) -> bool:
    return len(frame) >= 4 and crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]


def read_request(unit: int, start: int, count: int) -> bytes:
    return with_crc(struct.pack(">BBHH", unit, READ_INPUT_REGISTERS, start, count))


class _FifoLock:
    """A lock handed over in arrival order, with a timeout: a thread polling one meter in a loop
    cannot starve another waiting for the shared bus (threading.Lock makes no such promise)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Event] = deque()

    def acquire(self, timeout: float = -1) -> bool:
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(None if timeout < 0 else timeout):
            return True
        with self._mutex:
            if turn.is_set():  # handed over just as the wait timed out
                return True
            self._waiters.remove(turn)
            return False

    def release(self) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().set()  # ownership passes directly to the next in line
            else:
                self._held = False

    def __enter__(self) -> "_FifoLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class ModbusExceptionError(HalError):
    """The meter answered with a Modbus exception (function | 0x80)."""

    def __init__(self, message: str, exception_code: int):
        super().__init__(message, FAILURE)
        self.exception_code = exception_code


class _Retry(Exception):
    """One request/reply attempt failed in a way worth trying again."""


@dataclass(frozen=True)
class _Block:
    start: int
    count: int  # registers


@dataclass(frozen=True)
class _Plan:
    blocks: tuple[_Block, ...]
    values: tuple[tuple[str, str, str, str | None], ...]  # (measurand, unit, register name, phase)


# --- the driver ----------------------------------------------------------------------------------

class SdmMeter:
    """EnergyMeter for Eastron SDM120/SDM630 meters on one serial port (one meter per connector)."""

    def __init__(self, port: str, model: str = "SDM630", baudrate: int = 9600, parity: str = "N",
                 timeout_s: float = 0.5, unit_ids: tuple[int, ...] | list[int] = (1,), rs485: bool = False,
                 exclusive: bool = True, retries: int = 1, reopen_backoff_s: float = 2.0):
        _check(isinstance(port, str) and port != "", "port", "must be a non-empty string")
        _check(model in REGISTERS, "model", f"must be one of {', '.join(MODELS)}, got {model!r}")
        _check(_is_int(baudrate) and baudrate > 0, "baudrate", f"must be a positive integer, got {baudrate!r}")
        _check(parity in PARITIES, "parity", f"must be N, E or O, got {parity!r}")
        _check(_is_number(timeout_s) and 0 < timeout_s <= 60, "timeout_s",
               f"must be a number of seconds in (0, 60], got {timeout_s!r}")
        _check(isinstance(unit_ids, (list, tuple)) and len(unit_ids) > 0, "unit_ids",
               "must be a list with one Modbus address per connector")
        for u in unit_ids:
            _check(_is_int(u) and 1 <= u <= 247, "unit_ids", f"addresses must be integers 1..247, got {u!r}")
        _check(len(set(unit_ids)) == len(unit_ids), "unit_ids", f"addresses must be distinct, got {list(unit_ids)}")
        _check(isinstance(rs485, bool), "rs485", f"must be true or false, got {rs485!r}")
        _check(isinstance(exclusive, bool), "exclusive", f"must be true or false, got {exclusive!r}")
        _check(_is_int(retries) and 0 <= retries <= 10, "retries", f"must be an integer 0..10, got {retries!r}")
        self.port = port
        self.model = model
        self.baudrate = int(baudrate)
        self.parity = parity
        self.timeout_s = float(timeout_s)
        self.unit_ids = tuple(int(u) for u in unit_ids)
        self.rs485 = rs485
        self.exclusive = exclusive
        self.retries = int(retries)
        self.reopen_backoff_s = float(reopen_backoff_s)
        # Modbus RTU: 3.5 character times of silence between frames (11 bits a character), fixed
        # 1.75 ms above 19200 Bd; never less than the 2 ms some SDM meters need before a request.
        self.frame_gap_s = max(3.5 * 11 / self.baudrate if self.baudrate <= 19200 else 0.00175, 0.002)
        self._bus = _FifoLock()
        self._serial: serial.Serial | None = None
        self._next_open_at = 0.0  # monotonic time before which no (re-)open is attempted
        self._quiet_until = 0.0  # the bus is silent from here on (end of last frame + 3.5 chars)
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._last_wh: dict[int, int] = {}

    # --- EnergyMeter -----------------------------------------------------------------------------

    def open(self) -> None:
        with self._bus:
            self._ensure_open()

    def close(self) -> None:
        with self._bus:
            self._drop_port()
            self._next_open_at = 0.0

    def read(self, connector: int, measurands: tuple[str, ...]) -> MeterReading:
        """Energy.Active.Import.Register plus whichever of `measurands` this model has.

        Blocks at most (retries + 1) * timeout_s in all, waiting for the bus lock included."""
        deadline = time.monotonic() + (self.retries + 1) * self.timeout_s
        if not (isinstance(connector, int) and 1 <= connector <= len(self.unit_ids)):
            raise HalError(f"no meter for connector {connector!r} (unit_ids has {len(self.unit_ids)})", FAILURE)
        unit = self.unit_ids[connector - 1]
        plan = self._plan(tuple(measurands))
        if not self._bus.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise HalError(f"{self._who(unit)}: RS-485 bus busy for {self.timeout_s * (self.retries + 1):.2f} s",
                           FAILURE)
        try:
            self._ensure_open()
            registers: dict[int, float] = {}
            for block in plan.blocks:
                data = self._transaction(unit, block, deadline)
                for i in range(0, block.count, 2):
                    registers[block.start + i] = struct.unpack(">f", data[2 * i:2 * i + 4])[0]
            return self._reading(connector, unit, plan, registers)  # under the lock: _last_wh in order
        except (serial.SerialException, OSError, termios.error) as exc:
            self._drop_port()
            raise HalError(f"{self._who(unit)}: serial port lost: {exc}", FAILURE) from exc
        finally:
            self._bus.release()

    # --- the reading -----------------------------------------------------------------------------

    def _reading(self, connector: int, unit: int, plan: _Plan, registers: dict[int, float]) -> MeterReading:
        regs = REGISTERS[self.model]
        kwh = registers[regs["import_kwh"]]
        if not math.isfinite(kwh) or kwh < 0:
            raise HalError(f"{self._who(unit)}: import energy register is {kwh!r}", FAILURE)
        energy_wh = _wh(kwh)
        last = self._last_wh.get(connector)
        if last is not None and energy_wh < last:
            raise HalError(f"{self._who(unit)}: energy went backwards ({last} -> {energy_wh} Wh)", FAILURE)
        self._last_wh[connector] = energy_wh
        values = [SampledValue(ENERGY, float(energy_wh), "Wh")]
        for measurand, unit_of_measure, name, phase in plan.values:
            raw = registers[regs[name]]
            if not math.isfinite(raw):
                log.warning("%s: %s %s is %r; value left out", self._who(unit), measurand, phase or "", raw)
                continue
            if unit_of_measure == "Wh":
                value = float(_wh(max(raw, 0.0)))
            elif measurand == "Power.Active.Import":
                value = max(_float32_rounded(raw), 0.0)  # negative active power is export, not import
            else:
                value = _float32_rounded(raw)
            values.append(SampledValue(measurand, value, unit_of_measure, phase))
        return MeterReading(connector, energy_wh, tuple(values), datetime.now(timezone.utc))

    def _plan(self, measurands: tuple[str, ...]) -> _Plan:
        plan = self._plans.get(measurands)
        if plan is None:
            plan = self._plans[measurands] = make_plan(self.model, measurands)
        return plan

    # --- Modbus RTU --------------------------------------------------------------------------------

    def _transaction(self, unit: int, block: _Block, deadline: float) -> bytes:
        """One read-input-registers request, retried; returns the data bytes."""
        request = read_request(unit, block.start, block.count)
        problem = "no time left"
        for attempt in range(self.retries + 1):
            self._wait_quiet(deadline)
            if time.monotonic() >= deadline:
                break
            ser = self._serial
            ser.reset_input_buffer()
            ser.write(request)
            ser.flush()
            sent_at = time.monotonic()
            try:
                data = self._receive(unit, block, request, min(sent_at + self.timeout_s, deadline))
            except _Retry as exc:
                problem = str(exc)
                log.debug("%s: attempt %d: %s", self._who(unit), attempt + 1, problem)
                continue
            finally:
                self._quiet_until = time.monotonic() + self.frame_gap_s
            return data
        raise HalError(f"{self._who(unit)}: {problem} (registers 0x{block.start:04X}+{block.count})", FAILURE)

    def _receive(self, unit: int, block: _Block, request: bytes, until: float) -> bytes:
        ser = self._serial
        fd = ser.fileno()
        buf = bytearray()
        last_rx = time.monotonic()
        while True:
            status, frame = _scan(buf, unit, request)
            if status == "frame":
                return self._check_reply(unit, block, frame)
            now = time.monotonic()
            limit = until
            if status == "bad-crc":
                # A complete frame failed its CRC: wait only briefly for a good one behind it.
                limit = min(until, last_rx + max(0.05, 8 * self.frame_gap_s))
            if now >= limit:
                if status == "bad-crc":
                    raise _Retry("reply with a bad CRC")
                if status == "partial":
                    raise _Retry(f"reply cut short ({len(buf)} bytes) within {self.timeout_s} s")
                if buf:
                    raise _Retry(f"no valid reply within {self.timeout_s} s ({len(buf)} bytes of noise)")
                raise _Retry(f"no reply within {self.timeout_s} s")
            readable, _, _ = select.select([fd], [], [], limit - now)
            if readable:
                chunk = ser.read(max(ser.in_waiting, 1))
                if chunk:
                    buf += chunk
                    last_rx = time.monotonic()

    def _check_reply(self, unit: int, block: _Block, frame: bytes) -> bytes:
        function = frame[1]
        if function == READ_INPUT_REGISTERS | 0x80:
            code = frame[2]
            text = f"{self._who(unit)}: Modbus exception {code:02d} ({EXCEPTION_NAMES.get(code, 'unknown')}) " \
                   f"for registers 0x{block.start:04X}+{block.count}"
            if code in RETRYABLE_EXCEPTIONS:
                raise _Retry(text)
            raise ModbusExceptionError(text, code)
        if frame[2] != 2 * block.count:
            raise _Retry(f"reply with {frame[2]} data bytes, {2 * block.count} asked")
        return bytes(frame[3:-2])

    def _wait_quiet(self, deadline: float) -> None:
        pause = min(self._quiet_until, deadline) - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    # --- the port ----------------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self._serial is not None:
            return
        now = time.monotonic()
        if now < self._next_open_at:
            raise HalError(f"{self.model} meter port {self.port} unavailable; next open attempt in "
                           f"{self._next_open_at - now:.1f} s", FAILURE)
        self._next_open_at = now + self.reopen_backoff_s
        ser = serial.Serial()
        ser.port = self.port
        ser.baudrate = self.baudrate
        ser.bytesize = serial.EIGHTBITS
        ser.parity = PARITIES[self.parity]
        ser.stopbits = serial.STOPBITS_ONE
        ser.timeout = 0  # reads return what is there; waiting is done with select() on the fd
        ser.write_timeout = max(1.0, self.timeout_s)
        ser.exclusive = self.exclusive
        if self.rs485:
            ser.rs485_mode = serial.rs485.RS485Settings()  # RTS high while sending
        try:
            ser.open()
        except (serial.SerialException, OSError, ValueError, termios.error) as exc:
            # ValueError: the RS-485 ioctl refused (e.g. "Inappropriate ioctl" on a pty or a plain UART).
            raise HalError(f"{self.model} meter port {self.port}: cannot open: {exc}", FAILURE) from exc
        self._serial = ser
        self._quiet_until = time.monotonic() + self.frame_gap_s
        log.info("%s meter port %s open (%d %s, units %s)", self.model, self.port, self.baudrate, self.parity,
                 ",".join(map(str, self.unit_ids)))

    def _drop_port(self) -> None:
        ser, self._serial = self._serial, None
        if ser is None:
            return
        self._next_open_at = 0.0  # the next read() may try at once; later attempts are spaced
        try:
            ser.close()
        except Exception:  # the device is gone; nothing left to release
            log.debug("closing %s failed", self.port, exc_info=True)

    def _who(self, unit: int) -> str:
        return f"{self.model} meter {unit} on {self.port}"


# --- planning -------------------------------------------------------------------------------------

def make_plan(model: str, measurands: tuple[str, ...]) -> _Plan:
    """Which register blocks to read for `measurands` (energy always) and which values to report."""
    regs = REGISTERS[model]
    table = MEASURANDS[model]
    values: list[tuple[str, str, str, str | None]] = []
    wanted = {regs["import_kwh"]}
    for measurand in dict.fromkeys(measurands):
        if measurand not in table:
            continue  # not on this meter (or the import register, always read): skipped, not an error
        unit_of_measure, items = table[measurand]
        for name, phase in items:
            values.append((measurand, unit_of_measure, name, phase))
            wanted.add(regs[name])
    return _Plan(_blocks(sorted(wanted), set(regs.values())), tuple(values))


def _blocks(starts: list[int], known: set[int]) -> tuple[_Block, ...]:
    blocks: list[list[int]] = []  # [first, end) in registers
    for start in starts:
        if blocks:
            first, end = blocks[-1]
            gap = range(end, start, 2)
            if (start - end <= MERGE_GAP_REGISTERS and start + 2 - first <= MAX_REGISTERS_PER_REQUEST
                    and all(r in known for r in gap)):
                blocks[-1][1] = start + 2
                continue
        blocks.append([start, start + 2])
    return tuple(_Block(first, end - first) for first, end in blocks)


def _scan(buf: bytearray, unit: int, request: bytes) -> tuple[str, bytes | None]:
    """Look for a reply from `unit` in `buf`, skipping line noise and an echo of our request.

    Returns ("frame", frame) for a CRC-valid reply (normal or exception), else "bad-crc" when a
    complete candidate failed its CRC, "partial" when a candidate is still arriving, "none"."""
    status = "none"
    n = len(buf)
    i = 0
    while i < n:
        if buf[i] != unit:
            i += 1
            continue
        if buf[i:i + len(request)] == request:  # a local echo from the RS-485 adapter
            i += len(request)
            continue
        if i + 1 >= n:
            return ("partial" if status == "none" else status), None
        function = buf[i + 1]
        if function == READ_INPUT_REGISTERS | 0x80:
            length = 5
        elif function == READ_INPUT_REGISTERS:
            if i + 2 >= n:
                return ("partial" if status == "none" else status), None
            length = 5 + buf[i + 2]
        else:
            i += 1
            continue
        if n - i < length:
            if status == "none":
                status = "partial"
        elif crc_ok(bytes(buf[i:i + length])):
            return "frame", bytes(buf[i:i + length])
        else:
            status = "bad-crc"
        i += 1
    return status, None


# --- settings -------------------------------------------------------------------------------------

def from_settings(section: Mapping[str, Any], connectors: int) -> SdmMeter:
    """Build the driver from station.toml's [hal.meter] (driver = "sdm"), checking every value.

    unit_ids defaults to 1, 2, ... (one meter per connector at consecutive addresses)."""
    for key in section:
        if key != "driver" and key not in DRIVER_KEYS:
            raise ValueError(f"[hal.meter] {key}: unknown key for driver sdm (known: {', '.join(DRIVER_KEYS)})")
    if "port" not in section:
        raise ValueError("[hal.meter] port: required for driver sdm (e.g. \"/dev/ttyUSB0\")")
    kwargs: dict[str, Any] = {}
    for key, kind in DRIVER_KEYS.items():
        if key not in section:
            continue
        value = section[key]
        ok = (_is_number(value) if kind is float else _is_int(value) if kind is int
              else isinstance(value, kind))
        if not ok:
            raise ValueError(f"[hal.meter] {key}: expected {kind.__name__}, got {value!r}")
        kwargs[key] = value
    if "model" in kwargs:
        kwargs["model"] = kwargs["model"].upper()
    if "parity" in kwargs:
        kwargs["parity"] = kwargs["parity"].upper()
    unit_ids = kwargs.get("unit_ids", list(range(1, connectors + 1)))
    if len(unit_ids) != connectors:
        raise ValueError(f"[hal.meter] unit_ids: one Modbus address per connector ({connectors}), got {unit_ids!r}")
    kwargs["unit_ids"] = tuple(unit_ids)
    try:
        return SdmMeter(**kwargs)
    except ValueError as exc:
        raise ValueError(f"[hal.meter] {exc}") from None


def _check(ok: bool, key: str, text: str) -> None:
    if not ok:
        raise ValueError(f"{key}: {text}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) and math.isfinite(value)


def _wh(kwh: float) -> int:
    """kWh (a float32 register) to whole Wh, half up."""
    return int(math.floor(kwh * 1000.0 + 0.5))


def _float32_rounded(value: float) -> float:
    """A float32 register as the shortest decimal that reads back to the same float32 (230.1, not
    230.10000610351562): float32 has about 7 significant digits."""
    if value == 0:
        return 0.0
    return float(f"{value:.7g}")
