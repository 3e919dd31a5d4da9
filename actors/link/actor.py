"""Link: the station's one OCPP-J connection to the CSMS (OCPP-J 1.6 §4).

Takes: LinkWiring (once, at assembly: routes and readers; the socket opens then), SendCall,
CsmsOnline and RegistrationStatusChanged (from BootNotifier), ConfigurationChanged, and its own
socket events.
Emits: CallAnswered / CallFailed to each caller; the typed request (`messages.requests`) to the
actor that handles its action; LinkUp / LinkDown.

Inbound CALLs are parsed and schema-checked on the connection's reader thread, made into their
typed request once, and handed straight to their handler, so a request never queues behind
outbound traffic; malformed ones are answered there with the OCPP-J CALLERROR for the fault.
Handlers answer through the Replier, on their own thread. Outbound, one CALL is in
flight at a time (OCPP-J §4.1.1), with a response timeout (MessageTimeout); until the
BootNotification is Accepted only calls marked `before_boot` go out and any other fails at once as
"Disconnected" (OCPP 1.6 §4.2: nothing else may be sent, so nothing piles up meanwhile); while it
is Rejected, CSMS requests get no answer at all (§4.2).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import deque
from typing import Any, Mapping

import pykka

from actors.infra.base import StationActor

from actors.link.connection import Connection, NotConnected
from actors.shell.settings import CsmsSettings
from actors.infra.ticker import Scheduler
from messages import ocppj, validation
from messages.events import (CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline, LinkDown, LinkUp, LinkWiring,
                             RegistrationStatusChanged, ReplyError, ReplyResult, SendCall, SocketClosed, SocketOpened)
from messages.requests import REQUESTS
from messages.ticks import CallTimeoutDue
from messages.frozen import freeze, thaw as _thawed

log = logging.getLogger(__name__)
frames = logging.getLogger("ocpp.frames")


class Link(StationActor):
    subscribes = (SendCall, CsmsOnline, RegistrationStatusChanged)
    watches = ("MessageTimeout", "WebSocketPingInterval")
    emits = (LinkUp, LinkDown)
    stop_rank = 0  # first: no new requests while the others stop
    def __init__(self, csms: CsmsSettings, cp_id: str, message_timeout_s: float = 30.0, ping_interval_s: float = 60.0,
                 scheduler: Scheduler | None = None, connection_factory=Connection):
        super().__init__(scheduler=scheduler)
        self._csms = csms
        self._cp_id = cp_id
        self._handlers: Mapping[str, Any] = {}  # action -> ActorRef; set once by LinkWiring, then read-only
        self._readers: Mapping[str, Any] = {}
        self._timeout_s = message_timeout_s
        self._ping_interval_s = ping_interval_s
        self._connection_factory = connection_factory
        self._queue: deque[SendCall] = deque()
        self._in_flight: tuple[SendCall, str, int] | None = None  # call, unique id, timer
        self._generation = 0
        self._accepted = False
        self._rejected = False  # written by the actor, read by the reader thread (a plain bool: atomic)
        self._implemented = validation.known_actions()

    def opened(self) -> None:
        self._conn = self._connection_factory(self._csms, self._cp_id, self._inbound, self.actor_ref.tell,
                                              self._ping_interval_s)
        self._replier = Replier(self._send)

    def closing(self) -> None:
        self._conn.stop()

    def receive(self, message: Any) -> Any:
        match message:
            case LinkWiring(handlers, readers):
                # The reader thread starts only now, so it sees the routes (thread start orders memory).
                self._handlers, self._readers = handlers, readers or {}
                self._conn.start()
            case SendCall():
                if self._generation <= 0:  # offline: the caller decides (queue, retry, or go offline-mode)
                    self._answer(message, CallFailed(message.action, "Disconnected", message.tag,
                                                     message.unique_id or "", description="not connected"))
                    return None
                if not (self._accepted or message.before_boot):
                    self._answer(message, CallFailed(message.action, "Disconnected", message.tag,
                                                     message.unique_id or "", description="not registered"))
                    return None
                self._queue.append(message)
                self._pump()
            case ocppj.CallResult() | ocppj.CallError():
                self._response(message)
            case CallTimeoutDue(unique_id):
                if self._in_flight and self._in_flight[1] == unique_id:
                    call = self._in_flight[0]
                    self._in_flight = None
                    log.warning("no answer to %s %s within %g s", call.action, unique_id, self._timeout_s)
                    self._answer(call, CallFailed(call.action, "Timeout", call.tag, unique_id))
                    self._pump()
            case SocketOpened(generation):
                self._generation = generation
                self.publish(LinkUp())
                self._pump()
            case SocketClosed(generation, reason):
                if generation == self._generation:
                    self._generation = -generation
                    self._fail_all(reason)
                    self.publish(LinkDown(reason))
            case CsmsOnline(online):
                self._accepted = online
                if not online:
                    self._fail_unregistered()
                self._pump()
            case RegistrationStatusChanged(status):
                self._rejected = status == "Rejected"
            case ConfigurationChanged("MessageTimeout", value):
                self._timeout_s = float(value)
            case ConfigurationChanged("WebSocketPingInterval", value):
                self._conn.ping_interval_s = float(value)
            case ConfigurationChanged():
                pass
            case _:
                self.unexpected(message)

    # --- inbound, on the connection's reader thread ------------------------------------------

    def _inbound(self, text: str, generation: int) -> None:
        frames.info("<- %s", text)
        try:
            frame = ocppj.parse(text, self._csms.max_frame_bytes)
        except ocppj.FrameError as exc:
            log.warning("bad frame from the CSMS: %s", exc.reason)
            if exc.reply is not None and not self._rejected:
                self._send(ocppj.encode(exc.reply))
            return
        if not isinstance(frame, ocppj.Call):
            self.actor_ref.tell(frame)  # responses are matched by the actor
            return
        if self._rejected:
            log.warning("%s %s not answered: the CSMS rejected this station (OCPP 1.6 §4.2)", frame.action,
                        frame.unique_id)
            return
        reader = self._readers.get(frame.action)
        route = self._handlers.get(frame.action)
        if route is None and reader is None:
            code = (ocppj.ErrorCode.NOT_SUPPORTED if frame.action in self._implemented
                    else ocppj.ErrorCode.NOT_IMPLEMENTED)
            self._send(ocppj.encode(ocppj.CallError(frame.unique_id, code.value,
                                                    f"{frame.action} is not {'supported' if code == 'NotSupported' else 'implemented'}", {})))
            return
        try:
            validation.validate(frame.action, frame.payload)
        except validation.SchemaViolation as exc:
            self._send(ocppj.encode(ocppj.CallError(frame.unique_id, exc.code.value, exc.description, {})))
            return
        request = REQUESTS[frame.action].from_payload(frame.unique_id, self._replier, frame.payload)
        if reader is not None:  # a read-only request: answered here, from an immutable snapshot
            self._replier.tell(reader(request))
            return
        try:
            route.tell(request)
        except pykka.ActorDeadError:
            self._send(ocppj.encode(ocppj.CallError(frame.unique_id, "InternalError", "handler not running", {})))

    def _send(self, text: str, written: threading.Lock | None = None) -> bool:
        """Send from any thread; Connection.send is thread-safe (`written`: see Connection.send)."""
        try:
            self._conn.send(text, written) if written is not None else self._conn.send(text)
        except NotConnected as exc:
            log.warning("not sent (%s): %s", exc, text[:200])
            return False
        frames.info("-> %s", text)
        return True

    # --- actor side ----------------------------------------------------------------------------

    def _pump(self) -> None:
        if self._in_flight is not None or self._generation <= 0:
            return
        for call in list(self._queue):
            if not (self._accepted or call.before_boot):
                continue
            self._queue.remove(call)
            payload = _thawed(call.payload)
            unique_id = call.unique_id or str(uuid.uuid4())
            try:
                validation.validate(call.action, payload)
            except validation.SchemaViolation as exc:
                log.error("refusing to send an invalid %s: %s", call.action, exc.description)
                self._answer(call, CallFailed(call.action, "Refused", call.tag, unique_id, exc.code.value,
                                              exc.description))
                continue
            if not self._send(ocppj.encode(ocppj.Call(unique_id, call.action, payload))):
                self._queue.appendleft(call)
                return
            timer = self._ticker.after(self._timeout_s, CallTimeoutDue(unique_id))
            self._in_flight = (call, unique_id, timer)
            return

    def _response(self, frame: ocppj.CallResult | ocppj.CallError) -> None:
        if self._in_flight is None or self._in_flight[1] != frame.unique_id:
            log.warning("response to unknown message id %s ignored", frame.unique_id)
            return
        call, unique_id, timer = self._in_flight
        self._in_flight = None
        self._ticker.cancel(timer)
        if isinstance(frame, ocppj.CallError):
            self._answer(call, CallFailed(call.action, "CallError", call.tag, unique_id, frame.error_code,
                                          frame.description))
        else:
            try:
                validation.validate(call.action, frame.payload, response=True)
            except validation.SchemaViolation as exc:
                log.warning("invalid %s.conf from the CSMS: %s", call.action, exc.description)
                self._answer(call, CallFailed(call.action, "Invalid", call.tag, unique_id, exc.code.value,
                                              exc.description))
            else:
                self._answer(call, CallAnswered(call.action, freeze(frame.payload), call.tag, unique_id))
        self._pump()

    def _fail_unregistered(self) -> None:
        """No longer Accepted (a new BootNotification said otherwise): what waits must not go out."""
        for call in [c for c in self._queue if not c.before_boot]:
            self._queue.remove(call)
            self._answer(call, CallFailed(call.action, "Disconnected", call.tag, call.unique_id or "",
                                          description="not registered"))

    def _fail_all(self, reason: str) -> None:
        pending = ([self._in_flight[0]] if self._in_flight else []) + list(self._queue)
        ids = [self._in_flight[1]] if self._in_flight else []
        if self._in_flight:
            self._ticker.cancel(self._in_flight[2])
        self._in_flight = None
        self._queue.clear()
        for i, call in enumerate(pending):
            unique_id = ids[0] if i == 0 and ids else (call.unique_id or "")
            self._answer(call, CallFailed(call.action, "Disconnected", call.tag, unique_id, description=reason))

    def _answer(self, call: SendCall, result: Any) -> None:
        if call.reply_to is not None:
            try:
                call.reply_to.tell(result)
            except pykka.ActorDeadError:
                pass


# How long a replying thread waits for the writer to have put its answer on the socket. A handler
# usually has work after the answer (statuses to publish, other actors to tell); done at once, that work
# and the threads it wakes hold the GIL while the writer thread waits for it, and the answer leaves
# later (measured: ChangeAvailability 1.6x of floor + commit with the work first, 1.2x with the
# hand-over). A writer blocked on a slow CSMS costs a handler at most this long per answer.
HANDOVER_S = 0.002


class Replier:
    """The `reply_to` of a CSMS request: answers the CSMS from the handler's own thread.

    Looks like an ActorRef (`tell`), but validates, encodes and sends at once through the
    connection (whose send is thread-safe) instead of queueing behind the Link actor: one thread
    hop less on every reply. It holds no state, so any actor may use it. It returns once the writer
    has written the answer, or after HANDOVER_S.
    """

    __slots__ = ("_send",)

    def __init__(self, send):
        self._send = send

    def tell(self, message: Any) -> None:
        match message:
            case ReplyResult(unique_id, action, payload):
                wire = _thawed(payload)
                try:
                    validation.validate(action, wire, response=True)
                except validation.SchemaViolation as exc:
                    log.error("our %s.conf is invalid (%s): answering InternalError", action, exc.description)
                    self._hand_over(ocppj.encode(ocppj.CallError(unique_id, "InternalError", "invalid response", {})))
                    return
                self._hand_over(ocppj.encode(ocppj.CallResult(unique_id, wire)))
            case ReplyError(unique_id, code, description):
                self._hand_over(ocppj.encode(ocppj.CallError(unique_id, code, description, {})))
            case _:
                log.warning("Replier: not a reply: %r", message)

    def _hand_over(self, text: str) -> None:
        written = threading.Lock()
        written.acquire()
        if self._send(text, written):
            written.acquire(timeout=HANDOVER_S)
