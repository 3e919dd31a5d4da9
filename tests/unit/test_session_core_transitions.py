"""The OCPP 1.6 §4.9 status transitions, one test each for every transition the station makes.

`connector.TRANSITIONS` is the §4.9 table (row = from, column = to; "B6" = Preparing -> Finishing);
`connector.BEYOND_THE_TABLE` the few transitions this station makes that the table lacks, each with
its reason. Each scenario below drives a SessionCore to the transition and checks it was published
(the `Core` harness also checks every other transition it meets on the way).
"""

from __future__ import annotations

from typing import Callable

import pytest

from actors.sessions.connector import (ALLOWED, BEYOND_THE_TABLE, STATUS_RULES, TRANSITIONS, Connector, Session,
                                      transition_name)
from messages.events import CableDetached, ConnectorFaultChanged, EvDrawChanged, PlugDisconnected
from datetime import timedelta

from actors.infra.clock import format_time
from messages.requests import CancelReservation, ChangeAvailability, ReserveNow
from messages.ticks import ConnectionTimeoutDue
from tests.unit.test_session_core import START, Core, statuses

pytestmark = pytest.mark.timeout(10)


def inoperative(core: Core, connector=1) -> None:
    core(ChangeAvailability(unique_id="c1", reply_to=None, connector_id=connector, operative=False))


def operative(core: Core, connector=1) -> None:
    core(ChangeAvailability(unique_id="c2", reply_to=None, connector_id=connector, operative=True))


def fault(core: Core, connector=1, code="GroundFailure", source="evse") -> None:
    core(ConnectorFaultChanged(connector, code, source=source))


def station_fault(core: Core, code="InternalError") -> None:
    fault(core, 0, code)


def ev_link(core: Core, code="EVCommunicationError") -> None:
    fault(core, 1, code)


def lock_failed(core: Core) -> None:
    core.plug()
    core.lock(core.answer(core.card()), ok=False)


def charging(core: Core, **kw) -> int:
    local_id = core.start(**kw)
    core(EvDrawChanged(1, True))
    return local_id


def suspended_evse(core: Core) -> None:
    """A session whose StartTransaction.conf said Invalid, with StopTransactionOnInvalidId=false."""
    core.assign(core.start(), 42, status="Invalid")


def reserve(core: Core, connector=1, id_tag="TAG1", reservation_id=1) -> None:
    core(ReserveNow(unique_id="rn", reply_to=None, connector_id=connector, id_tag=id_tag,
                    expiry_date=format_time(START + timedelta(hours=1)), reservation_id=reservation_id))


def cancel(core: Core, reservation_id=1) -> None:
    core(CancelReservation(unique_id="cr", reply_to=None, reservation_id=reservation_id))


def held_for_connector_zero(core: Core) -> None:
    """Two connectors, the second Unavailable: a connector-0 reservation keeps connector 1."""
    inoperative(core, 2)
    reserve(core, 0)


def scheduled_unavailable(core: Core) -> None:
    inoperative(core)  # Scheduled: the transaction runs on
    core.card("TAG1")  # it ends: Unavailable at once, no user action needed


