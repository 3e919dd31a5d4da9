"""TransactionMessageQueue: delivers transaction-related messages in order, exactly once (OCPP 1.6 §3.7, §4.10).

Takes: TransactionMessagesQueued (a producer committed rows), CsmsOnline, CallAnswered / CallFailed
for its own messages, ConfigurationChanged, NotifyWhenDrained, QueueRetryDue.
Emits: SendCall (one message in flight), TransactionIdAssigned (to the TransactionManager),
IdTagInfoReceived (to Authorization), QueueDrained to who asked.

StartTransaction, StopTransaction and transaction MeterValues wait in the `tx_queue` table,
committed by their producer before anything depends on them. The head goes out with its
stored message id (re-sends keep it: OCPP-J errata 2025-04 §3.1); it is deleted only when
the CSMS answers, so after SIGKILL only the message possibly in flight is sent twice.
transactionId is filled in at send time from StartTransaction.conf, or -1 when that
StartTransaction was never answered (OCPP 1.6 errata 3.18).

Retries (OCPP 1.6 §3.7.1): a CALLERROR, an invalid answer or no answer within MessageTimeout
counts as an attempt; after TransactionMessageAttempts attempts the message is dropped; the
wait before attempt n+1 is TransactionMessageRetryInterval × n. A lost connection is not an
attempt: the message waits for the link.

Bounded queue: when more than `max_messages` rows wait, every other periodic MeterValues row
is dropped (halving the resolution while keeping the time span); StartTransaction and
StopTransaction are never dropped.
"""

from __future__ import annotations

import logging
from typing import Any

from actors.infra.base import StationActor
from actors.infra.ticker import Scheduler
from actors.txqueue.book import TransactionQueueBook
from messages.events import (CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline, IdTagInfoReceived,
                             NotifyWhenDrained, QueueDrained, SendCall, TransactionIdAssigned, TransactionMessagesQueued)
from messages.frozen import freeze
from messages.ticks import QueueRetryDue

log = logging.getLogger(__name__)


class TransactionMessageQueue(StationActor):
    subscribes = (TransactionMessagesQueued, CsmsOnline, NotifyWhenDrained)
    watches = ("TransactionMessageAttempts", "TransactionMessageRetryInterval")
    emits = (SendCall, TransactionIdAssigned, IdTagInfoReceived)

    def __init__(self, db_path: str, config: Any, max_messages: int, scheduler: Scheduler | None = None):
        super().__init__(db_path, scheduler)
        self._attempts_max = int(config["TransactionMessageAttempts"])
        self._retry_interval_s = int(config["TransactionMessageRetryInterval"])
        self._max_messages = max_messages
        self._online = False  # reachable and Accepted
        self._in_flight: int | None = None
        self._retry_timer: int | None = None
        self._drain_waiters: list = []  # refs waiting for QueueDrained
        self._maybe_sent: set[int] = set()  # rows an earlier send of which may have reached the CSMS

    def opened(self) -> None:
        self._book = TransactionQueueBook(self._db)
        head = self._book.head()
        if head is not None:  # it may have been in flight when the station went down
            self._maybe_sent.add(head[0])

    def receive(self, message: Any) -> Any:
        match message:
            case TransactionMessagesQueued():
                self._bound()
                self._pump()
            case CsmsOnline(online):
                self._online = online
                self._pump()
            case CallAnswered(action, payload, seq):
                self._delivered(seq, action, payload)
            case CallFailed(action, reason, seq, _, code, description):
                self._failed(seq, action, reason, code or description)
            case QueueRetryDue():
                self._retry_timer = None
                self._pump()
            case ConfigurationChanged("TransactionMessageAttempts", value):
                self._attempts_max = int(value)
            case ConfigurationChanged("TransactionMessageRetryInterval", value):
                self._retry_interval_s = int(value)
            case ConfigurationChanged():
                pass
            case NotifyWhenDrained(reply_to):
                if self._book.length() == 0:
                    reply_to.tell(QueueDrained())
                else:
                    self._drain_waiters.append(reply_to)
                    self._pump()
            case _:
                self.unexpected(message)

    def _pump(self) -> None:
        if self._in_flight is not None or self._retry_timer is not None or not self._online:
            return
        row = self._book.head()
        if row is None:
            for ref in self._drain_waiters:
                ref.tell(QueueDrained())
            self._drain_waiters = []
        if row is None:
            return
        seq, unique_id, local_id, action, payload = row
        if action != "StartTransaction":
            found = self._book.transaction_id(local_id)
            payload["transactionId"] = found if found is not None else -1
        self._in_flight = seq
        self.publish(SendCall(action, freeze(payload), self.actor_ref, seq, unique_id))

    def _delivered(self, seq: int, action: str, payload: Any) -> None:
        if seq != self._in_flight:
            return
        self._in_flight = None
        local_id, sent = self._book.message(seq) or (-1, {})
        resent = seq in self._maybe_sent or self._book.attempts(seq) > 0
        self._maybe_sent.discard(seq)
        self._book.settle(seq, local_id, payload["transactionId"] if action == "StartTransaction" else None)
        if action == "StartTransaction":
            self.publish(TransactionIdAssigned(local_id, payload["transactionId"], payload["idTagInfo"], resent))
        if payload.get("idTagInfo") and sent.get("idTag"):
            self.publish(IdTagInfoReceived(sent["idTag"], payload["idTagInfo"]))
        self._pump()

    def _failed(self, seq: int, action: str, reason: str, detail: str) -> None:
        if seq != self._in_flight:
            return
        self._in_flight = None
        if reason == "Disconnected":
            self._maybe_sent.add(seq)  # it may have left before the link went down
            return  # not an attempt: it goes again when the link is back
        attempts = self._book.attempts(seq) + 1
        if reason == "Refused":
            attempts = self._attempts_max  # our own payload is invalid: sending it again cannot help
        if attempts >= self._attempts_max:
            self._drop(seq, action, f"{reason} {detail}".strip(), attempts)
            self._pump()
            return
        self._book.set_attempts(seq, attempts)
        delay = self._retry_interval_s * attempts
        log.warning("%s not processed (%s %s): attempt %d of %d, next in %d s", action, reason, detail, attempts,
                    self._attempts_max, delay)
        self._retry_timer = self._ticker.after(delay, QueueRetryDue())

    def _drop(self, seq: int, action: str, why: str, attempts: int) -> None:
        local_id = (self._book.message(seq) or (-1, {}))[0]
        log.error("%s for transaction %s dropped after %d attempts: %s", action, local_id, attempts, why)
        # A dropped StartTransaction: later messages carry transactionId -1 (errata 3.18), and the session
        # learns that no transactionId will come.
        self._book.settle(seq, local_id, -1 if action == "StartTransaction" else None)
        self._maybe_sent.discard(seq)
        if action == "StartTransaction":
            self.publish(TransactionIdAssigned(local_id, -1, None))

    def _bound(self) -> None:
        if self._book.length() <= self._max_messages:
            return
        doomed = self._book.periodic(except_seq=self._in_flight)[1::2]
        if not doomed:
            log.error("transaction message queue over its bound with nothing left to thin")
            return
        self._book.discard(doomed)
        log.warning("transaction message queue full: dropped %d periodic MeterValues (every other one)", len(doomed))
