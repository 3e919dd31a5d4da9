"""DataTransfer: vendor handlers answering the CSMS (§5.6), and our own DataTransfer.req (§4.3)."""

from __future__ import annotations

import logging
import sys
import threading

import pytest

from actors.data_transfer import vendors
from actors.data_transfer.actor import DataTransfer
from messages.events import DataTransferAnswered, DataTransferFailed, SendDataTransfer
from actors.infra.ticker import ManualScheduler
from actors.data_transfer.vendors import VendorRegistry, VendorReply
from messages import validation
from messages.events import CallAnswered, CallFailed, ReplyResult, SendCall
from messages.frozen import freeze, thaw
from tests.unit.fakes import Probe, csms_request, sync, wire

pytestmark = pytest.mark.timeout(20)

HOLD_LIMIT_S = 15.0  # a held handler gives up by itself, so a failing test cannot hang


def echo(message_id, data):
    return VendorReply("Accepted", data)


class Rig:
    def __init__(self, registry: VendorRegistry, **kwargs):
        self.scheduler = ManualScheduler()
        self.link = Probe()
        self.actor = DataTransfer.start(registry, scheduler=self.scheduler, **kwargs)
        wire(self.actor, {SendCall: self.link})

    def request(self, vendor_id, message_id=None, data=None, uid="d1") -> None:
        payload = {"vendorId": vendor_id}
        if message_id is not None:
            payload["messageId"] = message_id
        if data is not None:
            payload["data"] = data
        validation.validate("DataTransfer", payload)  # what the link lets through
        self.actor.tell(csms_request(uid, "DataTransfer", payload, self.link.ref))

    def answer(self, uid="d1") -> dict:
        reply = self.link.expect(lambda m: isinstance(m, ReplyResult) and m.unique_id == uid)
        assert reply.action == "DataTransfer"
        payload = thaw(reply.payload)
        validation.validate("DataTransfer", payload, response=True)
        return payload

    def ask(self, vendor_id, message_id=None, data=None, uid="d1") -> dict:
        self.request(vendor_id, message_id, data, uid)
        return self.answer(uid)

    def advance(self, seconds):
        sync(self.actor)  # its deadline timers are armed before the clock moves
        self.scheduler.advance(seconds)
        sync(self.actor)


def registry_with(*registrations) -> VendorRegistry:
    registry = VendorRegistry()
    for args in registrations:
        registry.register(*args)
    return registry


# --- CSMS → CP: each status --------------------------------------------------------------------


def test_a_known_vendor_handler_answers_accepted_with_its_data():
    rig = Rig(registry_with(("com.acme", echo)))
    assert rig.ask("com.acme", "Hello", "payload") == {"status": "Accepted", "data": "payload"}


def test_data_is_left_out_of_the_answer_when_the_handler_gives_none():
    rig = Rig(registry_with(("com.acme", lambda mid, data: VendorReply("Accepted"))))
    assert rig.ask("com.acme", "Hello", "payload") == {"status": "Accepted"}


@pytest.mark.parametrize("status", ["Accepted", "Rejected", "UnknownMessageId"])
def test_the_handler_chooses_the_status(status):
    rig = Rig(registry_with(("com.acme", lambda mid, data: VendorReply(status))))
    assert rig.ask("com.acme", "X") == {"status": status}


def test_an_unknown_vendor_is_answered_unknown_vendor_id():
    rig = Rig(registry_with(("com.acme", echo)))
    assert rig.ask("com.other", "Hello") == {"status": "UnknownVendorId"}


def test_vendor_ids_match_case_insensitively_as_cistring():
    seen = []
    rig = Rig(registry_with(("com.Acme", lambda mid, data: seen.append((mid, data)) or VendorReply("Accepted"))))
    assert rig.ask("COM.ACME", "Hello", "x") == {"status": "Accepted"}
    assert seen == [("Hello", "x")]


def test_a_vendor_id_cannot_be_registered_twice_in_another_case():
    registry = registry_with(("com.acme", echo))
    with pytest.raises(ValueError, match="already registered"):
        registry.register("COM.acme", echo)


