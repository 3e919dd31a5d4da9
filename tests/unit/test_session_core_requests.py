"""SessionCore and the CSMS's requests about connectors (actors/sessions/requests.py), without threads:
RemoteStart/RemoteStop (and the deferred RemoteStop), UnlockConnector (and its deadline), ChangeAvailability,
StopAllTransactions and mains power. The actor-level tests of the same (replies reaching the link, timers
firing, availability surviving a restart): test_connector_requests.py and test_actor_transactions.py."""

from __future__ import annotations

import pytest

from actors.sessions.effects import CancelTimer, Publish, RecordAvailability, RecordStop, Reply, StartTimer, Tell
from actors.reset.actor import EXIT_POWER_LOSS
from actors.sessions.requests import DEFERRED_STOP_S, UNLOCK_TIMEOUT_S
from messages.events import (AllTransactionsStopped, AuthorizeTag, ConnectorLockResult, MainsPowerChanged,
                             SetConnectorLock, SetContactor, ShutDown, StopAllTransactions, TransactionEnded,
                             TransactionIdAssigned)
from messages.requests import ChangeAvailability, RemoteStartTransaction, RemoteStopTransaction, UnlockConnector
from messages.ticks import ConnectionTimeoutDue, RemoteStopDeadlineDue, UnlockDeadlineDue
from tests.unit.test_session_core import ME, Core, kinds, one, replies, sent, statuses

pytestmark = pytest.mark.timeout(10)


def remote_start(id_tag="R1", connector_id=None, uid="r1") -> RemoteStartTransaction:
    return RemoteStartTransaction(unique_id=uid, reply_to=None, id_tag=id_tag, connector_id=connector_id)


def remote_stop(transaction_id, uid="r1") -> RemoteStopTransaction:
    return RemoteStopTransaction(unique_id=uid, reply_to=None, transaction_id=transaction_id)


def unlock(connector_id=1, uid="u1") -> UnlockConnector:
    return UnlockConnector(unique_id=uid, reply_to=None, connector_id=connector_id)


def availability(connector_id, operative, uid="c1") -> ChangeAvailability:
    return ChangeAvailability(unique_id=uid, reply_to=None, connector_id=connector_id, operative=operative)


def stops(effects) -> list[RecordStop]:
    return [e for e in effects if isinstance(e, RecordStop)]


# --- RemoteStartTransaction -----------------------------------------------------------------------


def test_remote_start_on_connector_zero_is_rejected():
    core = Core()
    request = remote_start(connector_id=0)
    assert core(request) == [Reply(request, "Rejected")]


def test_remote_start_on_a_free_connector_is_authorized_then_accepted():
    core = Core()
    request = remote_start(connector_id=1)
    effects = core(request)
    # The answer first: Accepted only promises an attempt (§5.11), nothing after it need wait.
    assert kinds(effects) == ["Reply", "AuthorizeTag", "ConnectorStatusChanged", "ShowStatus"]
    assert one(sent(effects, AuthorizeTag)) == AuthorizeTag("R1", ME, ("remote", "R1", 1))
    assert statuses(effects) == [(1, "Preparing")] and effects[0] == Reply(request, "Accepted")
    core.plug()
    assert sent(core.lock(core.answer(effects)), SetContactor) == [SetContactor(1, True)]


def test_remote_start_without_authorization_needs_no_authorize():
    core = Core(AuthorizeRemoteTxRequests=False)
    core.plug()
    effects = core(remote_start())
    assert sent(effects, AuthorizeTag) == [] and sent(effects, SetConnectorLock)
    assert replies(effects) == ["Accepted"]


def test_remote_start_without_authorization_and_without_a_cable_waits_for_it():
    core = Core(AuthorizeRemoteTxRequests=False)
    effects = core(remote_start(connector_id=1))
    assert effects[:2] == [Reply(effects[0].request, "Accepted"), StartTimer(ConnectionTimeoutDue(1), 60)]


def test_remote_start_without_a_connector_takes_a_free_one_with_a_cable_in_first():
    core = Core(connectors=2)
    core.plug(2)
    assert one(sent(core(remote_start()), AuthorizeTag)).tag == ("remote", "R1", 2)


