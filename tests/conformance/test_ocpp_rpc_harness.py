"""The ocpp-rpc test CSMS itself (tests/support/rpc_csms.py): what its call() reports, and that
strict mode guards what it sends."""

import pytest

from tests.support.rpc_csms import RpcCallError, make_rpc_station, rpc_csms  # noqa: F401  (fixtures)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def station(rpc_csms, make_rpc_station):
    s = make_rpc_station()
    rpc_csms.wait_count("StatusNotification", 2)
    return s


def test_a_call_error_from_the_station_raises_rpc_call_error_with_its_wire_code(rpc_csms, station):
    with pytest.raises(RpcCallError) as info:  # a valid 1.6 action this station does not handle
        rpc_csms.call("UpdateFirmware", {"location": "ftp://example.com/fw.bin",
                                         "retrieveDate": "2026-01-01T00:00:00Z"})
    assert info.value.code == "NotSupported"


def test_strict_mode_refuses_to_send_an_invalid_payload(rpc_csms, station):
    with pytest.raises(AssertionError, match="was not sent"):
        rpc_csms.call("ChangeConfiguration", {"key": "HeartbeatInterval"})  # "value" missing
    failures = rpc_csms.strict_failures
    rpc_csms.clear_strict_failures()  # expected here; the fixture fails a test on any other
    assert [(f["action"], f["outbound"], f["isCall"]) for f in failures] == [("ChangeConfiguration", True, True)]
    assert not [t for t in rpc_csms.frames(outbound=True) if "ChangeConfiguration" in t]


@pytest.mark.parametrize("rpc_csms", [{"ping_interval_s": 0.2}], indirect=True)
def test_the_station_answers_ocpp_rpc_keep_alive_pings_and_stays_connected(rpc_csms, station):
    # ocpp-rpc terminates a connection whose pong is missing when the next ping is due.
    rpc_csms.wait_until(lambda: len(rpc_csms.pongs()) >= 10, timeout=10, what="10 pongs")
    assert rpc_csms.connections == 1 and rpc_csms.connected("CP001")
    assert rpc_csms.call("GetConfiguration", {"key": ["NumberOfConnectors"]})["configurationKey"][0]["value"] == "1"


def test_a_call_error_from_ocpp_rpc_is_a_failed_attempt_whatever_its_code(rpc_csms, make_rpc_station):
    # ocpp-rpc spells this code OccurrenceConstraintViolation on the wire even for OCPP 1.6; the
    # station must not care which code a CALLERROR has: StartTransaction is retried.
    station = make_rpc_station(configuration={"TransactionMessageRetryInterval": 1})
    rpc_csms.wait_count("StatusNotification", 2)
    rpc_csms.configure(fail_next=("StartTransaction", "OccurenceConstraintViolation"))
    station.sim(cmd="plug", connector=1)
    station.sim(cmd="swipe", id_tag="TAG1")
    starts = rpc_csms.wait_count("StartTransaction", 2, timeout=15)
    assert starts[0].unique_id == starts[1].unique_id  # a re-send keeps its message id
    refused = [x for x in rpc_csms.lines if x.get("dir") == "out_error"]
    assert [(x["action"], x["code"]) for x in refused] == [("StartTransaction", "OccurrenceConstraintViolation")]
    mark = rpc_csms.mark()
    station.sim(cmd="swipe", id_tag="TAG1")
    assert rpc_csms.wait_for("StopTransaction", after=mark).payload["transactionId"] == 1
