"""SessionCore without threads: events in, effects out (actors/sessions/core.py and the modules it dispatches to).

Start-up and recovery, starting a session (card, cable, lock), ConnectionTimeOut, stopping, the
answer to StartTransaction. The CSMS's requests: test_session_core_requests.py; the §4.9 status
transitions one by one: test_session_core_transitions.py. Every status change any of these tests
makes the core publish is checked against the §4.9 table by the `Core` harness below.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from actors.configuration import registry as keys
from actors.sessions.book import Interrupted
from actors.sessions.connector import ALLOWED, transition_name
from actors.sessions.core import HANDLERS, SessionCore
from actors.sessions.actor import TransactionManager
from actors.infra.clock import format_time
from actors.metering.meterdata import ENERGY
from actors.sessions.effects import (CancelTimer, Publish, RecordMeter, RecordStart, RecordStop,
                                     Reply, StartTimer, Tell)
from actors.sessions.book import MAX_TRANSACTION_DATA
from messages.events import (AuthorizeTag, CableDetached, CardPresented, ConfigurationChanged, ConnectorFaultChanged,
                             ConnectorLockResult, ConnectorStatusChanged, EvDrawChanged, MeterReading, MeterSampled,
                             PlugConnected, PlugDisconnected, SetConnectorLock, SetContactor, ShowStatus,
                             StopAllTransactions, TagAuthorized, TransactionBegan, TransactionDataSampled,
                             TransactionEnded, TransactionIdAssigned, TransactionMessagesQueued)
from messages.frozen import freeze
from actors.sessions.state import PendingStart
from messages.requests import ChangeAvailability, RemoteStartTransaction, UnlockConnector
from messages.ticks import ConnectionTimeoutDue

pytestmark = pytest.mark.timeout(10)

START = datetime(2025, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
ME = "the TransactionManager"  # what the core puts in reply_to: the actor's own reference


def config(**overrides) -> dict:
    values = {n: s.default for n, s in keys.registry(1, True).items()}
    values.update(overrides)
    return values


# --- reading effects ------------------------------------------------------------------------------


def sent(effects, kind: Any = None) -> list:
    """The messages published, in order (of type `kind` only, if given)."""
    return [e.message for e in effects if isinstance(e, Publish) and (kind is None or isinstance(e.message, kind))]


def statuses(effects) -> list[tuple[int, str]]:
    return [(m.connector, m.status) for m in sent(effects, ConnectorStatusChanged)]


def replies(effects) -> list[str]:
    return [e.status for e in effects if isinstance(e, Reply)]


def kinds(effects) -> list[str]:
    """Each effect by name (a published message by its type): the order of what happens."""
    return [type(e.message).__name__ if isinstance(e, Publish) else type(e).__name__ for e in effects]


def one(items: list) -> Any:
    assert len(items) == 1, items
    return items[0]


# --- the harness ----------------------------------------------------------------------------------


class Core:
    """A SessionCore and the steps of a session; every status change it publishes must be allowed (§4.9)."""

    def __init__(self, connectors=1, fixed_cable=False, backup_power=False, availability=None, last_local_id=0,
                 interrupted=(), reserved=(), accept_reservations=True, **overrides):
        self.now = START
        self.core = SessionCore(connectors, config(**overrides), lambda: self.now, ME, fixed_cable, backup_power,
                                availability, last_local_id, reserved, accept_reservations)
        self.shown: dict[int, str] = {}  # connector -> the status last published
        self.transitions: list[tuple[int, str]] = []  # (connector, §4.9 cell name), in order
        self.started = self._checked(self.core.start(interrupted))

    @property
    def state(self):
        return self.core.state

    def connector(self, connector_id=1):
        return self.core.state.connectors[connector_id]

    def __call__(self, event) -> list:
        effects = self.core.handle(event)
        assert effects is not None, f"{event!r} is not for the sessions"
        return self._checked(effects)

    def _checked(self, effects) -> list:
        for m in sent(effects, ConnectorStatusChanged):
            before = self.shown.get(m.connector)
            if before is not None and before != m.status:
                assert (before, m.status) in ALLOWED, \
                    f"connector {m.connector}: {before} -> {m.status} is not an OCPP 1.6 §4.9 transition"
                self.transitions.append((m.connector, transition_name(before, m.status)))
            self.shown[m.connector] = m.status
        return effects

    # --- steps ---

    def plug(self, connector=1) -> list:
        return self(PlugConnected(connector))

    def unplug(self, connector=1) -> list:
        return self(PlugDisconnected(connector))

    def card(self, id_tag="TAG1") -> list:
        return self(CardPresented(id_tag))

    def answer(self, effects, status="Accepted", parent=None, source="csms") -> list:
        """Play the Authorization actor: its verdict on the AuthorizeTag among `effects`."""
        request = one(sent(effects, AuthorizeTag))
        info = {"status": status}
        if parent:
            info["parentIdTag"] = parent
        return self(TagAuthorized(request.id_tag, freeze(info), source, request.tag))

    def lock(self, effects, ok=True) -> list:
        """Play the lock motor: its answer to the SetConnectorLock(locked) among `effects`."""
        request = one([m for m in sent(effects, SetConnectorLock) if m.locked])
        return self(ConnectorLockResult(request.connector, True, ok, request.request_id))

    def start(self, id_tag="TAG1", parent=None, connector=1) -> int:
        """Plug, card, Accepted, lock: the new transaction's local id."""
        self.plug(connector)
        began = self.answer(self.card(id_tag), parent=parent)
        if not self.state.fixed_cable:
            began = self.lock(began)
        return one(sent(began, TransactionBegan)).local_id

    def assign(self, local_id, transaction_id=42, **info) -> list:
        return self(TransactionIdAssigned(local_id, transaction_id, freeze({"status": "Accepted", **info})))

    def timeout(self, connector=1) -> list:
        """ConnectionTimeOut passes: the clock moves to the end of the interval, the tick comes."""
        c = self.connector(connector)
        if c.preparing_since is not None:
            due = c.preparing_since + timedelta(seconds=self.state.config["ConnectionTimeOut"])
            self.now = max(self.now, due)
        return self(ConnectionTimeoutDue(connector))

    def meter(self, energy_wh, connector=1) -> list:
        return self(MeterSampled(MeterReading(connector, energy_wh)))


