"""Messages between actors: frozen dataclasses only (pykka does not copy messages).

Events are in the past tense (PlugConnected), commands in the imperative (SendCall),
timer ticks end in Due (`messages.ticks`). OCPP payloads inside them are frozen with
`messages.frozen.freeze`. Actor references (`reply_to`) are pykka ActorRefs, which are
safe to share between threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

# --- hardware events (emitted by HAL drivers through their owning device actor) ---------------


@dataclass(frozen=True)
class PlugConnected:
    connector: int


@dataclass(frozen=True)
class PlugDisconnected:
    connector: int


@dataclass(frozen=True)
class CableDetached:
    """A socket station's proximity pin no longer sees a cable: the socket is empty again.

    After an EV-side unplug (PlugDisconnected) the cable may still be in the socket; only this
    says it has gone. Fixed-cable stations never send it."""

    connector: int


@dataclass(frozen=True)
class EvDrawChanged:
    """The EV asks for energy (drawing=True: J1772 state C) or stops asking (False: state B).

    Independent of the contactor: with the contactor open the EV may already be asking."""

    connector: int
    drawing: bool


@dataclass(frozen=True)
class ConnectorFaultChanged:
    """A ChargePointErrorCode (OCPP 1.6 §7.6) appeared on a connector (0 = whole station); NoError clears
    it. `source` says which part reports it ("evse", "meter", "lock", "rfid", "station"): a source's
    NoError clears only that source's fault."""

    connector: int
    error_code: str
    info: str = ""
    vendor_error_code: str = ""
    source: str = "evse"


@dataclass(frozen=True)
class CardPresented:
    id_tag: str


@dataclass(frozen=True)
class SampledValue:
    """One OCPP SampledValue: measurand, value in `unit`, optional phase and location."""

    measurand: str
    value: float
    unit: str
    phase: str | None = None
    location: str = "Outlet"


@dataclass(frozen=True)
class MeterReading:
    connector: int
    energy_wh: int  # Energy.Active.Import.Register, whole Wh
    values: tuple[SampledValue, ...] = ()
    taken_at: datetime | None = None


@dataclass(frozen=True)
class MeterSampled:
    reading: MeterReading


# --- commands to device actors -----------------------------------------------------------------


@dataclass(frozen=True)
class SetContactor:
    connector: int
    closed: bool


@dataclass(frozen=True)
class SetConnectorLock:
    """Lock or unlock; the device actor answers ConnectorLockResult to `reply_to` (if any)."""

    connector: int
    locked: bool
    reply_to: Any = None
    request_id: str = ""


@dataclass(frozen=True)
class ConnectorLockResult:
    connector: int
    locked: bool
    ok: bool
    request_id: str = ""


@dataclass(frozen=True)
class ShowStatus:
    """Show the connector's OCPP status on the station (LEDs, display; the simulator records it)."""

    connector: int
    status: str
    transaction_id: int | None = None
    reservation_id: int | None = None  # the reservation holding the connector, if any (OCPP 1.6 §5.13)


# --- the OCPP-J link ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SendCall:
    """Send a CALL to the CSMS. The answer returns to `reply_to` as CallAnswered or CallFailed.

    `unique_id` is given for a re-sent transaction message, which keeps its id
    (OCPP-J errata 2025-04 §3.1). `before_boot` lets BootNotification, and what a TriggerMessage
    asked for, out while not Accepted (OCPP 1.6 §4.2).
    """

    action: str
    payload: Any
    reply_to: Any = None
    tag: Any = None
    unique_id: str | None = None
    before_boot: bool = False


@dataclass(frozen=True)
class CallAnswered:
    action: str
    payload: Any
    tag: Any
    unique_id: str


@dataclass(frozen=True)
class CallFailed:
    """No usable answer. reason: "CallError" (see error_code), "Timeout", "Disconnected", "Invalid"
    (the CSMS's answer broke its schema) or "Refused" (our own payload broke it: never sent)."""

    action: str
    reason: str
    tag: Any
    unique_id: str
    error_code: str = ""
    description: str = ""



@dataclass(frozen=True)
class ReplyResult:
    unique_id: str
    action: str
    payload: Any


@dataclass(frozen=True)
class ReplyError:
    unique_id: str
    error_code: str
    description: str = ""



@dataclass(frozen=True)
class Wired:
    """Sent once to every actor at assembly, after all exist: message type -> the ActorRefs subscribed
    to it (built by the station from each actor's declared `subscribes`)."""

    routes: Any


@dataclass(frozen=True)
class LinkWiring:
    """Sent once to the link at assembly (the socket opens then): action -> handler ActorRef, and the
    read-only requests answered on the socket thread (action -> fn(request) -> ReplyResult/ReplyError)."""

    routes: Any
    readers: Any = None


@dataclass(frozen=True)
class LinkUp:
    pass


@dataclass(frozen=True)
class LinkDown:
    reason: str = ""


@dataclass(frozen=True)
class CsmsOnline:
    """The CSMS is reachable and has Accepted this station's BootNotification (online=True), or no
    longer (OCPP 1.6 §4.2). `registered` marks the first one after a BootNotification was Accepted:
    the CSMS knows nothing of this station's state yet."""

    online: bool
    registered: bool = False



@dataclass(frozen=True)
class RegistrationStatusChanged:
    """BootNotification's outcome ("Accepted", "Pending", "Rejected"): the link answers no CSMS
    request while Rejected (OCPP 1.6 §4.2)."""

    status: str


@dataclass(frozen=True)
class SocketOpened:
    generation: int


@dataclass(frozen=True)
class SocketClosed:
    generation: int
    reason: str = ""



# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigurationChanged:
    """A configuration key got a new value (already validated and persisted)."""

    key: str
    value: Any


