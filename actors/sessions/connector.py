"""One connector's facts and the OCPP 1.6 status they imply (OCPP 1.6 §4.9, §7.7).

A plain class, no threads: the session core changes the facts, then asks `status()`.
Deriving the status from facts (rather than storing it) means no transition can leave the
status inconsistent with the hardware. The rules are a table, tried in order: the first that
holds names the status, so precedence (a fault over everything, SuspendedEVSE over SuspendedEV:
§4.9) is the order of the rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable


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


@dataclass
class Connector:
    id: int
    plugged: bool = False
    ev_drawing: bool = False
    error_code: str = "NoError"
    error_info: str = ""
    operative: bool = True  # ChangeAvailability; persisted
    pending_operative: bool | None = None  # a change Scheduled until the transaction ends
    authorized_tag: str | None = None  # identification (or RemoteStart) before the cable
    authorized_parent: str | None = None
    authorizing_tag: str | None = None  # Authorize.req in flight for this connector
    starting: bool = False  # lock requested, StartTransaction not yet queued
    session: Session | None = None
    finishing: bool = False  # a transaction ended with the cable still in
    cable_in_socket: bool = False  # a socket's cable, still in after an EV-side unplug

    @property
    def faulted(self) -> bool:
        return self.error_code != "NoError"

    @property
    def busy(self) -> bool:
        """Not free for a new session."""
        return (self.session is not None or self.starting or self.faulted or not self.operative
                or self.finishing or self.authorized_tag is not None)

    def status(self) -> str:
        return next(status for status, holds in STATUS_RULES if holds(self))

    def info(self) -> str:
        if self.session is not None and not self.plugged:
            return "EV side disconnected"
        return self.error_info


def _in_session(c: Connector) -> bool:
    return c.session is not None


STATUS_RULES: tuple[tuple[str, Callable[[Connector], bool]], ...] = (
    ("Faulted", lambda c: c.faulted),
    # §4.9: suspended by both the EV and the EVSE is SuspendedEVSE.
    ("SuspendedEVSE", lambda c: _in_session(c) and c.session.suspended_evse),
    ("Charging", lambda c: _in_session(c) and c.plugged and c.ev_drawing),
    # The EV not drawing, or unplugged on its side with StopTransactionOnEVSideDisconnect=false
    # (§4.9: SuspendedEV, info "EV side disconnected"; the transaction goes on).
    ("SuspendedEV", _in_session),
    # A running session keeps its status while unavailability is Scheduled (§5.2).
    ("Unavailable", lambda c: not c.operative),
    ("Finishing", lambda c: c.finishing and (c.plugged or c.cable_in_socket)),
    ("Preparing", lambda c: c.plugged or c.authorized_tag is not None or c.starting or bool(c.authorizing_tag)),
    ("Available", lambda c: True),
)
"""(status, the facts that imply it): the first row that holds is the connector's status."""


def station_status(operative: bool, error_code: str) -> str:
    """Connector 0, the station as a whole: only Available, Unavailable or Faulted (§4.9)."""
    if error_code != "NoError":
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
          "and Unavailable at once (§5.2); the §4.9 table has no B8",
    "H6": "ChangeAvailability(Operative) after a Scheduled change took effect at the end of a transaction "
          "whose cable is still in: Finishing again until it is removed",
    "A6": "a cable found in after a power loss: connectors are published Available at start-up, before the "
          "EVSE reports the plug (issue 10)",
}
"""Transitions this station makes that the §4.9 table lacks, each with why (same cell names)."""

ALLOWED: frozenset[tuple[str, str]] = frozenset(TRANSITIONS.values()) | frozenset(
    (_ROWS[cell[0]], _STATUSES[cell[1]]) for cell in BEYOND_THE_TABLE)


def transition_name(old: str, new: str) -> str:
    """The §4.9 cell name of a transition ("B6"), whatever table it is in."""
    row = next(k for k, v in _ROWS.items() if v == old)
    column = next(k for k, v in _STATUSES.items() if v == new)
    return row + column
