"""SIGKILL at any moment loses nothing acknowledged (OCPP 1.6 §4.10 PowerLoss; the durable queue)."""

import pytest

from tests.integration.conftest import go_offline, go_online, session_started

pytestmark = pytest.mark.timeout(90)

TX_ACTIONS = ("StartTransaction", "MeterValues", "StopTransaction")


def _energy(record) -> int:
    values = record.payload["meterValue"][0]["sampledValue"]
    return int(next(v["value"] for v in values if v.get("measurand", "Energy.Active.Import.Register")
                    == "Energy.Active.Import.Register"))


def test_killed_mid_session_the_restarted_station_stops_the_transaction_with_power_loss(csms, make_station):
    station = make_station(configuration={"MeterValueSampleInterval": 1})
    session_started(csms, station)
    samples = csms.wait_count("MeterValues", 2, timeout=10)
    station.kill()
    csms.wait_disconnected()
    mark = csms.mark()
    station.start()
    csms.wait_for("BootNotification", after=mark)
    stop = csms.wait_for("StopTransaction", after=mark, timeout=20)
    assert stop.payload["reason"] == "PowerLoss"
    assert stop.payload["transactionId"] == 1
    assert stop.payload["meterStop"] >= _energy(samples[-1])  # the last persisted reading, not 0
    assert station.state()["contactor"] is False
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, after=mark)
    assert len([r for r in csms.received if r.action == "StartTransaction"]) == 1


def test_killed_while_offline_every_queued_message_is_delivered_once_in_order(csms, make_station):
    station = make_station(configuration={"MeterValueSampleInterval": 1})
    session_started(csms, station)
    csms.wait_until(lambda: not any(a == "StartTransaction" for a, _ in station.queued()),
                    what="StartTransaction.conf processed")
    go_offline(csms)
    csms.wait_until(lambda: len(station.queued()) >= 3, timeout=15, what="queued MeterValues")
    station.sim(cmd="swipe", id_tag="TAG1")
    csms.wait_until(lambda: any(a == "StopTransaction" for a, _ in station.queued()), what="queued stop")
    queued = station.queued()
    station.kill()
    mark = csms.mark()
    station.start()
    go_online(csms)
    csms.wait_for("StopTransaction", after=mark, timeout=20)
    csms.wait_until(lambda: station.queued() == [], what="an empty queue")
    delivered = [r for r in csms.received[mark:] if r.action in TX_ACTIONS]
    assert [(r.action, r.payload.get("meterValue")) for r in delivered] == \
        [(a, p.get("meterValue")) for a, p in queued]
    ids = [r.unique_id for r in delivered]
    assert len(ids) == len(set(ids))


def test_killed_at_random_points_of_a_session_never_loses_or_duplicates_a_transaction(csms, make_station):
    """Kill repeatedly while a session runs; every transaction ends with exactly one StopTransaction."""
    station = make_station(configuration={"MeterValueSampleInterval": 1})
    session_started(csms, station)
    for _ in range(3):
        csms.wait_count("MeterValues", 1, timeout=10)
        station.kill()
        mark = csms.mark()
        station.start()
        csms.wait_for("BootNotification", after=mark, timeout=15)
    csms.wait_until(lambda: station.queued() == [], timeout=20, what="an empty queue")
    starts = [r for r in csms.received if r.action == "StartTransaction"]
    stops = [r for r in csms.received if r.action == "StopTransaction"]
    assert len(starts) == 1
    # The message possibly in flight at a kill may arrive twice, with its original id.
    assert len({r.unique_id for r in stops}) == 1
    assert stops[0].payload["reason"] == "PowerLoss"
