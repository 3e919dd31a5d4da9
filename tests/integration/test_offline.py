"""Offline operation: the durable transaction message queue (OCPP 1.6 §3.7, §4.10; errata 3.18)."""

import pytest

from tests.integration.conftest import go_offline, go_online, session_started

pytestmark = pytest.mark.timeout(90)


def _periodic_timestamps(records):
    return [r.payload["meterValue"][0]["timestamp"] for r in records if r.action == "MeterValues"]


def test_messages_queued_offline_are_delivered_in_order_after_reconnect(csms, make_station):
    station = make_station(configuration={"MeterValueSampleInterval": 1})
    start = session_started(csms, station)
    csms.wait_until(lambda: not any(a == "StartTransaction" for a, _ in station.queued()),
                    what="StartTransaction.conf processed")
    go_offline(csms)
    csms.wait_until(lambda: len(station.queued()) >= 3, timeout=15, what="three queued MeterValues")
    station.sim(cmd="swipe", id_tag="TAG1")
    csms.wait_until(lambda: any(a == "StopTransaction" for a, _ in station.queued()), what="queued stop")
    queued = station.queued()
    mark = csms.mark()
    go_online(csms)
    stop = csms.wait_for("StopTransaction", after=mark, timeout=20)
    replayed = [r for r in csms.received[mark:] if r.action in ("MeterValues", "StopTransaction")]
    assert [r.payload["meterValue"] if r.action == "MeterValues" else r.action for r in replayed] == \
        [p["meterValue"] if a == "MeterValues" else a for a, p in queued]  # the same messages, in order
    assert all(r.payload["transactionId"] == 1 for r in replayed)
    stamps = _periodic_timestamps(replayed)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert stop.payload["reason"] == "Local" and stop.payload["meterStop"] >= start.payload["meterStart"]
    # The one message possibly in flight when the link dropped may come again, with its own id.
    ids = [r.unique_id for r in csms.received]
    assert len(ids) - len(set(ids)) <= 1
    csms.wait_until(lambda: station.queued() == [], what="an empty queue")


def test_transaction_started_and_stopped_offline_gets_its_real_transaction_id(csms, make_station):
    csms.next_transaction_id = 42
    station = make_station(configuration={"AllowOfflineTxForUnknownId": True, "MeterValueSampleInterval": 1})
    csms.wait_count("StatusNotification", 2)
    go_offline(csms)
    station.sim(cmd="plug", connector=1)
    station.sim(cmd="swipe", id_tag="OFFLINE")
    csms.wait_until(lambda: any(a == "StartTransaction" for a, _ in station.queued()), what="queued start")
    csms.wait_until(lambda: station.state()["contactor"], what="charging offline")
    csms.wait_until(lambda: len(station.queued()) >= 2, what="a queued MeterValues")
    station.sim(cmd="swipe", id_tag="OFFLINE")
    csms.wait_until(lambda: any(a == "StopTransaction" for a, _ in station.queued()), what="queued stop")
    offline_start = [p for a, p in station.queued() if a == "StartTransaction"][0]
    mark = csms.mark()
    go_online(csms)
    stop = csms.wait_for("StopTransaction", after=mark, timeout=20)
    tx = [r for r in csms.received[mark:] if r.action in ("StartTransaction", "MeterValues", "StopTransaction")]
    assert tx[0].action == "StartTransaction" and tx[-1].action == "StopTransaction"
    assert tx[0].payload["timestamp"] == offline_start["timestamp"]  # the time it really started
    assert all(r.payload["transactionId"] == 42 for r in tx[1:])
    assert stop.payload["idTag"] == "OFFLINE"


def test_failed_transaction_message_is_retried_then_dropped_and_later_ones_use_minus_one(csms, make_station):
    """OCPP 1.6 §3.7.1 and errata 3.18: a StartTransaction that never got a conf leaves transactionId -1."""
    station = make_station(configuration={"TransactionMessageAttempts": 2, "TransactionMessageRetryInterval": 1,
                                          "MessageTimeout": 1})
    csms.wait_count("StatusNotification", 2)
    csms.silent = True  # the CSMS takes messages and never answers
    station.sim(cmd="plug", connector=1)
    csms.wait_for("StatusNotification", lambda p: p["status"] == "Preparing")
    csms.silent = False
    csms.authorize_status = {}
    mark = csms.mark()
    station.sim(cmd="swipe", id_tag="TAG1")
    csms.wait_for("Authorize", after=mark)
    csms.silent = True
    first = csms.wait_for("StartTransaction", after=mark)
    second = csms.wait_for("StartTransaction", after=csms.received.index(first) + 1, timeout=15)
    assert second.unique_id == first.unique_id  # a re-send keeps its message id (OCPP-J errata 2025-04 §3.1)
    assert second.time - first.time >= 1.5  # MessageTimeout 1 s + retry interval 1 s × 1
    csms.wait_until(lambda: not any(a == "StartTransaction" for a, _ in station.queued()), timeout=15,
                    what="StartTransaction dropped after 2 attempts")
    csms.silent = False
    mark = csms.mark()
    station.sim(cmd="swipe", id_tag="TAG1")
    stop = csms.wait_for("StopTransaction", after=mark, timeout=20)
    assert stop.payload["transactionId"] == -1
