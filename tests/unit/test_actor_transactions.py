"""TransactionManager, the actor: probes as its peers, a real SQLite database, a manual clock.

What only the actor can show: the wiring, the effects carried out in the order the core gives them
(the StartTransaction committed before the contactor closes, the contactor opened before the
StopTransaction is committed), the rows and payloads in the database, timers that fire, replies that
reach the link, restarts. The decisions themselves are tested without threads in test_session_core*.py;
UnlockConnector, ChangeAvailability and StopAllTransactions at this level: test_connector_requests.py."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from actors.configuration import registry as keys

from actors.infra import store
from actors.infra.clock import StationClock
from actors.infra.ticker import ManualScheduler
from actors.metering.book import queue_meter_values
from actors.sessions.requests import DEFERRED_STOP_S
from actors.sessions.actor import TransactionManager
from messages.events import (CableDetached, AuthorizeTag, CardPresented, ConnectorLockResult,
                             ConnectorStatusChanged, MainsPowerChanged, MeterReading, MeterSampled,
                             PlugConnected, PlugDisconnected, ReplyResult, SendCall, SetConnectorLock,
                             SetContactor, ShowStatus, ShutDown, TagAuthorized, TransactionBegan,
                             TransactionDataSampled, TransactionEnded, TransactionIdAssigned,
                             TransactionMessagesQueued)
from messages.frozen import freeze
from tests.unit.fakes import Probe, csms_request, sync, wire

pytestmark = pytest.mark.timeout(20)

START = datetime(2025, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
PEERS = ("link", "status", "txqueue", "meter", "evse", "authorization", "reset")


def config(**overrides) -> dict:
    values = {n: s.default for n, s in keys.registry(1, True).items()}
    values.update(overrides)
    return values


def status_is(status, connector=1, error_code=None):
    def match(m):
        return (isinstance(m, ConnectorStatusChanged) and m.connector == connector and m.status == status
                and (error_code is None or m.error_code == error_code))
    return match


def is_call(action):
    return lambda m: isinstance(m, SendCall) and m.action == action


class RecordingManager(TransactionManager):
    """The TransactionManager, noting on its own thread each book write and each publish, in order."""

    def __init__(self, done: list, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._done = done

    def opened(self) -> None:
        super().opened()
        book, done = self._book, self._done

        class NotingBook:
            def __getattr__(self, name):
                def call(*args, **kwargs):
                    done.append(f"book.{name}")
                    return getattr(book, name)(*args, **kwargs)
                return call

        self._book = NotingBook()

    def publish(self, message) -> None:
        self._done.append(message)
        super().publish(message)


class Rig:
    def __init__(self, db_path, fixed_cable=False, connectors=1, backup_power=False, **overrides):
        self.db_path = db_path
        self.scheduler = ManualScheduler()
        self.clock = StationClock(system=START.timestamp, monotonic=self.scheduler.now)
        self.probes = {name: Probe() for name in PEERS}
        self.link, self.status, self.txqueue, self.meter, self.evse, self.authorization, self.reset = \
            (self.probes[n] for n in PEERS)
        self.done: list = []  # what the manager did, in order: "book.<method>" or a message it published
        self.tm = RecordingManager.start(self.done, str(db_path), connectors, fixed_cable, config(**overrides),
                                         self.clock, self.scheduler, backup_power)
        wire(self.tm, {ConnectorStatusChanged: self.status, TransactionMessagesQueued: self.txqueue,
                       (TransactionBegan, TransactionEnded): self.meter,
                       (SetContactor, SetConnectorLock, ShowStatus): self.evse, AuthorizeTag: self.authorization,
                       ShutDown: self.reset})
        sync(self.tm)

    def settle(self):
        sync(self.tm)

    def advance(self, seconds):
        sync(self.tm)  # its timers are armed before the clock moves
        self.scheduler.advance(seconds)
        sync(self.tm)

    def clear(self):
        sync(self.tm)
        for p in self.probes.values():
            p.clear()

    def query(self, sql, params=()) -> list[dict]:
        conn = store.open_database(self.db_path)
        try:
            return store.rows(conn, sql, params)
        finally:
            conn.close()

    def queued(self, action=None) -> list[dict]:
        sync(self.tm)
        rows = self.query("SELECT * FROM tx_queue ORDER BY seq")
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return [r for r in rows if action is None or r["action"] == action]

    # --- steps of a session ---

    def plug(self, connector=1):
        self.tm.tell(PlugConnected(connector))

    def card(self, id_tag="TAG1") -> AuthorizeTag:
        """Present a card: the AuthorizeTag the manager asks of the authorization actor."""
        self.tm.tell(CardPresented(id_tag))
        return self.authorization.expect(lambda m: isinstance(m, AuthorizeTag) and m.id_tag == id_tag)

    def answer_authorize(self, request: AuthorizeTag, status="Accepted", parent=None, source="csms"):
        """Play the authorization actor: its verdict on `request`."""
        info = {"status": status}
        if parent:
            info["parentIdTag"] = parent
        self.tm.tell(TagAuthorized(request.id_tag, freeze(info), source, request.tag))

    def lock_answer(self, ok=True) -> SetConnectorLock:
        request = self.evse.expect(lambda m: isinstance(m, SetConnectorLock) and m.locked)
        self.tm.tell(ConnectorLockResult(request.connector, True, ok, request.request_id))
        return request

    def start(self, id_tag="TAG1", parent=None, connector=1) -> int:
        """Plug, card, Accepted, lock: the transaction's local id."""
        self.plug(connector)
        self.status.expect(status_is("Preparing", connector=connector))
        self.answer_authorize(self.card(id_tag), parent=parent)
        self.lock_answer()
        self.evse.expect(SetContactor(connector, True))
        began = self.meter.expect(TransactionBegan)
        assert began.connector == connector
        self.status.expect(status_is("SuspendedEV", connector=connector))
        self.clear()
        return began.local_id


