"""Hardware abstraction: one Protocol per device, its drivers, and the simulator.

Each device is owned by exactly one device actor, which makes every call below on its
own thread; a call may block (serial timeout, a stalled device) without blocking any
other actor. Drivers that see events by themselves (a plug, a card) run their blocking
I/O on threads they own and hand each event to `emit`, which only `tell`s the owner.

Events and readings are the frozen dataclasses of `messages.events`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from messages.events import MeterReading

Emit = Callable[[object], None]


class HalError(Exception):
    """A device did not answer, answered garbage, or vanished. `error_code` is the
    OCPP ChargePointErrorCode the connector reports if the failure lasts."""

    def __init__(self, message: str, error_code: str = "OtherError"):
        super().__init__(message)
        self.error_code = error_code


@dataclass(frozen=True)
class ConnectorHardwareState:
    """What the EVSE controller knows about a connector when asked."""

    connector: int
    plugged: bool
    ev_drawing: bool = False
    error_code: str = "NoError"
    info: str = ""


class EvseController(Protocol):
    """The EVSE controller: control pilot, contactor, connector lock, status indicator."""

    def open(self, emit: Emit) -> None:
        """Connect; from now on plug/EV/fault changes are emitted as PlugConnected,
        PlugDisconnected, EvDrawChanged, ConnectorFaultChanged."""

    def close(self) -> None: ...

    def connector_states(self) -> tuple[ConnectorHardwareState, ...]:
        """The present state of every connector (used at start-up and after recovery)."""

    def set_contactor(self, connector: int, closed: bool) -> None: ...

    def set_lock(self, connector: int, locked: bool) -> bool:
        """Lock or unlock the connector; False when the lock motor failed."""

    def set_current_limit(self, connector: int, amps: float) -> None: ...

    def show_status(self, connector: int, status: str, transaction_id: int | None,
                    reservation_id: int | None = None) -> None:
        """Show the OCPP status on the station's indicator (LED ring, display); `reservation_id`: the
        reservation holding the connector (Reserved, or Preparing for the reserved idTag), if any."""


class EnergyMeter(Protocol):
    """An energy meter, one channel per connector."""

    def open(self) -> None: ...

    def close(self) -> None: ...

    def read(self, connector: int, measurands: tuple[str, ...]) -> MeterReading:
        """Read Energy.Active.Import.Register plus whichever of `measurands` the meter has."""


class CardReader(Protocol):
    """An RFID reader: emits CardPresented(id_tag) once per tap, from its own thread."""

    def open(self, emit: Emit) -> None: ...

    def close(self) -> None: ...