def test_message_ids_restrict_which_messages_exist_and_match_case_sensitively():
    calls = []

    def handler(mid, data):
        calls.append(mid)
        return VendorReply("Accepted")

    rig = Rig(registry_with(("com.acme", handler, {"SetBrightness"})))
    assert rig.ask("com.acme", "SetBrightness", uid="a") == {"status": "Accepted"}
    assert rig.ask("com.acme", "Reboot", uid="b") == {"status": "UnknownMessageId"}
    assert rig.ask("com.acme", "setbrightness", uid="c") == {"status": "UnknownMessageId"}
    assert rig.ask("com.acme", uid="d") == {"status": "UnknownMessageId"}  # absent messageId
    assert calls == ["SetBrightness"]  # the handler never saw the others


def test_an_absent_message_id_can_be_allowed_by_listing_none():
    rig = Rig(registry_with(("com.acme", echo, {None, "Ping"})))
    assert rig.ask("com.acme", data="x") == {"status": "Accepted", "data": "x"}


def test_without_message_ids_every_message_id_reaches_the_handler():
    rig = Rig(registry_with(("com.acme", lambda mid, data: VendorReply("Accepted", repr(mid)))))
    assert rig.ask("com.acme", "Anything", uid="a") == {"status": "Accepted", "data": "'Anything'"}
    assert rig.ask("com.acme", uid="b") == {"status": "Accepted", "data": "None"}


def test_registration_checks_its_arguments():
    registry = VendorRegistry()
    with pytest.raises(ValueError):
        registry.register("", echo)
    with pytest.raises(ValueError):
        registry.register("v" * 256, echo)
    with pytest.raises(ValueError):
        registry.register("com.acme", echo, {"m" * 51})
    with pytest.raises(TypeError):
        registry.register("com.acme", "not a function")
    with pytest.raises(ValueError):
        VendorReply("UnknownVendorId")  # only the actor says that
    with pytest.raises(TypeError):
        VendorReply("Accepted", data=42)


# --- failing and slow handlers -----------------------------------------------------------------


def test_a_handler_that_raises_is_answered_rejected_and_logged_with_its_traceback(caplog):
    def broken(mid, data):
        raise RuntimeError("vendor bug")

    rig = Rig(registry_with(("com.acme", broken)))
    with caplog.at_level(logging.ERROR, logger="actors.data_transfer.vendors"):
        assert rig.ask("com.acme", "Hello") == {"status": "Rejected"}
    record = next(r for r in caplog.records if "com.acme" in r.getMessage())
    assert record.exc_info and "vendor bug" in caplog.text and "Traceback" in caplog.text
    assert rig.ask("com.acme", "Again", uid="d2") == {"status": "Rejected"}  # the actor lives on


def test_a_handler_returning_something_else_is_answered_rejected():
    rig = Rig(registry_with(("com.acme", lambda mid, data: "Accepted")))
    assert rig.ask("com.acme", "Hello") == {"status": "Rejected"}


def test_a_slow_handler_is_rejected_at_the_deadline_while_the_actor_keeps_answering():
    entered, release = threading.Event(), threading.Event()

    def slow(mid, data):
        entered.set()
        release.wait(HOLD_LIMIT_S)
        return VendorReply("Accepted", "too late")

    rig = Rig(registry_with(("com.slow", slow), ("com.acme", echo)), handler_timeout_s=5.0)
    try:
        rig.request("com.slow", "Work", uid="slow")
        assert entered.wait(5)
        # Meanwhile: other vendors, and a handler on the second worker, are answered at once.
        assert rig.ask("com.nobody", uid="u1") == {"status": "UnknownVendorId"}
        assert rig.ask("com.acme", "Hi", "there", uid="u2") == {"status": "Accepted", "data": "there"}
        rig.advance(4.9)
        rig.link.expect_none(lambda m: isinstance(m, ReplyResult) and m.unique_id == "slow")
        rig.advance(0.1)
        assert rig.answer("slow") == {"status": "Rejected"}
    finally:
        release.set()
    assert rig.ask("com.acme", "After", uid="u3") == {"status": "Accepted"}


