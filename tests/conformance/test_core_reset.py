"""OCTT 1.6 Core, reset: TC_013, TC_014 (without a transaction), TC_015, TC_016 (with one)
(OCPP 1.6 §5.14, §4.9 persisted availability; errata 3.36/3.82).

The station carries a reset out by exiting with status 75; the test restarts the process, as
scripts/supervise or systemd would. The simulated hardware lives in the process, so where the
EV stays plugged in across the reset the test plugs it in again before the restarted station
may connect.
"""

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import (AnyOrder, M, SN, booted, expect_sequence, ignoring_resent, note_triggered,
                                        reach_charging, restart_after_exit, start_fresh,
                                        start_offline_then_connect)

pytestmark = pytest.mark.timeout(90)

EXIT_RESET = 75


def _plug(connector):
    return lambda station: station.sim(cmd="plug", connector=connector)


def _reset_without_transaction(csms, make_station, connectors: int, kind: str) -> None:
    station = start_fresh(make_station, csms, connectors)
    c = connectors
    after = csms.mark()
    assert csms.call(call.ChangeAvailability(connector_id=c, type="Inoperative")).status == "Accepted"
    unavailable, = expect_sequence(csms, after, [SN(c, "Unavailable")], exact=True)
    note_triggered(csms, "ChangeAvailability", unavailable)
    after = csms.mark()
    assert csms.call(call.Reset(type=kind)).status == "Accepted"
    restart_after_exit(station, EXIT_RESET)
    # The Unavailable connector is still Unavailable after the reboot (persisted).
    booted(csms, connectors, after, statuses={c: "Unavailable"}, exact=True)
    after = csms.mark()
    assert csms.call(call.ChangeAvailability(connector_id=c, type="Operative")).status == "Accepted"
    expect_sequence(csms, after, [SN(c, "Available")], exact=True)


@pytest.mark.parametrize("connectors", [1, 2, 4], ids=["1-connector", "2-connectors", "4-connectors"])
def test_tc_013_hard_reset_without_transaction(csms, make_station, connectors):
    """ChangeAvailability(connector, Inoperative) -> Accepted + StatusNotification(Unavailable);
    Reset(Hard) -> Accepted, reboot, BootNotification, StatusNotification for every connector and
    connector 0 with the Unavailable connector still Unavailable; ChangeAvailability(Operative) ->
    StatusNotification(Available). On the 2-connector station connector 2 is the one."""
    _reset_without_transaction(csms, make_station, connectors, "Hard")


def test_tc_014_soft_reset_without_transaction(csms, make_station):
    """As TC_013 with Reset(Soft). (A BootNotification after a soft reset is optional for OCTT;
    this station always reboots, so the StatusNotifications must follow it.)"""
    _reset_without_transaction(csms, make_station, 1, "Soft")


def test_tc_015_hard_reset_with_transaction(csms, make_station):
    """Charging; Reset(Hard) -> Accepted; StopTransaction(reason HardReset), before or after the
    reboot (exactly one), BootNotification, StatusNotification per connector (the transaction's
    connector Finishing or Preparing: the EV is still plugged in)."""
    station = start_fresh(make_station, csms)
    start, tx = reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    assert csms.call(call.Reset(type="Hard")).status == "Accepted"
    station.proc.wait(30)
    assert station.proc.returncode == EXIT_RESET, station.log_tail()
    stop = M("StopTransaction", reason="HardReset", transactionId=tx,
             meterStop=lambda v: v >= start.payload["meterStart"])
    before_reboot = [r for r in csms.received[after:] if r.action == "StopTransaction"]
    assert all(stop(r) for r in before_reboot), before_reboot
    restarted = csms.mark()
    start_offline_then_connect(csms, station, _plug(1))
    booted(csms, 1, restarted, statuses={1: {"Finishing", "Preparing"}}, also=() if before_reboot else (stop,),
           ignore=ignoring_resent(csms, restarted), exact=True)
    stops = {r.unique_id for r in csms.received if r.action == "StopTransaction"}
    assert len(stops) == 1, "exactly one StopTransaction"


def test_tc_016_soft_reset_with_transaction(csms, make_station):
    """Charging; Reset(Soft) -> Accepted; StopTransaction(reason SoftReset) + StatusNotification
    (Finishing), either order, *before* the station goes down; after the reboot BootNotification
    and StatusNotification per connector (the EV still plugged in: Finishing or Preparing), no
    second StopTransaction."""
    station = start_fresh(make_station, csms)
    start, tx = reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    assert csms.call(call.Reset(type="Soft")).status == "Accepted"
    expect_sequence(csms, after, [AnyOrder(
        M("StopTransaction", reason="SoftReset", transactionId=tx,
          meterStop=lambda v: v >= start.payload["meterStart"]),
        SN(1, "Finishing"))], exact=True)  # nothing else before it goes down
    station.proc.wait(30)
    assert station.proc.returncode == EXIT_RESET, station.log_tail()
    restarted = csms.mark()
    start_offline_then_connect(csms, station, _plug(1))
    booted(csms, 1, restarted, statuses={1: {"Finishing", "Preparing"}}, ignore=ignoring_resent(csms, restarted),
           exact=True)  # no second StopTransaction
    assert len({r.unique_id for r in csms.received if r.action == "StopTransaction"}) == 1
