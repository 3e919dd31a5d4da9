"""Test doubles for the actors' unit tests: a probe actor and fake HAL drivers.

`Probe` starts an actor that records every message it is told; the test reads them with
`expect` (waits for the first match, keeps the others for later) or, after syncing the
sender, with `expect_none` / `messages`. Nothing here sleeps: waits are on queues, events
and `ask`s with a deadline.

The fake drivers implement the Protocols of `hal/__init__.py`, record every call, and can be
told to raise a `HalError` or to block on a `threading.Event` (a stalled device).
`FakeConnection` stands in for the link's WebSocket: the test plays its reader thread.
"""

from __future__ import annotations

import json
import math
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import pykka

from actors.link.connection import NotConnected
from hal import ConnectorHardwareState, HalError
from actors.configuration import registry as keyreg
from messages.events import CardPresented, ConfigurationChanged, HealthCheck, MeterReading, SampledValue, Wired
from messages.frozen import FrozenDict, thaw
from messages.requests import REQUESTS

DEFAULT_TIMEOUT_S = 5.0
STALL_LIMIT_S = 15.0  # a stalled fake gives up by itself, so a failing test cannot hang stop_all


# --- wiring and requests --------------------------------------------------------------------------


def _routes_of(message_type: type) -> list:
    """The route keys of a type: ConfigurationChanged is routed per key (see StationActor.watches), and a
    probe standing for its subscribers watches every key."""
    if message_type is ConfigurationChanged:
        keys = set(keyreg.registry(2, False)) | set(keyreg.registry(2, True))
        return [(ConfigurationChanged, key) for key in sorted(keys)]
    return [message_type]


def wire(ref: pykka.ActorRef, routes: dict) -> None:
    """Send the actor its Wired: `routes` maps a message type (or a tuple of types) to a Probe (or
    a list of Probes) that stands for the actors subscribed to it."""
    flat: dict = {}
    for types, probes in routes.items():
        probes = probes if isinstance(probes, (list, tuple)) else [probes]
        for t in types if isinstance(types, tuple) else (types,):
            for route in _routes_of(t):
                flat[route] = tuple(p.ref for p in probes)
    ref.tell(Wired(FrozenDict._wrap(flat)))


def wire_all(ref: pykka.ActorRef, actor_cls: type, probe: "Probe") -> None:
    """Wire everything `actor_cls` emits to one probe."""
    wire(ref, {t: probe for t in actor_cls.emits})


def wire_refs(ref: pykka.ActorRef, routes: dict) -> None:
    """Like `wire`, for a rig of real actors: each value is an ActorRef or a Probe (or a list of them)."""
    flat: dict = {}
    for types, targets in routes.items():
        targets = targets if isinstance(targets, (list, tuple)) else [targets]
        refs = tuple(t.ref if isinstance(t, Probe) else t for t in targets)
        for t in types if isinstance(types, tuple) else (types,):
            for route in _routes_of(t):
                flat[route] = refs
    ref.tell(Wired(FrozenDict._wrap(flat)))


def csms_request(unique_id: str, action: str, payload: Any, reply_to: Any) -> Any:
    """The typed request the link would make of a validated CALL."""
    return REQUESTS[action].from_payload(unique_id, reply_to, thaw(payload))


# --- the probe ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Sync:
    """Asked of the probe actor: once answered, everything told to it before has been recorded."""


class ProbeActor(pykka.ThreadingActor):
    def __init__(self, received: queue.Queue):
        super().__init__()
        self._received = received

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, _Sync):
            return True
        self._received.put(message)
        return None


def _matcher(what: Any) -> Callable[[Any], bool]:
    """A type (or tuple of types) matches its instances, a callable is a predicate, anything else matches equals."""
    if isinstance(what, type) or (isinstance(what, tuple) and what and all(isinstance(t, type) for t in what)):
        return lambda m: isinstance(m, what)
    if callable(what):
        return what
    return lambda m: m == what


class Probe:
    """A recording actor (`ref`) and the test-side helpers that read what it got."""

    def __init__(self) -> None:
        self.received: queue.Queue = queue.Queue()
        self._kept: list[Any] = []  # seen but not yet matched, in arrival order
        self.ref = ProbeActor.start(self.received)

    def tell(self, message: Any) -> None:
        self.ref.tell(message)

    def sync(self) -> None:
        """Wait until everything already told to the probe is recorded."""
        self.ref.ask(_Sync(), timeout=DEFAULT_TIMEOUT_S)
        self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._kept.append(self.received.get_nowait())
            except queue.Empty:
                return

    def expect(self, what: Any, timeout: float = DEFAULT_TIMEOUT_S) -> Any:
        """The first message (kept or arriving within `timeout`) matching `what`; the others stay kept.

        `what`: a message type (or tuple of types), a predicate, or a message to compare equal to."""
        match = _matcher(what)
        for i, message in enumerate(self._kept):
            if match(message):
                return self._kept.pop(i)
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no message matching {what!r} within {timeout} s; got {self._kept!r}")
            try:
                message = self.received.get(timeout=remaining)
            except queue.Empty:
                continue
            if match(message):
                return message
            self._kept.append(message)

    def messages(self, what: Any = None) -> list[Any]:
        """Everything recorded so far and not yet matched (the probe is synced first), without consuming."""
        self.sync()
        if what is None:
            return list(self._kept)
        match = _matcher(what)
        return [m for m in self._kept if match(m)]

    def expect_none(self, what: Any) -> None:
        """Nothing matching `what` was recorded. Sync the sender first (ask it), so its tells have landed."""
        found = self.messages(what)
        assert not found, f"unexpected {found!r}"

    def clear(self) -> None:
        """Forget everything recorded so far (the probe is synced first)."""
        self.sync()
        self._kept.clear()


