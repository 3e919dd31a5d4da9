"""Timer ticks: what an actor's Ticker tells the actor itself when a timer is due.

One frozen class per kind of timer, ending in Due. `generation` fields let an actor ignore a tick
from an interval it has since replaced (e.g. after ChangeConfiguration of HeartbeatInterval).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class BootRetryDue:
    """Send BootNotification again (after Pending/Rejected's interval or a failure)."""


@dataclass(frozen=True)
class HeartbeatDue:
    generation: int


@dataclass(frozen=True)
class CallTimeoutDue:
    """No answer to the CALL in flight within MessageTimeout."""

    unique_id: str


@dataclass(frozen=True)
class StatusReportDue:
    """A connector's status has lasted MinimumStatusDuration: report it."""

    connector: int


@dataclass(frozen=True)
class QueueRetryDue:
    """The transaction message queue may try its head message again."""


@dataclass(frozen=True)
class SampleDue:
    """MeterValueSampleInterval elapsed for a transaction's connector (`n`: its sampling run)."""

    connector: int
    run: int
    generation: int


@dataclass(frozen=True)
class ClockAlignedDue:
    """A ClockAlignedDataInterval boundary was reached."""

    boundary: datetime
    generation: int


@dataclass(frozen=True)
class ConnectionTimeoutDue:
    """ConnectionTimeOut passed on a connector that was authorized before its cable came."""

    connector: int


@dataclass(frozen=True)
class UnlockDeadlineDue:
    """The lock motor did not report within the bound: answer UnlockFailed."""

    unique_id: str


@dataclass(frozen=True)
class RemoteStopDeadlineDue:
    """A deferred RemoteStopTransaction waited long enough for its StartTransaction.conf."""

    unique_id: str


@dataclass(frozen=True)
class ReservationExpiryDue:
    """A reservation's expiryDate has come (OCPP 1.6 §5.13): end it, unless it was replaced since."""

    reservation_id: int


@dataclass(frozen=True)
class ResetGraceDue:
    """The transaction message queue had its grace period to drain before the process exits."""


@dataclass(frozen=True)
class DeviceOpenDue:
    """Try to open a device driver again."""


@dataclass(frozen=True)
class MeterReadDue:
    """Poll the energy meter."""


@dataclass(frozen=True)
class DataTransferDeadlineDue:
    """A vendor's DataTransfer handler ran out of time."""

    job_id: int