def status_changed(connector, status, error_code="NoError", info="", at=START) -> Publish:
    return Publish(ConnectorStatusChanged(connector, status, error_code, info, "", at))


# --- start-up ----------------------------------------------------------------------------------------


def test_start_publishes_every_connector_then_the_station():
    core = Core(connectors=2)
    assert core.started == [Publish(TransactionMessagesQueued()),
                             status_changed(1, "Available"), Publish(ShowStatus(1, "Available", None)),
                             status_changed(2, "Available"), Publish(ShowStatus(2, "Available", None)),
                             status_changed(0, "Available"), Publish(ShowStatus(0, "Available", None))]


@pytest.mark.parametrize("availability, expected", [
    ({1: False}, [(1, "Unavailable"), (2, "Available"), (0, "Available")]),
    ({0: False}, [(1, "Unavailable"), (2, "Unavailable"), (0, "Unavailable")]),
    ({0: True, 2: False}, [(1, "Available"), (2, "Unavailable"), (0, "Available")]),
])
def test_start_up_follows_the_persisted_availability(availability, expected):
    assert statuses(Core(connectors=2, availability=availability).started) == expected


def test_an_interrupted_transaction_is_stopped_at_start_up_with_reason_power_loss():
    tx = Interrupted(7, 1, "TAG1", 100, START - timedelta(hours=1), 150, START - timedelta(minutes=50))
    core = Core(interrupted=[tx])
    assert core.started[:2] == [RecordStop(7, "TAG1", 150, START - timedelta(minutes=50), "PowerLoss", ()),
                                Publish(TransactionMessagesQueued())]
    assert statuses(core.started) == [(1, "Available"), (0, "Available")]  # no cable reported yet


@pytest.mark.parametrize("cable_in", [False, True])
def test_after_a_restart_a_connector_does_what_it_shows(cable_in):
    """The crash soak: Available after a PowerLoss recovery, yet a plug went to Finishing and
    RemoteStartTransaction was Rejected. Whether the old cable is still in (the EVSE reports the plug
    at start-up) or a new driver plugs in later, the connector is Preparing and takes a session."""
    tx = Interrupted(7, 1, "TAG1", 100, START - timedelta(hours=1), 150, START - timedelta(minutes=50))
    core = Core(interrupted=[tx])
    assert not core.connector().busy
    if cable_in:
        assert statuses(core.plug()) == [(1, "Preparing")]
    request = RemoteStartTransaction(unique_id="r", reply_to=None, id_tag="R1", connector_id=1)
    effects = core(request)
    assert replies(effects) == ["Accepted"]
    assert statuses(effects) == ([] if cable_in else [(1, "Preparing")])
    if not cable_in:
        core.plug()
    assert sent(core.lock(core.answer(effects)), TransactionBegan)


def test_an_interrupted_transaction_with_stop_txn_sampled_data_gets_begin_and_end_values():
    tx = Interrupted(7, 1, "TAG1", 100, START - timedelta(hours=1), 150, START - timedelta(minutes=50))
    core = Core(interrupted=[tx], StopTxnSampledData="Energy.Active.Import.Register")
    stop = core.started[0]
    assert [(d["sampledValue"][0]["context"], d["sampledValue"][0]["value"]) for d in stop.transaction_data] == \
        [("Transaction.Begin", "100"), ("Transaction.End", "150")]


def test_an_interrupted_transaction_carries_the_transaction_data_collected_before_the_crash():
    sampled = {"timestamp": "2025-02-03T03:30:00.000Z",
               "sampledValue": [{"value": "140", "context": "Sample.Periodic", "measurand": ENERGY, "unit": "Wh"}]}
    tx = Interrupted(7, 1, "TAG1", 100, START - timedelta(hours=1), 150, START - timedelta(minutes=20), (sampled,))
    stop = Core(interrupted=[tx], StopTxnSampledData=ENERGY).started[0]
    assert [(d["timestamp"], d["sampledValue"][0]["context"], d["sampledValue"][0]["value"])
            for d in stop.transaction_data] == [("2025-02-03T03:05:06.000Z", "Transaction.Begin", "100"),
                                                ("2025-02-03T03:30:00.000Z", "Sample.Periodic", "140"),
                                                ("2025-02-03T03:45:06.000Z", "Transaction.End", "150")]


