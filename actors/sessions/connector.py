"""One connector's facts and the OCPP 1.6 status they imply (OCPP 1.6 §4.9, §7.6, §7.7).

A plain class, no threads: the session core changes the facts, then asks `status()`.
Deriving the status from facts (rather than storing it) means no transition can leave the
status inconsistent with the hardware. The rules are a table, tried in order: the first that
holds names the status, so precedence (a fault over everything, SuspendedEVSE over SuspendedEV:
§4.9) is the order of the rows.

Faults. A connector, and the station as a whole (connector 0), keep one active fault per source
that reports faults ("evse": the EVSE controller, "meter", "lock": the connector lock, "rfid": the
card reader, "station"): a source's NoError clears its own fault and no other. A fault whose
ChargePointErrorCode is not in WARNINGS is *blocking*: a connector is Faulted while it has one;
connector 0 is Faulted while it has one, and then every connector is held (no new session:
Unavailable; a running session gets no energy: SuspendedEVSE) until it clears. WARNINGS are
reported with the status the connector has anyway (§4.9: "When the status field is not Faulted,
the condition should be considered a warning since charging operations are still possible"):
EVCommunicationError (the link to the EV; §4.9: only with Preparing, SuspendedEV, SuspendedEVSE or
Finishing, and §7.6: "it should go to the SuspendedEVSE state": a session gets no energy while it
lasts), ReaderFailure (the card reader: cards are not read, RemoteStart still works), WeakSignal,
LocalListConflict and ResetFailure. The errorCode shown is that of the oldest blocking fault still
active, else of the oldest warning the status may carry, else NoError (`shown_fault`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

WARNINGS = frozenset({"EVCommunicationError", "ReaderFailure", "WeakSignal", "LocalListConflict", "ResetFailure"})
"""ChargePointErrorCodes that do not stop charging operations: reported as warnings, never Faulted."""

EV_LINK_STATUSES = frozenset({"Preparing", "SuspendedEV", "SuspendedEVSE", "Finishing"})
"""OCPP 1.6 §4.9: EVCommunicationError SHALL only be used with these statuses."""


@dataclass(frozen=True)
class Fault:
    """The fault one source reports (OCPP 1.6 §7.6 ChargePointErrorCode, never NoError)."""

    error_code: str
    info: str = ""
    vendor_error_code: str = ""

    @property
    def blocking(self) -> bool:
        return self.error_code not in WARNINGS


def set_fault(faults: dict[str, Fault], source: str, error_code: str, info: str = "",
              vendor_error_code: str = "") -> None:
    """A source reports `error_code`: NoError clears its fault (only its own); anything else is its
    fault from now on (a source's new code keeps the place of its old one among the active faults)."""
    if error_code == "NoError":
        faults.pop(source, None)
    else:
        faults[source] = Fault(error_code, info, vendor_error_code)


def blocking(faults: dict[str, Fault]) -> bool:
    return any(f.blocking for f in faults.values())


def shown_fault(faults: dict[str, Fault], status: str) -> Fault | None:
    """The fault a StatusNotification with `status` reports: the oldest blocking one still active, else
    the oldest warning that status may carry (§4.9), else None (errorCode NoError)."""
    active = list(faults.values())
    for fault in active:
        if fault.blocking:
            return fault
    for fault in active:
        if fault.error_code != "EVCommunicationError" or status in EV_LINK_STATUSES:
            return fault
    return None


@dataclass
class Session:
    """A transaction running on a connector."""

    local_id: int
    id_tag: str
    parent_id_tag: str | None
    meter_start_wh: int
    started_at: datetime
    transaction_id: int | None = None
    suspended_evse: bool = False  # energy withheld (e.g. StartTransaction answered Invalid)
    invalid: bool = False  # the CSMS said the idTag is not valid; MaxEnergyOnInvalidId applies
    transaction_data: list = field(default_factory=list)  # StopTxn*Data values, for StopTransaction


@dataclass(frozen=True)
class Reservation:
    """A ReserveNow the station accepted (OCPP 1.6 §5.13); connector 0: any connector of the station."""

    reservation_id: int
    connector: int
    id_tag: str
    parent_id_tag: str | None
    expiry: datetime

    def admits(self, id_tag: str, parent_id_tag: str | None) -> bool:
        """§5.13: the reserved idTag, or one whose parentIdTag is the reservation's (idTags are CiString:
        case-insensitive)."""
        if id_tag.lower() == self.id_tag.lower():
            return True
        return bool(self.parent_id_tag and parent_id_tag and parent_id_tag.lower() == self.parent_id_tag.lower())


@dataclass
class Connector:
    id: int
    plugged: bool = False
    ev_drawing: bool = False
    faults: dict[str, Fault] = field(default_factory=dict)  # source -> its active fault, oldest first
    station_blocked: bool = False  # connector 0 has a blocking fault: no energy, no new session
    operative: bool = True  # ChangeAvailability; persisted
    pending_operative: bool | None = None  # a change Scheduled until the transaction ends
    authorized_tag: str | None = None  # identification (or RemoteStart) before the cable
    authorized_parent: str | None = None
    authorizing_tag: str | None = None  # Authorize.req in flight for this connector
    starting: bool = False  # lock requested, StartTransaction not yet queued
    session: Session | None = None
    finishing: bool = False  # a transaction ended with the cable still in
    cable_in_socket: bool = False  # a socket's cable, still in after an EV-side unplug
    held_for: tuple[str, str | None] | None = None  # (idTag, parentIdTag) a DeAuthorized stop keeps the cable for
    preparing_since: datetime | None = None  # when the connector last became Preparing (ConnectionTimeOut)
    timeout_for: datetime | None = None  # the preparing_since the ConnectionTimeOut timer counts from
    reservation: Reservation | None = None  # the reservation holding it: its own, or a connector-0 one kept here

    @property
    def faulted(self) -> bool:
        """A blocking fault of its own: Faulted."""
        return blocking(self.faults)

    @property
    def ev_link_lost(self) -> bool:
        return any(f.error_code == "EVCommunicationError" for f in self.faults.values())

    @property
    def energy_withheld(self) -> bool:
        """The station gives a running session no energy (SuspendedEVSE): an invalid idTag's energy is
        used up, the station as a whole is faulted, or the link to the EV is lost (§7.6)."""
        return (self.session is not None and self.session.suspended_evse) or self.station_blocked or \
            self.ev_link_lost

    @property
    def energy_on(self) -> bool:
        """What the contactor should be: closed only for a running session nothing holds back."""
        return self.session is not None and not self.faulted and not self.energy_withheld

    @property
    def usable(self) -> bool:
        """May take a session at all (whether or not one is running): operative, nothing blocking."""
        return self.operative and not self.faulted and not self.station_blocked

    @property
    def busy(self) -> bool:
        """Not free for a new session."""
        return (self.session is not None or self.starting or not self.usable
                or self.cable_left_in or self.authorized_tag is not None)

    @property
    def cable_left_in(self) -> bool:
        """A transaction (or an abandoned start) ended and its cable is still in: Finishing until it is out."""
        return self.finishing and (self.plugged or self.cable_in_socket)

    def status(self) -> str:
        return next(status for status, holds in STATUS_RULES if holds(self))

    def shown_fault(self, status: str | None = None) -> Fault | None:
        return shown_fault(self.faults, status or self.status())

    def info(self, status: str | None = None) -> str:
        fault = self.shown_fault(status)
        if fault is not None and fault.info:
            return fault.info
        if self.session is not None and not self.plugged:
            return "EV side disconnected"
        return ""


def _in_session(c: Connector) -> bool:
    return c.session is not None


STATUS_RULES: tuple[tuple[str, Callable[[Connector], bool]], ...] = (
    ("Faulted", lambda c: c.faulted),
    # §4.9: suspended by both the EV and the EVSE is SuspendedEVSE.
    ("SuspendedEVSE", lambda c: _in_session(c) and c.energy_withheld),
    ("Charging", lambda c: _in_session(c) and c.plugged and c.ev_drawing),
    # The EV not drawing, or unplugged on its side with StopTransactionOnEVSideDisconnect=false
    # (§4.9: SuspendedEV, info "EV side disconnected"; the transaction goes on).
    ("SuspendedEV", _in_session),
    # A running session keeps its status while unavailability is Scheduled (§5.2).
    # Made Inoperative (ChangeAvailability), or held by a fault of the station as a whole.
    ("Unavailable", lambda c: not c.operative or c.station_blocked),
    ("Finishing", lambda c: c.cable_left_in),
    # §5.13: held for its reservation until the reserved identity is presented (G2: Preparing once it
    # is accepted); a cable plugged in or a card being authorized meanwhile does not end that.
    ("Reserved", lambda c: c.reservation is not None and c.authorized_tag is None and not c.starting),
    ("Preparing", lambda c: c.plugged or c.authorized_tag is not None or c.starting or bool(c.authorizing_tag)),
    ("Available", lambda c: True),
)
"""(status, the facts that imply it): the first row that holds is the connector's status."""


def station_status(operative: bool, faults: dict[str, Fault]) -> str:
    """Connector 0, the station as a whole: only Available, Unavailable or Faulted (§4.9)."""
    if blocking(faults):
        return "Faulted"
    return "Available" if operative else "Unavailable"


# --- OCPP 1.6 §4.9: the status transitions ----------------------------------------------------------

_STATUSES = {"1": "Available", "2": "Preparing", "3": "Charging", "4": "SuspendedEV", "5": "SuspendedEVSE",
             "6": "Finishing", "7": "Reserved", "8": "Unavailable", "9": "Faulted"}
_ROWS = {"A": "Available", "B": "Preparing", "C": "Charging", "D": "SuspendedEV", "E": "SuspendedEVSE",
         "F": "Finishing", "G": "Reserved", "H": "Unavailable", "I": "Faulted"}
_SPEC_CELLS = ("A2 A3 A4 A5 A7 A8 A9  B1 B3 B4 B5 B6 B9  C1 C4 C5 C6 C8 C9  D1 D3 D5 D6 D8 D9  E1 E3 E4 E6 E8 E9"
               "  F1 F2 F8 F9  G1 G2 G8 G9  H1 H2 H3 H4 H5 H9  I1 I2 I3 I4 I5 I6 I7 I8")

TRANSITIONS: dict[str, tuple[str, str]] = {cell: (_ROWS[cell[0]], _STATUSES[cell[1]]) for cell in _SPEC_CELLS.split()}
"""The table of OCPP 1.6 §4.9 (row = from, column = to), by its cell names: "B6" = Preparing -> Finishing."""

BEYOND_THE_TABLE: dict[str, str] = {
    "B8": "ChangeAvailability(Inoperative) on a Preparing connector: no transaction to wait for, so Accepted "
          "and Unavailable at once (§5.2); the §4.9 table has no B8. So does a fault of the station as a "
          "whole (connector 0), which holds every connector",
    "B7": "The reserved identity was presented on a Reserved connector (G2) but no transaction started "
          "(ConnectionTimeOut without a cable, the cable gone while the lock moved): the reservation stands "
          "until it is used, expires or is cancelled (§5.13), so the connector is Reserved again",
    "H6": "ChangeAvailability(Operative) after a Scheduled change took effect at the end of a transaction "
          "whose cable is still in, or a fault of the station as a whole cleared while one is: Finishing "
          "again until it is removed",
}
"""Transitions this station makes that the §4.9 table lacks, each with why (same cell names)."""

ALLOWED: frozenset[tuple[str, str]] = frozenset(TRANSITIONS.values()) | frozenset(
    (_ROWS[cell[0]], _STATUSES[cell[1]]) for cell in BEYOND_THE_TABLE)


def transition_name(old: str, new: str) -> str:
    """The §4.9 cell name of a transition ("B6"), whatever table it is in."""
    row = next(k for k, v in _ROWS.items() if v == old)
    column = next(k for k, v in _STATUSES.items() if v == new)
    return row + column