@pytest.fixture
def rig(tmp_path):
    r = Rig(tmp_path / "station.db")
    r.clear()
    return r


# --- start-up ----------------------------------------------------------------------------------


def test_once_wired_every_connector_and_the_station_are_published(tmp_path):
    rig = Rig(tmp_path / "station.db", connectors=2)
    for c in (1, 2, 0):
        rig.status.expect(status_is("Available", connector=c))
        rig.evse.expect(ShowStatus(c, "Available", None))


# --- starting ----------------------------------------------------------------------------------


def test_plugging_in_makes_the_connector_preparing(rig):
    rig.plug()
    changed = rig.status.expect(status_is("Preparing"))
    assert changed.error_code == "NoError" and changed.timestamp == START
    rig.evse.expect(ShowStatus(1, "Preparing", None))


def test_a_card_is_authorized_by_the_authorization_actor(rig):
    rig.plug()
    request = rig.card("TAG1")
    assert request.id_tag == "TAG1" and request.reply_to == rig.tm
    assert request.tag == ("card", "TAG1", 1)
    rig.link.expect_none(is_call("Authorize"))  # the manager no longer sends Authorize.req itself


def test_an_accepted_card_on_a_socket_locks_the_connector_then_starts_the_transaction(rig):
    rig.tm.tell(MeterSampled(MeterReading(1, 1234)))
    rig.plug()
    rig.answer_authorize(rig.card("TAG1"))
    lock = rig.evse.expect(SetConnectorLock)
    assert (lock.connector, lock.locked, lock.reply_to) == (1, True, rig.tm) and lock.request_id
    rig.settle()
    assert rig.queued() == []
    rig.evse.expect_none(SetContactor)

    rig.tm.tell(ConnectorLockResult(1, True, True, lock.request_id))
    rig.evse.expect(SetContactor(1, True))
    began = rig.meter.expect(TransactionBegan)
    assert (began.connector, began.meter_start_wh) == (1, 1234)
    rig.txqueue.expect(TransactionMessagesQueued)
    [row] = rig.queued()
    assert row["action"] == "StartTransaction" and row["local_id"] == began.local_id and row["unique_id"]
    assert row["payload"] == {"connectorId": 1, "idTag": "TAG1", "meterStart": 1234,
                              "timestamp": "2025-02-03T04:05:06.000Z"}
    [tx] = rig.query("SELECT * FROM transactions")
    assert (tx["local_id"], tx["id_tag"], tx["meter_start_wh"], tx["stopped_at"]) == (began.local_id, "TAG1", 1234,
                                                                                      None)
    rig.status.expect(status_is("SuspendedEV"))