def test_an_interrupted_transaction_stops_no_earlier_and_no_lower_than_what_it_reported():
    """The crash soak: the PowerLoss StopTransaction was stamped before the transaction's last MeterValues
    (the sampler stamps its sampling instant; the last reading persisted was taken before it)."""
    last = START - timedelta(minutes=50)

    def mv(seconds, wh):
        return {"timestamp": format_time(last + timedelta(seconds=seconds)),
                "sampledValue": [{"value": str(wh), "measurand": ENERGY, "unit": "Wh"},
                                 {"value": "7400", "measurand": "Power.Active.Import", "unit": "W"}]}

    tx = Interrupted(7, 1, "TAG1", 100, START - timedelta(hours=1), 150, last,
                     transaction_data=(mv(1, 152),), meter_values=(mv(2, 155), mv(3, 154)))
    stop = Core(interrupted=[tx]).started[0]
    assert (stop.at, stop.meter_stop_wh) == (last + timedelta(seconds=3), 155)
    # a reading newer than anything reported is the stop, as before
    tx = Interrupted(7, 1, "TAG1", 100, START - timedelta(hours=1), 160, last + timedelta(seconds=9),
                     meter_values=({"timestamp": format_time(last), "sampledValue": [{"value": "0.151",
                                                                                       "unit": "kWh"}]},))
    stop = Core(interrupted=[tx]).started[0]
    assert (stop.at, stop.meter_stop_wh) == (last + timedelta(seconds=9), 160)


def test_transaction_data_comes_with_the_stop_of_its_own_transaction_only():
    """The MeterSampler has stored each value (with its MeterValues); the core keeps its copy for the stop."""
    core = Core(StopTxnSampledData=ENERGY)
    local_id = core.start()
    value = {"timestamp": "t", "sampledValue": []}
    assert core(TransactionDataSampled(1, local_id, freeze(value))) == []
    assert core(TransactionDataSampled(1, local_id + 1, freeze({"timestamp": "u", "sampledValue": []}))) == []
    stop = next(e for e in core(PlugDisconnected(1)) if isinstance(e, RecordStop))
    assert [d["timestamp"] for d in stop.transaction_data][1:-1] == ["t"]


def test_local_transaction_ids_count_on_from_the_books_last_one():
    core = Core(connectors=2, last_local_id=41)
    assert core.start(connector=1) == 42
    assert core.start("TAG2", connector=2) == 43


# --- starting ----------------------------------------------------------------------------------------


def test_plugging_in_makes_the_connector_preparing_for_connection_timeout():
    core = Core()
    assert core.plug() == [StartTimer(ConnectionTimeoutDue(1), 60), status_changed(1, "Preparing"),
                           Publish(ShowStatus(1, "Preparing", None))]


def test_a_card_is_authorized_by_the_authorization_actor():
    core = Core()
    core.plug()
    assert core.card("TAG1") == [Publish(AuthorizeTag("TAG1", ME, ("card", "TAG1", 1)))]


def test_an_accepted_card_on_a_socket_locks_the_connector_and_records_nothing_yet():
    core = Core()
    core.plug()
    effects = core.answer(core.card())
    lock = one(sent(effects))
    assert (lock.connector, lock.locked, lock.reply_to) == (1, True, ME) and lock.request_id
    assert effects == [Publish(lock)]


def test_the_start_is_recorded_before_the_contactor_closes():
    core = Core()
    core.meter(1234)
    core.plug()
    effects = core.lock(core.answer(core.card("TAG1")))
    assert effects == [RecordStart(1, 1, "TAG1", 1234, START), Publish(TransactionMessagesQueued()),
                       Publish(SetContactor(1, True)), Publish(TransactionBegan(1, 1, 1234)),
                       status_changed(1, "SuspendedEV"), Publish(ShowStatus(1, "SuspendedEV", None))]


def test_a_fixed_cable_starts_without_locking():
    core = Core(fixed_cable=True)
    core.plug()
    effects = core.answer(core.card())
    assert kinds(effects) == ["RecordStart", "TransactionMessagesQueued", "SetContactor", "TransactionBegan",
                              "ConnectorStatusChanged", "ShowStatus"]
    assert sent(effects, SetConnectorLock) == []


def test_an_ev_drawing_energy_makes_the_connector_charging():
    core = Core()
    core.start()
    assert statuses(core(EvDrawChanged(1, True))) == [(1, "Charging")]
    assert statuses(core(EvDrawChanged(1, False))) == [(1, "SuspendedEV")]


def test_a_lock_failure_faults_the_connector_and_starts_no_transaction():
    core = Core()
    core.plug()
    effects = core.lock(core.answer(core.card()), ok=False)
    assert effects == [status_changed(1, "Faulted", "ConnectorLockFailure", "connector lock failed"),
                       Publish(ShowStatus(1, "Faulted", None))]
    assert core.connector().session is None


def test_a_lock_result_for_an_unknown_request_is_ignored():
    core = Core()
    core.plug()
    core.answer(core.card())
    assert core(ConnectorLockResult(1, True, True, "not-the-request")) == []
    assert core.connector().starting


def test_a_rejected_card_leaves_the_connector_without_a_session():
    core = Core()
    effects = core.card("BAD")
    assert statuses(effects) == [(1, "Preparing")]  # while it is being authorized
    assert statuses(core.answer(effects, status="Blocked")) == [(1, "Available")]
    assert core.connector().session is None


