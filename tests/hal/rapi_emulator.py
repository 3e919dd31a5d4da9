"""An OpenEVSE on a pseudo-terminal: the RAPI device side, for the OpenEvse driver's tests.

The emulator owns the master side of a pty pair (``os.openpty`` + ``tty.setraw`` on the slave,
whose fd it keeps open so reads on the master never see EIO). The driver opens ``emulator.port``
with pyserial exactly as it would open ``/dev/ttyUSB0``: ``port`` is a stable symlink to the
current ``/dev/pts/N``, like udev's ``/dev/serial/by-id/...`` link to a USB adapter.

How a USB unplug is emulated (``vanish``): the emulator closes the master and its slave fd and
removes the symlink. Closing the master is observable on Linux: the driver's pending and later
reads on the slave fail at once (pyserial raises SerialException "device reports readiness to read
but returned no data", writes fail with EIO) and the ``/dev/pts/N`` node disappears, so re-opening
``port`` fails (FileNotFoundError) until ``reappear`` creates a new pty pair and points the symlink
at it, which is what a re-plugged adapter does (a new tty behind the same by-id name). The EVSE
itself keeps running meanwhile: plug state, settings and the heartbeat supervision clock go on.

Protocol as in the firmware (``rapi_proc.cpp``): ``$cc p1 p2 :ss^XX\\r`` in, the XOR checksum is
verified (a bad one is answered ``$NK^20`` with no sequence id, a missing one too: ``strict``),
replies echo the sequence id as a last token ``:SS`` and carry a checksum; ``$AT`` is sent after
every state change (also after the reply to a command that changed the state); lines longer than
the firmware's 32-byte buffer are dropped. Heartbeat supervision (``SY``): arm with
``SY interval limit``, pulse with ``SY``, acknowledge a missed pulse with ``SY 165``; a missed
pulse drops the current to the limit and makes pulses answer ``$NK`` until acknowledged.
"""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import threading
import time
import tty
from dataclasses import dataclass

FIRMWARE, RAPI = "8.2.3", "5.2.1"
BUFLEN = 32  # ESRAPI_BUFLEN: the firmware drops a longer command
HS_ACK_COOKIE = 165
MIN_A = 6


def checksum(text: str) -> int:
    x = 0
    for ch in text.encode("latin-1", "replace"):
        x ^= ch
    return x


def with_checksum(body: str, corrupt: bool = False) -> bytes:
    chk = checksum(body) ^ (0x5A if corrupt else 0)
    return f"{body}^{chk:02X}\r".encode("latin-1")


@dataclass(frozen=True)
class Command:
    """One command the emulator received (and answered, unless muted)."""

    name: str
    args: tuple[str, ...]
    seq: int | None
    at: float