def test_a_late_result_after_the_deadline_is_dropped(caplog):
    entered, release = threading.Event(), threading.Event()

    def handler(mid, data):
        if mid == "Slow":
            entered.set()
            release.wait(HOLD_LIMIT_S)
        return VendorReply("Accepted", mid)

    rig = Rig(registry_with(("com.acme", handler)), workers=1, handler_timeout_s=1.0)
    rig.request("com.acme", "Slow", uid="slow")
    assert entered.wait(5)  # running, not just queued (a queued call is cancelled instead)
    rig.advance(1.0)
    assert rig.answer("slow") == {"status": "Rejected"}
    release.set()
    # One worker, first in first out: the slow call's outcome reaches the actor before this one's.
    assert rig.ask("com.acme", "Next", uid="next") == {"status": "Accepted", "data": "Next"}
    rig.link.expect_none(ReplyResult)
    assert "finished after its deadline" in caplog.text


def test_a_handler_answering_in_time_cancels_its_deadline():
    rig = Rig(registry_with(("com.acme", echo)), handler_timeout_s=1.0)
    assert rig.ask("com.acme", "Hello", "x") == {"status": "Accepted", "data": "x"}
    rig.advance(10)
    rig.link.expect_none(ReplyResult)


def test_requests_beyond_the_outstanding_limit_are_rejected_at_once():
    release = threading.Event()
    rig = Rig(registry_with(("com.slow", lambda mid, data: release.wait(HOLD_LIMIT_S) and VendorReply("Accepted"))),
              workers=1, max_outstanding=1)
    try:
        rig.request("com.slow", "Work", uid="first")
        assert rig.ask("com.slow", "Work", uid="second") == {"status": "Rejected"}
    finally:
        release.set()
    assert rig.answer("first") == {"status": "Accepted"}


def test_a_call_queued_behind_a_hung_handler_is_cancelled_at_its_deadline():
    entered, release = threading.Event(), threading.Event()
    ran = []

    def handler(mid, data):
        ran.append(mid)
        if mid == "Hang":
            entered.set()
            release.wait(HOLD_LIMIT_S)
        return VendorReply("Accepted")

    rig = Rig(registry_with(("com.acme", handler)), workers=1, handler_timeout_s=2.0)
    try:
        rig.request("com.acme", "Hang", uid="a")
        assert entered.wait(5)
        rig.request("com.acme", "Queued", uid="b")
        rig.advance(2.0)
        assert rig.answer("a") == {"status": "Rejected"}
        assert rig.answer("b") == {"status": "Rejected"}
    finally:
        release.set()
    assert rig.ask("com.acme", "Later", uid="c") == {"status": "Accepted"}
    assert "Queued" not in ran


# --- the built-in vendor, plugins ----------------------------------------------------------------


def test_the_builtin_vendor_answers_ping_and_version():
    rig = Rig(vendors.station_registry("1.4.2"))
    assert rig.ask("org.openstation", "Ping", "hello", uid="a") == {"status": "Accepted", "data": "hello"}
    assert rig.ask("org.openstation", "Ping", uid="b") == {"status": "Accepted"}
    assert rig.ask("org.openstation", "Version", uid="c") == {"status": "Accepted", "data": "1.4.2"}
    assert rig.ask("ORG.OpenStation", "Version", uid="d") == {"status": "Accepted", "data": "1.4.2"}
    assert rig.ask("org.openstation", "Reboot", uid="e") == {"status": "UnknownMessageId"}


@pytest.fixture
def fresh_default(monkeypatch):
    """Plugins register into the module-level default registry: give each test its own."""
    monkeypatch.setattr(vendors, "DEFAULT", VendorRegistry())
    return vendors.DEFAULT


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(name: str, source: str) -> str:
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


def test_a_plugin_module_registers_its_vendor(fresh_default, plugin_dir):
    name = plugin_dir("acme_vendor_plugin", (
        "from actors.data_transfer.vendors import VendorReply, register\n"
        "def acme(message_id, data):\n"
        "    return VendorReply('Accepted', (data or '').upper())\n"
        "register('com.acme', acme, message_ids={'Shout'})\n"))
    registry = vendors.station_registry("1.0", plugins=[name])
    assert set(registry.vendor_ids()) == {"com.acme", "org.openstation"}
    rig = Rig(registry)
    assert rig.ask("com.acme", "Shout", "hi", uid="a") == {"status": "Accepted", "data": "HI"}
    assert rig.ask("com.acme", "Whisper", "hi", uid="b") == {"status": "UnknownMessageId"}
    assert rig.ask("org.openstation", "Version", uid="c") == {"status": "Accepted", "data": "1.0"}
    # A second station start in the same process builds the same registry (the module imports once).
    assert set(vendors.station_registry("1.0", plugins=[name]).vendor_ids()) == {"com.acme", "org.openstation"}


