"""The CSMS's requests about connectors (actors/sessions/connector_requests.py, a mixin of the TransactionManager):
UnlockConnector, ChangeAvailability and the station-wide StopAllTransactions. RemoteStart/RemoteStop are
in tests/unit/test_actor_transactions.py, with the sessions they start and stop."""

from __future__ import annotations

import pytest

from actors.sessions.requests import UNLOCK_TIMEOUT_S
from messages.events import (AllTransactionsStopped, AuthorizeTag, CardPresented, ConnectorLockResult,
                             ConnectorStatusChanged,
                             MeterReading, MeterSampled, PlugDisconnected, ReplyResult, SetConnectorLock,
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


def test_unlock_of_a_fixed_cable_is_not_supported(tmp_path):
    rig = Rig(tmp_path / "station.db", fixed_cable=True)
    rig.clear()
    assert remote(rig, "UnlockConnector", {"connectorId": 1}) == "NotSupported"
    rig.evse.expect_none(SetConnectorLock)


@pytest.mark.parametrize("connector", [0, 2])
def test_unlock_of_an_unknown_connector_is_not_supported(rig, connector):
    assert remote(rig, "UnlockConnector", {"connectorId": connector}) == "NotSupported"
    rig.evse.expect_none(SetConnectorLock)


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


def test_change_availability_of_an_unknown_connector_is_rejected(rig):
    assert availability(rig, 2, "Inoperative") == "Rejected"
    assert persisted(rig) == {}
    rig.status.expect_none(status_is("Unavailable"))


def test_change_availability_during_a_transaction_is_scheduled_until_it_ends(rig):
    rig.start()
    assert availability(rig, 1, "Inoperative") == "Scheduled"
    rig.settle()
    rig.status.expect_none(status_is("Unavailable"))
    rig.evse.expect_none(SetContactor(1, False))  # the transaction goes on
    assert rig.queued("StopTransaction") == []
    rig.tm.tell(CardPresented("TAG1"))  # it ends: the change applies
    rig.status.expect(status_is("Unavailable"))
    rig.settle()
    rig.status.expect_none(status_is("Finishing"))
    rig.tm.tell(PlugDisconnected(1))
    rig.plug()
    rig.settle()
    rig.status.expect_none(status_is("Preparing"))


def test_a_scheduled_change_is_cancelled_by_operative_before_the_transaction_ends(rig):
    rig.start()
    assert availability(rig, 1, "Inoperative") == "Scheduled"
    assert availability(rig, 1, "Operative", "c2") == "Accepted"
    rig.tm.tell(CardPresented("TAG1"))
    rig.status.expect(status_is("Finishing"))
    rig.status.expect_none(status_is("Unavailable"))


def test_inoperative_drops_an_authorization_waiting_for_the_cable(rig):
    rig.answer_authorize(rig.card())
    rig.status.expect(status_is("Preparing"))
    availability(rig, 1, "Inoperative")
    availability(rig, 1, "Operative", "c2")
    rig.status.expect(status_is("Available"))
    rig.plug()
    rig.settle()
    rig.evse.expect_none(SetConnectorLock)


def test_connector_zero_inoperative_makes_every_connector_and_the_station_unavailable(tmp_path):
    rig = Rig(tmp_path / "station.db", connectors=2)
    rig.clear()
    assert availability(rig, 0, "Inoperative") == "Accepted"
    for c in (1, 2, 0):
        rig.status.expect(status_is("Unavailable", connector=c))
    assert persisted(rig) == {0: "Inoperative"}
    rig.plug(2)
    rig.tm.tell(CardPresented("TAG1"))
    rig.settle()
    rig.authorization.expect_none(AuthorizeTag)
    rig.clear()
    assert availability(rig, 0, "Operative", "c2") == "Accepted"
    for c in (1, 2, 0):
        rig.status.expect(status_is("Available" if c != 2 else "Preparing", connector=c))


def test_connector_zero_operative_keeps_a_connector_made_inoperative_on_its_own(tmp_path):
    rig = Rig(tmp_path / "station.db", connectors=2)
    availability(rig, 2, "Inoperative")
    availability(rig, 0, "Inoperative", "c2")
    rig.status.expect(status_is("Unavailable", connector=2))
    rig.clear()
    assert availability(rig, 0, "Operative", "c3") == "Accepted"
    rig.status.expect(status_is("Available", connector=1))
    rig.status.expect(status_is("Available", connector=0))
    # Only changes are published: connector 2 stays Unavailable, so nothing is said of it.
    rig.status.expect_none(lambda m: isinstance(m, ConnectorStatusChanged) and m.connector == 2)


def test_connector_zero_inoperative_during_a_transaction_is_scheduled_for_that_connector(tmp_path):
    rig = Rig(tmp_path / "station.db", connectors=2)
    rig.clear()
    rig.start(connector=1)
    assert availability(rig, 0, "Inoperative") == "Scheduled"
    rig.status.expect(status_is("Unavailable", connector=2))
    rig.settle()
    rig.status.expect_none(status_is("Unavailable", connector=1))
    rig.tm.tell(CardPresented("TAG1"))
    rig.status.expect(status_is("Unavailable", connector=1))


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


def test_stop_all_transactions_with_none_running_answers_zero(rig):
    asker = Probe()
    rig.tm.tell(StopAllTransactions("HardReset", asker.ref))
    assert asker.expect(AllTransactionsStopped) == AllTransactionsStopped(0)
    assert rig.queued() == []


def test_stop_all_transactions_without_reply_to_just_stops(rig):
    rig.start()
    rig.tm.tell(StopAllTransactions("PowerLoss"))
    [stop] = rig.queued("StopTransaction")
    assert stop["payload"]["reason"] == "PowerLoss"
