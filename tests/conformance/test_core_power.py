"""OCTT 1.6 Core, power failure: TC_032_1 (back-up power), TC_032_2 (none), TC_034 (Unavailable kept)
(OCPP 1.6 §4.9, §4.10 reason PowerLoss; errata 3.4).

A power cut with back-up power is the simulator's `power_cut` command: the station stops its
transactions and exits 69 (EX_UNAVAILABLE: scripts/supervise starts it again). Without back-up power the test kills the process (SIGKILL).
The simulated EV lives in the process, so "the EV is still plugged in when power returns" is the
test plugging it in again before the restarted station may connect.
"""

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import (AnyOrder, M, SN, booted, expect_none, expect_sequence, ignoring_resent, poll,
                                        reach_charging, relevant, start_fresh, start_offline_then_connect, wait)

pytestmark = pytest.mark.timeout(90)


def _plugged(station):
    station.sim(cmd="plug", connector=1)


def test_tc_032_1_power_failure_stop_transaction_before_going_down(csms, make_station):
    """Back-up power: on the power cut StopTransaction(reason PowerLoss) + StatusNotification
    (Finishing), either order, before the station goes down (exit 69). Power returns (the EV still
    plugged in): BootNotification Accepted, StatusNotification per connector (the transaction's
    connector Finishing or Preparing), no second StopTransaction."""
    station = start_fresh(make_station, csms, station={"backup_power": True})
    start, tx = reach_charging(csms, station, "OCTT1")
    after = csms.mark()
    station.sim(cmd="power_cut")
    expect_sequence(csms, after, [AnyOrder(
        M("StopTransaction", reason="PowerLoss", transactionId=tx,
          meterStop=lambda v: v >= start.payload["meterStart"]),
        SN(1, "Finishing"))], exact=True)
    assert station.proc.wait(30) == 69, station.log_tail()
    restarted = csms.mark()
    start_offline_then_connect(csms, station, _plugged)
    booted(csms, 1, restarted, statuses={1: {"Finishing", "Preparing"}}, ignore=ignoring_resent(csms, restarted),
           exact=True)  # no second StopTransaction
    assert len({r.unique_id for r in csms.received if r.action == "StopTransaction"}) == 1


def test_tc_032_2_power_failure_stop_transaction_after_boot(csms, make_station):
    """No back-up power: the power cut kills the station mid-transaction. Power returns (the EV
    still plugged in): BootNotification first; then, in any order, StopTransaction(reason
    PowerLoss) for the transaction and StatusNotification for its connector ending Preparing,
    Finishing or Charging (Unavailable/Available allowed in between)."""
    station = start_fresh(make_station, csms)
    start, tx = reach_charging(csms, station, "OCTT1")
    poll(lambda: station.queued() == [], what="StartTransaction answered")
    station.kill()
    csms.wait_disconnected()
    restarted = csms.mark()
    start_offline_then_connect(csms, station, _plugged)
    expect_sequence(csms, restarted, [M("BootNotification")], timeout=15)
    stop = wait(csms, M("StopTransaction", transactionId=tx), restarted, timeout=15)
    assert stop.payload.get("reason") == "PowerLoss", stop.payload
    assert stop.payload["meterStop"] >= start.payload["meterStart"]
    wait(csms, SN(1, {"Preparing", "Finishing", "Charging"}), restarted)
    statuses = [r.payload["status"] for r in relevant(csms, restarted)
                if r.action == "StatusNotification" and r.payload["connectorId"] == 1]
    assert set(statuses) <= {"Preparing", "Finishing", "Charging", "Unavailable", "Available"}, statuses
    assert statuses[-1] in ("Preparing", "Finishing", "Charging"), statuses
    assert not [r for r in csms.received[restarted:] if r.action == "StartTransaction"]


def test_tc_034_power_failure_with_unavailable_status(csms, make_station):
    """ChangeAvailability(connectorId 0, Inoperative) -> Accepted + StatusNotification(Unavailable);
    a power cycle (SIGKILL, restart) -> BootNotification -> StatusNotification Unavailable (connector
    0 and the connector: the state persisted across the power loss). ChangeAvailability(0,
    Operative) brings it back (post-condition)."""
    station = start_fresh(make_station, csms)
    after = csms.mark()
    assert csms.call(call.ChangeAvailability(connector_id=0, type="Inoperative")).status == "Accepted"
    wait(csms, SN(0, "Unavailable"), after)
    expect_none(csms, after, M("StatusNotification", status=lambda s: s != "Unavailable"))
    csms.wait_until(lambda: {r.payload["connectorId"] for r in csms.received[after:]
                             if r.action == "StatusNotification"} >= {0, 1},
                    timeout=3, what="StatusNotification(Unavailable) for the connector too")
    station.kill()
    csms.wait_disconnected()
    restarted = csms.mark()
    station.start()
    booted(csms, 1, restarted, statuses={0: "Unavailable", 1: "Unavailable"}, exact=True)
    after = csms.mark()
    assert csms.call(call.ChangeAvailability(connector_id=0, type="Operative")).status == "Accepted"
    wait(csms, SN(0, "Available"), after)
    wait(csms, SN(1, "Available"), after)