@pytest.mark.parametrize("status, source, starts", [
    ("Invalid", "offline", False), ("Accepted", "offline-unknown", True), ("Accepted", "cache", True)])
def test_the_verdict_decides_whatever_its_source(status, source, starts):
    # The offline rules themselves are the Authorization actor's (test_actor_authorization.py).
    core = Core()
    core.plug()
    effects = core.answer(core.card(), status=status, source=source)
    assert bool(sent(effects, SetConnectorLock)) == starts


def test_a_verdict_for_a_tag_nobody_waits_for_is_ignored():
    core = Core()
    core.plug()
    waiting = core.card("TAG1")
    assert core(TagAuthorized("OTHER", freeze({"status": "Accepted"}), "csms", ("card", "OTHER", None))) == []
    assert sent(core.answer(waiting), SetConnectorLock)


def test_a_card_with_no_free_connector_and_no_group_asks_nothing():
    core = Core()
    core.start("TAG1")
    assert core.card("TAG2") == []


def test_a_card_prefers_the_connector_with_a_cable_in():
    core = Core(connectors=2)
    core.plug(2)
    assert one(sent(core.card(), AuthorizeTag)).tag == ("card", "TAG1", 2)


def test_a_cable_pulled_while_the_lock_runs_starts_no_transaction():
    core = Core()
    core.plug()
    locking = core.answer(core.card())
    core.unplug()
    effects = core.lock(locking)
    assert effects == [Publish(SetConnectorLock(1, False)), status_changed(1, "Available"),
                       Publish(ShowStatus(1, "Available", None))]


def test_a_connector_made_inoperative_while_the_lock_runs_starts_no_transaction():
    core = Core()
    core.plug()
    locking = core.answer(core.card())
    core(ChangeAvailability(unique_id="c1", reply_to=None, connector_id=1, operative=False))
    effects = core.lock(locking)
    assert kinds(effects) == ["SetConnectorLock"] and core.connector().session is None


# --- the connection timeout -----------------------------------------------------------------------


def test_identification_before_the_cable_arms_connection_timeout():
    core = Core()
    effects = core.answer(core.card())
    assert effects[0] == StartTimer(ConnectionTimeoutDue(1), 60)
    assert core.connector().status() == "Preparing"


def test_no_cable_within_connection_timeout_makes_the_connector_available_again():
    core = Core()
    core.answer(core.card())
    assert statuses(core.timeout()) == [(1, "Available")]
    assert sent(core.plug(), SetConnectorLock) == []  # the authorization is gone


def test_the_cable_in_time_cancels_the_timeout_and_starts():
    core = Core()
    core.answer(core.card())
    effects = core.plug()
    assert effects[0] == CancelTimer(ConnectionTimeoutDue(1))
    assert sent(effects, SetConnectorLock)
    assert core.timeout() == []  # a tick already on its way changes nothing


def test_connection_timeout_follows_configuration_changes():
    core = Core()
    core(ConfigurationChanged("ConnectionTimeOut", 15))
    assert core.answer(core.card())[0] == StartTimer(ConnectionTimeoutDue(1), 15)


def test_a_cable_without_identification_within_connection_timeout_is_finishing_and_gets_no_card():
    """Errata 3.20 (B6): the abandoned cable stays in but takes no session, so a card presented next goes
    to another connector, not to it; errata 3.21: the interval runs from the start of Preparing."""
    core = Core(connectors=2)
    core.plug(1)
    assert statuses(core.timeout(1)) == [(1, "Finishing")]
    assert one(sent(core.card(), AuthorizeTag)).tag == ("card", "TAG1", 2)
    request = RemoteStartTransaction(unique_id="r", reply_to=None, id_tag="R", connector_id=1)
    assert replies(core(request)) == ["Rejected"]
    core.unplug(1)
    assert statuses(core(CableDetached(1))) == [(1, "Available")]  # F1: the cable removed
    assert statuses(core.plug(1)) == [(1, "Preparing")]  # and a new session may begin


def test_connection_timeout_runs_from_the_start_of_preparing_not_from_the_card():
    core = Core()
    asked = core.card()  # Preparing from here (an Authorize under way: no timer yet)
    core.now += timedelta(seconds=20)
    effects = core.answer(asked)  # accepted 20 s later: 40 s are left for the cable
    assert effects[0] == StartTimer(ConnectionTimeoutDue(1), 40)


def test_connection_timeout_during_an_authorize_waits_for_its_answer():
    core = Core()
    core.plug()
    asked = core.card()
    core.now += timedelta(seconds=60)
    assert core(ConnectionTimeoutDue(1)) == []  # the user is being served
    effects = core.answer(asked, status="Invalid")  # refused: the interval is over, so at once
    assert effects[0] == StartTimer(ConnectionTimeoutDue(1), 0)
    assert statuses(core.timeout()) == [(1, "Finishing")]


