"""An Eastron SDM120/SDM630 Modbus RTU slave on a pseudo-terminal, for the driver tests.

The driver opens `emulator.port` with pyserial exactly as it would open /dev/ttyUSB0. The port
is a symlink (like /dev/serial/by-id/...) to the slave side of a pty pair; a thread serves the
master side:

- framing: the buffer is scanned for a CRC-valid 8-byte request addressed to one of our unit
  ids (requests to other addresses and junk are discarded); no silence-based framing, so a pty
  delivering bytes in arbitrary chunks is fine;
- function 04 (read input registers) over the model's map, float32 big-endian high word first
  (ABCD); exception 02 for a register not in the map (or half a float), 03 for a bad count,
  01 for any other function code;
- the slave fd stays open in the emulator (else reads on the master fail with EIO), and it is
  put in raw mode right after openpty().

Making the port vanish (USB unplug): `vanish()` closes the master; the pty is then hung up,
the /dev/pts node disappears at once, and the driver's open fd fails (write/read raise
SerialException, tcflush raises termios.error); the symlink is removed too, so re-opening
fails with "No such file". `reappear()` makes a fresh pty pair (usually another /dev/pts
number, like a USB adapter re-enumerating) and points the same symlink at it.

The register values and the controls are the test's; all are thread-safe.
"""

from __future__ import annotations

import math
import os
import select
import struct
import tempfile
import threading
import time
import tty

MAPS: dict[str, dict[str, int]] = {  # from the Eastron tables in ../shared/reference/hardware-facts.md
    "SDM120": {
        "voltage": 0x0000, "current": 0x0006, "power": 0x000C, "frequency": 0x0046,
        "energy": 0x0048, "export_energy": 0x004A, "total_energy": 0x0156,
    },
    "SDM630": {
        "voltage_l1": 0x0000, "voltage_l2": 0x0002, "voltage_l3": 0x0004,
        "current_l1": 0x0006, "current_l2": 0x0008, "current_l3": 0x000A,
        "power_l1": 0x000C, "power_l2": 0x000E, "power_l3": 0x0010,
        "current_sum": 0x0030, "power": 0x0034, "frequency": 0x0046,
        "energy": 0x0048, "export_energy": 0x004A, "total_energy": 0x0156,
    },
}

DEFAULTS: dict[str, dict[str, float]] = {
    "SDM120": {"voltage": 230.0, "current": 0.0, "power": 0.0, "frequency": 50.0, "energy": 0.0,
               "export_energy": 0.0, "total_energy": 0.0},
    "SDM630": {"voltage_l1": 230.0, "voltage_l2": 231.0, "voltage_l3": 229.0, "current_l1": 0.0,
               "current_l2": 0.0, "current_l3": 0.0, "power_l1": 0.0, "power_l2": 0.0, "power_l3": 0.0,
               "current_sum": 0.0, "power": 0.0, "frequency": 50.0, "energy": 0.0, "export_energy": 0.0,
               "total_energy": 0.0},
}


def crc16(data: bytes) -> int:
    """CRC-16/Modbus, bit by bit (independent of the driver's table-driven one)."""
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def frame(body: bytes) -> bytes:
    c = crc16(body)
    return body + bytes((c & 0xFF, c >> 8))


