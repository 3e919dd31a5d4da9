"""Link: the OCPP-J connection actor, with a fake connection and probes for handlers and callers."""

from __future__ import annotations

import dataclasses
import json

import pytest

from actors.link.actor import Link
from actors.shell.settings import CsmsSettings
from actors.infra.ticker import ManualScheduler
from messages.events import (CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline, HealthCheck, LinkDown,
                             LinkUp, LinkWiring, RegistrationStatusChanged, SendCall, SocketClosed, SocketOpened)
from messages.frozen import FrozenDict, freeze
from messages.requests import ChangeConfiguration, CsmsRequest, GetConfiguration
from tests.unit.fakes import FakeConnection, Probe, sync, wire

pytestmark = pytest.mark.timeout(20)

CSMS = CsmsSettings("ws://csms.invalid/ocpp", None, None, None, None, 65536, 1.0, 60.0)
NOW = "2025-03-04T05:06:07.000Z"


class Rig:
    def __init__(self, message_timeout_s=30.0):
        self.scheduler = ManualScheduler()
        self.connections: list[FakeConnection] = []

        def factory(*args):
            conn = FakeConnection(*args)
            self.connections.append(conn)
            return conn

        self.link = Link.start(CSMS, "CP1", message_timeout_s, 60.0, self.scheduler, factory)
        self.handler = Probe()
        self.subscriber = Probe()
        self.caller = Probe()
        routes = FrozenDict({"GetConfiguration": self.handler.ref, "ChangeConfiguration": self.handler.ref,
                             "RemoteStartTransaction": self.handler.ref})
        wire(self.link, {(LinkUp, LinkDown): self.subscriber})
        self.link.tell(LinkWiring(routes))
        sync(self.link)
        self.conn = self.connections[0]

    def online(self, accepted=True):
        self.link.tell(SocketOpened(1))
        if accepted:
            self.link.tell(CsmsOnline(True, registered=True))
        self.subscriber.expect(LinkUp)
        sync(self.link)

    def call(self, action="Heartbeat", payload=None, **kw) -> None:
        self.link.tell(SendCall(action, freeze(payload or {}), self.caller.ref, kw.pop("tag", action), **kw))

    def inbound(self, frame) -> None:
        self.conn.on_text(frame if isinstance(frame, str) else json.dumps(frame), 1)

    def change_request(self, uid: str) -> ChangeConfiguration:
        """A ChangeConfiguration from the CSMS as its handler gets it (its reply_to is the link's Replier)."""
        self.inbound([2, uid, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}])
        request = self.handler.expect(ChangeConfiguration)
        assert request.unique_id == uid
        return request

    def advance(self, seconds: float) -> None:
        sync(self.link)  # its response timer is armed before the clock moves
        self.scheduler.advance(seconds)

    def settled(self) -> None:
        """Everything told so far is handled (frames injected by the test end up as link messages)."""
        sync(self.link)


@pytest.fixture
def rig():
    return Rig()


# --- wiring ------------------------------------------------------------------------------------


def test_the_socket_starts_only_once_the_link_is_wired(rig):
    assert rig.conn.started
    assert rig.conn.cp_id == "CP1" and rig.conn.ping_interval_s == 60.0


def test_socket_open_and_close_are_told_to_subscribers(rig):
    rig.link.tell(SocketOpened(1))
    rig.subscriber.expect(LinkUp)
    rig.link.tell(SocketClosed(1, "x"))
    assert rig.subscriber.expect(LinkDown).reason == "x"


def test_a_close_of_an_older_socket_is_ignored(rig):
    rig.link.tell(SocketOpened(2))
    rig.subscriber.expect(LinkUp)
    rig.link.tell(SocketClosed(1, "stale"))
    rig.settled()
    rig.subscriber.expect_none(LinkDown)


# --- inbound CALLs -----------------------------------------------------------------------------


def test_a_valid_call_is_routed_to_its_handler_with_a_frozen_payload(rig):
    rig.inbound([2, "u1", "GetConfiguration", {"key": ["HeartbeatInterval"]}])
    received = rig.handler.expect(GetConfiguration)  # the typed request, made once at the link
    assert (received.unique_id, received.ACTION) == ("u1", "GetConfiguration")
    assert received.keys == ("HeartbeatInterval",)  # frozen: a tuple, not the JSON list
    with pytest.raises(dataclasses.FrozenInstanceError):
        received.keys = ()
    assert rig.conn.nothing_sent()
    # reply_to answers straight on the connection, from the handler's thread
    received.reply(configurationKey=[])
    assert rig.conn.next_sent() == [3, "u1", {"configurationKey": []}]