def test_the_start_transaction_is_committed_before_the_contactor_closes_and_the_stop_after_it_opens(rig):
    del rig.done[:]
    rig.start()
    rig.tm.tell(CardPresented("TAG1"))
    rig.settle()
    done = [d for d in rig.done if isinstance(d, (str, SetContactor))]
    assert done == ["book.begin", SetContactor(1, True), SetContactor(1, False), "book.stop"]


# --- the connection timeout --------------------------------------------------------------------


def test_no_cable_within_connection_timeout_makes_the_connector_available_again(rig):
    rig.answer_authorize(rig.card())
    rig.status.expect(status_is("Preparing"))
    rig.clear()
    rig.advance(59)
    rig.status.expect_none(status_is("Available"))
    rig.advance(1)
    rig.status.expect(status_is("Available"))
    rig.plug()
    rig.settle()
    rig.evse.expect_none(SetConnectorLock)  # the authorization is gone


def test_a_connection_timeout_from_an_earlier_authorization_does_not_cut_a_later_one_short(rig):
    rig.answer_authorize(rig.card("TAG1"))  # t=0: timer for t=60
    rig.advance(10)
    rig.plug()  # the cable comes: the transaction starts
    rig.lock_answer()
    rig.evse.expect(SetContactor(1, True))
    rig.advance(10)
    rig.tm.tell(CardPresented("TAG1"))  # t=20: stopped
    rig.tm.tell(PlugDisconnected(1))
    rig.tm.tell(CableDetached(1))
    rig.advance(10)
    rig.answer_authorize(rig.card("TAG2"))  # t=30: a new authorization, timer for t=90
    rig.status.expect(status_is("Preparing"))
    rig.clear()
    rig.advance(30)  # t=60
    rig.status.expect_none(status_is("Available"))
    rig.advance(30)  # t=90
    rig.status.expect(status_is("Available"))


def test_a_cable_without_identification_is_finishing_after_connection_timeout(rig):
    rig.plug()
    rig.status.expect(status_is("Preparing"))
    rig.advance(59)
    rig.status.expect_none(status_is("Finishing"))
    rig.advance(1)
    rig.status.expect(status_is("Finishing"))
    rig.tm.tell(CardPresented("TAG1"))
    rig.settle()
    rig.authorization.expect_none(AuthorizeTag)  # no card for an abandoned cable


# --- stopping ----------------------------------------------------------------------------------


def test_the_same_card_stops_the_transaction_with_reason_local(rig):
    local_id = rig.start("TAG1")
    rig.tm.tell(MeterSampled(MeterReading(1, 2500)))
    rig.tm.tell(CardPresented("tag1"))  # idTags compare case-insensitively
    rig.evse.expect(SetContactor(1, False))
    unlock = rig.evse.expect(SetConnectorLock)
    assert (unlock.connector, unlock.locked) == (1, False)
    assert rig.meter.expect(TransactionEnded) == TransactionEnded(1, local_id)
    rig.txqueue.expect(TransactionMessagesQueued)
    rig.status.expect(status_is("Finishing"))
    rig.link.expect_none(is_call("Authorize"))
    [start, stop] = rig.queued()
    assert start["action"] == "StartTransaction"
    assert stop["action"] == "StopTransaction" and stop["local_id"] == local_id
    assert stop["payload"] == {"meterStop": 2500, "timestamp": "2025-02-03T04:05:06.000Z", "reason": "Local",
                               "idTag": "tag1"}
    [tx] = rig.query("SELECT * FROM transactions")
    assert (tx["stop_reason"], tx["meter_stop_wh"]) == ("Local", 2500) and tx["stopped_at"]


def test_stop_txn_sampled_data_adds_transaction_data(tmp_path):
    rig = Rig(tmp_path / "station.db", StopTxnSampledData="Energy.Active.Import.Register")
    rig.clear()
    rig.tm.tell(MeterSampled(MeterReading(1, 100)))
    rig.start()
    rig.tm.tell(MeterSampled(MeterReading(1, 400)))
    rig.tm.tell(CardPresented("TAG1"))
    [stop] = rig.queued("StopTransaction")
    data = stop["payload"]["transactionData"]
    assert [(d["sampledValue"][0]["context"], d["sampledValue"][0]["value"]) for d in data] == \
        [("Transaction.Begin", "100"), ("Transaction.End", "400")]