class SdmEmulator:
    """Modbus slaves (one register set per unit id) on the master side of a pty pair."""

    def __init__(self, model: str = "SDM630", unit_ids=(1,), wire_baud: int | None = None):
        if model not in MAPS:
            raise ValueError(model)
        self.model = model
        self.unit_ids = tuple(unit_ids)
        self.wire_baud = wire_baud  # when set, each reply is delayed by its time on a real wire
        self.reply_delay_s = 0.0  # the meter's turnaround before it answers
        self._map = MAPS[model]
        self._addresses = {addr: name for name, addr in self._map.items()}
        self._lock = threading.Lock()
        self._values = {u: dict(DEFAULTS[model]) for u in self.unit_ids}
        self._muted = False
        self._stall_until = 0.0
        self._garbage = b""
        self._corrupt = False
        self._exception: int | None = None
        self._raw_reply: bytes | None = None
        self.requests: list[tuple[int, int, int, int]] = []  # (unit, function, start, count), answered or not
        self.replies = 0
        self.timeline: list[tuple[float, str]] = []  # (monotonic, "rx" request taken | "tx" reply written)
        self._dir = tempfile.mkdtemp(prefix="sdm-emu-")
        self.port = os.path.join(self._dir, "ttyMETER")
        self._master: int | None = None
        self._slave: int | None = None
        self._want_vanish = False
        self._vanished = threading.Event()
        self._stop = False
        self._wake_r, self._wake_w = os.pipe()
        self._make_pty()
        self._thread = threading.Thread(target=self._run, name="sdm-emulator", daemon=True)
        self._thread.start()

    # --- test controls ---------------------------------------------------------------------------

    def set(self, unit: int, name: str, value: float) -> None:
        """Set a register by name (see MAPS: energy in kWh, voltage_l1, current_l2, power_l3, ...)."""
        if name not in self._map:
            raise KeyError(f"{self.model} has no register {name!r}")
        with self._lock:
            self._values[unit][name] = float(value)

    def get(self, unit: int, name: str) -> float:
        with self._lock:
            return self._values[unit][name]

    def nan_energy(self, unit: int) -> None:
        self.set(unit, "energy", math.nan)

    def mute(self, muted: bool = True) -> None:
        """A muted meter reads requests but never answers."""
        with self._lock:
            self._muted = muted

    def stall(self, seconds: float) -> None:
        """For `seconds` from now the meter answers nothing (requests in that time are dropped)."""
        with self._lock:
            self._stall_until = time.monotonic() + seconds

    @property
    def stalled(self) -> bool:
        with self._lock:
            return time.monotonic() < self._stall_until

    def garbage(self, data: bytes, now: bool = False) -> None:
        """Line noise: sent right before the next reply, or at once with now=True."""
        if now:
            with self._lock:
                os.write(self._master, data)
            return
        with self._lock:
            self._garbage += data

    def corrupt_next_reply(self) -> None:
        """The next reply goes out with its CRC inverted."""
        with self._lock:
            self._corrupt = True

    def exception(self, code: int) -> None:
        """The next request for any of our units is answered with Modbus exception `code`."""
        with self._lock:
            self._exception = code

    def reply_with(self, raw: bytes) -> None:
        """The next request is answered with exactly these bytes (a wrong, short or odd reply)."""
        with self._lock:
            self._raw_reply = raw

    def vanish(self, timeout: float = 5.0) -> None:
        """The port disappears as on a USB unplug (see the module docstring)."""
        with self._lock:
            self._want_vanish = True
            self._vanished.clear()
        os.write(self._wake_w, b"v")
        if not self._vanished.wait(timeout):
            raise TimeoutError("emulator did not let the port vanish")

    def reappear(self) -> None:
        """A fresh pty pair behind the same port path (symlink)."""
        with self._lock:
            if self._master is not None:
                raise RuntimeError("the port has not vanished")
            self._make_pty()
        os.write(self._wake_w, b"a")

    def close(self) -> None:
        self._stop = True
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        with self._lock:
            self._close_pty()
        os.close(self._wake_r)
        os.close(self._wake_w)
        try:
            os.rmdir(self._dir)
        except OSError:
            pass

    def __enter__(self) -> "SdmEmulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    # --- the pty ------------------------------------------------------------------------------------

    def _make_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # at once: a fresh pty echoes and maps CR to LF
        name = os.ttyname(slave)
        tmp = self.port + ".new"
        os.symlink(name, tmp)
        os.replace(tmp, self.port)
        self._master, self._slave = master, slave
        self.pts = name

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = None
        try:
            os.unlink(self.port)
        except FileNotFoundError:
            pass

    # --- the slave ----------------------------------------------------------------------------------

    def _run(self) -> None:
        buf = bytearray()
        while not self._stop:
            with self._lock:
                if self._want_vanish:
                    self._want_vanish = False
                    self._close_pty()
                    buf.clear()
                    self._vanished.set()
                master = self._master
            fds = [self._wake_r] + ([master] if master is not None else [])
            readable, _, _ = select.select(fds, [], [], 1.0)
            if self._wake_r in readable:
                os.read(self._wake_r, 64)
                continue
            if master is None or master not in readable:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:  # the driver's side closed and the slave fd is gone: nothing to serve
                continue
            buf += data
            while (request := self._take_request(buf)) is not None:
                self._answer(master, request)

    def _take_request(self, buf: bytearray) -> bytes | None:
        """The first CRC-valid 8-byte request to one of our units; junk before it is dropped."""
        for i in range(0, max(0, len(buf) - 7)):
            candidate = bytes(buf[i:i + 8])
            if candidate[0] in self.unit_ids and crc16(candidate) == 0:  # CRC over frame+CRC is 0
                del buf[:i + 8]
                return candidate
        del buf[:max(0, len(buf) - 7)]  # keep what could still be the start of a request
        return None

    def _answer(self, master: int, request: bytes) -> None:
        unit, function, start, count = struct.unpack(">BBHH", request[:6])
        with self._lock:
            self.requests.append((unit, function, start, count))
            self.timeline.append((time.monotonic(), "rx"))
            if self._muted or time.monotonic() < self._stall_until:
                return
            garbage, self._garbage = self._garbage, b""
            raw, self._raw_reply = self._raw_reply, None
            corrupt, self._corrupt = self._corrupt, False
            exc, self._exception = self._exception, None
            if raw is not None:
                reply = raw
            elif exc is not None:
                reply = frame(bytes((unit, function | 0x80, exc)))
            else:
                reply = self._reply(unit, function, start, count)
            if corrupt:
                reply = reply[:-2] + bytes(b ^ 0xFF for b in reply[-2:])
        delay = self.reply_delay_s + (len(reply) * 11 / self.wire_baud if self.wire_baud else 0.0)
        if delay:
            time.sleep(delay)
        with self._lock:
            self.timeline.append((time.monotonic(), "tx"))  # stamped before the driver can have it
        try:
            os.write(master, garbage + reply)
            with self._lock:
                self.replies += 1
        except OSError:
            pass

    def _reply(self, unit: int, function: int, start: int, count: int) -> bytes:
        if function != 0x04:
            return frame(bytes((unit, function | 0x80, 0x01)))
        if count == 0 or count > 80:
            return frame(bytes((unit, 0x84, 0x03)))
        if count % 2 or any(r not in self._addresses for r in range(start, start + count, 2)):
            return frame(bytes((unit, 0x84, 0x02)))
        values = self._values[unit]
        data = b"".join(struct.pack(">f", values[self._addresses[r]]) for r in range(start, start + count, 2))
        return frame(bytes((unit, 0x04, len(data))) + data)
