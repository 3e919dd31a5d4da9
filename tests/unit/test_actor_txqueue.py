"""TransactionMessageQueue: ordered, retried, bounded delivery of transaction messages from tx_queue."""

from __future__ import annotations

import json
import logging
import re

import pytest

from actors.configuration import registry as keys

from actors.infra import store
from actors.infra.ticker import ManualScheduler
from actors.txqueue.book import enqueue
from actors.txqueue.actor import TransactionMessageQueue
from messages.events import (CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline, IdTagInfoReceived,
                             NotifyWhenDrained, QueueDrained, SendCall, TransactionIdAssigned,
                             TransactionMessagesQueued)
from messages.frozen import freeze
from tests.unit.fakes import Probe, sync, wire

pytestmark = pytest.mark.timeout(20)

TS = "2025-01-01T00:00:00.000Z"


def config(**overrides) -> dict:
    values = {n: s.default for n, s in keys.registry(1, True).items()}
    values.update(overrides)
    return values


def start_payload():
    return {"connectorId": 1, "idTag": "TAG1", "meterStart": 0, "timestamp": TS}


def meter_payload(wh=0):
    return {"connectorId": 1, "meterValue": [{"timestamp": TS, "sampledValue": [{"value": str(wh)}]}]}


def stop_payload(id_tag=None):
    payload = {"meterStop": 10, "timestamp": TS, "reason": "Local"}
    if id_tag:
        payload["idTag"] = id_tag
    return payload


DROPPED = re.compile(r"(\w+) for transaction (-?\d+) dropped after")


class Rig:
    def __init__(self, db_path, max_messages=100, caplog=None, **overrides):
        self.db_path = db_path
        self.caplog = caplog
        self.scheduler = ManualScheduler()
        self.conn = store.open_database(db_path)  # the test is the producer
        self.link = Probe()
        self.transactions = Probe()
        self.authorization = Probe()
        self.queue = TransactionMessageQueue.start(str(db_path), config(**overrides), max_messages, self.scheduler)
        wire(self.queue, {SendCall: self.link, TransactionIdAssigned: self.transactions,
                          IdTagInfoReceived: self.authorization})
        sync(self.queue)  # opened: what was queued before the station started is known

    def close(self):
        self.conn.close()

    def produce(self, *messages) -> list[int]:
        """Commit (action, local_id, payload[, periodic]) rows and wake the queue; their seqs."""
        seqs = []
        with store.Transaction(self.conn):
            for i, (action, local_id, payload, *periodic) in enumerate(messages):
                seqs.append(enqueue(self.conn, f"{action}-{local_id}-{i}", local_id, action,
                                          payload, periodic=bool(periodic and periodic[0])))
        self.queue.tell(TransactionMessagesQueued())
        return seqs

    def ready(self):
        self.queue.tell(CsmsOnline(True, registered=True))

    def dropped(self) -> list[tuple[int, str]]:
        """(local_id, action) of every message given up on so far: the queue logs each drop at ERROR."""
        sync(self.queue)
        found = []
        for record in self.caplog.records:
            match = DROPPED.match(record.getMessage())
            if match and record.name == "actors.txqueue.actor" and record.levelno == logging.ERROR:
                found.append((int(match.group(2)), match.group(1)))
        return found

    def sent(self) -> SendCall:
        return self.link.expect(SendCall)

    def nothing_sent(self):
        sync(self.queue)
        self.link.expect_none(SendCall)

    def answer(self, call: SendCall, payload=None):
        self.queue.tell(CallAnswered(call.action, freeze(payload or {}), call.tag, call.unique_id))

    def fail(self, call: SendCall, reason="CallError", code="InternalError"):
        self.queue.tell(CallFailed(call.action, reason, call.tag, call.unique_id, code))

    def advance(self, seconds):
        sync(self.queue)  # its retry timer is armed before the clock moves
        self.scheduler.advance(seconds)
        sync(self.queue)

    def rows(self) -> list[dict]:
        sync(self.queue)
        return store.rows(self.conn, "SELECT * FROM tx_queue ORDER BY seq")


@pytest.fixture
def rig(tmp_path, caplog):
    r = Rig(tmp_path / "station.db", caplog=caplog)
    yield r
    r.close()


@pytest.fixture
def make(tmp_path, caplog):
    made = []

    def build(**kw):
        r = Rig(tmp_path / f"station{len(made)}.db", caplog=caplog, **kw)
        made.append(r)
        return r
    yield build
    for r in made:
        r.close()


# --- when the head goes -------------------------------------------------------------------------