# --- transactions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransactionMessagesQueued:
    """Wake the transaction message queue: rows were committed to it."""


@dataclass(frozen=True)
class TransactionIdAssigned:
    """StartTransaction.conf arrived for the local transaction `local_id`, or (transaction_id -1,
    id_tag_info None) its StartTransaction was dropped after TransactionMessageAttempts (errata 3.18).

    `resent`: an earlier send of this StartTransaction may have reached the CSMS (it timed out, or the
    station went down while it was in flight), so a ConcurrentTx answer may be the CSMS seeing the same
    session twice rather than a refusal."""

    local_id: int
    transaction_id: int
    id_tag_info: Any
    resent: bool = False



@dataclass(frozen=True)
class TransactionBegan:
    connector: int
    local_id: int
    meter_start_wh: int


@dataclass(frozen=True)
class TransactionEnded:
    connector: int
    local_id: int


@dataclass(frozen=True)
class ConnectorStatusChanged:
    """The transaction manager's view of a connector's OCPP status (before debouncing)."""

    connector: int
    status: str
    error_code: str = "NoError"
    info: str = ""
    vendor_error_code: str = ""
    timestamp: datetime | None = None


# --- the watchdog ------------------------------------------------------------------------------



@dataclass(frozen=True)
class HealthCheck:
    """Answered by every actor (ask) so the watchdog knows none is stuck."""


# --- authorization -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AuthorizeTag:
    """Ask the Authorization actor whether `id_tag` may charge; it answers TagAuthorized(tag, ...)."""

    id_tag: str
    reply_to: Any
    tag: Any = None


@dataclass(frozen=True)
class TagAuthorized:
    """The verdict: `info` is an OCPP IdTagInfo (status, parentIdTag, expiryDate); `source` says
    where it came from: "csms", "local-list", "cache", "offline-unknown" or "offline"."""

    id_tag: str
    info: Any
    source: str
    tag: Any = None


@dataclass(frozen=True)
class IdTagInfoReceived:
    """An idTagInfo the CSMS sent in Start/StopTransaction.conf: it refreshes the cache (§3.4.1)."""

    id_tag: str
    info: Any


# --- power and reset -------------------------------------------------------------------------


@dataclass(frozen=True)
class MainsPowerChanged:
    """Mains power went away (on=False) or came back; the station runs on back-up power meanwhile."""

    on: bool


@dataclass(frozen=True)
class StopAllTransactions:
    """Stop every running transaction with `reason` (Reset, power loss), then tell `reply_to`
    AllTransactionsStopped."""

    reason: str
    reply_to: Any = None


@dataclass(frozen=True)
class FlushStatus:
    """Report every status change now, MinimumStatusDuration or not (the station is going down), then
    tell `reply_to` StatusFlushed once the CSMS has answered them (or at once when offline)."""

    reply_to: Any


@dataclass(frozen=True)
class StatusFlushed:
    pass


@dataclass(frozen=True)
class AllTransactionsStopped:
    count: int


@dataclass(frozen=True)
class QueueDrained:
    """The transaction message queue is empty (answer to "notify_when_drained")."""


@dataclass(frozen=True)
class ShutDown:
    """Stop the station process: stop transactions with `reason`, let the queue drain for at most
    `grace_s`, then exit with `exit_code` (75: restart now, a Reset; 0: clean stop)."""

    reason: str
    exit_code: int
    grace_s: float


@dataclass(frozen=True)
class NotifyWhenDrained:
    """Ask the transaction message queue to tell `reply_to` QueueDrained once it is empty."""

    reply_to: Any


@dataclass(frozen=True)
class TransactionDataSampled:
    """A MeterValue for StopTransaction.transactionData (StopTxnSampledData / StopTxnAlignedData)."""

    connector: int
    local_id: int
    meter_value: Any


@dataclass(frozen=True)
class SetConfigurationValue:
    """The station itself sets a key (e.g. HeartbeatInterval from BootNotification.conf): persisted and
    broadcast as ConfigurationChanged like a CSMS change."""

    key: str
    value: Any


# --- DataTransfer (OCPP 1.6 §4.3) ----------------------------------------------------------


@dataclass(frozen=True)
class SendDataTransfer:
    """Send a DataTransfer.req to the CSMS; the outcome goes to `reply_to` tagged with `tag`."""

    vendor_id: str
    message_id: str | None = None
    data: str | None = None
    reply_to: Any = None
    tag: Any = None


@dataclass(frozen=True)
class DataTransferAnswered:
    tag: Any
    status: str  # Accepted | Rejected | UnknownMessageId | UnknownVendorId
    data: str | None = None


@dataclass(frozen=True)
class DataTransferFailed:
    """No answer: reason as in CallFailed ("CallError", "Timeout", "Disconnected", "Invalid", "Refused")."""

    tag: Any
    reason: str
    detail: str = ""


# --- Remote Trigger (OCPP 1.6 §5.17) ---------------------------------------------------------------
# The RemoteTrigger actor answers TriggerMessage, then tells the owner of the requested message to send
# it now. A triggered CALL goes out even while the BootNotification is Pending (SendCall.before_boot):
# §4.2 allows exactly those.


@dataclass(frozen=True)
class BootNotificationTriggered:
    """Send BootNotification now (only asked while it is not Accepted: errata 3.35/3.40)."""


@dataclass(frozen=True)
class HeartbeatTriggered:
    """Send a Heartbeat now."""


@dataclass(frozen=True)
class StatusNotificationTriggered:
    """Send the current status of `connector` now, or of connector 0 and every connector (None)."""

    connector: int | None = None


@dataclass(frozen=True)
class MeterValuesTriggered:
    """Send MeterValues (context Trigger) of `connector` now, or of every connector (None)."""

    connector: int | None = None