def test_an_unknown_action_is_answered_not_implemented(rig):
    rig.inbound([2, "u2", "MakeCoffee", {}])
    frame = rig.conn.next_sent()
    assert frame[:3] == [4, "u2", "NotImplemented"]
    rig.handler.expect_none(CsmsRequest)


def test_a_known_action_without_a_handler_is_answered_not_supported(rig):
    rig.inbound([2, "u3", "Reset", {"type": "Soft"}])
    frame = rig.conn.next_sent()
    assert frame[:3] == [4, "u3", "NotSupported"]
    assert len(frame) == 5 and frame[4] == {}


@pytest.mark.parametrize("payload, code", [
    ({"key": "HeartbeatInterval", "value": 5}, "TypeConstraintViolation"),
    ({"key": "HeartbeatInterval"}, "OccurenceConstraintViolation"),
    ({"key": "HeartbeatInterval", "value": "5", "extra": 1}, "FormationViolation"),
    ({"key": "K" * 51, "value": "5"}, "PropertyConstraintViolation"),
])
def test_a_call_that_breaks_its_schema_is_answered_with_the_matching_error(rig, payload, code):
    rig.inbound([2, "u4", "ChangeConfiguration", payload])
    frame = rig.conn.next_sent()
    assert frame[:3] == [4, "u4", code]
    rig.handler.expect_none(CsmsRequest)


def test_malformed_json_is_answered_formation_violation(rig):
    rig.inbound('[2, "u5", "GetConfiguration", {')
    frame = rig.conn.next_sent()
    assert frame[:3] == [4, "u5", "FormationViolation"]
    rig.handler.expect_none(CsmsRequest)


# Handlers answer through the request's reply_to (the link's Replier), no longer through the Link actor.


def test_a_reply_result_is_encoded_and_sent(rig):
    rig.change_request("u6").reply(status="Accepted")
    assert rig.conn.next_sent() == [3, "u6", {"status": "Accepted"}]


def test_an_invalid_reply_result_becomes_internal_error(rig):
    rig.change_request("u7").reply(status="Maybe")
    frame = rig.conn.next_sent()
    assert frame[:3] == [4, "u7", "InternalError"]


def test_a_reply_error_is_encoded_and_sent(rig):
    rig.change_request("u8").fail("OccurenceConstraintViolation", "too many keys")
    assert rig.conn.next_sent() == [4, "u8", "OccurenceConstraintViolation", "too many keys", {}]


def test_a_replier_returns_once_its_answer_is_written_or_after_the_hand_over_bound():
    import threading
    import time
    from actors.link.actor import HANDOVER_S, Replier
    from messages.events import ReplyResult

    held: list[threading.Lock] = []
    released = threading.Event()

    def send(text, written):
        held.append(written)
        threading.Timer(0.05, lambda: (written.release(), released.set())).start()  # the writer, later
        return True

    started = time.monotonic()
    Replier(send).tell(ReplyResult("u9", "ClearCache", freeze({"status": "Accepted"})))
    assert released.is_set() or time.monotonic() - started >= HANDOVER_S  # it waited for the writer, boundedly
    released.wait(1.0)

    never = Replier(lambda text, written: True)  # a writer that never gets to it
    started = time.monotonic()
    never.tell(ReplyResult("u10", "ClearCache", freeze({"status": "Accepted"})))
    assert time.monotonic() - started < 1.0  # bounded: HANDOVER_S, not forever


# --- outbound CALLs ----------------------------------------------------------------------------


def test_a_call_result_for_the_call_in_flight_is_answered_to_the_caller(rig):
    rig.online()
    rig.call("Heartbeat", tag="hb")
    frame = rig.conn.next_sent()
    assert frame[0] == 2 and frame[2:] == ["Heartbeat", {}]
    rig.inbound([3, frame[1], {"currentTime": NOW}])
    answered = rig.caller.expect(CallAnswered)
    assert (answered.action, answered.tag, answered.unique_id) == ("Heartbeat", "hb", frame[1])
    assert answered.payload == {"currentTime": NOW} and isinstance(answered.payload, FrozenDict)


def test_a_call_error_is_told_as_call_failed(rig):
    rig.online()
    rig.call("Heartbeat")
    frame = rig.conn.next_sent()
    rig.inbound([4, frame[1], "InternalError", "oops", {}])
    failed = rig.caller.expect(CallFailed)
    assert (failed.reason, failed.error_code, failed.description, failed.unique_id) == \
        ("CallError", "InternalError", "oops", frame[1])