def sync(*refs: pykka.ActorRef) -> None:
    """Ask each actor a trivial question, in order: once answered, every message told before is handled."""
    for ref in refs:
        ref.ask(HealthCheck(), timeout=DEFAULT_TIMEOUT_S)


# --- fake HAL drivers ------------------------------------------------------------------------------


class _Recorder:
    """Call log, scripted failures and stalls shared by the fake drivers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[tuple] = []
        self.errors: dict[str, HalError] = {}  # method name -> raised on every call until removed
        self._stalls: dict[str, tuple[threading.Event, threading.Event]] = {}

    def stall(self, method: str) -> tuple[threading.Event, threading.Event]:
        """The next calls of `method` block until `release` is set; `entered` is set when one blocks."""
        entered, release = threading.Event(), threading.Event()
        self._stalls[method] = (entered, release)
        return entered, release

    def fail(self, method: str, error: HalError) -> None:
        self.errors[method] = error

    def recover(self, method: str) -> None:
        self.errors.pop(method, None)

    def _enter(self, method: str, *args: Any) -> None:
        with self._lock:
            self._calls.append((method, *args))
        stall = self._stalls.get(method)
        if stall is not None:
            entered, release = stall
            entered.set()
            release.wait(STALL_LIMIT_S)
        error = self.errors.get(method)
        if error is not None:
            raise error

    @property
    def calls(self) -> list[tuple]:
        with self._lock:
            return list(self._calls)

    def calls_to(self, method: str) -> list[tuple]:
        return [c[1:] for c in self.calls if c[0] == method]


class FakeEvse(_Recorder):
    """hal.EvseController: `emit` is what the device actor gave `open`; `lock_ok` is the lock motor's answer."""

    def __init__(self, states: tuple[ConnectorHardwareState, ...] = (), lock_ok: bool = True) -> None:
        super().__init__()
        self.states = tuple(states)
        self.lock_ok = lock_ok
        self.emit: Callable[[object], None] | None = None

    def open(self, emit: Callable[[object], None]) -> None:
        self._enter("open")
        self.emit = emit

    def close(self) -> None:
        self._enter("close")

    def connector_states(self) -> tuple[ConnectorHardwareState, ...]:
        self._enter("connector_states")
        return self.states

    def set_contactor(self, connector: int, closed: bool) -> None:
        self._enter("set_contactor", connector, closed)

    def set_lock(self, connector: int, locked: bool) -> bool:
        self._enter("set_lock", connector, locked)
        return self.lock_ok

    def set_current_limit(self, connector: int, amps: float) -> None:
        self._enter("set_current_limit", connector, amps)

    def show_status(self, connector: int, status: str, transaction_id: int | None,
                    reservation_id: int | None = None) -> None:
        self._enter("show_status", connector, status, transaction_id, reservation_id)


class FakeMeter(_Recorder):
    """hal.EnergyMeter: reads whatever `energy_wh[connector]` holds (a float NaN is passed through)."""

    def __init__(self, energy_wh: dict[int, int | float] | None = None,
                 values: tuple[SampledValue, ...] = ()) -> None:
        super().__init__()
        self.energy_wh: dict[int, int | float] = dict(energy_wh or {1: 0})
        self.values = values
        self.read_errors: dict[int, HalError] = {}  # connector -> raised by read

    def open(self) -> None:
        self._enter("open")

    def close(self) -> None:
        self._enter("close")

    def read(self, connector: int, measurands: tuple[str, ...]) -> MeterReading:
        self._enter("read", connector, measurands)
        error = self.read_errors.get(connector)
        if error is not None:
            raise error
        return MeterReading(connector, self.energy_wh[connector], self.values)


NAN = math.nan


class FakeReader(_Recorder):
    """hal.CardReader: `tap(id_tag)` is a card held to the reader (emitted on the calling thread)."""

    def __init__(self) -> None:
        super().__init__()
        self.emit: Callable[[object], None] | None = None

    def open(self, emit: Callable[[object], None]) -> None:
        self._enter("open")
        self.emit = emit

    def close(self) -> None:
        self._enter("close")

    def tap(self, id_tag: str) -> None:
        assert self.emit is not None, "the reader was never opened"
        self.emit(CardPresented(id_tag))


# --- the link's connection ------------------------------------------------------------------------


class FakeConnection:
    """Stands in for actors.link.connection.Connection: records sent texts; the test plays the socket thread."""

    def __init__(self, csms, cp_id, on_text, on_event, ping_interval_s):
        self.csms, self.cp_id = csms, cp_id
        self.on_text = on_text
        self.on_event = on_event
        self.ping_interval_s = ping_interval_s
        self.started = self.stopped = False
        self.drops = 0
        self.connected = True
        self.sent: queue.Queue = queue.Queue()

    def start(self):
        self.started = True

    def stop(self):
        self.stopped = True

    def drop(self):
        self.drops += 1

    def send(self, text, written=None):
        if not self.connected:
            raise NotConnected("fake: offline")
        self.sent.put(text)
        if written is not None:  # "on the socket" at once
            written.release()

    def next_sent(self, timeout=5.0) -> list:
        return json.loads(self.sent.get(timeout=timeout))

    def nothing_sent(self) -> bool:
        return self.sent.empty()
