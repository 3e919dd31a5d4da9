"""The simulated station hardware: one model of N connectors shared by the sim drivers.

A tester (or `scripts/simctl`) drives it through a loopback TCP control socket: one JSON
object per line in, one JSON line out, `{"ok": true, ...}` or `{"ok": false, "error": ...}`.
What an EVSE controller would notice (a plug, a fault, the EV starting to draw) is emitted to
the SimEvse's emitter; what the firmware did (contactor, lock, status shown) is recorded.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import queue
import socket
import socketserver
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from hal import Emit, HalError
from messages.events import CableDetached, ConnectorFaultChanged, EvDrawChanged, PlugConnected, PlugDisconnected

log = logging.getLogger(__name__)

ERROR_CODES = frozenset(  # OCPP 1.6 §7.6 ChargePointErrorCode
    "ConnectorLockFailure EVCommunicationError GroundFailure HighTemperature InternalError "
    "LocalListConflict NoError OtherError OverCurrentFailure PowerMeterFailure PowerSwitchFailure "
    "ReaderFailure ResetFailure UnderVoltage OverVoltage WeakSignal".split())
DEVICES = ("evse", "meter", "rfid")
EV_STATES = ("charging", "suspended")
MAX_ID_TAG = 20  # OCPP 1.6 IdToken is a CiString20Type
MAX_LINE = 64 * 1024
MAX_STALL_S = 86400  # a day is "forever" for a test, and longer overflows timed waits


class CommandError(ValueError):
    """A malformed control command; its text goes back to the client as "error"."""


def parse_control(control: str) -> tuple[str, int]:
    """'host:port' -> (host, port). Loopback only: the socket has no authentication at all."""
    host, _, port = control.strip().rpartition(":")
    host = "127.0.0.1" if host == "localhost" else host
    if not port.isdigit() or int(port) > 65535:
        raise ValueError(f"control address must be host:port, got {control!r}")
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"the simulator control socket binds to IPv4 loopback only, not {host!r}")
    return host, int(port)


@dataclass
class ConnectorModel:
    """One connector; index 0 stands for the whole station (only status and fault apply)."""

    connector: int
    plugged: bool = False
    ev_state: str = "charging"
    power_w: float = 7400
    energy_wh: float = 0.0
    error_code: str = "NoError"
    lock_fails: bool = False
    locked: bool = False
    contactor: bool = False
    cable_in_socket: bool = False  # a socket station's proximity pin (never for a fixed cable)
    current_limit_a: float = 32
    status: str = "Unknown"  # what the firmware last showed (show_status)
    transaction_id: int | None = None
    reservation_id: int | None = None  # the reservation holding the connector, as the firmware showed it
    settled_at: float = field(default_factory=time.monotonic)  # energy_wh is up to this instant

    @property
    def requesting(self) -> bool:
        """The EV asks for energy (J1772 state C), whether or not the contactor is closed yet."""
        return self.plugged and self.ev_state == "charging"

    @property
    def drawing(self) -> bool:
        return self.contactor and self.requesting

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in vars(self).items() if k != "settled_at"}
        return {**d, "energy_wh": int(round(self.energy_wh))}


class Simulator:
    """Thread-safe hardware model plus its control server; one per control address per process."""

    _registry: dict[tuple[str, int], Simulator] = {}
    _registry_lock = threading.Lock()

    def __init__(self, control: str = "127.0.0.1:0", connectors: int = 1, fixed_cable: bool = False):
        if connectors < 1:
            raise ValueError("a station has at least one connector")
        self._key = parse_control(control)
        self.connectors, self.fixed_cable, self.mains = connectors, fixed_cable, True
        self.lock = threading.RLock()  # one lock for the model; reentrant: an emitter may read back
        self._models = [ConnectorModel(n) for n in range(connectors + 1)]
        self._stall_until = dict.fromkeys(DEVICES, 0.0)  # time.monotonic() deadlines
        self._stall_changed = threading.Condition(self.lock)
        self._evse_emit: Emit | None = None
        self._swipes: queue.Queue[str] | None = None
        self._power_cut_callbacks: list[Callable[[], None]] = []
        self._server: _ControlServer | None = None

    @classmethod
    def shared(cls, control: str, connectors: int, fixed_cable: bool = False) -> Simulator:
        """The running simulator for `control`, created and started on first use."""
        key = parse_control(control)
        with cls._registry_lock:
            sim = cls._registry.get(key)
            if sim is None:
                sim = cls._registry[key] = cls(control, connectors, fixed_cable).start()
            elif (sim.connectors, sim.fixed_cable) != (connectors, fixed_cable):
                raise ValueError(f"the simulator on {control} has {sim.connectors} connectors, "
                                 f"fixed_cable={sim.fixed_cable}")
            return sim

    def start(self) -> Simulator:
        self._server = _ControlServer(self._key, _ControlHandler)
        self._server.simulator = self
        # A short poll interval: shutdown() waits for it, and tests open and close a lot.
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                         name=f"sim-control-{self.address[1]}").start()
        log.info("hardware simulator control socket on %s:%s", *self.address)
        return self

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) actually bound (port 0 asks for an ephemeral one)."""
        return self._server.server_address[:2] if self._server else self._key

    @classmethod
    def close_all(cls) -> None:
        """Close every simulator of this process (station shutdown)."""
        with cls._registry_lock:
            sims = list(cls._registry.values())
        for sim in sims:
            sim.close()

    def close(self) -> None:
        """Stop the control server, hang up on its clients, and forget this simulator."""
        with Simulator._registry_lock:
            if Simulator._registry.get(self._key) is self:
                del Simulator._registry[self._key]
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_clients()
            server.server_close()

    # --- driver side: called by SimEvse, SimMeter, SimReader -----------------------------------

    def attach_evse(self, emit: Emit | None) -> None:
        """Plug, EV and fault events go to `emit` from now on (None: nowhere)."""
        with self.lock:
            self._evse_emit = emit

    def detach_evse(self, emit: Emit) -> None:
        with self.lock:  # only if still ours, not a newer SimEvse's
            if self._evse_emit == emit:
                self._evse_emit = None

    def attach_reader(self, swipes: queue.Queue[str] | None) -> None:
        """Swipes go into `swipes` from now on; with None a swipe is refused (no reader open)."""
        with self.lock:
            self._swipes = swipes

    def detach_reader(self, swipes: queue.Queue[str]) -> None:
        with self.lock:
            if self._swipes is swipes:
                self._swipes = None

    def on_power_cut(self, fn: Callable[[], None]) -> None:
        with self.lock:
            self._power_cut_callbacks.append(fn)

    def wait_if_stalled(self, device: str, cancel: threading.Event | None = None) -> bool:
        """Block while `device` is stalled. The wait releases the lock, so the control socket keeps
        answering and a new stall (0 s ends it) applies at once. False if `cancel` got set."""
        with self._stall_changed:
            while (remaining := self._stall_until[device] - time.monotonic()) > 0:
                if cancel is not None and cancel.is_set():
                    return False
                self._stall_changed.wait(remaining)
        return True

    def wake_stalled(self) -> None:
        """Make stalled waits look at their `cancel` event again."""
        with self._stall_changed:
            self._stall_changed.notify_all()

    def metered(self, c: ConnectorModel) -> tuple[float, float]:
        """(energy Wh, power W flowing now) of connector `c`."""
        with self.lock:
            self._settle()
            return c.energy_wh, (c.power_w if self._flowing(c) else 0)

    # --- model ---------------------------------------------------------------------------------

    def connector(self, connector: Any, station: bool = False, error_code: str = "OtherError") -> ConnectorModel:
        """The model of `connector` (0 only if `station`). Use it with `lock` held, and change
        what an EVSE controller would notice (plug, contactor, fault) only through `update`."""
        valid = isinstance(connector, int) and not isinstance(connector, bool)
        if not valid or not (0 if station else 1) <= connector <= self.connectors:
            raise HalError(f"no connector {connector!r} (the station has {self.connectors})", error_code)
        return self._models[connector]

    def _flowing(self, c: ConnectorModel) -> bool:
        """Energy flows only into a drawing EV, and not while the connector or station is faulted."""
        return c.drawing and c.error_code == "NoError" and self._models[0].error_code == "NoError"

    def _settle(self) -> None:
        """Bring every energy register up to now: before any change to the flow, and on reads."""
        now = time.monotonic()
        for c in self._models[1:]:
            if self._flowing(c):
                c.energy_wh += c.power_w * (now - c.settled_at) / 3600.0
            c.settled_at = now

    def update(self, c: ConnectorModel, **changes: Any) -> None:
        """Change a connector and emit what an EVSE controller would notice (lock held)."""
        self._settle()
        was_plugged, was_requesting, was_error = c.plugged, c.requesting, c.error_code
        was_in_socket = c.cable_in_socket
        for name, value in changes.items():
            setattr(c, name, value)
        if c.plugged != was_plugged:
            self._emit((PlugConnected if c.plugged else PlugDisconnected)(c.connector))
        # After the plug event, so an unplug reads as "gone" and not first as SuspendedEV.
        if c.requesting != was_requesting:
            self._emit(EvDrawChanged(c.connector, c.requesting))
        if c.error_code != was_error:
            # Connector 0 is the station as a whole: its fault is the station's own, which the EVSE
            # controller's all-clear (the evse source) must not clear.
            self._emit(ConnectorFaultChanged(c.connector, c.error_code, source="station" if c.connector == 0
                                             else "evse"))
        if was_in_socket and not c.cable_in_socket:
            self._emit(CableDetached(c.connector))

    def _emit(self, event: object) -> None:
        # Under the lock, so events keep the order of the changes; emit only tells an actor.
        if self._evse_emit is not None:
            try:
                self._evse_emit(event)
            except Exception:  # a dead actor must not break the control socket
                log.exception("EVSE emitter failed for %r", event)

    # --- control commands ----------------------------------------------------------------------

    def execute_line(self, line: str | bytes) -> dict[str, Any]:
        """One control line in, one reply out; never raises."""
        try:
            msg = json.loads(line)
        except ValueError as e:  # includes UnicodeDecodeError
            return {"ok": False, "error": f"bad JSON: {e}"}
        return self.execute(msg)

    def execute(self, msg: Any) -> dict[str, Any]:
        try:
            if not isinstance(msg, dict):
                raise CommandError("a command is a JSON object")
            cmd = msg.get("cmd")
            if not isinstance(cmd, str) or cmd not in COMMANDS:
                raise CommandError(f"unknown cmd {cmd!r}; known: {', '.join(sorted(COMMANDS))}")
            return {"ok": True, **getattr(self, f"_cmd_{cmd}")(msg)}
        except CommandError as e:
            return {"ok": False, "error": str(e)}
        except Exception as e:  # a bug here must not take the control socket down
            log.exception("simulator command %r failed", msg)
            return {"ok": False, "error": f"internal error: {e!r}"}

    def state(self) -> dict[str, Any]:
        with self.lock:
            self._settle()
            station = self._models[0]
            return {"connectors": [c.as_dict() for c in self._models[1:]],
                    "station": {"status": station.status, "error_code": station.error_code},
                    "mains": self.mains, "fixed_cable": self.fixed_cable}

    def _changed(self, msg: dict, station: bool = False, **changes: Any) -> dict[str, Any]:
        with self.lock:
            try:
                c = self.connector(msg.get("connector"), station=station)
            except HalError as e:
                raise CommandError(f"connector: {e}") from None
            self.update(c, **changes)
            return {"station": self.state()["station"]} if c.connector == 0 else {"connector": c.as_dict()}

    def _cmd_plug(self, msg: dict) -> dict:
        return self._changed(msg, plugged=True, cable_in_socket=not self.fixed_cable)

    def _cmd_unplug(self, msg: dict) -> dict:
        """side "ev": the cable leaves the car but stays in a socket (the pilot opens, the proximity
        pin still sees the cable); side "both" (default): the cable is gone from both ends."""
        side = msg.get("side", "both")
        if side not in ("ev", "both"):
            raise CommandError("side must be \"ev\" or \"both\"")
        if self.fixed_cable or side == "ev":
            return self._changed(msg, plugged=False)
        return self._changed(msg, plugged=False, cable_in_socket=False, locked=False)

    def _cmd_ev(self, msg: dict) -> dict:
        return self._changed(msg, ev_state=_arg(msg, "state", EV_STATES.__contains__, "charging or suspended"))

    def _cmd_power(self, msg: dict) -> dict:
        return self._changed(msg, power_w=_arg(msg, "watts", _non_negative, "a number >= 0"))

    def _cmd_fault(self, msg: dict) -> dict:
        code = _arg(msg, "error_code", ERROR_CODES.__contains__, "an OCPP 1.6 ChargePointErrorCode")
        return self._changed(msg, station=True, error_code=code)

    def _cmd_lock_fails(self, msg: dict) -> dict:
        return self._changed(msg, lock_fails=_arg(msg, "value", lambda v: isinstance(v, bool), "true or false"))

    def _cmd_swipe(self, msg: dict) -> dict:
        tag = _arg(msg, "id_tag", lambda v: isinstance(v, str) and 0 < len(v) <= MAX_ID_TAG,
                   f"a non-empty string of at most {MAX_ID_TAG} characters")
        with self.lock:
            if self._swipes is None:
                raise CommandError("no card reader is open")
            self._swipes.put(tag)
        return {"id_tag": tag}

    def _cmd_stall(self, msg: dict) -> dict:
        device = _arg(msg, "device", DEVICES.__contains__, " or ".join(DEVICES))
        seconds = _arg(msg, "seconds", lambda v: _non_negative(v) and v <= MAX_STALL_S,
                       f"a number from 0 to {MAX_STALL_S}")
        with self._stall_changed:
            self._stall_until[device] = time.monotonic() + seconds
            self._stall_changed.notify_all()
        return {"device": device, "seconds": seconds}

    def _cmd_power_cut(self, msg: dict) -> dict:
        with self.lock:
            was_on, self.mains = self.mains, False
            callbacks = list(self._power_cut_callbacks) if was_on else []
        for fn in callbacks:  # outside the lock: a callback may well read the simulator back
            try:
                fn()
            except Exception:
                log.exception("power cut callback %r failed", fn)
        return {"mains": False}

    def _cmd_power_restore(self, msg: dict) -> dict:
        with self.lock:
            self.mains = True
        return {"mains": True}

    def _cmd_state(self, msg: dict) -> dict:
        return self.state()


