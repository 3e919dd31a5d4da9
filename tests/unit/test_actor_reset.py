"""ResetManager: Reset (Soft / Hard) and ShutDown: stop the transactions, let the queue drain, exit once."""

from __future__ import annotations

import threading

import pytest

from actors.reset.actor import EXIT_POWER_LOSS, EXIT_RESET, GRACE_S, ResetManager
from actors.infra.ticker import ManualScheduler
from messages.events import (AllTransactionsStopped, FlushStatus, NotifyWhenDrained, QueueDrained, ReplyResult,
                             ShutDown, StatusFlushed, StopAllTransactions)
from tests.unit.fakes import Probe, csms_request, sync, wire

pytestmark = pytest.mark.timeout(20)


class Rig:
    def __init__(self):
        self.scheduler = ManualScheduler()
        self._lock = threading.Lock()
        self._exits: list[int] = []
        self.link, self.transactions, self.txqueue, self.status = Probe(), Probe(), Probe(), Probe()
        self.reset = ResetManager.start(self._request_exit, self.scheduler)
        wire(self.reset, {StopAllTransactions: self.transactions, NotifyWhenDrained: self.txqueue,
                          FlushStatus: self.status})

    def _request_exit(self, code: int) -> None:  # called on the actor's thread
        with self._lock:
            self._exits.append(code)

    @property
    def exits(self) -> list[int]:
        sync(self.reset)
        with self._lock:
            return list(self._exits)

    def request_reset(self, kind: str, uid="r1") -> ReplyResult:
        self.reset.tell(csms_request(uid, "Reset", {"type": kind}, self.link.ref))
        return self.link.expect(ReplyResult)

    def advance(self, seconds):
        sync(self.reset)  # its grace timer is armed before the clock moves
        self.scheduler.advance(seconds)
        sync(self.reset)

    def stopped(self, count=1):
        """Play the TransactionManager (the transactions are stopped) and the StatusDebouncer (every
        status reported); returns the drain request."""
        self.reset.tell(AllTransactionsStopped(count))
        assert self.status.expect(FlushStatus) == FlushStatus(self.reset)
        self.txqueue.expect_none(NotifyWhenDrained)  # not before the statuses are out
        self.reset.tell(StatusFlushed())
        return self.txqueue.expect(NotifyWhenDrained)


@pytest.fixture
def rig():
    return Rig()


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_a_reset_is_accepted_and_stops_every_transaction_with_its_reason(rig, kind):
    reply = rig.request_reset(kind)
    assert (reply.unique_id, reply.action, reply.payload) == ("r1", "Reset", {"status": "Accepted"})
    assert rig.transactions.expect(StopAllTransactions) == StopAllTransactions(f"{kind}Reset", rig.reset)
    assert rig.exits == []  # not before the StopTransactions had their chance


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_once_the_transactions_are_stopped_the_queue_is_asked_to_say_when_drained(rig, kind):
    rig.request_reset(kind)
    rig.transactions.expect(StopAllTransactions)
    assert rig.stopped(1) == NotifyWhenDrained(rig.reset)
    assert rig.exits == []


@pytest.mark.parametrize("kind", ["Soft", "Hard"])
def test_the_process_exits_75_once_the_queue_is_drained_and_only_once(rig, kind):
    rig.request_reset(kind)
    rig.stopped()
    rig.reset.tell(QueueDrained())
    assert rig.exits == [EXIT_RESET] == [75]
    rig.reset.tell(QueueDrained())
    rig.advance(GRACE_S[kind])  # the grace ends later: nothing more
    assert rig.exits == [75]


@pytest.mark.parametrize("kind, grace", [("Soft", 10.0), ("Hard", 2.0)])
def test_without_the_queue_drained_the_process_exits_75_after_the_grace(rig, kind, grace):
    rig.request_reset(kind)
    rig.stopped()
    rig.advance(grace - 0.5)
    assert rig.exits == []
    rig.advance(0.5)
    assert rig.exits == [75]
    rig.reset.tell(QueueDrained())  # drained after all, too late
    rig.advance(grace)
    assert rig.exits == [75]


def test_the_grace_runs_even_when_the_transactions_never_report_stopped(rig):
    rig.request_reset("Hard")
    rig.advance(GRACE_S["Hard"])
    assert rig.exits == [75]


def test_a_second_reset_while_going_down_is_accepted_but_changes_nothing(rig):
    rig.request_reset("Soft", "r1")
    reply = rig.request_reset("Hard", "r2")
    assert (reply.unique_id, reply.payload["status"]) == ("r2", "Accepted")
    rig.transactions.expect(StopAllTransactions("SoftReset", rig.reset))
    rig.transactions.expect_none(StopAllTransactions)
    rig.advance(GRACE_S["Hard"])  # the first reset's grace holds
    assert rig.exits == []
    rig.advance(GRACE_S["Soft"] - GRACE_S["Hard"])
    assert rig.exits == [75]


def test_a_shut_down_stops_transactions_with_its_reason_and_exits_with_its_code(rig):
    rig.reset.tell(ShutDown("PowerLoss", 0, 10.0))
    assert rig.transactions.expect(StopAllTransactions) == StopAllTransactions("PowerLoss", rig.reset)
    rig.stopped(2)
    rig.advance(5)
    assert rig.exits == []
    rig.reset.tell(QueueDrained())
    assert rig.exits == [0]
    rig.advance(10)
    assert rig.exits == [0]


def test_a_shut_down_on_back_up_power_exits_69_for_the_supervisor_to_start_the_station_again(rig):
    rig.reset.tell(ShutDown("PowerLoss", EXIT_POWER_LOSS, 10.0))
    rig.stopped(1)
    rig.reset.tell(QueueDrained())
    assert rig.exits == [69] and EXIT_POWER_LOSS not in (0, EXIT_RESET)


def test_a_shut_down_exits_with_its_code_after_its_grace(rig):
    rig.reset.tell(ShutDown("PowerLoss", 3, 4.0))
    rig.stopped(0)
    rig.advance(3.5)
    assert rig.exits == []
    rig.advance(0.5)
    assert rig.exits == [3]


def test_a_drained_queue_without_a_shut_down_in_progress_exits_nothing(rig):
    rig.reset.tell(QueueDrained())
    rig.advance(60)
    assert rig.exits == []


def test_the_exit_is_requested_once_even_when_another_shut_down_comes_after_it(rig):
    rig.request_reset("Soft")
    rig.stopped()
    rig.reset.tell(QueueDrained())
    assert rig.exits == [75]
    rig.reset.tell(ShutDown("PowerLoss", 0, 10.0))  # mains lost while the process is already on its way out
    rig.stopped(0)
    rig.advance(GRACE_S["Soft"])
    assert rig.exits == [75]


def test_without_the_statuses_flushed_the_process_still_exits_after_the_grace(rig):
    rig.request_reset("Soft")
    rig.reset.tell(AllTransactionsStopped(1))
    rig.status.expect(FlushStatus)
    rig.advance(GRACE_S["Soft"])
    assert rig.exits == [EXIT_RESET]
