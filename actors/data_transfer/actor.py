"""DataTransfer: vendor-specific messages in both directions (OCPP 1.6 §4.3 CP→CSMS, §5.6 CSMS→CP).

Takes: CallReceived("DataTransfer") from the link; SendDataTransfer from any actor (CP→CSMS);
CallAnswered / CallFailed for those calls; Peers (for `link`, if not given at construction);
HealthCheck; its own HandlerFinished and Due("DataTransferDeadline") messages.
Emits: ReplyResult {"status", "data"?} to the link; SendCall("DataTransfer") to the link;
DataTransferAnswered / DataTransferFailed to the SendDataTransfer's `reply_to`.

The vendor handler (see actors.data_transfer.vendors) is third-party code: it runs on one of the actor's own
worker threads (vendors.HandlerWorkers: daemon threads, so a hung handler cannot hold up the
process's exit as a ThreadPoolExecutor's would), never on the actor's. Its outcome comes back as a message; a Ticker deadline
answers Rejected if it has not (the handler's late result is then dropped), so the actor keeps
answering while a handler hangs. Requests beyond `max_outstanding` unfinished handlers are
answered Rejected at once instead of queuing behind hung ones.
"""

from __future__ import annotations

import itertools
import logging
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import pykka

from actors.infra.base import StationActor

from actors.infra.ticker import Scheduler
from actors.data_transfer.vendors import HandlerWorkers, VendorRegistry, VendorReply, run_handler
from messages.events import (DataTransferAnswered, DataTransferFailed, SendDataTransfer, CallAnswered, CallFailed, CallReceived, Due, Peers, ReplyError,
                             ReplyResult, SendCall)
from messages.frozen import freeze

log = logging.getLogger(__name__)

DEADLINE = "DataTransferDeadline"


@dataclass(frozen=True)
class HandlerFinished:
    """Internal: a handler's outcome (None: cancelled before it ran)."""

    job: int
    reply: VendorReply | None


@dataclass
class _Job:
    unique_id: str
    reply_to: Any
    vendor_id: str
    message_id: str | None
    future: Future
    timer: int | None = None


