"""OCTT 1.6 Remote Trigger: TC_054 Trigger Message, TC_055 Trigger Message – Rejected (OCPP 1.6 §5.17,
§4.2; errata 3.35/3.40). The answer goes out before the message it asks for."""

import json

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import M, SN, expect_sequence, note_triggered, start_fresh

pytestmark = pytest.mark.timeout(90)


def _frame_index(csms, message_type: int, unique_id: str) -> int:
    """Where the station's frame [message_type, unique_id, ...] is among all it sent."""
    for i, frame in enumerate(csms.frames_in):
        msg = json.loads(frame.text)
        if msg[0] == message_type and msg[1] == unique_id:
            return i
    raise AssertionError(f"no frame [{message_type}, {unique_id!r}, ...] from the station")


def _last_trigger_id(csms) -> str:
    return next(m[1] for m in (json.loads(f.text) for f in reversed(csms.frames_out))
                if m[0] == 2 and m[2] == "TriggerMessage")


def _answer_then(csms, request, expected_status, steps, **wait):
    """Send `request`: its answer is `expected_status`, then come `steps` and nothing else; the answer went
    out before the first of them (§5.17)."""
    after = csms.mark()
    assert csms.call(request).status == expected_status
    records = expect_sequence(csms, after, steps, exact=True, ignore=frozenset(), **wait)  # Heartbeat is asked for
    answer = _frame_index(csms, 3, _last_trigger_id(csms))
    assert all(answer < _frame_index(csms, 2, r.unique_id) for r in records), "a message before the answer"
    return records


def test_tc_054_trigger_message(csms, make_station):
    """MeterValues(connector 1), Heartbeat, StatusNotification(connector 1) and
    DiagnosticsStatusNotification: each Accepted, then that message (DiagnosticsStatusNotification with
    status Idle); FirmwareStatusNotification: Accepted, then status Idle."""
    start_fresh(make_station, csms)
    [mv] = _answer_then(csms, call.TriggerMessage(requested_message="MeterValues", connector_id=1), "Accepted",
                        [M("MeterValues", connectorId=1)])
    assert mv.payload["meterValue"][0]["sampledValue"][0]["context"] == "Trigger"
    note_triggered(csms, "TriggerMessage", mv)
    _answer_then(csms, call.TriggerMessage(requested_message="Heartbeat"), "Accepted", [M("Heartbeat")])
    _answer_then(csms, call.TriggerMessage(requested_message="StatusNotification", connector_id=1), "Accepted",
                 [SN(1, "Available")])
    _answer_then(csms, call.TriggerMessage(requested_message="DiagnosticsStatusNotification"), "Accepted",
                 [M("DiagnosticsStatusNotification", status="Idle")])
    _answer_then(csms, call.TriggerMessage(requested_message="FirmwareStatusNotification"), "Accepted",
                 [M("FirmwareStatusNotification", status="Idle")])


def test_tc_055_trigger_message_rejected(csms, make_station):
    """MeterValues for connectorId = NumberOfConnectors + 1 → Rejected, and nothing is sent."""
    start_fresh(make_station, csms, connectors=2)
    after = csms.mark()
    assert csms.call(call.TriggerMessage(requested_message="MeterValues", connector_id=3)).status == "Rejected"
    expect_sequence(csms, after, [], exact=True)


def test_trigger_status_notification_without_connector_reports_the_station_and_every_connector(csms, make_station):
    start_fresh(make_station, csms, connectors=2)
    _answer_then(csms, call.TriggerMessage(requested_message="StatusNotification"), "Accepted",
                 [SN(0, "Available"), SN(1, "Available"), SN(2, "Available")])


def test_after_boot_is_accepted_a_boot_notification_trigger_is_rejected(csms, make_station):
    """Errata 3.35/3.40: the CSMS has the station's BootNotification already."""
    start_fresh(make_station, csms)
    after = csms.mark()
    assert csms.call(call.TriggerMessage(requested_message="BootNotification")).status == "Rejected"
    expect_sequence(csms, after, [], exact=True)


def test_while_boot_is_pending_only_triggered_messages_go_out_and_a_triggered_boot_comes_at_once(csms, make_station):
    """OCPP 1.6 §4.2: Pending, the station sends nothing of its own until the retry interval (60 s here),
    but what TriggerMessage asks for; a triggered BootNotification comes now, and is Accepted."""
    csms.boot_response = [("Pending", 60), ("Accepted", 300)]
    station = make_station()
    expect_sequence(csms, 0, [M("BootNotification")])
    station.sim(cmd="plug", connector=1)  # a status change that must not be reported while Pending
    _answer_then(csms, call.TriggerMessage(requested_message="StatusNotification", connector_id=1), "Accepted",
                 [SN(1, "Preparing")])
    _answer_then(csms, call.TriggerMessage(requested_message="Heartbeat"), "Accepted", [M("Heartbeat")])
    after = csms.mark()
    assert csms.call(call.TriggerMessage(requested_message="BootNotification")).status == "Accepted"
    boot, *_ = expect_sequence(csms, after, [M("BootNotification"), SN(0, "Available"), SN(1, "Preparing")],
                               timeout=5)
    assert _frame_index(csms, 3, _last_trigger_id(csms)) < _frame_index(csms, 2, boot.unique_id)
