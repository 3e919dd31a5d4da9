"""Tests for the test CSMS (tests/support/csms.py), with websocket-client as the station."""

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import websocket
from ocpp.exceptions import FormatViolationError, NotSupportedError
from ocpp.v16 import call

from tests.support.csms import Csms, free_port

pytestmark = pytest.mark.timeout(20)

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}


@pytest.fixture
def csms():
    with Csms() as server:
        yield server


@pytest.fixture
def pool():
    with ThreadPoolExecutor(max_workers=2) as executor:
        yield executor


def connect(csms, cp_id="CP1", **kwargs):
    kwargs.setdefault("subprotocols", ["ocpp1.6"])
    return websocket.create_connection(f"{csms.url}/{cp_id}", timeout=10, **kwargs)


def rpc(ws, unique_id, action, payload):
    ws.send(json.dumps([2, unique_id, action, payload]))
    return json.loads(ws.recv())


def status_code_of(csms, cp_id="CP1", **kwargs):
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        connect(csms, cp_id, **kwargs)
    return info.value.status_code


def basic(user, password):
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return [f"Authorization: Basic {token}"]


def test_boot_accepted_and_recorded(csms):
    ws = connect(csms)
    assert ws.subprotocol == "ocpp1.6"
    reply = rpc(ws, "b1", "BootNotification", BOOT)
    assert reply[:2] == [3, "b1"]
    assert reply[2]["status"] == "Accepted" and reply[2]["interval"] == 10
    assert reply[2]["currentTime"].endswith("Z")
    got = csms.wait_for("BootNotification")
    assert (got.charge_point_id, got.unique_id, got.payload) == ("CP1", "b1", BOOT)
    assert csms.connections == 1 and csms.connected("CP1") and csms.connected()
    ws.close()


def test_boot_response_sequence_last_one_repeats(csms):
    csms.boot_response = [("Pending", 5), ("Accepted", 300)]
    ws = connect(csms)
    replies = [rpc(ws, f"b{i}", "BootNotification", BOOT)[2] for i in range(3)]
    assert [(r["status"], r["interval"]) for r in replies] == [
        ("Pending", 5), ("Accepted", 300), ("Accepted", 300)]
    assert len(csms.wait_count("BootNotification", 3)) == 3
    ws.close()


def test_core_actions_are_answered(csms):
    csms.authorize_status = {"BAD": "Invalid"}
    csms.parent_id = {"TAG": "PARENT"}
    csms.start_transaction_status = {"TAG2": "ConcurrentTx"}
    ws = connect(csms)
    assert "currentTime" in rpc(ws, "1", "Heartbeat", {})[2]
    assert rpc(ws, "2", "StatusNotification", {
        "connectorId": 1, "errorCode": "NoError", "status": "Available"}) == [3, "2", {}]
    assert rpc(ws, "3", "Authorize", {"idTag": "BAD"})[2] == {"idTagInfo": {"status": "Invalid"}}
    assert rpc(ws, "4", "Authorize", {"idTag": "TAG"})[2] == {
        "idTagInfo": {"status": "Accepted", "parentIdTag": "PARENT"}}
    start = {"connectorId": 1, "idTag": "TAG", "meterStart": 0,
             "timestamp": "2024-01-01T00:00:00Z"}
    assert rpc(ws, "5", "StartTransaction", start)[2]["transactionId"] == 1
    second = rpc(ws, "6", "StartTransaction", dict(start, idTag="TAG2"))[2]
    assert second == {"transactionId": 2, "idTagInfo": {"status": "ConcurrentTx"}}
    assert csms.next_transaction_id == 3
    stop = {"transactionId": 1, "meterStop": 10, "timestamp": "2024-01-01T01:00:00Z"}
    assert rpc(ws, "7", "StopTransaction", stop) == [3, "7", {}]
    assert rpc(ws, "8", "StopTransaction", dict(stop, idTag="BAD"))[2] == {
        "idTagInfo": {"status": "Invalid"}}
    meter = {"connectorId": 1, "meterValue": [
        {"timestamp": "2024-01-01T00:30:00Z", "sampledValue": [{"value": "5"}]}]}
    assert rpc(ws, "9", "MeterValues", meter) == [3, "9", {}]
    assert rpc(ws, "10", "DataTransfer", {"vendorId": "X"})[2] == {"status": "UnknownVendorId"}
    csms.data_transfer_response = lambda req: {"status": "Accepted", "data": req["vendor_id"]}
    assert rpc(ws, "11", "DataTransfer", {"vendorId": "X"})[2] == {
        "status": "Accepted", "data": "X"}
    assert rpc(ws, "12", "DiagnosticsStatusNotification", {"status": "Idle"}) == [3, "12", {}]
    assert rpc(ws, "13", "FirmwareStatusNotification", {"status": "Idle"}) == [3, "13", {}]
    assert [r.unique_id for r in csms.received] == [str(i) for i in range(1, 14)]
    ws.close()