def test_the_head_waits_for_both_accepted_and_link_up(rig):
    rig.produce(("StartTransaction", 1, start_payload()))
    rig.nothing_sent()  # no CsmsOnline yet
    rig.queue.tell(CsmsOnline(False))  # link up but Pending, or Accepted but the link down
    rig.nothing_sent()
    rig.queue.tell(CsmsOnline(True, registered=True))  # link up and Accepted
    call = rig.sent()
    assert call.action == "StartTransaction" and call.payload == start_payload()
    assert call.unique_id == "StartTransaction-1-0"  # the stored message id
    assert call.reply_to == rig.queue


def test_only_the_head_is_in_flight(rig):
    rig.ready()
    rig.produce(("StartTransaction", 1, start_payload()), ("StopTransaction", 1, stop_payload()))
    first = rig.sent()
    rig.nothing_sent()
    rig.answer(first, {"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
    assert rig.sent().action == "StopTransaction"


def test_a_start_transaction_answer_fills_in_the_transaction_id_of_later_messages(rig):
    rig.ready()
    rig.produce(("StartTransaction", 7, start_payload()), ("MeterValues", 7, meter_payload(5), True),
                ("StopTransaction", 7, stop_payload()))
    start = rig.sent()
    rig.answer(start, {"transactionId": 42, "idTagInfo": {"status": "Accepted", "expiryDate": TS}})
    assigned = rig.transactions.expect(TransactionIdAssigned)
    assert (assigned.local_id, assigned.transaction_id) == (7, 42)
    assert assigned.id_tag_info == {"status": "Accepted", "expiryDate": TS}
    meter = rig.sent()
    assert meter.action == "MeterValues" and meter.payload["transactionId"] == 42
    rig.answer(meter)
    stop = rig.sent()
    assert stop.payload == {**stop_payload(), "transactionId": 42}
    rig.answer(stop)
    assert rig.rows() == []
    assert store.rows(rig.conn, "SELECT * FROM transaction_ids") == [{"local_id": 7, "transaction_id": 42}]


def test_messages_of_a_start_transaction_never_answered_carry_minus_one(make):
    rig = make(TransactionMessageAttempts=1)
    rig.ready()
    rig.produce(("StartTransaction", 3, start_payload()), ("StopTransaction", 3, stop_payload()))
    rig.fail(rig.sent())
    stop = rig.sent()
    assert rig.dropped() == [(3, "StartTransaction")]
    assert stop.action == "StopTransaction" and stop.payload["transactionId"] == -1
    # The session hears that no transactionId will come (a RemoteStop need not wait for one).
    assert rig.transactions.expect(TransactionIdAssigned) == TransactionIdAssigned(3, -1, None)


def test_a_start_transaction_answered_at_its_first_send_is_not_resent(rig):
    rig.ready()
    rig.produce(("StartTransaction", 7, start_payload()))
    rig.answer(rig.sent(), {"transactionId": 42, "idTagInfo": {"status": "ConcurrentTx"}})
    assert rig.transactions.expect(TransactionIdAssigned).resent is False


def test_a_start_transaction_answered_after_a_timeout_is_resent(make):
    """A timed-out first send may have reached the CSMS: ConcurrentTx may then be our own session."""
    rig = make(TransactionMessageAttempts=3, TransactionMessageRetryInterval=1)
    rig.ready()
    rig.produce(("StartTransaction", 7, start_payload()))
    rig.fail(rig.sent(), reason="Timeout")
    rig.advance(1)
    rig.answer(rig.sent(), {"transactionId": 42, "idTagInfo": {"status": "ConcurrentTx"}})
    assert rig.transactions.expect(TransactionIdAssigned).resent is True


def test_a_start_transaction_in_flight_when_the_link_went_down_is_resent(rig):
    rig.ready()
    rig.produce(("StartTransaction", 7, start_payload()))
    rig.fail(rig.sent(), reason="Disconnected")
    rig.queue.tell(CsmsOnline(True))
    rig.answer(rig.sent(), {"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
    assert rig.transactions.expect(TransactionIdAssigned).resent is True


def test_the_head_at_start_up_may_have_been_in_flight_before_the_crash(tmp_path):
    first = Rig(tmp_path / "station.db")
    first.produce(("StartTransaction", 1, start_payload()), ("StartTransaction", 2, start_payload()))
    first.queue.stop()
    second = Rig(tmp_path / "station.db")
    second.ready()
    second.answer(second.sent(), {"transactionId": 41, "idTagInfo": {"status": "Accepted"}})
    assert second.transactions.expect(TransactionIdAssigned).resent is True
    second.answer(second.sent(), {"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
    assert second.transactions.expect(TransactionIdAssigned).resent is False  # never sent before
    first.close()
    second.close()


# --- retries ---------------------------------------------------------------------------------------


def test_a_call_error_is_retried_after_retry_interval_times_attempts_with_the_same_id(make):
    rig = make(TransactionMessageAttempts=3, TransactionMessageRetryInterval=10)
    rig.ready()
    rig.produce(("StopTransaction", 1, stop_payload()), ("StopTransaction", 2, stop_payload()))
    first = rig.sent()
    rig.fail(first)
    rig.advance(9.5)
    rig.link.expect_none(SendCall)
    rig.advance(0.5)
    again = rig.sent()
    assert (again.unique_id, again.tag) == (first.unique_id, first.tag)
    assert rig.rows()[0]["attempts"] == 1
    rig.fail(again, reason="Timeout", code="")
    rig.advance(19.5)
    rig.link.expect_none(SendCall)
    rig.advance(0.5)
    third = rig.sent()
    assert third.unique_id == first.unique_id
    rig.fail(third, reason="Invalid")  # the third attempt: dropped, the next message goes at once
    nxt = rig.sent()
    assert rig.dropped() == [(1, "StopTransaction")]
    assert nxt.unique_id != first.unique_id and nxt.payload["transactionId"] == -1
    assert [r["local_id"] for r in rig.rows()] == [2]


def test_retry_settings_can_be_changed(rig):
    rig.queue.tell(ConfigurationChanged("TransactionMessageAttempts", 2))
    rig.queue.tell(ConfigurationChanged("TransactionMessageRetryInterval", 1))
    rig.ready()
    rig.produce(("StopTransaction", 1, stop_payload()))
    rig.fail(rig.sent())
    rig.advance(1)
    rig.fail(rig.sent())
    assert rig.dropped() == [(1, "StopTransaction")]
    assert rig.rows() == []


def test_a_lost_connection_is_not_an_attempt(make):
    rig = make(TransactionMessageAttempts=1)
    rig.ready()
    rig.produce(("StopTransaction", 1, stop_payload()))
    first = rig.sent()
    rig.fail(first, reason="Disconnected", code="")
    rig.queue.tell(CsmsOnline(False))
    rig.nothing_sent()
    assert rig.rows()[0]["attempts"] == 0
    assert rig.dropped() == []
    rig.queue.tell(CsmsOnline(True))
    again = rig.sent()
    assert again.unique_id == first.unique_id


def test_our_own_refused_payload_is_dropped_at_once(make):
    rig = make(TransactionMessageAttempts=5)
    rig.ready()
    rig.produce(("StopTransaction", 1, stop_payload()), ("StopTransaction", 2, stop_payload()))
    rig.fail(rig.sent(), reason="Refused", code="OccurenceConstraintViolation")
    nxt = rig.sent()
    assert rig.dropped() == [(1, "StopTransaction")]
    assert [(r["seq"], r["local_id"]) for r in rig.rows()] == [(nxt.tag, 2)]


def test_an_answer_for_a_message_not_in_flight_is_ignored(rig):
    rig.ready()
    rig.produce(("StopTransaction", 1, stop_payload()))
    call = rig.sent()
    rig.queue.tell(CallAnswered("StopTransaction", freeze({}), call.tag + 100, "other"))
    assert len(rig.rows()) == 1
    rig.nothing_sent()


def test_rows_survive_a_restart_and_go_with_their_stored_ids(tmp_path):
    first = Rig(tmp_path / "station.db")
    first.produce(("StopTransaction", 1, stop_payload()))
    first.queue.stop()
    second = Rig(tmp_path / "station.db")
    second.ready()
    second.queue.tell(TransactionMessagesQueued())
    assert second.sent().unique_id == "StopTransaction-1-0"
    first.close()
    second.close()


# --- the bound -----------------------------------------------------------------------------------


def test_over_the_bound_every_other_periodic_meter_value_is_dropped(make):
    rig = make(max_messages=4)
    rig.produce(("StartTransaction", 1, start_payload()),
                *[("MeterValues", 1, meter_payload(wh), True) for wh in range(6)],
                ("StopTransaction", 1, stop_payload()))
    left = rig.rows()
    assert [r["action"] for r in left] == ["StartTransaction", "MeterValues", "MeterValues", "MeterValues",
                                           "StopTransaction"]
    assert [json.loads(r["payload"])["meterValue"][0]["sampledValue"][0]["value"] for r in left[1:4]] == \
        ["0", "2", "4"]


def test_start_stop_and_non_periodic_rows_are_never_dropped(make):
    rig = make(max_messages=2)
    rig.produce(("StartTransaction", 1, start_payload()), ("MeterValues", 1, meter_payload(1)),
                ("MeterValues", 1, meter_payload(2)), ("StopTransaction", 1, stop_payload()),
                ("StartTransaction", 2, start_payload()))
    assert [r["action"] for r in rig.rows()] == ["StartTransaction", "MeterValues", "MeterValues",
                                                 "StopTransaction", "StartTransaction"]


def test_within_the_bound_nothing_is_dropped(make):
    rig = make(max_messages=3)
    rig.produce(*[("MeterValues", 1, meter_payload(wh), True) for wh in range(3)])
    assert len(rig.rows()) == 3


# --- idTagInfo for the authorization cache ---------------------------------------------------------


def test_the_id_tag_info_of_a_start_transaction_answer_goes_to_the_authorization_actor(rig):
    rig.ready()
    rig.produce(("StartTransaction", 7, start_payload()))
    info = {"status": "Accepted", "expiryDate": TS, "parentIdTag": "GROUP"}
    rig.answer(rig.sent(), {"transactionId": 42, "idTagInfo": info})
    assert rig.authorization.expect(IdTagInfoReceived) == IdTagInfoReceived("TAG1", freeze(info))


def test_the_id_tag_info_of_a_stop_transaction_answer_goes_to_the_authorization_actor(rig):
    rig.ready()
    rig.produce(("StopTransaction", 7, stop_payload(id_tag="TAG2")))
    rig.answer(rig.sent(), {"idTagInfo": {"status": "Blocked"}})
    assert rig.authorization.expect(IdTagInfoReceived) == IdTagInfoReceived("TAG2", freeze({"status": "Blocked"}))


def test_answers_without_id_tag_info_or_without_an_id_tag_tell_the_authorization_actor_nothing(rig):
    rig.ready()
    rig.produce(("StopTransaction", 1, stop_payload(id_tag="TAG2")), ("StopTransaction", 2, stop_payload()),
                ("MeterValues", 3, meter_payload(1)))
    rig.answer(rig.sent(), {})  # idTagInfo is optional in StopTransaction.conf
    rig.answer(rig.sent(), {"idTagInfo": {"status": "Accepted"}})  # but there was no idTag to file it under
    rig.answer(rig.sent(), {})
    assert rig.rows() == []
    rig.authorization.expect_none(IdTagInfoReceived)


# --- draining (Reset, shut-down) --------------------------------------------------------------------


def test_an_empty_queue_is_drained_at_once_even_offline(rig):
    waiter = Probe()
    rig.queue.tell(NotifyWhenDrained(waiter.ref))
    waiter.expect(QueueDrained)


def test_drained_is_told_once_the_last_message_is_answered(rig):
    waiter = Probe()
    rig.produce(("StartTransaction", 1, start_payload()), ("StopTransaction", 1, stop_payload()))
    rig.queue.tell(NotifyWhenDrained(waiter.ref))
    sync(rig.queue)
    waiter.expect_none(QueueDrained)  # offline: it waits (the ResetManager bounds the wait)
    rig.ready()
    rig.answer(rig.sent(), {"transactionId": 42, "idTagInfo": {"status": "Accepted"}})
    stop = rig.sent()
    sync(rig.queue)
    waiter.expect_none(QueueDrained)
    rig.answer(stop)
    waiter.expect(QueueDrained)
    assert rig.rows() == []


def test_drained_is_told_when_the_last_message_is_dropped(make):
    rig = make(TransactionMessageAttempts=1)
    waiter = Probe()
    rig.ready()
    rig.produce(("StopTransaction", 1, stop_payload()))
    rig.queue.tell(NotifyWhenDrained(waiter.ref))
    rig.fail(rig.sent())
    waiter.expect(QueueDrained)


def test_every_waiter_is_told_once(rig):
    first, second = Probe(), Probe()
    rig.ready()
    rig.produce(("StopTransaction", 1, stop_payload()))
    call = rig.sent()
    rig.queue.tell(NotifyWhenDrained(first.ref))
    rig.queue.tell(NotifyWhenDrained(second.ref))
    rig.answer(call)
    first.expect(QueueDrained)
    second.expect(QueueDrained)
    rig.produce(("StopTransaction", 2, stop_payload()))
    rig.answer(rig.sent())
    assert rig.rows() == []
    first.expect_none(QueueDrained)
    second.expect_none(QueueDrained)