def test_a_tick_of_an_earlier_preparing_does_not_end_the_next_one():
    """The first Preparing's tick was already on its way when the cable left (its cancel came too late):
    at its time the new Preparing has 55 s left, so it is armed for those, and nothing ends early."""
    core = Core()
    core.plug()
    core.now += timedelta(seconds=50)
    core.unplug()
    core.now += timedelta(seconds=5)
    core.plug()
    core.now += timedelta(seconds=5)  # 60 s after the first plug
    assert core(ConnectionTimeoutDue(1)) == [StartTimer(ConnectionTimeoutDue(1), 55)]
    assert core.connector().status() == "Preparing"
    assert statuses(core.timeout()) == [(1, "Finishing")]


def test_a_plug_after_an_earlier_preparing_gets_a_whole_new_interval():
    core = Core()
    core.plug()
    core.now += timedelta(seconds=50)
    core.unplug()
    core.now += timedelta(seconds=5)
    assert core.plug()[0] == StartTimer(ConnectionTimeoutDue(1), 60)


def test_a_fixed_cable_abandoned_is_finishing_until_it_is_unplugged():
    core = Core(fixed_cable=True)
    core.plug()
    assert statuses(core.timeout()) == [(1, "Finishing")]
    assert statuses(core.unplug()) == [(1, "Available")]


# --- stopping ----------------------------------------------------------------------------------------


def test_the_same_card_stops_the_transaction_contactor_first_then_the_record():
    core = Core()
    local_id = core.start("TAG1")
    core.meter(2500)
    effects = core.card("tag1")  # idTags compare case-insensitively
    assert effects == [Publish(SetContactor(1, False)), RecordStop(local_id, "tag1", 2500, START, "Local", ()),
                       Publish(TransactionMessagesQueued()), Publish(SetConnectorLock(1, False)),
                       Publish(TransactionEnded(1, local_id)),
                       status_changed(1, "Finishing"), Publish(ShowStatus(1, "Finishing", None))]
    assert sent(effects, AuthorizeTag) == []


def test_meter_readings_of_a_transaction_are_recorded():
    core = Core()
    assert core.meter(100) == []  # no transaction: only kept as the next meterStart
    local_id = core.start()
    later = START + timedelta(seconds=30)
    assert core(MeterSampled(MeterReading(1, 400, (), later))) == [RecordMeter(local_id, 400, later)]
    assert core.meter(500) == [RecordMeter(local_id, 500, START)]  # unstamped: now


def test_stop_txn_sampled_data_adds_transaction_data():
    core = Core(StopTxnSampledData="Energy.Active.Import.Register")
    core.meter(100)
    core.start()
    core.meter(400)
    stop = one([e for e in core.card("TAG1") if isinstance(e, RecordStop)])
    assert [(d["sampledValue"][0]["context"], d["sampledValue"][0]["value"]) for d in stop.transaction_data] == \
        [("Transaction.Begin", "100"), ("Transaction.End", "400")]


def test_transaction_data_keeps_its_span_and_halves_its_resolution_when_full():
    core = Core(StopTxnSampledData="Energy.Active.Import.Register")
    local_id = core.start()
    for i in range(MAX_TRANSACTION_DATA + 1):
        core(TransactionDataSampled(1, local_id, freeze({"timestamp": str(i), "sampledValue": []})))
    core(TransactionDataSampled(1, local_id + 1, freeze({"timestamp": "other", "sampledValue": []})))
    kept = [d["timestamp"] for d in core.connector().session.transaction_data]
    assert kept[0] == "0" and kept[-1] == str(MAX_TRANSACTION_DATA) and len(kept) == MAX_TRANSACTION_DATA // 2 + 1


def test_unplugging_stops_the_transaction_with_reason_ev_disconnected():
    core = Core()
    core.start()
    effects = core.unplug()
    assert one([e for e in effects if isinstance(e, RecordStop)]).reason == "EVDisconnected"
    assert sent(effects, SetConnectorLock) == []  # UnlockConnectorOnEVSideDisconnect=false: the cable stays locked
    assert statuses(effects) == [(1, "Finishing")]  # a socket: the cable is still in it
    assert statuses(core(CableDetached(1))) == [(1, "Available")]


def test_unplugging_unlocks_the_socket_when_unlock_connector_on_ev_side_disconnect():
    core = Core(UnlockConnectorOnEVSideDisconnect=True)
    core.start()
    assert Publish(SetConnectorLock(1, False)) in core.unplug()


def test_unplugging_a_fixed_cable_ends_at_available():
    core = Core(fixed_cable=True)
    core.start()
    assert statuses(core.unplug()) == [(1, "Available")]


def test_unplugging_without_stop_transaction_on_ev_side_disconnect_suspends_the_session():
    core = Core(StopTransactionOnEVSideDisconnect=False)
    core.start()
    core(EvDrawChanged(1, True))
    effects = core.unplug()
    assert effects == [status_changed(1, "SuspendedEV", info="EV side disconnected"),
                       Publish(ShowStatus(1, "SuspendedEV", None))]
    assert core.connector().session is not None


def test_a_member_of_the_same_group_stops_the_transaction():
    core = Core()
    core.start("TAG1", parent="GROUP")
    request = one(sent(core.card("TAG2"), AuthorizeTag))
    assert request.tag == ("card", "TAG2", None)  # no free connector: only a group stop is possible
    effects = core(TagAuthorized("TAG2", freeze({"status": "Accepted", "parentIdTag": "group"}), "csms", request.tag))
    stop = one([e for e in effects if isinstance(e, RecordStop)])
    assert (stop.reason, stop.id_tag) == ("Local", "TAG2")
    assert kinds(effects)[0] == "SetContactor"