class DataTransfer(StationActor):
    def __init__(self, registry: VendorRegistry, link: Any = None, handler_timeout_s: float = 5.0,
                 scheduler: Scheduler | None = None, workers: int = 2, max_outstanding: int = 8):
        super().__init__(scheduler=scheduler)
        self._registry = registry
        self._link = link
        self._timeout_s = handler_timeout_s
        self._worker_count = workers
        self._max_outstanding = max_outstanding
        self._jobs: dict[int, _Job] = {}  # awaiting an answer
        self._outstanding = 0  # handlers submitted and not finished (answered or not)
        self._ids = itertools.count(1)

    def opened(self) -> None:
        self._workers = HandlerWorkers(self._worker_count)

    def closing(self) -> None:
        for job in self._jobs.values():
            job.future.cancel()
            self._answer(job.unique_id, job.reply_to, "Rejected")  # best effort: the link may be gone
        self._jobs.clear()
        self._workers.shutdown()

    def receive(self, message: Any) -> Any:
        match message:
            case CallReceived(unique_id, "DataTransfer", payload, reply_to):
                self._received(unique_id, payload, reply_to)
            case CallReceived(unique_id, action, _, reply_to):
                log.warning("DataTransfer: CALL %s routed here by mistake", action)
                self._tell(reply_to, ReplyError(unique_id, "NotSupported", f"{action} is not handled here"))
            case HandlerFinished(job_id, reply):
                self._finished(job_id, reply)
            case Due(name, _, job_id) if name == DEADLINE:
                self._overdue(job_id)
            case SendDataTransfer():
                self._send(message)
            case CallAnswered("DataTransfer", payload, SendDataTransfer() as request):
                self._tell(request.reply_to, DataTransferAnswered(request.tag, payload["status"], payload.get("data")))
            case CallFailed("DataTransfer", reason, SendDataTransfer() as request, _, code, description):
                detail = ": ".join(filter(None, (code, description)))
                self._tell(request.reply_to, DataTransferFailed(request.tag, reason, detail))
            case Peers() as peers:
                self._link = peers.refs.get("link", self._link)
            case _:
                self.unexpected(message)

    # --- CSMS → CP (§5.6) -------------------------------------------------------------------------

    def _received(self, unique_id: str, payload: Any, reply_to: Any) -> None:
        vendor_id, message_id, data = payload["vendorId"], payload.get("messageId"), payload.get("data")
        registration = self._registry.lookup(vendor_id)
        if registration is None:
            log.info("DataTransfer from the CSMS for unknown vendor %r", vendor_id)
            return self._answer(unique_id, reply_to, "UnknownVendorId")
        if not registration.accepts(message_id):
            log.info("DataTransfer for %s: unknown messageId %r", registration.vendor_id, message_id)
            return self._answer(unique_id, reply_to, "UnknownMessageId")
        if self._outstanding >= self._max_outstanding:
            log.warning("DataTransfer for %s rejected: %d vendor handlers still running",
                        registration.vendor_id, self._outstanding)
            return self._answer(unique_id, reply_to, "Rejected")
        job_id = next(self._ids)
        future = self._workers.submit(run_handler, registration, message_id, data)
        self._jobs[job_id] = job = _Job(unique_id, reply_to, registration.vendor_id, message_id, future)
        self._outstanding += 1
        job.timer = self._ticker.after(self._timeout_s, Due(DEADLINE, key=job_id))
        future.add_done_callback(lambda f: self._report(job_id, f))  # on the worker (or here, if done)

    def _report(self, job_id: int, future: Future) -> None:
        """Runs on whichever thread completed the future: only tells."""
        reply = None if future.cancelled() else future.result()
        try:
            self.actor_ref.tell(HandlerFinished(job_id, reply))
        except pykka.ActorDeadError:
            pass

    def _finished(self, job_id: int, reply: VendorReply | None) -> None:
        self._outstanding -= 1
        job = self._jobs.pop(job_id, None)
        if job is None:
            if reply is not None:
                log.warning("a DataTransfer handler finished after its deadline: answer %r dropped", reply)
            return
        self._ticker.cancel(job.timer)
        if reply is None:  # cancelled: only on_stop cancels, and it answers; kept for safety
            reply = VendorReply("Rejected")
        self._answer(job.unique_id, job.reply_to, reply.status, reply.data)

    def _overdue(self, job_id: int) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return  # answered just before the tick
        log.warning("DataTransfer handler for %s (messageId %r) did not finish within %g s: answering Rejected",
                    job.vendor_id, job.message_id, self._timeout_s)
        if job.future.cancel():  # still queued behind busy workers: it will not run
            log.info("the queued handler call is cancelled")
        self._answer(job.unique_id, job.reply_to, "Rejected")

    def _answer(self, unique_id: str, reply_to: Any, status: str, data: str | None = None) -> None:
        payload = {"status": status} if data is None else {"status": status, "data": data}
        self._tell(reply_to, ReplyResult(unique_id, "DataTransfer", freeze(payload)))

    # --- CP → CSMS (§4.3) -------------------------------------------------------------------------

    def _send(self, request: SendDataTransfer) -> None:
        if self._link is None:
            self._tell(request.reply_to, DataTransferFailed(request.tag, "Disconnected", "no link"))
            return
        payload = {"vendorId": request.vendor_id}
        if request.message_id is not None:
            payload["messageId"] = request.message_id
        if request.data is not None:
            payload["data"] = request.data
        # The request itself is the call's tag: the answer carries everything needed to forward it.
        self._tell(self._link, SendCall("DataTransfer", freeze(payload), reply_to=self.actor_ref, tag=request))

    @staticmethod
    def _tell(ref: Any, message: Any) -> None:
        if ref is None:
            return
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            pass
