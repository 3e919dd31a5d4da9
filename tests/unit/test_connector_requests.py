"""The TransactionManager actor and the CSMS's requests about connectors: UnlockConnector (its reply waits for
the lock motor or its deadline), ChangeAvailability (persisted, across restarts) and the station-wide
StopAllTransactions. Their decisions, without threads: test_session_core_requests.py. RemoteStart/RemoteStop
at this level are in test_actor_transactions.py, with the sessions they start and stop."""

from __future__ import annotations

import pytest

from actors.sessions.requests import UNLOCK_TIMEOUT_S
from messages.events import (AllTransactionsStopped, AuthorizeTag, CardPresented, ConnectorLockResult,
                             MeterReading, MeterSampled, ReplyResult, SetConnectorLock,
                             SetContactor, ShowStatus, StopAllTransactions, TransactionEnded)
from tests.unit.fakes import Probe, csms_request
from tests.unit.test_actor_transactions import Rig, remote, status_is

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path / "station.db")
    r.clear()
    return r


# --- UnlockConnector ---------------------------------------------------------------------------


def unlock(rig, connector=1, uid="u1"):
    rig.tm.tell(csms_request(uid, "UnlockConnector", {"connectorId": connector}, rig.link.ref))


def unlock_request(rig) -> SetConnectorLock:
    return rig.evse.expect(lambda m: isinstance(m, SetConnectorLock) and not m.locked and m.reply_to is not None)


@pytest.mark.parametrize("ok, status", [(True, "Unlocked"), (False, "UnlockFailed")])
def test_unlock_answers_what_the_lock_motor_did(rig, ok, status):
    unlock(rig)
    request = unlock_request(rig)
    assert (request.connector, request.locked, request.reply_to, request.request_id) == (1, False, rig.tm, "u1")
    rig.settle()
    rig.link.expect_none(ReplyResult)  # the answer waits for the motor
    rig.tm.tell(ConnectorLockResult(1, False, ok, request.request_id))
    reply = rig.link.expect(ReplyResult)
    assert (reply.unique_id, reply.action, reply.payload) == ("u1", "UnlockConnector", {"status": status})


def test_unlock_during_a_transaction_stops_it_first_with_reason_unlock_command(rig):
    local_id = rig.start()
    rig.tm.tell(MeterSampled(MeterReading(1, 700)))
    unlock(rig)
    rig.settle()
    evse = rig.evse.messages((SetContactor, SetConnectorLock))
    request = unlock_request(rig)
    assert evse.index(SetContactor(1, False)) < evse.index(request)  # energy off before the lock moves
    assert rig.meter.expect(TransactionEnded) == TransactionEnded(1, local_id)
    [stop] = rig.queued("StopTransaction")
    assert (stop["payload"]["reason"], stop["payload"]["meterStop"]) == ("UnlockCommand", 700)
    assert "idTag" not in stop["payload"]
    rig.tm.tell(ConnectorLockResult(1, False, True, request.request_id))
    assert rig.link.expect(ReplyResult).payload == {"status": "Unlocked"}
    rig.status.expect(status_is("Finishing"))


def test_unlock_answers_unlock_failed_when_the_motor_does_not_answer_in_time(rig):
    unlock(rig)
    request = unlock_request(rig)
    rig.advance(UNLOCK_TIMEOUT_S - 0.5)
    rig.link.expect_none(ReplyResult)
    rig.advance(0.5)
    reply = rig.link.expect(ReplyResult)
    assert (reply.unique_id, reply.payload) == ("u1", {"status": "UnlockFailed"})
    rig.tm.tell(ConnectorLockResult(1, False, True, request.request_id))  # too late: answered once only
    rig.settle()
    rig.link.expect_none(ReplyResult)


def test_an_unlock_answered_in_time_is_not_answered_again_at_the_deadline(rig):
    unlock(rig)
    request = unlock_request(rig)
    rig.tm.tell(ConnectorLockResult(1, False, True, request.request_id))
    assert rig.link.expect(ReplyResult).payload == {"status": "Unlocked"}
    rig.advance(UNLOCK_TIMEOUT_S)
    rig.link.expect_none(ReplyResult)