@pytest.mark.parametrize("connector_id", [1, None])
def test_remote_start_on_a_busy_connector_is_rejected(connector_id):
    core = Core()
    core.start()
    assert replies(core(remote_start(connector_id=connector_id))) == ["Rejected"]


def test_remote_start_on_a_connector_being_authorized_is_rejected():
    core = Core()
    core.card()
    assert replies(core(remote_start(connector_id=1))) == ["Rejected"]


# --- RemoteStopTransaction -------------------------------------------------------------------------


def test_remote_stop_of_the_running_transaction_stops_it_with_reason_remote_then_accepts():
    core = Core()
    local_id = core.start()
    core.assign(local_id, 42)
    request = remote_stop(42)
    effects = core(request)
    stop = one(stops(effects))
    assert (stop.reason, stop.id_tag) == ("Remote", None)
    assert effects[0] == Reply(request, "Accepted") and kinds(effects)[1] == "SetContactor"


def test_remote_stop_of_an_unknown_transaction_is_rejected():
    core = Core()
    core.assign(core.start(), 42)
    request = remote_stop(999)
    assert core(request) == [Reply(request, "Rejected")]


def test_remote_stop_with_no_transaction_at_all_is_rejected_at_once():
    core = Core()
    request = remote_stop(999)
    assert core(request) == [Reply(request, "Rejected")]


def test_remote_stop_that_overtakes_its_start_transaction_answer_waits_for_it():
    core = Core()
    local_id = core.start()
    request = remote_stop(42)
    assert core(request) == [StartTimer(RemoteStopDeadlineDue("r1"), DEFERRED_STOP_S)]  # no answer yet
    effects = core.assign(local_id, 42)
    assert one(stops(effects)).reason == "Remote"
    assert effects[0] == Reply(request, "Accepted")
    assert kinds(effects)[-3:] == ["CancelTimer", "ConnectorStatusChanged", "ShowStatus"]
    assert effects[-3] == CancelTimer(RemoteStopDeadlineDue("r1"))
    assert core(RemoteStopDeadlineDue("r1")) == []  # answered once


def test_remote_stop_of_an_unknown_id_while_a_start_is_unanswered_is_rejected_at_the_deadline():
    core = Core()
    local_id = core.start()
    request = remote_stop(999)
    core(request)
    assert core(RemoteStopDeadlineDue("r1")) == [Reply(request, "Rejected")]
    assert stops(core.assign(local_id, 999)) == []  # the request was answered: an id arriving later stops nothing
    assert core.connector().session is not None


def test_remote_stop_of_an_unknown_id_after_a_dropped_start_transaction_is_rejected_at_once():
    """Errata 3.18: the StartTransaction was dropped (transactionId -1): no answer is on its way."""
    core = Core()
    local_id = core.start()
    core(TransactionIdAssigned(local_id, -1, None))
    request = remote_stop(999)
    assert core(request) == [Reply(request, "Rejected")]
    assert core.connector().session is not None


def test_a_remote_stop_waiting_for_a_start_transaction_that_is_then_dropped_is_rejected_at_once():
    core = Core()
    local_id = core.start()
    request = remote_stop(999)
    core(request)  # deferred: the answer may still come
    effects = core(TransactionIdAssigned(local_id, -1, None))
    assert effects[0] == Reply(request, "Rejected") and CancelTimer(RemoteStopDeadlineDue("r1")) in effects
    assert core(RemoteStopDeadlineDue("r1")) == []  # answered once


def test_a_remote_stop_keeps_waiting_while_another_start_transaction_is_unanswered():
    core = Core(connectors=2)
    first = core.start("TAG1", connector=1)
    core.start("TAG2", connector=2)
    request = remote_stop(43)
    core(request)
    assert replies(core(TransactionIdAssigned(first, -1, None))) == []  # connector 2's answer may be 43
    assert replies(core(RemoteStopDeadlineDue("r1"))) == ["Rejected"]


# --- UnlockConnector ---------------------------------------------------------------------------------


def test_unlock_of_a_fixed_cable_is_not_supported():
    core = Core(fixed_cable=True)
    request = unlock()
    assert core(request) == [Reply(request, "NotSupported")]


