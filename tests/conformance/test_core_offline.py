"""OCTT 1.6 Core, offline behaviour: TC_036, TC_037_1/2/3, TC_038, TC_039 (OCPP 1.6 §3.4, §3.7, §4.10;
errata 3.5, 3.17, 3.18).

"Offline" is the CSMS closing the connection and refusing the station's reconnects (HTTP 503)
until the test lets it back in. MeterValueSampleInterval is 1 s (shortened).
"""

import time
from datetime import datetime

import pytest

from tests.conformance.conftest import (ABSENT, AnyOrder, M, SN, conf_of, expect_none, expect_sequence, go_offline,
                                        go_online, poll, reach_charging, start_fresh)

pytestmark = pytest.mark.timeout(90)

OFFLINE_START = {"LocalAuthorizeOffline": True, "AllowOfflineTxForUnknownId": True, "AuthorizationCacheEnabled": True}
LOCAL = ("Local", ABSENT)  # StopTransaction.reason is optional, default Local


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _queued(station, action: str) -> list:
    return [p for a, p in station.queued() if a == action]


def _start_offline(csms, station, id_tag: str) -> dict:
    """Offline: plug in, present id_tag; the transaction starts locally. Returns the queued
    StartTransaction."""
    go_offline(csms)
    station.sim(cmd="plug", connector=1)
    station.sim(cmd="swipe", id_tag=id_tag)
    poll(lambda: _queued(station, "StartTransaction"), what="a queued StartTransaction")
    poll(lambda: station.state()["contactor"], what="charging offline")
    return _queued(station, "StartTransaction")[0]


def test_tc_036_connection_loss_during_transaction(csms, make_station):
    """Charging, then offline for at least 3 sample intervals; on reconnect the queued MeterValues
    come first, in chronological order, before any new ones; every MeterValues of the transaction
    is exactly MeterValueSampleInterval after the previous one."""
    station = start_fresh(make_station, csms, configuration={"MeterValueSampleInterval": 1})
    _, tx = reach_charging(csms, station, "OCTT1")
    csms.wait_count("MeterValues", 1)
    go_offline(csms)
    poll(lambda: len(_queued(station, "MeterValues")) >= 3, timeout=15, what="3 MeterValues queued offline")
    queued = [p["meterValue"][0]["timestamp"] for p in _queued(station, "MeterValues")]
    after = csms.mark()
    go_online(csms)
    poll(lambda: station.queued() == [], timeout=15, what="the queue delivered")
    csms.wait_until(lambda: len([r for r in csms.received[after:] if r.action == "MeterValues"]) > len(queued),
                    what="a new MeterValues after the queued ones")
    def unique(records):  # a re-send (the message in flight when the link dropped) keeps its id
        seen = set()
        return [r for r in records if r.action == "MeterValues" and not (r.unique_id in seen or seen.add(r.unique_id))]
    replayed = [r.payload["meterValue"][0]["timestamp"] for r in unique(csms.received[after:])]
    assert replayed[:len(queued)] == queued, f"queued offline {queued}, delivered after reconnect {replayed}"
    values = unique(csms.received)
    assert all(r.payload["transactionId"] == tx for r in values)
    stamps = [_stamp(r.payload["meterValue"][0]["timestamp"]) for r in values]
    assert [round(b - a, 3) for a, b in zip(stamps, stamps[1:])] == [1.0] * (len(stamps) - 1), stamps


def test_tc_037_1_offline_start_transaction_valid_idtag(csms, make_station):
    """LocalAuthorizeOffline (and AllowOfflineTxForUnknownId, AuthorizationCacheEnabled) true: a
    transaction started offline; on reconnect StartTransaction with the offline start time ->
    Accepted, and StatusNotification(Charging), either order."""
    station = start_fresh(make_station, csms, configuration=OFFLINE_START)
    queued = _start_offline(csms, station, "OCTT1")
    reconnected = time.time()
    after = csms.mark()
    go_online(csms)
    start, _ = expect_sequence(csms, after, [AnyOrder(
        M("StartTransaction", connectorId=1, idTag="OCTT1", timestamp=queued["timestamp"]), SN(1, "Charging"))],
        exact=True)  # and no StopTransaction
    assert _stamp(start.payload["timestamp"]) < reconnected