COMMANDS = frozenset(name[5:] for name in vars(Simulator) if name.startswith("_cmd_"))


def _non_negative(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _arg(msg: dict, name: str, valid: Callable[[Any], bool], expected: str) -> Any:
    if name not in msg:
        raise CommandError(f"missing field {name!r} ({expected})")
    try:
        ok = valid(msg[name])
    except TypeError:  # e.g. an unhashable list tested for membership
        ok = False
    if not ok:
        raise CommandError(f"{name} must be {expected}, got {msg[name]!r}")
    return msg[name]


class _ControlServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    simulator: Simulator

    def __init__(self, *args: Any):
        self.clients: set[socket.socket] = set()
        self.clients_lock = threading.Lock()
        super().__init__(*args)

    def close_clients(self) -> None:
        """Hang up on connected clients, whose threads would otherwise outlive the simulator."""
        with self.clients_lock:
            for sock in self.clients:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class _ControlHandler(socketserver.StreamRequestHandler):
    """One client: JSON lines in, JSON lines out, until it hangs up."""

    def handle(self) -> None:
        server: _ControlServer = self.server  # type: ignore[assignment]
        with server.clients_lock:
            server.clients.add(self.connection)
        try:
            while line := self.rfile.readline(MAX_LINE + 1):
                if len(line) > MAX_LINE:  # the next line start is lost: give up on this client
                    self._reply({"ok": False, "error": f"line longer than {MAX_LINE} bytes"})
                    return
                if line.strip():
                    self._reply(server.simulator.execute_line(line))
        except OSError:
            pass  # the client went away, or close() hung up
        finally:
            with server.clients_lock:
                server.clients.discard(self.connection)

    def _reply(self, reply: dict[str, Any]) -> None:
        self.wfile.write(json.dumps(reply).encode() + b"\n")