# --- remote control ----------------------------------------------------------------------------


def remote(rig, action, payload, uid="r1") -> str:
    rig.tm.tell(csms_request(uid, action, payload, rig.link.ref))
    reply = rig.link.expect(ReplyResult)
    assert (reply.unique_id, reply.action) == (uid, action)
    return reply.payload["status"]


def test_remote_start_on_a_free_connector_is_accepted_and_authorized(rig):
    assert remote(rig, "RemoteStartTransaction", {"idTag": "R1", "connectorId": 1}) == "Accepted"
    request = rig.authorization.expect(AuthorizeTag)
    assert (request.id_tag, request.reply_to, request.tag) == ("R1", rig.tm, ("remote", "R1", 1))
    rig.plug()
    rig.answer_authorize(request)
    rig.lock_answer()
    rig.evse.expect(SetContactor(1, True))


def test_remote_stop_that_overtakes_its_start_transaction_answer_waits_for_it(rig):
    local_id = rig.start()
    rig.tm.tell(csms_request("r1", "RemoteStopTransaction", {"transactionId": 42}, rig.link.ref))
    rig.settle()
    rig.link.expect_none(ReplyResult)
    rig.tm.tell(TransactionIdAssigned(local_id, 42, freeze({"status": "Accepted"})))
    reply = rig.link.expect(ReplyResult)
    assert (reply.unique_id, reply.payload["status"]) == ("r1", "Accepted")
    [stop] = rig.queued("StopTransaction")
    assert stop["payload"]["reason"] == "Remote"


def test_remote_stop_of_an_unknown_id_while_a_start_is_unanswered_is_rejected_after_a_bounded_wait(rig):
    rig.start()
    rig.tm.tell(csms_request("r1", "RemoteStopTransaction", {"transactionId": 999}, rig.link.ref))
    rig.advance(DEFERRED_STOP_S - 0.5)
    rig.link.expect_none(ReplyResult)
    rig.advance(0.5)
    reply = rig.link.expect(ReplyResult)
    assert (reply.unique_id, reply.payload["status"]) == ("r1", "Rejected")
    assert rig.queued("StopTransaction") == []


def test_a_remote_stop_waiting_for_a_start_transaction_that_is_dropped_is_rejected_at_once(rig):
    local_id = rig.start()
    rig.tm.tell(csms_request("r1", "RemoteStopTransaction", {"transactionId": 999}, rig.link.ref))
    rig.settle()
    rig.link.expect_none(ReplyResult)
    rig.tm.tell(TransactionIdAssigned(local_id, -1, None))  # errata 3.18: dropped after its attempts
    reply = rig.link.expect(ReplyResult)  # no need to wait for the deadline
    assert (reply.unique_id, reply.payload["status"]) == ("r1", "Rejected")
    rig.tm.tell(csms_request("r2", "RemoteStopTransaction", {"transactionId": 998}, rig.link.ref))
    assert rig.link.expect(ReplyResult).payload["status"] == "Rejected"
    assert rig.queued("StopTransaction") == []


# --- recovery ----------------------------------------------------------------------------------


def test_an_interrupted_transaction_is_stopped_at_start_up_with_reason_power_loss(tmp_path):
    db_path = tmp_path / "station.db"
    conn = store.open_database(db_path)
    conn.execute("INSERT INTO transactions(connector, id_tag, started_at, meter_start_wh, last_meter_wh,"
                 " last_meter_at) VALUES(1, 'TAG1', '2025-01-01T00:00:00.000Z', 100, 150, '2025-01-01T00:10:00.000Z')")
    conn.close()
    rig = Rig(db_path)
    rig.txqueue.expect(TransactionMessagesQueued)
    [stop] = rig.queued()
    assert stop["action"] == "StopTransaction" and stop["local_id"] == 1
    assert stop["payload"] == {"meterStop": 150, "timestamp": "2025-01-01T00:10:00.000Z", "reason": "PowerLoss",
                               "idTag": "TAG1"}
    [tx] = rig.query("SELECT * FROM transactions")
    assert (tx["stop_reason"], tx["meter_stop_wh"], tx["stopped_at"]) == ("PowerLoss", 150,
                                                                         "2025-01-01T00:10:00.000Z")