def test_tc_037_2_offline_start_transaction_invalid_idtag_stop_on_invalid_id_false(csms, make_station):
    """StopTransactionOnInvalidId=false, MaxEnergyOnInvalidId=0: a transaction started offline;
    on reconnect its StartTransaction is answered Invalid: the transaction goes on without energy,
    StatusNotification(SuspendedEVSE), no StopTransaction."""
    csms.start_transaction_status = {"INVALID1": "Invalid"}
    station = start_fresh(make_station, csms, configuration={
        **OFFLINE_START, "StopTransactionOnInvalidId": False, "MaxEnergyOnInvalidId": 0})
    _start_offline(csms, station, "INVALID1")
    after = csms.mark()
    go_online(csms)
    start = csms.wait_for("StartTransaction", after=after)
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "SuspendedEVSE",
                  after=after)
    expect_none(csms, after, M("StopTransaction"), 1.0)
    statuses = [r.payload["status"] for r in csms.received[after:] if r.action == "StatusNotification"]
    assert set(statuses) <= {"Charging", "SuspendedEVSE"}, statuses
    assert start.payload["idTag"] == "INVALID1"
    assert station.state()["contactor"] is False


def test_tc_037_3_offline_start_transaction_invalid_idtag_stop_on_invalid_id_true(csms, make_station):
    """StopTransactionOnInvalidId=true: the StartTransaction of the offline transaction is answered
    Invalid -> StopTransaction(reason DeAuthorized) + StatusNotification(Finishing)."""
    csms.start_transaction_status = {"INVALID1": "Invalid"}
    station = start_fresh(make_station, csms, configuration={**OFFLINE_START, "StopTransactionOnInvalidId": True})
    _start_offline(csms, station, "INVALID1")
    after = csms.mark()
    go_online(csms)
    start = csms.wait_for("StartTransaction", after=after)
    stop = csms.wait_for("StopTransaction", after=after)
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1 and p["status"] == "Finishing",
                  after=csms.received.index(start))
    assert stop.payload["reason"] == "DeAuthorized"
    assert stop.payload["transactionId"] == conf_of(csms, start)["transactionId"]
    assert station.state()["contactor"] is False


def test_tc_038_offline_stop_transaction(csms, make_station):
    """Charging; offline, the transaction is stopped (the same idTag); on reconnect
    StopTransaction(reason Local or omitted, the offline stop time) + StatusNotification(Finishing)."""
    station = start_fresh(make_station, csms, configuration=OFFLINE_START)
    _, tx = reach_charging(csms, station, "OCTT1")
    poll(lambda: station.queued() == [], what="StartTransaction answered")
    go_offline(csms)
    station.sim(cmd="swipe", id_tag="OCTT1")
    poll(lambda: _queued(station, "StopTransaction"), what="a queued StopTransaction")
    queued = _queued(station, "StopTransaction")[0]
    after = csms.mark()
    go_online(csms)
    stop, _ = expect_sequence(csms, after, [AnyOrder(
        M("StopTransaction", transactionId=tx, reason=LOCAL, timestamp=queued["timestamp"]), SN(1, "Finishing"))],
        exact=True)
    assert station.state()["contactor"] is False


def test_tc_039_offline_transaction(csms, make_station):
    """The whole transaction offline; on reconnect StartTransaction (Accepted) then StopTransaction
    (reason Local or omitted, the transactionId the CSMS gave), in that order; StatusNotification
    (Finishing)."""
    csms.next_transaction_id = 42
    station = start_fresh(make_station, csms, configuration=OFFLINE_START)
    _start_offline(csms, station, "OCTT1")
    station.sim(cmd="swipe", id_tag="OCTT1")
    poll(lambda: _queued(station, "StopTransaction"), what="a queued StopTransaction")
    after = csms.mark()
    go_online(csms)
    records = expect_sequence(csms, after, [AnyOrder(
        M("StartTransaction", connectorId=1, idTag="OCTT1"),
        M("StopTransaction", transactionId=42, reason=LOCAL),
        SN(1, "Finishing"))], exact=True)
    start, stop = (next(r for r in records if r.action == a) for a in ("StartTransaction", "StopTransaction"))
    assert csms.received.index(start) < csms.received.index(stop)
    assert _stamp(start.payload["timestamp"]) <= _stamp(stop.payload["timestamp"])