def test_invalid_calls_get_ocpp_package_call_errors(csms):
    ws = connect(csms)
    cases = [
        ("StatusNotification", {"connectorId": 1}, "ProtocolError"),  # missing required
        ("StatusNotification", {"connectorId": "1", "errorCode": "NoError",
                                "status": "Available"}, "TypeConstraintViolation"),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                "status": "Bogus"}, "FormatViolation"),  # bad enum
        ("Heartbeat", {"extra": 1}, "FormatViolation"),  # additional property
        ("Authorize", {"idTag": "X" * 21}, "TypeConstraintViolation"),  # maxLength
        ("Reset", {"type": "Soft"}, "NotImplemented"),  # 1.6 action, no CSMS handler
        ("Bogus", {}, "NotSupported"),
    ]
    for i, (action, payload, code) in enumerate(cases):
        reply = rpc(ws, f"e{i}", action, payload)
        assert reply[:3] == [4, f"e{i}", code], (action, payload, reply)
    # Unparseable frames are ignored by the ocpp package: no reply at all.
    ws.send("not json")
    ws.send('[2, "short"]')
    assert rpc(ws, "hb", "Heartbeat", {})[:2] == [3, "hb"]
    assert "not json" in [f.text for f in csms.frames_in]
    ws.close()


def test_wait_for_predicate_after_and_timeout_message(csms):
    ws = connect(csms)
    for i, status in enumerate(["Available", "Preparing", "Available"]):
        rpc(ws, f"s{i}", "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": status})
    first = csms.wait_for("StatusNotification", lambda p: p["status"] == "Available")
    assert first.unique_id == "s0"
    later = csms.wait_for("StatusNotification", lambda p: p["status"] == "Available", after=1)
    assert later.unique_id == "s2"
    mark = csms.mark()
    assert mark == 3
    with pytest.raises(AssertionError, match=r"StatusNotification(.|\n)*Preparing"):
        csms.wait_for("StatusNotification", after=mark, timeout=0.2)
    rpc(ws, "s3", "StatusNotification", {"connectorId": 1, "errorCode": "NoError",
                                         "status": "Charging"})
    assert csms.wait_for("StatusNotification", after=mark).payload["status"] == "Charging"
    ws.close()


def test_call_get_configuration(csms, pool):
    ws = connect(csms)
    csms.wait_connected()
    future = pool.submit(csms.call, call.GetConfiguration(key=["HeartbeatInterval"]))
    request = json.loads(ws.recv())
    assert request[0] == 2 and request[2:] == ["GetConfiguration", {"key": ["HeartbeatInterval"]}]
    ws.send(json.dumps([3, request[1], {"configurationKey": [
        {"key": "HeartbeatInterval", "readonly": False, "value": "10"}]}]))
    result = future.result(10)
    assert result.configuration_key == [{"key": "HeartbeatInterval", "readonly": False,
                                         "value": "10"}]
    assert [json.loads(f.text)[1] for f in csms.frames_out] == [request[1]]
    ws.close()


def test_call_error_and_invalid_response_raise(csms, pool):
    ws = connect(csms)
    csms.wait_connected()
    future = pool.submit(csms.call, call.Reset(type="Soft"))
    request = json.loads(ws.recv())
    ws.send(json.dumps([4, request[1], "NotSupported", "no", {}]))
    with pytest.raises(NotSupportedError):
        future.result(10)
    future = pool.submit(csms.call, call.Reset(type="Soft"))
    request = json.loads(ws.recv())
    ws.send(json.dumps([3, request[1], {"status": "Maybe"}]))  # not in the enum
    with pytest.raises(FormatViolationError):
        future.result(10)
    ws.close()


def test_call_timeout_raises_assertion(csms):
    ws = connect(csms)
    csms.wait_connected()
    with pytest.raises(AssertionError, match="No response from CP1 to ClearCache"):
        csms.call(call.ClearCache(), timeout=0.3)
    assert json.loads(ws.recv())[2] == "ClearCache"
    ws.close()