class RapiEmulator:
    def __init__(self, directory: str | os.PathLike | None = None, name: str = "ttyOpenEVSE",
                 strict: bool = True, max_a: int = 32):
        self._own_dir = directory is None
        self._dir = str(directory) if directory is not None else tempfile.mkdtemp(prefix="rapi-")
        self.port = os.path.join(self._dir, name)
        self.strict = strict
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        # the EVSE
        self.plugged = False
        self.asking = False
        self.vent = False
        self.fault_code: int | None = None
        self.mode = "enabled"  # an OpenEVSE boots enabled; "sleeping" (FS), "disabled" (FD)
        self.max_a = max_a
        self._current_a = max_a
        self.session_ws = 0
        self.charging_ma = 0
        # heartbeat supervision
        self.sy_interval = 0
        self.sy_limit = 0
        self.hs_trigger = 0
        self.last_pulse = time.monotonic()
        self.pulses = 0
        self.arms = 0
        self.missed_pulses = 0
        self.fell_back = threading.Event()
        # what it saw
        self.commands: list[Command] = []
        self.sc_history: list[tuple[int, str | None]] = []  # (amps asked, "V"/"M"/None)
        self.eeprom_writes = 0
        self.bad_frames = 0
        self.overlong = 0
        self.replies_sent = 0
        # misbehaviour
        self._muted = False
        self._corrupt = 0
        self._stall_until = 0.0
        self._stale_next = 0
        self._interleave_at = False
        self._last_at: tuple | None = None
        # the pty
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop: threading.Event | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> RapiEmulator:
        self._up()
        return self

    def close(self) -> None:
        self._down()
        if self._own_dir:
            shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> RapiEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def present(self) -> bool:
        return self._master is not None

    def vanish(self) -> None:
        """The USB adapter is unplugged: see the module docstring."""
        self._down()

    def reappear(self) -> None:
        """Plugged back in: a new pty behind the same `port` path."""
        if self._master is None:
            self._up()

    def _up(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR -> LF
        tmp = self.port + ".new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(os.ttyname(slave), tmp)
        os.replace(tmp, self.port)
        stop = threading.Event()
        with self._lock:
            self._master, self._slave, self._stop = master, slave, stop
            self._last_at = self._at_tuple()  # a fresh line: no $AT until something changes
        self._thread = threading.Thread(target=self._serve, args=(master, stop), name="rapi-emulator", daemon=True)
        self._thread.start()

    def _down(self) -> None:
        with self._lock:
            master, slave, stop, thread = self._master, self._slave, self._stop, self._thread
            self._master = self._slave = self._stop = self._thread = None
        if master is None:
            return
        stop.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        for fd in (master, slave):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.unlink(self.port)
        except FileNotFoundError:
            pass

    # --- test controls: the car and the EVSE -------------------------------------------------------

    def plug(self, announce: bool = True) -> None:
        """The car is plugged in; `announce=False`: no $AT for it (a lost notification)."""
        with self._lock:
            self.plugged = True
            self._changed(announce)

    def set_mode(self, mode: str) -> None:
        """"enabled", "sleeping" or "disabled", as the EVSE's own button or timer would."""
        with self._lock:
            self.mode = mode
            self._changed()

    def unplug(self) -> None:
        with self._lock:
            self.plugged, self.asking, self.vent = False, False, False
            self._changed()

    def ev_asks(self, asking: bool = True, vent: bool = False) -> None:
        """The EV closes S2 (J1772 state C), or D with `vent`; False: back to B."""
        with self._lock:
            self.asking, self.vent = bool(asking), bool(asking and vent)
            self._changed()

    def fault(self, state_code: int) -> None:
        with self._lock:
            self.fault_code = state_code
            self._changed()

    def clear_fault(self) -> None:
        with self._lock:
            self.fault_code = None
            self._changed()

    def reboot(self) -> None:
        """The EVSE restarts: enabled again at its EEPROM current, says $AB."""
        with self._lock:
            self.mode, self._current_a, self.fault_code = "enabled", self.max_a, None
            self._write(with_checksum(f"$AB 00 {FIRMWARE}"))
            self._last_at = None
            self._changed()

    @property
    def current_a(self) -> int:
        """The current the EVSE offers now (after a missed heartbeat: at most the SY limit)."""
        with self._lock:
            self._hs_check()
            return self._current_a

    def supervision_expired(self) -> bool:
        """The station stopped pulsing for longer than the SY interval at least once (the EVSE
        then fell back to the SY limit)."""
        with self._lock:
            self._hs_check()
            return self.missed_pulses > 0

    def evse_state(self) -> int:
        with self._lock:
            if self.fault_code is not None:
                return self.fault_code
            if self.mode == "disabled":
                return 0xFF
            if self.mode == "sleeping":
                return 0xFE
            return self.pilot_state()

    def pilot_state(self) -> int:
        with self._lock:
            if not self.plugged:
                return 0x01
            if self.asking:
                return 0x04 if self.vent else 0x03
            return 0x02

    def vflags(self) -> int:
        with self._lock:
            flags = 0x0100 if self.plugged else 0  # ECVF_EV_CONNECTED
            if self.evse_state() in (0x03, 0x04):
                flags |= 0x0040  # ECVF_CHARGING_ON: relay closed
            return flags

    # --- test controls: the line ---------------------------------------------------------------------

    def send_async_at(self, corrupt: bool = False) -> None:
        with self._lock:
            self._send_at(corrupt)

    def mute(self, muted: bool = True) -> None:
        """Muted: commands are read and ignored, nothing is answered or done."""
        with self._lock:
            self._muted = bool(muted)

    def garbage(self, data: bytes) -> None:
        with self._lock:
            self._write(data)

    def corrupt_next_reply(self, count: int = 1) -> None:
        """The next `count` replies go out with a wrong checksum."""
        with self._lock:
            self._corrupt += count

    def stall(self, seconds: float) -> None:
        """Commands received from now on are answered only `seconds` from now (in order)."""
        with self._lock:
            self._stall_until = time.monotonic() + seconds

    def stall_over(self) -> bool:
        return time.monotonic() >= self._stall_until

    def stale_reply_next(self, count: int = 1) -> None:
        """Before each of the next `count` replies, send a reply with another sequence id
        (what a late answer to an earlier command looks like) and an $AT."""
        with self._lock:
            self._stale_next += count

    def interleave_at(self, on: bool = True) -> None:
        """Send an $AT before every reply."""
        with self._lock:
            self._interleave_at = bool(on)

    # --- waiting (tests wait on conditions, never a fixed sleep) --------------------------------------

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
                self._hs_check()
            return True

    def wait_for_command(self, name: str, count: int = 1, timeout: float = 5.0,
                         args: tuple[str, ...] | None = None, after: int = 0) -> list[Command]:
        """Wait until `count` commands `name` (with `args`, if given) arrived at index >= `after`."""
        def matching() -> list[Command]:
            return [c for c in self.commands[after:] if c.name == name and (args is None or c.args == args)]

        if not self.wait_for(lambda: len(matching()) >= count, timeout):
            raise AssertionError(f"emulator: {count} x {name} {args or ''} not received within {timeout} s; "
                                 f"got {[(c.name, c.args) for c in self.commands[after:]]}")
        return matching()

    def names(self, after: int = 0) -> list[str]:
        with self._lock:
            return [c.name for c in self.commands[after:]]

    # --- the device loop ----------------------------------------------------------------------------

    def _serve(self, master: int, stop: threading.Event) -> None:
        buf = bytearray()
        while not stop.is_set():
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
            except (OSError, ValueError):
                return
            with self._lock:
                self._hs_check()
            if not ready:
                continue
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            if not data:
                return
            buf += data
            while (end := buf.find(b"\r")) >= 0:
                raw = bytes(buf[:end])
                del buf[:end + 1]
                self._line(raw, stop)
                if stop.is_set():
                    return

    def _line(self, raw: bytes, stop: threading.Event) -> None:
        start = raw.rfind(b"$")  # like the firmware: '$' (re)starts a frame
        if start < 0:
            return
        text = raw[start:].decode("latin-1")
        if len(text) >= BUFLEN:
            with self._lock:
                self.overlong += 1
            return
        body, sep, chk = text.rpartition("^")
        if sep:
            valid = len(chk) == 2 and all(c in "0123456789ABCDEFabcdef" for c in chk) and int(chk, 16) == checksum(body)
        else:
            body, valid = text, not self.strict
        if not valid:
            with self._lock:
                self.bad_frames += 1
                self._write(with_checksum("$NK"))
            return
        tokens = body[1:].split(" ")
        seq = None
        if len(tokens) > 1 and tokens[-1].startswith(":"):
            try:
                seq = int(tokens[-1][1:], 16)
            except ValueError:
                seq = None
            tokens = tokens[:-1]
        wait = self._stall_until - time.monotonic()
        if wait > 0:
            stop.wait(wait)
            if stop.is_set():
                return
        with self._lock:
            if self._muted:
                return
            self.commands.append(Command(tokens[0], tuple(tokens[1:]), seq, time.monotonic()))
            ok, payload = self._process(tokens[0], tokens[1:])
            self._reply(ok, payload, seq)
            self._changed()
            self._cond.notify_all()

    def _process(self, name: str, args: list[str]) -> tuple[bool, str]:
        self._hs_check()
        if name == "GV":
            return True, f"{FIRMWARE} {RAPI}"
        if name == "GS":
            return True, f"{self.evse_state():02x} 0 {self.pilot_state():02x} {self.vflags():04x}"
        if name == "GC":
            return True, f"{MIN_A} {self.max_a} {self._current_a} {self.max_a}"
        if name == "GG":
            return True, f"{self.charging_ma} 240000"
        if name == "GU":
            return True, f"{self.session_ws} {self.session_ws // 3600}"
        if name == "G0":
            return True, "1" if self.plugged else "0"
        if name == "GY":
            return True, f"{self.sy_interval} {self.sy_limit} {self.hs_trigger}"
        if name in ("FE", "FS", "FD"):
            self.mode = {"FE": "enabled", "FS": "sleeping", "FD": "disabled"}[name]
            return True, ""
        if name == "SC" and len(args) in (1, 2):
            try:
                amps = int(args[0])
            except ValueError:
                return False, ""
            flag = args[1] if len(args) == 2 else None
            self.sc_history.append((amps, flag))
            if flag is None:
                self.eeprom_writes += 1
            clamped = min(max(amps, MIN_A), self.max_a)
            self._current_a = clamped
            return clamped == amps, str(clamped)
        if name == "SY":
            return self._sy(args)
        return False, ""

    def _sy(self, args: list[str]) -> tuple[bool, str]:
        now = time.monotonic()
        ok = True
        if not args:  # a pulse
            self.pulses += 1
            ok = self.hs_trigger != 2
            self.last_pulse = now
        elif len(args) == 2:  # arm
            try:
                self.sy_interval, self.sy_limit = int(args[0]), int(args[1])
            except ValueError:
                return False, ""
            if self.sy_interval == 0 and self.hs_trigger:
                self._current_a = self.max_a
            self.arms += 1
            self.last_pulse = now
        elif len(args) == 1:  # acknowledge a missed pulse
            ok = args[0] == str(HS_ACK_COOKIE)
            if ok and self.hs_trigger == 2:
                self._current_a, self.hs_trigger = self.max_a, 1
        else:
            ok = False
        return ok, f"{self.sy_interval} {self.sy_limit} {self.hs_trigger}"

    def _hs_check(self) -> None:
        """Caller holds the lock. The EVSE's supervision: no pulse for `interval` s -> fall back."""
        now = time.monotonic()
        if self.sy_interval and now - self.last_pulse > self.sy_interval:
            if self.sy_limit < self._current_a:
                self._current_a = self.sy_limit
            self.hs_trigger = 2
            self.last_pulse = now
            self.missed_pulses += 1
            self.fell_back.set()
            self._changed()
            self._cond.notify_all()

    # --- writing --------------------------------------------------------------------------------------

    def _reply(self, ok: bool, payload: str, seq: int | None) -> None:
        if self._stale_next > 0:
            self._stale_next -= 1
            other = seq - 1 if seq and seq > 1 else 0x7F
            self._write(with_checksum(f"$OK 03 999 03 0140 :{other:02X}"))
            self._send_at()
        if self._interleave_at:
            self._send_at()
        body = "$OK" if ok else "$NK"
        if payload:
            body += " " + payload
        if seq is not None:
            body += f" :{seq:02X}"
        corrupt = self._corrupt > 0
        if corrupt:
            self._corrupt -= 1
        self._write(with_checksum(body, corrupt))
        self.replies_sent += 1

    def _at_tuple(self) -> tuple:
        return self.evse_state(), self.pilot_state(), self._current_a, self.vflags()

    def _send_at(self, corrupt: bool = False) -> None:
        state, pilot, amps, vflags = self._last_at = self._at_tuple()
        self._write(with_checksum(f"$AT {state:02x} {pilot:02x} {amps} {vflags:04x}", corrupt))

    def _changed(self, announce: bool = True) -> None:
        """Caller holds the lock: send $AT when the state differs from the last one sent."""
        if not announce:
            self._last_at = self._at_tuple()
        elif self._master is not None and self._at_tuple() != self._last_at:
            self._send_at()
        self._cond.notify_all()

    def _write(self, data: bytes) -> None:
        if self._master is None:
            return
        try:
            os.write(self._master, data)
        except OSError:
            pass
