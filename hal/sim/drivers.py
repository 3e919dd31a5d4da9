"""The sim drivers: the EvseController, EnergyMeter and CardReader faces of one `Simulator`.

Each driver call first waits out its device's stall (`stall` control command), like a
serial device that stopped answering for a while, then acts on the shared model.
"""

from __future__ import annotations

import logging
import queue
import threading
from datetime import datetime, timezone

from hal import ConnectorHardwareState, Emit, HalError
from hal.sim.simulator import Simulator
from messages.events import MainsPowerChanged, CardPresented, MeterReading, SampledValue

log = logging.getLogger(__name__)

VOLTAGE_V = 230.0  # single phase, L1


class SimEvse:
    """EvseController on the simulator: plug/EV/fault events come from the control socket."""

    def __init__(self, sim: Simulator):
        self._sim = sim
        self._emit: Emit | None = None

    def open(self, emit: Emit) -> None:
        self._emit = emit
        self._sim.attach_evse(emit)
        # The EVSE controller is what notices mains going away (its supply monitor).
        self._sim.on_power_cut(lambda: self._emit and self._emit(MainsPowerChanged(False)))

    def close(self) -> None:
        if self._emit is not None:
            self._sim.detach_evse(self._emit)
        self._emit = None

    def connector_states(self) -> tuple[ConnectorHardwareState, ...]:
        self._sim.wait_if_stalled("evse")
        with self._sim.lock:
            models = [self._sim.connector(n) for n in range(1, self._sim.connectors + 1)]
            return tuple(ConnectorHardwareState(c.connector, c.plugged, c.requesting, c.error_code)
                         for c in models)

    def set_contactor(self, connector: int, closed: bool) -> None:
        self._sim.wait_if_stalled("evse")
        with self._sim.lock:
            self._sim.update(self._sim.connector(connector), contactor=bool(closed))

    def set_lock(self, connector: int, locked: bool) -> bool:
        self._sim.wait_if_stalled("evse")
        with self._sim.lock:
            c = self._sim.connector(connector)
            if c.lock_fails and not self._sim.fixed_cable:  # a fixed cable has no lock to fail
                return False
            c.locked = bool(locked)
            return True

    def set_current_limit(self, connector: int, amps: float) -> None:
        self._sim.wait_if_stalled("evse")
        if isinstance(amps, bool) or not isinstance(amps, (int, float)) or not amps >= 0:
            raise HalError(f"current limit must be a number >= 0 A, got {amps!r}")
        with self._sim.lock:
            self._sim.connector(connector).current_limit_a = amps

    def show_status(self, connector: int, status: str, transaction_id: int | None,
                    reservation_id: int | None = None) -> None:
        self._sim.wait_if_stalled("evse")
        with self._sim.lock:
            c = self._sim.connector(connector, station=True)  # connector 0: the station's own status
            c.status, c.transaction_id, c.reservation_id = status, transaction_id, reservation_id


class SimMeter:
    """EnergyMeter on the simulator: one channel per connector, single phase."""

    def __init__(self, sim: Simulator):
        self._sim = sim

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def read(self, connector: int, measurands: tuple[str, ...]) -> MeterReading:
        self._sim.wait_if_stalled("meter")
        with self._sim.lock:
            c = self._sim.connector(connector, error_code="PowerMeterFailure")
            energy_wh, power_w = self._sim.metered(c)
            offered_a = c.current_limit_a
        energy = int(round(energy_wh))
        available = {
            "Power.Active.Import": SampledValue("Power.Active.Import", float(power_w), "W"),
            "Current.Import": SampledValue("Current.Import", round(power_w / VOLTAGE_V, 2), "A", "L1"),
            "Voltage": SampledValue("Voltage", VOLTAGE_V, "V", "L1"),
            "Current.Offered": SampledValue("Current.Offered", float(offered_a), "A"),
        }
        # The register always comes first; a measurand this meter lacks is skipped, not an error.
        values = [SampledValue("Energy.Active.Import.Register", float(energy), "Wh")]
        values += [available[m] for m in dict.fromkeys(measurands) if m in available]
        return MeterReading(connector, energy, tuple(values), datetime.now(timezone.utc))


_CLOSE = object()  # sentinel: wakes the reader thread to stop


class SimReader:
    """CardReader on the simulator: a daemon thread hands each swipe to `emit`."""

    def __init__(self, sim: Simulator):
        self._sim = sim
        self._swipes: queue.Queue = queue.Queue()
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self, emit: Emit) -> None:
        if self._thread is not None:
            raise HalError("card reader already open", "ReaderFailure")
        # A fresh queue and event per open: nothing from a previous session leaks in.
        self._swipes, self._closing = queue.Queue(), threading.Event()
        self._thread = threading.Thread(target=self._run, args=(emit, self._swipes, self._closing),
                                        name="sim-rfid", daemon=True)
        self._thread.start()
        self._sim.attach_reader(self._swipes)

    def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._sim.detach_reader(self._swipes)
        self._closing.set()
        self._sim.wake_stalled()  # a thread waiting out an rfid stall sees _closing now
        self._swipes.put(_CLOSE)
        thread.join(timeout=5)

    def _run(self, emit: Emit, swipes: queue.Queue, closing: threading.Event) -> None:
        while (tag := swipes.get()) is not _CLOSE:
            # A tap while the reader is stalled is seen only once the reader answers again.
            if not self._sim.wait_if_stalled("rfid", cancel=closing):
                return
            try:
                emit(CardPresented(tag))
            except Exception:  # the owner is gone; keep reading until closed
                log.exception("card reader emitter failed for %r", tag)
