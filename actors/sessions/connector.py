"""One connector's facts and the OCPP 1.6 status they imply (OCPP 1.6 §4.9, §7.7).

A plain class, no threads: the TransactionManager changes the facts, then asks `status()`.
Deriving the status from facts (rather than storing it) means no transition can leave the
status inconsistent with the hardware.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass
class Session:
    """A transaction running (or being started) on a connector."""

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
    ev_side_disconnected: bool = False
    reserved: dict = field(default_factory=dict)

    @property
    def faulted(self) -> bool:
        return self.error_code != "NoError"

    @property
    def busy(self) -> bool:
        """Not free for a new session."""
        return (self.session is not None or self.starting or self.faulted or not self.operative
                or self.finishing or self.authorized_tag is not None)

    def status(self) -> str:
        if self.faulted:
            return "Faulted"
        if self.session is not None:
            if self.session.suspended_evse:
                return "SuspendedEVSE"
            if not self.plugged:
                return "SuspendedEV"  # StopTransactionOnEVSideDisconnect=false: the tx goes on
            return "Charging" if self.ev_drawing else "SuspendedEV"
        if not self.operative:
            return "Unavailable"
        if self.finishing and (self.plugged or self.cable_in_socket):
            return "Finishing"
        if self.plugged or self.authorized_tag is not None or self.starting or self.authorizing_tag:
            return "Preparing"
        return "Available"

    def info(self) -> str:
        if self.session is not None and not self.plugged:
            return "EV side disconnected"
        return self.error_info


def station_status(operative: bool, error_code: str) -> str:
    """Connector 0, the station as a whole: only Available, Unavailable or Faulted (§4.9)."""
    if error_code != "NoError":
        return "Faulted"
    return "Available" if operative else "Unavailable"