def test_an_answer_that_breaks_the_response_schema_is_told_as_invalid(rig):
    rig.online()
    rig.call("Heartbeat")
    frame = rig.conn.next_sent()
    rig.inbound([3, frame[1], {}])
    failed = rig.caller.expect(CallFailed)
    assert failed.reason == "Invalid" and failed.error_code == "OccurenceConstraintViolation"
    rig.caller.expect_none(CallAnswered)


def test_an_answer_to_an_unknown_id_is_ignored(rig):
    rig.online()
    rig.call("Heartbeat")
    frame = rig.conn.next_sent()
    rig.inbound([3, "not-" + frame[1][:30], {"currentTime": NOW}])
    rig.settled()
    rig.caller.expect_none((CallAnswered, CallFailed))


def test_only_one_call_is_in_flight_and_the_next_waits_for_the_answer(rig):
    rig.online()
    rig.call("Heartbeat", tag=1)
    rig.call("Heartbeat", tag=2)
    first = rig.conn.next_sent()
    rig.settled()
    assert rig.conn.nothing_sent()
    rig.inbound([3, first[1], {"currentTime": NOW}])
    assert rig.caller.expect(CallAnswered).tag == 1
    second = rig.conn.next_sent()
    assert second[1] != first[1]
    rig.inbound([3, second[1], {"currentTime": NOW}])
    assert rig.caller.expect(CallAnswered).tag == 2


def test_no_answer_within_the_message_timeout_fails_the_call_and_lets_the_next_go(rig):
    rig.online()
    rig.call("Heartbeat", tag=1)
    rig.call("Heartbeat", tag=2)
    first = rig.conn.next_sent()
    rig.advance(29)
    rig.settled()
    rig.caller.expect_none(CallFailed)
    rig.advance(1)
    failed = rig.caller.expect(CallFailed)
    assert (failed.reason, failed.tag, failed.unique_id) == ("Timeout", 1, first[1])
    second = rig.conn.next_sent()
    assert second[0] == 2 and second[1] != first[1]


def test_a_late_answer_after_the_timeout_is_ignored(rig):
    rig.online()
    rig.call("Heartbeat")
    first = rig.conn.next_sent()
    rig.advance(30)
    rig.caller.expect(CallFailed)
    rig.inbound([3, first[1], {"currentTime": NOW}])
    rig.settled()
    rig.caller.expect_none(CallAnswered)


def test_a_changed_message_timeout_applies_to_the_next_call(rig):
    rig.link.tell(ConfigurationChanged("MessageTimeout", 5))
    rig.online()
    rig.call("Heartbeat")
    rig.conn.next_sent()
    rig.advance(5)
    assert rig.caller.expect(CallFailed).reason == "Timeout"


def test_before_registration_only_before_boot_calls_go_out_and_others_fail_at_once(rig):
    """OCPP 1.6 §4.2: until Accepted nothing but BootNotification is sent; a call made meanwhile fails at
    once (its caller keeps or drops it), so nothing piles up in the link while Pending or Rejected."""
    rig.online(accepted=False)
    rig.call("Heartbeat", tag="hb")
    failed = rig.caller.expect(CallFailed)
    assert (failed.action, failed.reason, failed.tag) == ("Heartbeat", "Disconnected", "hb")
    rig.call("BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}, tag="boot",
             before_boot=True)
    boot = rig.conn.next_sent()
    assert boot[2] == "BootNotification"
    rig.inbound([3, boot[1], {"status": "Pending", "currentTime": NOW, "interval": 10}])
    rig.caller.expect(CallAnswered)
    rig.settled()
    assert rig.conn.nothing_sent()
    rig.link.tell(CsmsOnline(True, registered=True))
    rig.call("Heartbeat", tag="hb2")
    assert rig.conn.next_sent()[2] == "Heartbeat"


def test_while_rejected_no_csms_request_is_answered(rig):
    """OCPP 1.6 §4.2: a Rejected station does not respond to any CSMS-initiated message."""
    rig.online(accepted=False)
    rig.link.tell(RegistrationStatusChanged("Rejected"))
    rig.settled()
    rig.inbound([2, "c1", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}])
    rig.inbound([2, "c2", "NoSuchAction", {}])
    rig.inbound("not json")
    rig.settled()
    assert rig.conn.nothing_sent()
    rig.handler.expect_none(ChangeConfiguration)
    rig.link.tell(RegistrationStatusChanged("Pending"))  # Pending: the CSMS may configure the station
    rig.settled()
    rig.inbound([2, "c3", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}])
    assert rig.handler.expect(ChangeConfiguration).unique_id == "c3"