def test_a_plugin_can_replace_the_builtin_vendor(fresh_default, plugin_dir):
    name = plugin_dir("own_openstation_plugin", (
        "from actors.data_transfer.vendors import VendorReply, register\n"
        "register('org.openstation', lambda mid, data: VendorReply('Rejected'))\n"))
    rig = Rig(vendors.station_registry("1.0", plugins=[name]))
    assert rig.ask("org.openstation", "Version") == {"status": "Rejected"}


def test_a_plugin_that_cannot_be_imported_fails_the_start(fresh_default, plugin_dir):
    broken = plugin_dir("broken_vendor_plugin", "raise RuntimeError('oops')\n")
    with pytest.raises(vendors.PluginError, match="broken_vendor_plugin.*oops"):
        vendors.load_plugins([broken])
    with pytest.raises(vendors.PluginError, match="no_such_vendor_plugin"):
        vendors.load_plugins(["no_such_vendor_plugin"])
    assert issubclass(vendors.PluginError, ValueError)  # station start-up exits with EXIT_CONFIG


# --- CP → CSMS (§4.3) ----------------------------------------------------------------------------


def sent_call(rig) -> SendCall:
    call = rig.link.expect(SendCall)
    assert call.action == "DataTransfer" and call.reply_to == rig.actor
    validation.validate("DataTransfer", thaw(call.payload))
    return call


def test_send_data_transfer_sends_a_call_and_forwards_the_answer():
    rig, caller = Rig(VendorRegistry()), Probe()
    rig.actor.tell(SendDataTransfer("com.acme", "Meter", "42", caller.ref, "t1"))
    call = sent_call(rig)
    assert call.payload == {"vendorId": "com.acme", "messageId": "Meter", "data": "42"}
    rig.actor.tell(CallAnswered("DataTransfer", freeze({"status": "Accepted", "data": "ok"}), call.tag, "u1"))
    assert caller.expect(DataTransferAnswered) == DataTransferAnswered("t1", "Accepted", "ok")


def test_send_data_transfer_leaves_out_absent_fields_and_forwards_a_bare_status():
    rig, caller = Rig(VendorRegistry()), Probe()
    rig.actor.tell(SendDataTransfer("com.acme", reply_to=caller.ref, tag=7))
    call = sent_call(rig)
    assert call.payload == {"vendorId": "com.acme"}
    rig.actor.tell(CallAnswered("DataTransfer", freeze({"status": "UnknownVendorId"}), call.tag, "u1"))
    assert caller.expect(DataTransferAnswered) == DataTransferAnswered(7, "UnknownVendorId", None)


@pytest.mark.parametrize("reason", ["Timeout", "Disconnected", "CallError", "Refused"])
def test_a_failed_call_is_forwarded_as_data_transfer_failed(reason):
    rig, caller = Rig(VendorRegistry()), Probe()
    rig.actor.tell(SendDataTransfer("com.acme", "M", reply_to=caller.ref, tag="t"))
    call = sent_call(rig)
    code = "NotImplemented" if reason == "CallError" else ""
    rig.actor.tell(CallFailed("DataTransfer", reason, call.tag, "u1", code, "why"))
    failed = caller.expect(DataTransferFailed)
    assert (failed.tag, failed.reason) == ("t", reason)
    assert failed.detail == (f"{code}: why" if code else "why")


def test_the_link_can_arrive_with_peers():
    # The link is no constructor argument any more: it arrives with the station's Wired routes.
    link, caller = Probe(), Probe()
    actor = DataTransfer.start(VendorRegistry(), scheduler=ManualScheduler())
    wire(actor, {SendCall: link})
    actor.tell(SendDataTransfer("com.acme", reply_to=caller.ref, tag="t"))
    assert link.expect(SendCall).payload == {"vendorId": "com.acme"}


def test_an_answer_without_reply_to_is_dropped_quietly():
    rig = Rig(VendorRegistry())
    rig.actor.tell(SendDataTransfer("com.acme"))
    call = sent_call(rig)
    rig.actor.tell(CallAnswered("DataTransfer", freeze({"status": "Accepted"}), call.tag, "u1"))
    sync(rig.actor)  # nothing to tell, nothing raised: still answering