@pytest.mark.parametrize("connector_id", [0, 2])
def test_unlock_of_an_unknown_connector_is_not_supported(connector_id):
    core = Core()
    request = unlock(connector_id)
    assert core(request) == [Reply(request, "NotSupported")]


@pytest.mark.parametrize("ok, status", [(True, "Unlocked"), (False, "UnlockFailed")])
def test_unlock_answers_what_the_lock_motor_did(ok, status):
    core = Core()
    request = unlock()
    assert core(request) == [StartTimer(UnlockDeadlineDue("u1"), UNLOCK_TIMEOUT_S),
                             Publish(SetConnectorLock(1, False, ME, "u1"))]  # the answer waits for the motor
    assert core(ConnectorLockResult(1, False, ok, "u1")) == [Reply(request, status),
                                                              CancelTimer(UnlockDeadlineDue("u1"))]


def test_unlock_during_a_transaction_stops_it_first_with_reason_unlock_command():
    core = Core()
    local_id = core.start()
    core.meter(700)
    effects = core(unlock())
    stop = one(stops(effects))
    assert (stop.reason, stop.meter_stop_wh, stop.id_tag) == ("UnlockCommand", 700, None)
    assert Publish(TransactionEnded(1, local_id)) in effects
    # energy off before the lock moves
    assert effects.index(Publish(SetContactor(1, False))) < effects.index(Publish(SetConnectorLock(1, False, ME, "u1")))
    assert statuses(effects) == [(1, "Finishing")]
    assert replies(core(ConnectorLockResult(1, False, True, "u1"))) == ["Unlocked"]


def test_unlock_answers_unlock_failed_at_the_deadline_and_only_once():
    core = Core()
    request = unlock()
    core(request)
    assert core(UnlockDeadlineDue("u1")) == [Reply(request, "UnlockFailed")]
    assert core(ConnectorLockResult(1, False, True, "u1")) == []  # too late


def test_an_unlock_answered_in_time_is_not_answered_again_at_the_deadline():
    core = Core()
    core(unlock())
    core(ConnectorLockResult(1, False, True, "u1"))
    assert core(UnlockDeadlineDue("u1")) == []


# --- ChangeAvailability ------------------------------------------------------------------------------


def test_an_idle_connector_made_inoperative_is_unavailable_persisted_and_starts_nothing():
    core = Core()
    request = availability(1, False)
    effects = core(request)
    # §4.9: the answered availability survives a reboot: committed, then answered, then published.
    assert effects[:2] == [RecordAvailability(1, False), Reply(request, "Accepted")]
    assert statuses(effects) == [(1, "Unavailable")]
    assert core.plug() == [] and core.card() == []
    assert replies(core(remote_start(connector_id=1, uid="r2"))) == ["Rejected"]


def test_an_inoperative_connector_made_operative_again_is_available():
    core = Core()
    core(availability(1, False))
    effects = core(availability(1, True, "c2"))
    assert effects[0] == RecordAvailability(1, True) and replies(effects) == ["Accepted"]
    assert statuses(effects) == [(1, "Available")]
    core.start()


def test_change_availability_of_an_unknown_connector_is_rejected():
    core = Core()
    request = availability(2, False)
    assert core(request) == [Reply(request, "Rejected")]


def test_change_availability_during_a_transaction_is_scheduled_until_it_ends():
    core = Core()
    core.start()
    effects = core(availability(1, False))
    assert replies(effects) == ["Scheduled"] and statuses(effects) == []
    assert sent(effects, SetContactor) == []  # the transaction goes on
    assert statuses(core.card("TAG1")) == [(1, "Unavailable")]  # it ends: the change applies, no Finishing
    core.unplug()
    assert core.plug() == []


def test_a_scheduled_change_is_cancelled_by_operative_before_the_transaction_ends():
    core = Core()
    core.start()
    core(availability(1, False))
    assert replies(core(availability(1, True, "c2"))) == ["Accepted"]
    assert statuses(core.card("TAG1")) == [(1, "Finishing")]


