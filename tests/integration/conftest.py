"""Integration fixtures: the real station process, a real loopback CSMS, the simulator socket."""

from __future__ import annotations

import pytest

from tests.support.csms import Csms
from tests.support.harness import REPO, StationProcess, station_factory  # noqa: F401  (re-exported)


@pytest.fixture
def csms():
    server = Csms(port=0)
    server.boot_response = ("Accepted", 300)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_station(tmp_path, csms, request):
    """make_station(configuration={...}, station={...}, start=True, extra="") -> a StationProcess
    (tests/support/harness.py: the same factory the ocpp-rpc tests use)."""
    yield from station_factory(tmp_path, csms, request)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def session_started(csms: Csms, station: StationProcess, id_tag: str = "TAG1", connector: int = 1):
    """Plug, swipe: wait for StartTransaction and Charging. Returns the StartTransaction."""
    after = csms.mark()
    station.sim(cmd="plug", connector=connector)
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == connector and p["status"] == "Preparing",
                  after=after)
    station.sim(cmd="swipe", id_tag=id_tag)
    start = csms.wait_for("StartTransaction", after=after)
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == connector and p["status"] == "Charging",
                  after=after)
    return start


def go_offline(csms: Csms) -> None:
    csms.refuse_connections = True
    csms.disconnect()
    csms.wait_disconnected()


def go_online(csms: Csms) -> None:
    before = csms.connections
    csms.refuse_connections = False
    csms.wait_until(lambda: csms.connections > before, timeout=15, what="the station to reconnect")