def test_a_group_stop_frees_the_connector_the_card_was_being_authorized_for():
    core = Core(connectors=2)
    core.start("TAG1", parent="GROUP")
    asked = core.card("TAG2")
    assert statuses(asked) == [(2, "Preparing")]
    effects = core.answer(asked, parent="GROUP")
    assert statuses(effects) == [(1, "Finishing"), (2, "Available")]


def test_a_fault_during_a_transaction_opens_the_contactor_until_it_clears():
    core = Core()
    core.start()
    effects = core(ConnectorFaultChanged(1, "GroundFailure", "leak"))
    assert effects[:2] == [Publish(SetContactor(1, False)), status_changed(1, "Faulted", "GroundFailure", "leak")]
    effects = core(ConnectorFaultChanged(1, "NoError"))
    assert effects[:2] == [Publish(SetContactor(1, True)), status_changed(1, "SuspendedEV")]
    assert core.connector().session is not None


def test_a_second_fault_code_does_not_move_the_contactor_again():
    core = Core()
    core.start()
    core(ConnectorFaultChanged(1, "GroundFailure"))
    assert kinds(core(ConnectorFaultChanged(1, "HighTemperature"))) == ["ConnectorStatusChanged", "ShowStatus"]


def test_a_station_fault_is_connector_zeros_and_holds_every_connector():
    core = Core(connectors=2)
    assert statuses(core(ConnectorFaultChanged(0, "InternalError", source="evse"))) == \
        [(1, "Unavailable"), (2, "Unavailable"), (0, "Faulted")]
    assert statuses(core(ConnectorFaultChanged(0, "NoError", source="evse"))) == \
        [(1, "Available"), (2, "Available"), (0, "Available")]


# --- faults: one per source (actors/sessions/connector.py) -------------------------------------------


def fault(connector, code, source="evse", info="", vendor=""):
    return ConnectorFaultChanged(connector, code, info, vendor, source)


def test_another_sources_no_error_does_not_clear_a_fault_nor_close_the_contactor():
    core = Core()
    core.start()
    core(EvDrawChanged(1, True))
    assert sent(core(fault(1, "GroundFailure")), SetContactor) == [SetContactor(1, False)]
    effects = core(fault(1, "NoError", source="meter"))
    assert effects == [] and core.connector().status() == "Faulted"
    effects = core(fault(1, "NoError"))
    assert sent(effects, SetContactor) == [SetContactor(1, True)] and statuses(effects) == [(1, "Charging")]


def test_each_source_clears_its_own_fault_and_the_oldest_still_active_is_shown():
    core = Core()
    assert core(fault(1, "PowerMeterFailure", "meter", "no reply"))[0] == \
        status_changed(1, "Faulted", "PowerMeterFailure", "no reply")
    assert statuses(core(fault(1, "GroundFailure", "evse", "leak", "06"))) == []  # still Faulted, still the meter
    effects = core(fault(1, "NoError", "meter"))
    assert effects[0] == Publish(ConnectorStatusChanged(1, "Faulted", "GroundFailure", "leak", "06", START))
    assert statuses(core(fault(1, "NoError", "evse"))) == [(1, "Available")]


def test_a_failed_lock_clears_when_the_cable_is_out_and_the_connector_takes_a_new_session():
    core = Core()
    core.plug()
    core.lock(core.answer(core.card()), ok=False)
    assert core(fault(1, "NoError")) == []  # the EVSE's all-clear is not the lock's
    core.unplug()
    assert core.connector().status() == "Faulted"  # the cable is still in the socket
    assert statuses(core(CableDetached(1))) == [(1, "Available")]
    assert core.start() == 1  # plug, card, lock: no restart needed


def test_a_lock_that_succeeds_clears_an_earlier_lock_failure():
    core = Core(connectors=2)
    core.plug(1)
    core.lock(core.answer(core.card()), ok=False)
    core.connector(1).starting = True  # a start the failure did not stop (e.g. asked before it)
    core.state.pending_starts["again"] = PendingStart(1, "TAG1", None)
    assert statuses(core(ConnectorLockResult(1, True, True, "again"))) == [(1, "SuspendedEV")]


def test_a_station_fault_opens_every_contactor_suspends_sessions_and_rejects_remote_starts():
    core = Core(connectors=2)
    core.start()
    core(EvDrawChanged(1, True))
    effects = core(fault(0, "InternalError", info="EVSE controller missing"))
    assert sent(effects, SetContactor) == [SetContactor(1, False), SetContactor(2, False)]
    assert statuses(effects) == [(1, "SuspendedEVSE"), (2, "Unavailable"), (0, "Faulted")]
    assert effects[-2] == Publish(ConnectorStatusChanged(0, "Faulted", "InternalError", "EVSE controller missing",
                                                         "", START))
    for connector_id in (2, None):
        assert replies(core(RemoteStartTransaction(unique_id="r", reply_to=None, id_tag="R",
                                                   connector_id=connector_id))) == ["Rejected"]
    core.plug(2)
    assert core.card("TAG2") == []  # no connector to give it to
    effects = core(fault(0, "NoError"))
    assert sent(effects, SetContactor) == [SetContactor(1, True)]
    assert statuses(effects) == [(1, "Charging"), (2, "Preparing"), (0, "Available")]