def test_inoperative_drops_an_authorization_waiting_for_the_cable():
    core = Core()
    core.answer(core.card())
    effects = core(availability(1, False))
    assert CancelTimer(ConnectionTimeoutDue(1)) in effects
    assert statuses(core(availability(1, True, "c2"))) == [(1, "Available")]
    assert sent(core.plug(), SetConnectorLock) == []


def test_connector_zero_inoperative_makes_every_connector_and_the_station_unavailable():
    core = Core(connectors=2)
    effects = core(availability(0, False))
    assert effects[0] == RecordAvailability(0, False) and replies(effects) == ["Accepted"]
    assert statuses(effects) == [(1, "Unavailable"), (2, "Unavailable"), (0, "Unavailable")]
    core.plug(2)
    assert core.card() == []
    assert statuses(core(availability(0, True, "c2"))) == [(1, "Available"), (2, "Preparing"), (0, "Available")]


def test_connector_zero_operative_keeps_a_connector_made_inoperative_on_its_own():
    core = Core(connectors=2)
    core(availability(2, False))
    core(availability(0, False, "c2"))
    assert statuses(core(availability(0, True, "c3"))) == [(1, "Available"), (0, "Available")]
    assert core.connector(2).status() == "Unavailable"


@pytest.mark.parametrize("own", [None, False])
def test_a_connector_made_operative_while_the_station_is_inoperative_is_rejected_and_nothing_is_stored(own):
    """It would stay Unavailable: the answer says what really happens."""
    core = Core(connectors=2)
    core(availability(0, False))
    if own is not None:
        core(availability(1, own, "c2"))
    before = dict(core.state.availability)
    request = availability(1, True, "c3")
    assert core(request) == [Reply(request, "Rejected")]
    assert core.state.availability == before
    core(availability(0, True, "c4"))
    assert core.connector(1).status() == ("Available" if own is None else "Unavailable")


def test_connector_zero_inoperative_during_a_transaction_is_scheduled_for_that_connector():
    core = Core(connectors=2)
    core.start(connector=1)
    effects = core(availability(0, False))
    assert replies(effects) == ["Scheduled"]
    assert statuses(effects) == [(2, "Unavailable"), (0, "Unavailable")]
    assert statuses(core.card("TAG1")) == [(1, "Unavailable")]


# --- StopAllTransactions, mains power ----------------------------------------------------------------


def test_stop_all_transactions_stops_each_running_one_then_says_how_many():
    core = Core(connectors=2)
    first = core.start("TAG1", connector=1)
    second = core.start("TAG2", connector=2)
    effects = core(StopAllTransactions("SoftReset", "asker"))
    assert [(s.local_id, s.reason, s.id_tag) for s in stops(effects)] == [(first, "SoftReset", None),
                                                                          (second, "SoftReset", None)]
    assert sent(effects, SetContactor) == [SetContactor(1, False), SetContactor(2, False)]
    assert statuses(effects) == [(1, "Finishing"), (2, "Finishing")]
    assert effects[-1] == Tell("asker", AllTransactionsStopped(2))


def test_stop_all_transactions_with_none_running_answers_zero():
    assert Core()(StopAllTransactions("HardReset", "asker")) == [Tell("asker", AllTransactionsStopped(0))]


def test_stop_all_transactions_without_reply_to_just_stops():
    core = Core()
    core.start()
    effects = core(StopAllTransactions("PowerLoss"))
    assert one(stops(effects)).reason == "PowerLoss"
    assert [e for e in effects if isinstance(e, Tell)] == []


def test_mains_power_lost_on_backup_power_shuts_the_station_down_to_be_started_again():
    # Exit 69, not 0 (a clean stop, which the supervisor would not restart): back when power returns.
    assert Core(backup_power=True)(MainsPowerChanged(False)) == [Publish(ShutDown("PowerLoss", 69, 10.0))]
    assert EXIT_POWER_LOSS == 69


@pytest.mark.parametrize("backup_power, on", [(False, False), (True, True), (False, True)])
def test_mains_power_otherwise_changes_nothing(backup_power, on):
    core = Core(backup_power=backup_power)
    core.start()
    assert core(MainsPowerChanged(on)) == []