def test_a_call_while_offline_fails_at_once_as_disconnected(rig):
    rig.call("Heartbeat", tag="hb", unique_id="keep-1")
    failed = rig.caller.expect(CallFailed)
    assert (failed.reason, failed.tag, failed.unique_id) == ("Disconnected", "hb", "keep-1")
    assert rig.conn.nothing_sent()


def test_a_closed_socket_fails_the_call_in_flight_and_the_waiting_ones(rig):
    rig.online()
    rig.call("Heartbeat", tag=1)
    rig.call("Heartbeat", tag=2)
    first = rig.conn.next_sent()
    rig.link.tell(SocketClosed(1, "x"))
    failed = [rig.caller.expect(CallFailed), rig.caller.expect(CallFailed)]
    assert [(f.tag, f.reason) for f in failed] == [(1, "Disconnected"), (2, "Disconnected")]
    assert failed[0].unique_id == first[1]
    rig.subscriber.expect(LinkDown)
    rig.call("Heartbeat", tag=3)
    assert rig.caller.expect(CallFailed).reason == "Disconnected"


def test_our_own_invalid_call_is_refused_and_never_sent(rig):
    rig.online()
    rig.call("Authorize", {}, tag="bad")
    rig.call("Heartbeat", tag="good")
    failed = rig.caller.expect(CallFailed)
    assert (failed.reason, failed.tag, failed.error_code) == ("Refused", "bad", "OccurenceConstraintViolation")
    sent = rig.conn.next_sent()
    assert sent[2] == "Heartbeat"
    rig.settled()
    assert rig.conn.nothing_sent()


def test_a_resent_call_keeps_its_unique_id(rig):
    rig.online()
    rig.call("Heartbeat", tag="again", unique_id="kept-id-42")
    frame = rig.conn.next_sent()
    assert frame[1] == "kept-id-42"
    rig.inbound([3, "kept-id-42", {"currentTime": NOW}])
    assert rig.caller.expect(CallAnswered).unique_id == "kept-id-42"


def test_a_call_that_cannot_be_written_waits_for_the_socket(rig):
    rig.online()
    rig.conn.connected = False
    rig.call("Heartbeat", tag="wait")
    rig.settled()
    assert rig.conn.nothing_sent()
    rig.caller.expect_none(CallFailed)
    rig.conn.connected = True
    rig.link.tell(SocketClosed(1, "write failed"))
    assert rig.caller.expect(CallFailed).reason == "Disconnected"


def test_the_link_answers_health_checks_and_stops_its_connection(rig):
    assert rig.link.ask(HealthCheck(), timeout=5) is True
    rig.link.stop()
    assert rig.conn.stopped


def test_a_changed_websocket_ping_interval_reaches_the_connection(rig):
    rig.link.tell(ConfigurationChanged("WebSocketPingInterval", 15))
    rig.settled()
    assert rig.conn.ping_interval_s == 15.0


def test_a_read_only_request_is_answered_on_the_socket_thread_from_its_reader():
    from actors.configuration.actor import ConfigurationView
    from actors.configuration import registry as keys

    specs = keys.registry(1, True)
    view = ConfigurationView(specs, {n: s.default for n, s in specs.items()})
    handler = Probe()
    made = []
    link = Link.start(CSMS, "CP1", 30.0, 60.0, ManualScheduler(), lambda *a: made.append(FakeConnection(*a)) or made[-1])
    link.tell(LinkWiring(FrozenDict({"ChangeConfiguration": handler.ref}), FrozenDict({"GetConfiguration": view.get})))
    sync(link)
    conn = made[0]
    conn.on_text(json.dumps([2, "g1", "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]}]), 1)
    assert conn.next_sent() == [3, "g1", {"configurationKey": [
        {"key": "HeartbeatInterval", "readonly": False, "value": "300"}], "unknownKey": ["Nope"]}]
    handler.expect_none(CsmsRequest)
    view.publish({**{n: s.default for n, s in specs.items()}, "HeartbeatInterval": 5})
    conn.on_text(json.dumps([2, "g2", "GetConfiguration", {"key": ["HeartbeatInterval"]}]), 1)
    assert conn.next_sent()[2]["configurationKey"][0]["value"] == "5"
