"""Reservations in the session core, without threads (actors/sessions/reservations.py; OCPP 1.6 §5.1, §5.13).

Each test drives the core with events and reads the effects: the answer, what is persisted
(RecordReservation / DropReservation, the reservationId in RecordStart), the statuses published
(checked against the §4.9 table by the `Core` harness) and the expiry timer.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from actors.infra.clock import format_time
from actors.sessions.connector import Reservation
from actors.sessions.effects import CancelTimer, DropReservation, RecordReservation, RecordStart, StartTimer
from messages.events import AuthorizeTag, ConnectorFaultChanged
from messages.requests import CancelReservation, ChangeAvailability, RemoteStartTransaction, ReserveNow
from messages.ticks import ReservationExpiryDue
from tests.unit.test_session_core import START, Core, one, replies, sent, statuses

pytestmark = pytest.mark.timeout(10)


def reserve(core: Core, connector=1, id_tag="TAG1", reservation_id=1, seconds=3600, parent=None) -> list:
    return core(ReserveNow(unique_id=f"rn{reservation_id}", reply_to=None, connector_id=connector, id_tag=id_tag,
                           expiry_date=format_time(core.now + timedelta(seconds=seconds)),
                           reservation_id=reservation_id, parent_id_tag=parent))


def cancel(core: Core, reservation_id=1) -> list:
    return core(CancelReservation(unique_id="cr", reply_to=None, reservation_id=reservation_id))


def of(effects, kind) -> list:
    return [e for e in effects if isinstance(e, kind)]


# --- ReserveNow ----------------------------------------------------------------------------------


def test_an_accepted_reservation_is_persisted_before_the_answer_then_reserved_and_timed():
    core = Core()
    effects = reserve(core, seconds=60)
    assert replies(effects) == ["Accepted"]
    record = one(of(effects, RecordReservation)).reservation
    assert (record.reservation_id, record.connector, record.id_tag) == (1, 1, "TAG1")
    names = [type(e).__name__ for e in effects]
    assert names.index("RecordReservation") < names.index("Reply")  # durable first (one commit)
    assert statuses(effects) == [(1, "Reserved")]
    timer = one(of(effects, StartTimer))
    assert timer.tick == ReservationExpiryDue(1) and timer.seconds == pytest.approx(60)


@pytest.mark.parametrize("connector, seconds, kwargs, why", [
    (2, 60, {}, "a connector the station does not have"),
    (1, -1, {}, "an expiryDate already past"),
    (1, 0, {}, "an expiryDate that is now"),
    (0, 60, {"ReserveConnectorZeroSupported": False}, "connector 0 without ReserveConnectorZeroSupported"),
    (1, 60, {"accept_reservations": False}, "a station configured not to take reservations"),
])
def test_rejected_and_nothing_stored(connector, seconds, kwargs, why):
    core = Core(**kwargs)
    effects = reserve(core, connector=connector, seconds=seconds)
    assert replies(effects) == ["Rejected"], why
    assert not of(effects, RecordReservation) and not statuses(effects)
    assert core.state.reservations == {}


def test_faulted_unavailable_and_occupied_connectors_refuse():
    core = Core(connectors=3)
    core(ConnectorFaultChanged(1, "GroundFailure"))
    core(ChangeAvailability(unique_id="ca", reply_to=None, connector_id=2, operative=False))
    core.plug(3)
    assert [replies(reserve(core, connector=c, reservation_id=c))[0] for c in (1, 2, 3)] == \
        ["Faulted", "Unavailable", "Occupied"]
    assert core.state.reservations == {}


def test_a_connector_reserved_under_another_id_is_occupied_and_the_same_id_replaces():
    core = Core(connectors=2)
    reserve(core, 1, "TAG1", reservation_id=1)
    assert replies(reserve(core, 1, "TAG2", reservation_id=2)) == ["Occupied"]
    effects = reserve(core, 2, "TAG2", reservation_id=1)  # reservation 1 moves to connector 2
    assert replies(effects) == ["Accepted"]
    assert sorted(statuses(effects)) == [(1, "Available"), (2, "Reserved")]
    assert core.state.reservations[1].connector == 2 and core.state.reservations[1].id_tag == "TAG2"


def test_a_replacement_that_cannot_be_made_leaves_the_old_reservation():
    core = Core(connectors=2)
    reserve(core, 1, reservation_id=1)
    core.plug(2)
    effects = reserve(core, 2, reservation_id=1)
    assert replies(effects) == ["Occupied"] and not of(effects, RecordReservation)
    assert core.state.reservations[1].connector == 1 and core.connector(1).reservation is not None


# --- who may start -------------------------------------------------------------------------------


def test_only_the_reserved_id_tag_starts_and_its_start_carries_and_ends_the_reservation():
    core = Core()
    reserve(core, reservation_id=7)
    core.plug()
    assert statuses(core.card("STRANGER")) == []  # not even authorized: nowhere to charge
    assert core.shown[1] == "Reserved"
    effects = core.lock(core.answer(core.card("TAG1")))
    start = one(of(effects, RecordStart))
    assert start.reservation_id == 7
    assert CancelTimer(ReservationExpiryDue(7)) in effects
    assert not of(effects, DropReservation)  # deleted in the StartTransaction's own commit (RecordStart)
    assert core.state.reservations == {} and core.connector().reservation is None


def test_an_id_tag_of_the_reservations_group_starts_once_its_parent_is_known():
    core = Core()
    reserve(core, reservation_id=8, parent="GROUP")
    effects = core.card("OTHER")
    assert one(sent(effects, AuthorizeTag)).id_tag == "OTHER"  # maybe of the group: ask
    refused = core.answer(effects, parent="ELSE")
    assert not of(refused, RecordStart) and core.state.reservations  # not of the group
    core.plug()
    effects = core.lock(core.answer(core.card("OTHER"), parent="group"))  # CiString: case-insensitive
    assert one(of(effects, RecordStart)).reservation_id == 8


def test_remote_start_for_another_id_tag_is_rejected_and_for_the_reserved_one_accepted():
    core = Core(AuthorizeRemoteTxRequests=False)
    reserve(core)
    assert replies(core(RemoteStartTransaction(unique_id="a", reply_to=None, id_tag="STRANGER",
                                               connector_id=1))) == ["Rejected"]
    assert replies(core(RemoteStartTransaction(unique_id="b", reply_to=None, id_tag="STRANGER"))) == ["Rejected"]
    assert replies(core(RemoteStartTransaction(unique_id="c", reply_to=None, id_tag="tag1",
                                               connector_id=1))) == ["Accepted"]


def test_a_group_reservation_authorizes_a_remote_start_first_even_without_authorize_remote_tx_requests():
    core = Core(AuthorizeRemoteTxRequests=False)
    reserve(core, parent="GROUP")
    effects = core(RemoteStartTransaction(unique_id="a", reply_to=None, id_tag="OTHER", connector_id=1))
    assert replies(effects) == ["Accepted"]
    assert one(sent(effects, AuthorizeTag)).id_tag == "OTHER"


# --- how a reservation ends ----------------------------------------------------------------------


def test_cancel_ends_it_and_an_unknown_id_is_rejected():
    core = Core()
    reserve(core, reservation_id=3)
    assert replies(cancel(core, 4)) == ["Rejected"]
    effects = cancel(core, 3)
    assert replies(effects) == ["Accepted"]
    assert DropReservation(3) in effects and CancelTimer(ReservationExpiryDue(3)) in effects
    names = [type(e).__name__ for e in effects]
    assert names.index("DropReservation") < names.index("Reply")
    assert statuses(effects) == [(1, "Available")]


def test_expiry_ends_it_and_an_early_tick_arms_the_timer_again():
    core = Core()
    reserve(core, seconds=60)
    core.now = START + timedelta(seconds=30)  # the station clock was set back meanwhile: early
    effects = core(ReservationExpiryDue(1))
    assert of(effects, StartTimer)[0].seconds == pytest.approx(30) and core.state.reservations
    core.now = START + timedelta(seconds=60)
    effects = core(ReservationExpiryDue(1))
    assert DropReservation(1) in effects and statuses(effects) == [(1, "Available")]


def test_a_fault_or_unavailability_of_its_connector_ends_it():
    core = Core(connectors=2)
    reserve(core, 1, reservation_id=1)
    reserve(core, 2, reservation_id=2)
    assert DropReservation(1) in core(ConnectorFaultChanged(1, "GroundFailure"))
    assert DropReservation(2) in core(ChangeAvailability(unique_id="x", reply_to=None, connector_id=2,
                                                         operative=False))
    assert core.state.reservations == {}


# --- a restart -----------------------------------------------------------------------------------


def test_restored_reservations_are_reserved_from_the_first_status_and_expired_ones_end():
    alive = Reservation(1, 1, "TAG1", None, START + timedelta(minutes=5))
    gone = Reservation(2, 2, "TAG2", None, START - timedelta(seconds=1))
    core = Core(connectors=2, reserved=[alive, gone])
    assert (1, "Reserved") in statuses(core.started) and (2, "Available") in statuses(core.started)
    assert DropReservation(2) in core.started
    assert one(of(core.started, StartTimer)).tick == ReservationExpiryDue(1)


# --- connector 0 ---------------------------------------------------------------------------------


def test_connector_zero_holds_a_connector_only_once_no_other_is_free():
    core = Core(connectors=2)
    effects = reserve(core, 0, "TAG1", reservation_id=9)
    assert replies(effects) == ["Accepted"] and statuses(effects) == []  # two free, one needed: none held
    core.plug(1)
    core.answer(core.card("STRANGER"))
    assert core.shown[2] == "Reserved"  # the last free connector is kept for the reservation
    assert replies(reserve(core, 2, "OTHER", reservation_id=10)) == ["Occupied"]
    assert statuses(core.card("OTHER2")) == []  # nowhere for a stranger now
    core.plug(2)
    effects = core.lock(core.answer(core.card("TAG1")))
    assert one(of(effects, RecordStart)).reservation_id == 9


def test_connector_zero_with_no_usable_connector_answers_why():
    core = Core(connectors=2)
    core(ConnectorFaultChanged(1, "GroundFailure"))
    core(ConnectorFaultChanged(2, "GroundFailure"))
    assert replies(reserve(core, 0)) == ["Faulted"]
    core = Core(connectors=2)
    core(ChangeAvailability(unique_id="x", reply_to=None, connector_id=0, operative=False))
    assert replies(reserve(core, 0)) == ["Unavailable"]
    core = Core(connectors=2)
    core.plug(1)
    core.plug(2)
    assert replies(reserve(core, 0)) == ["Occupied"]