def test_a_transaction_cut_by_a_crash_stops_at_its_last_persisted_meter_reading(tmp_path):
    rig = Rig(tmp_path / "station.db")
    rig.clear()
    local_id = rig.start()
    rig.tm.tell(MeterSampled(MeterReading(1, 1500)))
    rig.settle()
    rig.tm.stop()  # on_stop writes nothing that matters: as good as a crash here
    again = Rig(tmp_path / "station.db")
    stop = again.queued("StopTransaction")
    assert [(s["local_id"], s["payload"]["meterStop"], s["payload"]["reason"]) for s in stop] == \
        [(local_id, 1500, "PowerLoss")]


def test_stop_txn_sampled_data_collected_before_a_crash_goes_with_the_power_loss_stop(tmp_path):
    rig = Rig(tmp_path / "station.db", StopTxnSampledData="Energy.Active.Import.Register")
    rig.clear()
    rig.tm.tell(MeterSampled(MeterReading(1, 100)))
    local_id = rig.start()
    sync(rig.tm)
    conn = store.open_database(rig.db_path)  # what the MeterSampler stores with each sample
    for i, wh in enumerate((120, 140)):
        value = {"timestamp": f"2025-02-03T04:06:0{i}.000Z",
                 "sampledValue": [{"value": str(wh), "context": "Sample.Periodic", "format": "Raw",
                                   "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"}]}
        assert queue_meter_values(conn, local_id, None, value)
        rig.tm.tell(TransactionDataSampled(1, local_id, freeze(value)))
    conn.close()
    rig.settle()
    rig.tm.stop()  # a crash: nothing more is written
    again = Rig(tmp_path / "station.db", StopTxnSampledData="Energy.Active.Import.Register")
    [stop] = again.queued("StopTransaction")
    payload = stop["payload"]
    assert (payload["reason"], payload["meterStop"], payload["timestamp"]) == ("PowerLoss", 140,
                                                                              "2025-02-03T04:06:01.000Z")
    assert [(d["timestamp"], d["sampledValue"][0]["value"]) for d in payload["transactionData"]] == [
        ("2025-02-03T04:05:06.000Z", "100"), ("2025-02-03T04:06:00.000Z", "120"),
        ("2025-02-03T04:06:01.000Z", "140"), ("2025-02-03T04:06:01.000Z", "140")]
    assert again.query("SELECT * FROM transaction_data") == []


def test_finished_transactions_are_not_stopped_again_at_start_up(tmp_path):
    rig = Rig(tmp_path / "station.db")
    rig.clear()
    rig.start()
    rig.tm.tell(CardPresented("TAG1"))
    rig.settle()
    rig.tm.stop()
    again = Rig(tmp_path / "station.db")
    assert [r["payload"]["reason"] for r in again.queued("StopTransaction")] == ["Local"]


def test_a_cable_left_in_after_a_power_loss_is_preparing_and_takes_a_new_session(tmp_path):
    db_path = tmp_path / "station.db"
    conn = store.open_database(db_path)
    conn.execute("INSERT INTO transactions(connector, id_tag, started_at, meter_start_wh, last_meter_wh)"
                 " VALUES(1, 'TAG1', '2025-01-01T00:00:00.000Z', 100, 150)")
    conn.close()
    rig = Rig(db_path)
    rig.clear()
    rig.plug()  # what the EVSE device reports from connector_states() at start-up
    rig.settle()
    assert [m.status for m in rig.status.messages(ConnectorStatusChanged)] == ["Preparing"]
    assert remote(rig, "RemoteStartTransaction", {"idTag": "R1", "connectorId": 1}) == "Accepted"


# --- mains power ---------------------------------------------------------------------------------
# UnlockConnector, ChangeAvailability and StopAllTransactions: tests/unit/test_connector_requests.py.


def test_mains_power_lost_on_backup_power_shuts_the_station_down(tmp_path):
    rig = Rig(tmp_path / "station.db", backup_power=True)
    rig.tm.tell(MainsPowerChanged(False))
    shut = rig.reset.expect(ShutDown)
    assert (shut.reason, shut.exit_code) == ("PowerLoss", 69) and shut.grace_s > 0  # not a clean stop

