"""DataTransfer: vendor-specific messages in both directions (OCPP 1.6 §4.3 CP→CSMS, §5.6 CSMS→CP).

Takes: the CSMS's DataTransfer request; SendDataTransfer from any actor (CP→CSMS);
CallAnswered / CallFailed for those calls; its own HandlerFinished and DataTransferDeadlineDue.
Emits: the DataTransfer answer {"status", "data"?}; SendCall("DataTransfer");
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
from messages import requests
from messages.events import (CallAnswered, CallFailed, DataTransferAnswered, DataTransferFailed, SendCall,
                             SendDataTransfer)
from messages.frozen import freeze
from messages.ticks import DataTransferDeadlineDue

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HandlerFinished:
    """Internal: a handler's outcome (None: cancelled before it ran)."""

    job: int
    reply: VendorReply | None


@dataclass
class _Job:
    request: requests.DataTransfer
    vendor_id: str
    future: Future
    timer: int | None = None


class DataTransfer(StationActor):
    handles = (requests.DataTransfer,)
    subscribes = (SendDataTransfer,)
    emits = (SendCall,)

    def __init__(self, registry: VendorRegistry, handler_timeout_s: float = 5.0,
                 scheduler: Scheduler | None = None, workers: int = 2, max_outstanding: int = 8):
        super().__init__(scheduler=scheduler)
        self._registry = registry
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
            self._answer(job.request, "Rejected")  # best effort: the link may be gone
        self._jobs.clear()
        self._workers.shutdown()

    def receive(self, message: Any) -> Any:
        match message:
            case requests.DataTransfer():
                self._received(message)
            case HandlerFinished(job_id, reply):
                self._finished(job_id, reply)
            case DataTransferDeadlineDue(job_id):
                self._overdue(job_id)
            case SendDataTransfer():
                self._send(message)
            case CallAnswered("DataTransfer", payload, SendDataTransfer() as request):
                self._tell(request.reply_to, DataTransferAnswered(request.tag, payload["status"], payload.get("data")))
            case CallFailed("DataTransfer", reason, SendDataTransfer() as request, _, code, description):
                detail = ": ".join(filter(None, (code, description)))
                self._tell(request.reply_to, DataTransferFailed(request.tag, reason, detail))
            case _:
                self.unexpected(message)

    # --- CSMS → CP (§5.6) -------------------------------------------------------------------------

    def _received(self, request: requests.DataTransfer) -> None:
        registration = self._registry.lookup(request.vendor_id)
        if registration is None:
            log.info("DataTransfer from the CSMS for unknown vendor %r", request.vendor_id)
            return self._answer(request, "UnknownVendorId")
        if not registration.accepts(request.message_id):
            log.info("DataTransfer for %s: unknown messageId %r", registration.vendor_id, request.message_id)
            return self._answer(request, "UnknownMessageId")
        if self._outstanding >= self._max_outstanding:
            log.warning("DataTransfer for %s rejected: %d vendor handlers still running",
                        registration.vendor_id, self._outstanding)
            return self._answer(request, "Rejected")
        job_id = next(self._ids)
        future = self._workers.submit(run_handler, registration, request.message_id, request.data)
        self._jobs[job_id] = job = _Job(request, registration.vendor_id, future)
        self._outstanding += 1
        job.timer = self._ticker.after(self._timeout_s, DataTransferDeadlineDue(job_id))
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
        self._answer(job.request, reply.status, reply.data)

    def _overdue(self, job_id: int) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return  # answered just before the tick
        log.warning("DataTransfer handler for %s (messageId %r) did not finish within %g s: answering Rejected",
                    job.vendor_id, job.request.message_id, self._timeout_s)
        if job.future.cancel():  # still queued behind busy workers: it will not run
            log.info("the queued handler call is cancelled")
        self._answer(job.request, "Rejected")

    @staticmethod
    def _answer(request: requests.DataTransfer, status: str, data: str | None = None) -> None:
        if data is None:
            request.reply(status=status)
        else:
            request.reply(status=status, data=data)

    # --- CP → CSMS (§4.3) -------------------------------------------------------------------------

    def _send(self, request: SendDataTransfer) -> None:
        payload = {"vendorId": request.vendor_id}
        if request.message_id is not None:
            payload["messageId"] = request.message_id
        if request.data is not None:
            payload["data"] = request.data
        # The request itself is the call's tag: the answer carries everything needed to forward it.
        self.publish(SendCall("DataTransfer", freeze(payload), reply_to=self.actor_ref, tag=request))

    @staticmethod
    def _tell(ref: Any, message: Any) -> None:
        if ref is None:
            return
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            pass