# cell -> (how to build the core, the steps), the transition being the last one the steps make on connector 1
SCENARIOS: dict[str, tuple[Callable[[], Core], Callable[[Core], object]]] = {
    "A2": (Core, lambda core: core.plug()),
    "A8": (Core, inoperative),
    "A9": (Core, fault),
    "B1": (Core, lambda core: (core.plug(), core.unplug())),
    "B3": (Core, lambda core: (core.plug(), core(EvDrawChanged(1, True)), core.lock(core.answer(core.card())))),
    "B4": (Core, lambda core: core.start()),
    "B6": (Core, lambda core: (core.plug(), core.timeout())),
    "B8": (Core, lambda core: (core.answer(core.card()), inoperative(core))),
    "B7": (Core, lambda core: (reserve(core), core.answer(core.card()), core.timeout())),
    "B9": (Core, lambda core: (core.plug(), core.lock(core.answer(core.card()), ok=False))),
    "C1": (lambda: Core(fixed_cable=True), lambda core: (charging(core), core.unplug())),
    "C4": (Core, lambda core: (charging(core), core(EvDrawChanged(1, False)))),
    "C5": (lambda: Core(StopTransactionOnInvalidId=False),
           lambda core: core.assign(charging(core), 42, status="Invalid")),
    "C6": (Core, lambda core: (charging(core), core.card("TAG1"))),
    "C8": (Core, lambda core: (charging(core), scheduled_unavailable(core))),
    "C9": (Core, lambda core: (charging(core), fault(core))),
    "D1": (lambda: Core(fixed_cable=True), lambda core: (core.start(), core.unplug())),
    "D3": (Core, charging),
    "D5": (lambda: Core(StopTransactionOnInvalidId=False), suspended_evse),
    "D6": (Core, lambda core: (core.start(), core.card("TAG1"))),
    "D8": (Core, lambda core: (core.start(), scheduled_unavailable(core))),
    "D9": (Core, lambda core: (core.start(), fault(core))),
    "E3": (Core, lambda core: (charging(core), ev_link(core), ev_link(core, "NoError"))),
    "E4": (Core, lambda core: (core.start(), ev_link(core), ev_link(core, "NoError"))),
    "E1": (lambda: Core(fixed_cable=True, StopTransactionOnInvalidId=False),
           lambda core: (suspended_evse(core), core.unplug())),
    "E6": (lambda: Core(StopTransactionOnInvalidId=False), lambda core: (suspended_evse(core), core.card("TAG1"))),
    "E8": (lambda: Core(StopTransactionOnInvalidId=False),
           lambda core: (suspended_evse(core), scheduled_unavailable(core))),
    "E9": (lambda: Core(StopTransactionOnInvalidId=False), lambda core: (suspended_evse(core), fault(core))),
    "F1": (Core, lambda core: (core.start(), core.card("TAG1"), core.unplug(), core(CableDetached(1)))),
    "F8": (Core, lambda core: (core.start(), core.card("TAG1"), inoperative(core))),
    "F9": (Core, lambda core: (core.start(), core.card("TAG1"), fault(core))),
    "A7": (Core, reserve),
    "G1": (Core, lambda core: (reserve(core), cancel(core))),
    "G2": (Core, lambda core: (reserve(core), core.answer(core.card()))),
    "G8": (Core, lambda core: (reserve(core), inoperative(core))),
    "G9": (Core, lambda core: (reserve(core), fault(core))),
    "H1": (Core, lambda core: (inoperative(core), operative(core))),
    "H2": (Core, lambda core: (inoperative(core), core.plug(), operative(core))),
    "H6": (Core, lambda core: (core.start(), scheduled_unavailable(core), operative(core))),
    "H9": (Core, lambda core: (inoperative(core), fault(core))),
    "I1": (Core, lambda core: (fault(core), fault(core, code="NoError"))),
    "I2": (Core, lambda core: (core.plug(), fault(core), fault(core, code="NoError"))),
    "I3": (Core, lambda core: (charging(core), fault(core), fault(core, code="NoError"))),
    "I4": (Core, lambda core: (core.start(), fault(core), fault(core, code="NoError"))),
    "I5": (lambda: Core(StopTransactionOnInvalidId=False),
           lambda core: (suspended_evse(core), fault(core), fault(core, code="NoError"))),
    "I6": (Core, lambda core: (core.start(), core.card("TAG1"), fault(core), fault(core, code="NoError"))),
    "I7": (lambda: Core(connectors=2),
           lambda core: (held_for_connector_zero(core), fault(core), fault(core, code="NoError"))),
    "I8": (Core, lambda core: (fault(core), inoperative(core), fault(core, code="NoError"))),
}

STATION_SCENARIOS: dict[str, Callable[[Core], object]] = {  # connector 0: Available, Unavailable, Faulted only
    "A8": lambda core: inoperative(core, 0),
    "A9": lambda core: fault(core, 0, "OtherError"),
    "H1": lambda core: (inoperative(core, 0), operative(core, 0)),
    "H9": lambda core: (inoperative(core, 0), fault(core, 0, "OtherError")),
    "I1": lambda core: (fault(core, 0, "OtherError"), fault(core, 0, "NoError")),
    "I1 (two sources)": lambda core: (fault(core, 0, "InternalError"), fault(core, 0, "OtherError", "station"),
                                      fault(core, 0, "NoError"), fault(core, 0, "NoError", "station")),
    "I8": lambda core: (fault(core, 0, "OtherError"), inoperative(core, 0), fault(core, 0, "NoError")),
}

# What the station cannot do (yet), and why: a transition listed here and made one day needs a scenario above.
NOT_MADE = {
    "A3": "every session starts in Preparing: a card or cable comes first",
    "A4": "the same", "A5": "the same",
    "B5": "a session starts with energy offered; StartTransaction.conf comes later",
    "F2": "a Finishing connector takes no new session until its cable is out",
    "H3": "a session never runs on an Unavailable connector", "H4": "the same", "H5": "the same",
}