def test_a_station_fault_drops_an_identification_waiting_for_the_cable():
    core = Core()
    core.answer(core.card())
    assert CancelTimer(ConnectionTimeoutDue(1)) in core(fault(0, "OtherError", source="station"))
    core(fault(0, "NoError", source="station"))
    assert sent(core.plug(), SetConnectorLock) == []


def test_a_reader_failure_is_a_warning_that_stops_no_remote_start():
    core = Core()
    effects = core(fault(0, "ReaderFailure", "rfid", "no reader"))
    assert effects == [Publish(ConnectorStatusChanged(0, "Available", "ReaderFailure", "no reader", "", START)),
                       Publish(ShowStatus(0, "Available", None))]
    request = RemoteStartTransaction(unique_id="r", reply_to=None, id_tag="R", connector_id=1)
    assert replies(core(request)) == ["Accepted"]


def test_a_lost_link_to_the_ev_suspends_the_session_until_it_is_back():
    core = Core()
    core.start()
    core(EvDrawChanged(1, True))
    effects = core(fault(1, "EVCommunicationError", info="diode check failed"))
    assert effects[:2] == [Publish(SetContactor(1, False)),
                           status_changed(1, "SuspendedEVSE", "EVCommunicationError", "diode check failed")]
    effects = core(fault(1, "NoError"))
    assert sent(effects, SetContactor) == [SetContactor(1, True)] and statuses(effects) == [(1, "Charging")]


def test_ev_communication_error_without_an_ev_is_not_reported():
    core = Core()
    assert core(fault(1, "EVCommunicationError")) == []  # §4.9: never with Available
    assert status_changed(1, "Preparing", "EVCommunicationError") in core.plug()


# --- StartTransaction answered ------------------------------------------------------------------------


def test_an_accepted_id_keeps_the_transaction_going_and_shows_its_id():
    core = Core()
    local_id = core.start()
    assert core.assign(local_id, 42) == [status_changed(1, "SuspendedEV"), Publish(ShowStatus(1, "SuspendedEV", 42))]


def test_an_invalid_id_stops_the_transaction_when_stop_transaction_on_invalid_id():
    core = Core()
    local_id = core.start()
    effects = core.assign(local_id, 42, status="Invalid")
    stop = one([e for e in effects if isinstance(e, RecordStop)])
    assert (stop.local_id, stop.reason, stop.id_tag) == (local_id, "DeAuthorized", None)
    assert Publish(TransactionEnded(1, local_id)) in effects


def test_a_deauthorized_stop_keeps_the_cable_locked_until_the_same_id_tag_is_presented():
    """OCPP 1.6 §4.8, errata 3.5/3.17: the owner's cable stays locked until the same identifier is presented."""
    core = Core(connectors=2)
    local_id = core.start("TAG1")
    effects = core.assign(local_id, 42, status="Invalid")
    assert one([e for e in effects if isinstance(e, RecordStop)]).reason == "DeAuthorized"
    assert sent(effects, SetConnectorLock) == [] and statuses(effects) == [(1, "Finishing")]
    assert sent(core.card("OTHER"), SetConnectorLock) == []  # someone else's card: for connector 2
    effects = core.card("tag1")  # the same identifier, no Authorize
    assert sent(effects) == [SetConnectorLock(1, False)]
    assert sent(core.card("TAG1"), SetConnectorLock) == []  # released once


def test_a_deauthorized_stop_keeps_the_cable_for_an_id_tag_with_the_same_parent():
    core = Core()
    local_id = core.start("TAG1")
    core.assign(local_id, 42, status="Blocked", parentIdTag="GROUP")
    asked = core.card("TAG2")
    assert one(sent(asked, AuthorizeTag)).tag == ("card", "TAG2", None)  # no free connector: for the group
    assert sent(core.answer(asked, status="Invalid", parent="OTHER"), SetConnectorLock) == []
    assert sent(core.answer(core.card("TAG3"), parent="group"), SetConnectorLock) == [SetConnectorLock(1, False)]


def test_unlock_connector_releases_a_cable_a_deauthorized_stop_kept():
    core = Core()
    core.assign(core.start("TAG1"), 42, status="Invalid")
    core(UnlockConnector(unique_id="u1", reply_to=None, connector_id=1))
    assert sent(core.card("TAG1"), SetConnectorLock) == []  # nothing kept any more


def test_an_invalid_id_suspends_the_transaction_otherwise():
    core = Core(StopTransactionOnInvalidId=False)
    local_id = core.start()
    effects = core.assign(local_id, 42, status="Invalid")
    assert effects == [Publish(SetContactor(1, False)), status_changed(1, "SuspendedEVSE"),
                       Publish(ShowStatus(1, "SuspendedEVSE", 42))]


def test_concurrent_tx_to_a_start_transaction_that_may_have_been_seen_before_does_not_stop_the_session():
    # `resent`: an earlier send of it may have reached the CSMS, which may be seeing this session twice.
    core = Core(StopTransactionOnInvalidId=False)
    local_id = core.start()
    core(EvDrawChanged(1, True))
    assert core(TransactionIdAssigned(local_id, 42, freeze({"status": "ConcurrentTx"}), resent=True)) == \
        [status_changed(1, "Charging"), Publish(ShowStatus(1, "Charging", 42))]
    core.meter(10_000)  # and no energy limit applies to it
    assert core.connector().status() == "Charging"


