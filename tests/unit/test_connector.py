"""actors.sessions.connector: a connector's facts and the OCPP 1.6 status they imply (§4.9, §7.7)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from actors.sessions.connector import Connector, Fault, Session, shown_fault, station_status

pytestmark = pytest.mark.timeout(30)


def faults(*codes, source="evse") -> dict:
    """One fault per code, from `source`, then "meter", "lock", ... (one source each)."""
    sources = [source] + [s for s in ("meter", "lock", "rfid", "station") if s != source]
    return {src: Fault(code, f"{code} info") for src, code in zip(sources, codes)}


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
    connector = Connector(1, faults={"evse": Fault("GroundFailure", "RCD tripped")})
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
    assert Connector(1, faults=faults("OverCurrentFailure"), **facts).status() == "Faulted"


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
    dict(faults={"lock": Fault("ConnectorLockFailure")}),
    dict(station_blocked=True),
    dict(operative=False),
    dict(finishing=True, plugged=True),
    dict(authorized_tag="ABC"),
])
def test_a_connector_is_busy_when_it_cannot_take_a_new_session(facts):
    assert Connector(1, **facts).busy


def test_faulted_follows_the_blocking_faults():
    assert not Connector(1).faulted
    assert Connector(1, faults=faults("PowerMeterFailure")).faulted
    assert not Connector(1, faults=faults("EVCommunicationError")).faulted
    assert Connector(1, faults=faults("EVCommunicationError", "GroundFailure")).faulted


# --- connector 0 ------------------------------------------------------------------------------


def test_the_station_as_a_whole_is_available_unavailable_or_faulted():
    assert station_status(True, {}) == "Available"
    assert station_status(False, {}) == "Unavailable"
    assert station_status(True, faults("InternalError")) == "Faulted"
    assert station_status(False, faults("InternalError")) == "Faulted"


def test_a_reader_failure_of_the_station_is_a_warning():
    assert station_status(True, faults("ReaderFailure", source="rfid")) == "Available"
    assert station_status(False, faults("ReaderFailure", source="rfid")) == "Unavailable"


# --- faults: one per source, blocking or warning ---------------------------------------------------


@pytest.mark.parametrize("code", ["EVCommunicationError", "ReaderFailure", "WeakSignal", "LocalListConflict",
                                  "ResetFailure"])
def test_warnings_leave_the_status_as_it_is(code):
    assert Connector(1, faults=faults(code)).status() == "Available"
    assert Connector(1, plugged=True, faults=faults(code)).status() == "Preparing"
    assert not Connector(1, faults=faults(code)).busy


@pytest.mark.parametrize("code", ["ConnectorLockFailure", "GroundFailure", "HighTemperature", "InternalError",
                                  "OtherError", "OverCurrentFailure", "OverVoltage", "UnderVoltage",
                                  "PowerMeterFailure", "PowerSwitchFailure"])
def test_every_other_code_is_blocking(code):
    assert Connector(1, faults=faults(code)).status() == "Faulted"


def test_the_error_shown_is_the_oldest_blocking_fault_still_active():
    connector = Connector(1, faults=faults("EVCommunicationError", "PowerMeterFailure", "GroundFailure"))
    assert connector.shown_fault() == Fault("PowerMeterFailure", "PowerMeterFailure info")
    del connector.faults["meter"]
    assert connector.shown_fault().error_code == "GroundFailure"


def test_a_warning_is_shown_when_no_blocking_fault_is_active():
    connector = Connector(1, plugged=True, faults=faults("WeakSignal"))
    assert (connector.status(), connector.shown_fault().error_code) == ("Preparing", "WeakSignal")


@pytest.mark.parametrize("facts, status, shown", [
    (dict(), "Available", None),
    (dict(plugged=True), "Preparing", "EVCommunicationError"),
    (dict(plugged=True, session=session()), "SuspendedEVSE", "EVCommunicationError"),
    (dict(plugged=True, finishing=True), "Finishing", "EVCommunicationError"),
    (dict(operative=False), "Unavailable", None),
])
def test_ev_communication_error_is_shown_only_with_the_statuses_section_4_9_allows(facts, status, shown):
    connector = Connector(1, faults=faults("EVCommunicationError"), **facts)
    fault = connector.shown_fault()
    assert (connector.status(), fault.error_code if fault else None) == (status, shown)
    assert shown_fault(connector.faults, "Charging") is None


def test_a_lost_link_to_the_ev_withholds_energy_from_the_session():
    connector = Connector(1, plugged=True, ev_drawing=True, session=session(), faults=faults("EVCommunicationError"))
    assert connector.status() == "SuspendedEVSE" and not connector.energy_on


def test_a_station_fault_holds_every_connector():
    assert Connector(1, station_blocked=True).status() == "Unavailable"
    assert Connector(1, station_blocked=True, plugged=True).status() == "Unavailable"
    held = Connector(1, station_blocked=True, plugged=True, ev_drawing=True, session=session())
    assert held.status() == "SuspendedEVSE" and not held.energy_on
    assert Connector(1, station_blocked=True, faults=faults("GroundFailure")).status() == "Faulted"