# Faults (one per source; connector 0's hold every connector: see actors/sessions/connector.py): the §4.9
# transitions each kind of fault makes, whatever other scenario above makes the same cell.
FAULT_SCENARIOS: dict[str, tuple[Callable[[], Core], Callable[[Core], object]]] = {
    "A8 station fault": (Core, station_fault),
    "A9 meter fault": (Core, lambda core: fault(core, code="PowerMeterFailure", source="meter")),
    "B8 station fault": (Core, lambda core: (core.plug(), station_fault(core))),
    "B9 lock failure": (Core, lock_failed),
    "C5 EV link lost": (Core, lambda core: (charging(core), ev_link(core))),
    "C5 station fault": (Core, lambda core: (charging(core), station_fault(core))),
    "C9 meter fault": (Core, lambda core: (charging(core), fault(core, code="PowerMeterFailure", source="meter"))),
    "D5 station fault": (Core, lambda core: (core.start(), station_fault(core))),
    "E3 station fault cleared": (Core, lambda core: (charging(core), station_fault(core),
                                                     station_fault(core, "NoError"))),
    "E4 station fault cleared": (Core, lambda core: (core.start(), station_fault(core),
                                                     station_fault(core, "NoError"))),
    "E9 fault while held": (Core, lambda core: (core.start(), station_fault(core), fault(core))),
    "F8 station fault": (Core, lambda core: (core.start(), core.card("TAG1"), station_fault(core))),
    "H1 station fault cleared": (Core, lambda core: (station_fault(core), station_fault(core, "NoError"))),
    "H2 station fault cleared": (Core, lambda core: (core.plug(), station_fault(core), station_fault(core, "NoError"))),
    "H6 station fault cleared": (Core, lambda core: (core.start(), core.card("TAG1"), station_fault(core),
                                                     station_fault(core, "NoError"))),
    "H9 fault while held": (Core, lambda core: (station_fault(core), fault(core))),
    "I1 lock failure, cable out": (Core, lambda core: (lock_failed(core), core(PlugDisconnected(1)),
                                                       core(CableDetached(1)))),
    "I1 meter recovered": (Core, lambda core: (fault(core, code="PowerMeterFailure", source="meter"),
                                               fault(core, code="NoError", source="meter"))),
    "I2 the last of two sources cleared": (Core, lambda core: (core.plug(), fault(core), fault(core, code="OtherError",
                                                                                             source="meter"),
                                                               fault(core, code="NoError"),
                                                               fault(core, code="NoError", source="meter"))),
    "I8 fault cleared while the station is held": (Core, lambda core: (fault(core), station_fault(core),
                                                                        fault(core, code="NoError"))),
}


@pytest.mark.parametrize("name", sorted(FAULT_SCENARIOS))
def test_a_fault_makes_transition(name):
    build, steps = FAULT_SCENARIOS[name]
    core = build()
    steps(core)
    assert [t for t in core.transitions if t[0] == 1][-1] == (1, name.split()[0]), core.transitions


def test_another_sources_all_clear_makes_no_transition():
    core = Core()
    charging(core)
    fault(core)
    before = list(core.transitions)
    fault(core, code="NoError", source="meter")
    fault(core, code="NoError", source="lock")
    assert core.transitions == before and core.connector().status() == "Faulted"


@pytest.mark.parametrize("cell", sorted(SCENARIOS))
def test_the_station_makes_transition(cell):
    build, steps = SCENARIOS[cell]
    core = build()
    steps(core)
    assert core.transitions[-1] == (1, cell), core.transitions


@pytest.mark.parametrize("cell", sorted(STATION_SCENARIOS))
def test_the_station_as_a_whole_makes_transition(cell):
    core = Core()
    STATION_SCENARIOS[cell](core)
    assert [t for t in core.transitions if t[0] == 0][-1] == (0, cell.split()[0])


def test_the_table_is_the_one_of_ocpp_1_6_section_4_9():
    assert len(TRANSITIONS) == 53
    assert TRANSITIONS["B6"] == ("Preparing", "Finishing")  # errata 3.20: timed out with the cable still in
    assert TRANSITIONS["C8"] == ("Charging", "Unavailable")
    assert all(old != new for old, new in TRANSITIONS.values())
    assert [transition_name(*pair) for pair in TRANSITIONS.values()] == list(TRANSITIONS)


def test_what_the_station_does_beyond_the_table_is_named_and_made():
    assert not set(BEYOND_THE_TABLE) & set(TRANSITIONS)
    assert set(BEYOND_THE_TABLE) <= set(SCENARIOS)
    assert len(ALLOWED) == len(TRANSITIONS) + len(BEYOND_THE_TABLE)


def test_a_reader_failure_makes_no_transition_of_the_station():
    core = Core()
    fault(core, 0, "ReaderFailure", "rfid")
    assert core.transitions == [] and core.shown[0] == "Available"


def test_every_transition_of_the_table_is_either_made_or_said_why_not():
    made = set(SCENARIOS) - set(BEYOND_THE_TABLE)
    assert made | set(NOT_MADE) == set(TRANSITIONS)
    assert not made & set(NOT_MADE)


def test_every_status_has_a_rule_and_the_last_rule_always_holds():
    assert [status for status, _ in STATUS_RULES] == ["Faulted", "SuspendedEVSE", "Charging", "SuspendedEV",
                                                      "Unavailable", "Finishing", "Reserved", "Preparing",
                                                      "Available"]
    assert STATUS_RULES[-1][1](Connector(1))


def test_a_transition_outside_the_table_is_published_and_logged(caplog):
    core = Core()
    core.plug()
    core.connector().finishing = True  # facts forced into Finishing, then straight into a session: F3
    core.core.handle(EvDrawChanged(1, False))
    core.connector().session = Session(1, "TAG1", None, 0, START)
    with caplog.at_level("WARNING", logger="actors.sessions.core"):
        effects = core.core.handle(EvDrawChanged(1, True))
    assert statuses(effects) == [(1, "Charging")]
    assert "Finishing -> Charging is not a transition of OCPP 1.6 §4.9" in caplog.text