# --- ChangeAvailability --------------------------------------------------------------------------


def availability(rig, connector, kind, uid="c1") -> str:
    return remote(rig, "ChangeAvailability", {"connectorId": connector, "type": kind}, uid)


def persisted(rig) -> dict[int, str]:
    return {r["connector"]: r["availability"] for r in rig.query("SELECT * FROM connectors")}


def test_an_idle_connector_made_inoperative_is_unavailable_and_starts_nothing(rig):
    assert availability(rig, 1, "Inoperative") == "Accepted"
    rig.status.expect(status_is("Unavailable"))
    rig.evse.expect(ShowStatus(1, "Unavailable", None))
    assert persisted(rig) == {1: "Inoperative"}
    rig.plug()
    rig.tm.tell(CardPresented("TAG1"))
    rig.settle()
    rig.authorization.expect_none(AuthorizeTag)
    rig.evse.expect_none(SetConnectorLock)
    rig.status.expect_none(status_is("Preparing"))
    assert remote(rig, "RemoteStartTransaction", {"idTag": "R1", "connectorId": 1}, "r2") == "Rejected"


def test_an_inoperative_connector_made_operative_again_is_available(rig):
    availability(rig, 1, "Inoperative")
    rig.status.expect(status_is("Unavailable"))
    assert availability(rig, 1, "Operative", "c2") == "Accepted"
    rig.status.expect(status_is("Available"))
    assert persisted(rig) == {1: "Operative"}
    rig.start()


def test_a_connector_made_operative_while_the_station_is_inoperative_is_rejected_and_not_persisted(rig):
    availability(rig, 0, "Inoperative")
    availability(rig, 1, "Inoperative", "c2")
    assert availability(rig, 1, "Operative", "c3") == "Rejected"
    assert persisted(rig) == {0: "Inoperative", 1: "Inoperative"}


@pytest.mark.parametrize("connector", [0, 1])
def test_availability_survives_a_restart_from_the_same_database(tmp_path, connector):
    rig = Rig(tmp_path / "station.db")
    availability(rig, connector, "Inoperative")
    rig.settle()
    rig.tm.stop()
    again = Rig(tmp_path / "station.db")
    again.status.expect(status_is("Unavailable", connector=1))
    again.status.expect(status_is("Unavailable" if connector == 0 else "Available", connector=0))
    again.plug()
    again.tm.tell(CardPresented("TAG1"))
    again.settle()
    again.authorization.expect_none(AuthorizeTag)


def test_a_scheduled_change_survives_a_restart_that_interrupted_the_transaction(tmp_path):
    rig = Rig(tmp_path / "station.db")
    rig.clear()
    rig.start()
    assert availability(rig, 1, "Inoperative") == "Scheduled"
    rig.settle()
    rig.tm.stop()  # a crash: the transaction is stopped (PowerLoss) at start-up
    again = Rig(tmp_path / "station.db")
    again.status.expect(status_is("Unavailable"))
    assert [s["payload"]["reason"] for s in again.queued("StopTransaction")] == ["PowerLoss"]


# --- StopAllTransactions (Reset, power loss) -------------------------------------------------------


def test_stop_all_transactions_stops_each_running_one_and_says_how_many(tmp_path):
    rig = Rig(tmp_path / "station.db", connectors=2)
    rig.clear()
    first = rig.start("TAG1", connector=1)
    second = rig.start("TAG2", connector=2)
    asker = Probe()
    rig.tm.tell(StopAllTransactions("SoftReset", asker.ref))
    assert asker.expect(AllTransactionsStopped) == AllTransactionsStopped(2)
    stops = rig.queued("StopTransaction")
    assert sorted((s["local_id"], s["payload"]["reason"]) for s in stops) == [(first, "SoftReset"),
                                                                              (second, "SoftReset")]
    assert all("idTag" not in s["payload"] for s in stops)
    for c in (1, 2):
        rig.evse.expect(SetContactor(c, False))
        rig.status.expect(status_is("Finishing", connector=c))