def test_send_raw_and_next_raw_reply(csms, pool):
    ws = connect(csms)
    csms.wait_connected()
    csms.send_raw('[2,"raw-1","Reset",{"type":"Hard"}]')
    assert json.loads(ws.recv()) == [2, "raw-1", "Reset", {"type": "Hard"}]
    ws.send('[4,"raw-1","FormationViolation","bad",{}]')
    assert csms.next_raw_reply("raw-1") == [4, "raw-1", "FormationViolation", "bad", {}]
    with pytest.raises(AssertionError, match="raw-2"):
        csms.next_raw_reply("raw-2", timeout=0.2)
    # The raw reply did not end up in the ocpp package's response queue.
    future = pool.submit(csms.call, call.ClearCache())
    request = json.loads(ws.recv())
    ws.send(json.dumps([3, request[1], {"status": "Accepted"}]))
    assert future.result(10).status == "Accepted"
    ws.close()


def test_silent_mode_records_but_never_answers(csms):
    ws = connect(csms)
    csms.silent = True
    ws.send(json.dumps([2, "h1", "Heartbeat", {}]))
    csms.wait_for("Heartbeat")
    csms.silent = False
    assert rpc(ws, "h2", "Heartbeat", {})[:2] == [3, "h2"]  # nothing came for h1
    assert [json.loads(f.text)[1] for f in csms.frames_out] == ["h2"]
    ws.close()


def test_disconnect_and_reconnect(csms):
    ws = connect(csms)
    csms.wait_connected(cp_id="CP1")
    csms.disconnect()
    assert not csms.connected("CP1")
    frame = ws.recv_data_frame()[1]  # the server's Close frame
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
    ws.shutdown()  # websocket-client: close() is a no-op after the peer's Close frame
    ws = connect(csms)
    csms.wait_connected(cp_id="CP1")
    assert csms.connections == 2
    csms.disconnect(abort=True)
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        ws.recv()
    ws.shutdown()
    ws = connect(csms)
    csms.wait_connected()
    assert csms.connections == 3
    ws.close()
    csms.wait_disconnected(cp_id="CP1")


def test_refuse_connections(csms):
    csms.refuse_connections = True
    assert status_code_of(csms) == 503
    assert csms.refused == 1 and csms.connections == 0
    csms.refuse_connections = False
    connect(csms).close()
    assert csms.connections == 1


def test_start_fails_cleanly_when_the_port_is_taken(csms):
    with pytest.raises(OSError):
        Csms(port=csms.port).start()


def test_basic_auth():
    with Csms(port=free_port(), basic_auth={"CP1": "secret"}) as csms:
        assert status_code_of(csms) == 401
        assert status_code_of(csms, header=basic("CP1", "wrong")) == 401
        assert status_code_of(csms, header=basic("CP2", "secret")) == 401
        assert status_code_of(csms, "CP2", header=basic("CP2", "secret")) == 401
        ws = connect(csms, header=basic("CP1", "secret"))
        csms.wait_connected(cp_id="CP1")
        ws.close()


def test_unknown_id_bad_path_and_missing_subprotocol_are_refused(csms):
    csms.known_ids = {"CP1"}
    assert status_code_of(csms, "CP2") == 404
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(csms.url.replace("/ocpp", "/other/CP1"),
                                    subprotocols=["ocpp1.6"], timeout=10)
    assert info.value.status_code == 404
    assert status_code_of(csms, subprotocols=None) == 400
    assert status_code_of(csms, subprotocols=["ocpp2.0.1"]) == 400
    assert csms.connections == 0
    connect(csms).close()


def test_two_stations_log_lines_and_targeted_calls(csms, pool):
    lines = []
    csms.log = lines.append
    ws1, ws2 = connect(csms, "CP1"), connect(csms, "CP2")
    csms.wait_connected(cp_id="CP1")
    csms.wait_connected(cp_id="CP2")
    rpc(ws1, "b1", "BootNotification", BOOT)
    future = pool.submit(csms.call, call.ClearCache(), cp_id="CP1")
    request = json.loads(ws1.recv())
    ws1.send(json.dumps([3, request[1], {"status": "Rejected"}]))
    assert future.result(10).status == "Rejected"
    assert any(" CP1 <- [2,\"b1\"" in line.replace(", ", ",") for line in lines)
    assert any(" CP1 -> [3,\"b1\"" in line for line in lines)
    assert any("ClearCache" in line and " -> " in line for line in lines)
    assert all(f.charge_point_id == "CP1" for f in csms.frames_in)
    ws1.close()
    ws2.close()
    csms.wait_disconnected()
