"""actors.sessions.connector: a connector's facts and the OCPP 1.6 status they imply (§4.9, §7.7)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from actors.sessions.connector import Connector, Session, station_status

pytestmark = pytest.mark.timeout(30)


def session(**overrides) -> Session:
    values = dict(local_id=1, id_tag="ABC", parent_id_tag=None, meter_start_wh=100,
                  started_at=datetime(2024, 5, 1, tzinfo=timezone.utc))
    values.update(overrides)
    return Session(**values)


# --- one test per OCPP 1.6 ChargePointStatus ------------------------------------------------------


def test_a_free_connector_is_available():
    assert Connector(1).status() == "Available"


def test_plugging_in_without_a_tag_is_preparing():
    assert Connector(1, plugged=True).status() == "Preparing"


def test_a_tag_presented_before_the_cable_is_preparing():
    assert Connector(1, authorized_tag="ABC").status() == "Preparing"


def test_an_authorize_in_flight_is_preparing():
    assert Connector(1, authorizing_tag="ABC").status() == "Preparing"


def test_a_start_in_progress_is_preparing():
    assert Connector(1, plugged=True, starting=True).status() == "Preparing"


def test_a_session_with_the_ev_drawing_energy_is_charging():
    assert Connector(1, plugged=True, ev_drawing=True, session=session()).status() == "Charging"


def test_a_session_with_the_ev_not_drawing_is_suspended_ev():
    assert Connector(1, plugged=True, ev_drawing=False, session=session()).status() == "SuspendedEV"


def test_a_session_whose_cable_was_pulled_on_the_ev_side_is_suspended_ev():
    connector = Connector(1, plugged=False, session=session())
    assert connector.status() == "SuspendedEV"
    assert connector.info() == "EV side disconnected"


def test_a_session_with_energy_withheld_by_the_station_is_suspended_evse():
    connector = Connector(1, plugged=True, ev_drawing=True, session=session(suspended_evse=True))
    assert connector.status() == "SuspendedEVSE"


def test_a_finished_session_with_the_cable_still_in_is_finishing():
    assert Connector(1, plugged=True, finishing=True).status() == "Finishing"


def test_finishing_ends_when_the_cable_is_pulled():
    assert Connector(1, plugged=False, finishing=True).status() == "Available"


def test_an_inoperative_connector_is_unavailable():
    assert Connector(1, operative=False).status() == "Unavailable"
    assert Connector(1, operative=False, plugged=True).status() == "Unavailable"
    assert Connector(1, operative=False, plugged=True, finishing=True).status() == "Unavailable"


def test_a_connector_with_an_error_is_faulted():
    connector = Connector(1, error_code="GroundFailure", error_info="RCD tripped")
    assert connector.status() == "Faulted"
    assert connector.info() == "RCD tripped"


# --- precedence -------------------------------------------------------------------------------


@pytest.mark.parametrize("facts", [
    dict(plugged=True, ev_drawing=True, session=session()),
    dict(operative=False),
    dict(plugged=True, finishing=True),
    dict(authorized_tag="ABC"),
    dict(plugged=True, session=session(suspended_evse=True)),
])
def test_a_fault_wins_over_every_other_fact(facts):
    assert Connector(1, error_code="OverCurrentFailure", **facts).status() == "Faulted"


def test_a_running_session_keeps_its_status_while_unavailability_is_scheduled():
    connector = Connector(1, plugged=True, ev_drawing=True, session=session(), operative=False,
                          pending_operative=False)
    assert connector.status() == "Charging"


# --- busy -------------------------------------------------------------------------------------


def test_a_free_connector_is_not_busy_even_with_a_cable_plugged_in():
    assert not Connector(1).busy
    assert not Connector(1, plugged=True).busy


@pytest.mark.parametrize("facts", [
    dict(session=session()),
    dict(starting=True),
    dict(error_code="ConnectorLockFailure"),
    dict(operative=False),
    dict(finishing=True, plugged=True),
    dict(authorized_tag="ABC"),
])
def test_a_connector_is_busy_when_it_cannot_take_a_new_session(facts):
    assert Connector(1, **facts).busy


def test_faulted_follows_the_error_code():
    assert not Connector(1).faulted
    assert Connector(1, error_code="PowerMeterFailure").faulted


# --- connector 0 ------------------------------------------------------------------------------


def test_the_station_as_a_whole_is_available_unavailable_or_faulted():
    assert station_status(True, "NoError") == "Available"
    assert station_status(False, "NoError") == "Unavailable"
    assert station_status(True, "OtherError") == "Faulted"
    assert station_status(False, "OtherError") == "Faulted"