@pytest.mark.parametrize("stop_on_invalid", [True, False])
def test_concurrent_tx_to_a_first_send_is_handled_like_any_id_tag_not_accepted(stop_on_invalid):
    """OCPP 1.6 §4.8, errata 3.17: a status other than Accepted, ConcurrentTx included (the tag is in
    another transaction), follows StopTransactionOnInvalidId."""
    core = Core(StopTransactionOnInvalidId=stop_on_invalid)
    local_id = core.start()
    effects = core.assign(local_id, 42, status="ConcurrentTx")
    if stop_on_invalid:
        assert one([e for e in effects if isinstance(e, RecordStop)]).reason == "DeAuthorized"
    else:
        assert sent(effects, SetContactor) == [SetContactor(1, False)] and statuses(effects) == [(1, "SuspendedEVSE")]


@pytest.mark.parametrize("status", ["Invalid", "Blocked", "Expired"])
def test_a_re_sent_start_transaction_answered_with_any_other_status_is_handled_as_not_accepted(status):
    core = Core()
    local_id = core.start()
    effects = core(TransactionIdAssigned(local_id, 42, freeze({"status": status}), resent=True))
    assert one([e for e in effects if isinstance(e, RecordStop)]).reason == "DeAuthorized"


def test_max_energy_on_invalid_id_lets_energy_flow_up_to_the_limit_then_suspends_once():
    core = Core(StopTransactionOnInvalidId=False, MaxEnergyOnInvalidId=500)
    core.meter(1000)
    local_id = core.start()
    core(EvDrawChanged(1, True))
    assert sent(core.assign(local_id, 42, status="Invalid"), SetContactor) == []
    assert sent(core.meter(1499), SetContactor) == []  # 499 Wh since the start: still under the limit
    effects = core.meter(1500)  # 500 Wh: the limit
    assert effects == [RecordMeter(local_id, 1500, START), Publish(SetContactor(1, False)),
                       status_changed(1, "SuspendedEVSE"), Publish(ShowStatus(1, "SuspendedEVSE", 42))]
    assert core.meter(1600) == [RecordMeter(local_id, 1600, START)]  # suspended once, not again and again
    assert core.connector().session is not None


def test_max_energy_on_invalid_id_already_used_up_suspends_at_once():
    core = Core(StopTransactionOnInvalidId=False, MaxEnergyOnInvalidId=500)
    core.meter(1000)
    local_id = core.start()
    core.meter(1700)
    assert sent(core.assign(local_id, 42, status="Blocked"), SetContactor) == [SetContactor(1, False)]


def test_a_suspended_invalid_session_stays_suspended_when_a_fault_clears():
    core = Core(StopTransactionOnInvalidId=False)
    local_id = core.start()
    core.assign(local_id, 42, status="Invalid")  # the contactor opens
    assert sent(core(ConnectorFaultChanged(1, "GroundFailure")), SetContactor) == []  # it is open already
    effects = core(ConnectorFaultChanged(1, "NoError"))
    assert sent(effects, SetContactor) == [] and statuses(effects) == [(1, "SuspendedEVSE")]  # and stays open


def test_the_parent_id_tag_of_start_transaction_conf_lets_the_group_stop_the_session():
    core = Core()
    local_id = core.start("TAG1")  # authorized without a parentIdTag
    core.assign(local_id, 42, parentIdTag="GROUP")
    effects = core.answer(core.card("TAG2"), parent="GROUP")
    stop = one([e for e in effects if isinstance(e, RecordStop)])
    assert (stop.reason, stop.id_tag) == ("Local", "TAG2")


def test_another_group_does_not_stop_the_session():
    core = Core()
    local_id = core.start("TAG1")
    core.assign(local_id, 42, parentIdTag="GROUP")
    assert core.answer(core.card("TAG2"), parent="OTHER") == []
    assert core.connector().session is not None


def test_an_id_for_a_transaction_no_longer_running_changes_nothing():
    core = Core()
    local_id = core.start()
    core.card("TAG1")
    assert core.assign(local_id, 42, status="Invalid") == []


# --- what is not for the sessions ---------------------------------------------------------------------


def test_events_for_a_connector_the_station_does_not_have_are_not_taken():
    core = Core()
    for event in (PlugConnected(2), PlugDisconnected(2), CableDetached(2), EvDrawChanged(2, True),
                  ConnectorFaultChanged(2, "OtherError"), ConnectorLockResult(2, True, True, "x"),
                  ConnectionTimeoutDue(2)):
        assert core.core.handle(event) is None, event


def test_messages_the_sessions_do_not_take_are_not_taken():
    assert Core().core.handle(TransactionMessagesQueued()) is None


def test_every_message_the_actor_is_wired_for_has_a_handler():
    for message_type in (*TransactionManager.handles, *TransactionManager.subscribes):
        assert message_type in HANDLERS, message_type.__name__


def test_tells_and_replies_come_after_the_statuses_they_leave():
    core = Core()
    core.start()
    effects = core(StopAllTransactions("SoftReset", "asker"))
    assert isinstance(effects[-1], Tell) and kinds(effects)[-3:-1] == ["ConnectorStatusChanged", "ShowStatus"]
