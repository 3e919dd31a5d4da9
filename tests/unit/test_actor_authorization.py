"""Authorization: may this idTag charge? The CSMS when online, the persistent cache and the offline rules."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from actors.configuration import registry as keys

from actors.infra import store
from actors.authorization.actor import Authorization
from actors.infra.clock import StationClock, format_time
from actors.infra.ticker import ManualScheduler
from messages.events import (AuthorizeTag, CallAnswered, CallFailed, ConfigurationChanged, CsmsOnline,
                             IdTagInfoReceived, ReplyResult, SendCall, TagAuthorized)
from messages.frozen import freeze
from tests.unit.fakes import Probe, csms_request, sync, wire

pytestmark = pytest.mark.timeout(20)

START = datetime(2025, 2, 3, 4, 5, 6, tzinfo=timezone.utc)
TAG = ("card", "TAG1", 1)  # whatever the asker wants back with the verdict


def config(**overrides) -> dict:
    values = {n: s.default for n, s in keys.registry(1, True).items()}
    values.update(overrides)
    return values


def at(seconds: float) -> str:
    return format_time(START + timedelta(seconds=seconds))


class Rig:
    def __init__(self, db_path, **overrides):
        self.db_path = db_path
        self.scheduler = ManualScheduler()  # only its clock is used: the actor has no timers
        self.clock = StationClock(system=START.timestamp, monotonic=self.scheduler.now)
        self.link = Probe()
        self.asker = Probe()  # plays the TransactionManager
        self.auth = Authorization.start(str(db_path), config(**overrides), self.clock)
        wire(self.auth, {SendCall: self.link})

    def online(self):
        self.auth.tell(CsmsOnline(True, registered=True))

    def offline(self):
        self.auth.tell(CsmsOnline(False))

    def ask(self, id_tag="TAG1", tag=TAG):
        self.auth.tell(AuthorizeTag(id_tag, self.asker.ref, tag))

    def verdict(self) -> TagAuthorized:
        return self.asker.expect(TagAuthorized)

    def decide(self, id_tag="TAG1", tag=TAG) -> TagAuthorized:
        """Ask, and expect an answer without an Authorize.req."""
        self.ask(id_tag, tag)
        verdict = self.verdict()
        self.no_authorize_sent()
        return verdict

    def authorize_sent(self) -> SendCall:
        call = self.link.expect(SendCall)
        assert call.action == "Authorize"
        return call

    def no_authorize_sent(self):
        sync(self.auth)
        self.link.expect_none(SendCall)

    def answer(self, call: SendCall, status="Accepted", **more):
        info = {"status": status, **more}
        self.auth.tell(CallAnswered("Authorize", freeze({"idTagInfo": info}), call.tag, "a1"))

    def learn(self, id_tag="TAG1", status="Accepted", **more):
        """An idTagInfo from a Start/StopTransaction.conf (the message queue passes them on)."""
        self.auth.tell(IdTagInfoReceived(id_tag, freeze({"status": status, **more})))

    def advance(self, seconds):
        self.scheduler.advance(seconds)

    def cache(self) -> dict[str, dict]:
        sync(self.auth)
        conn = store.open_database(self.db_path)
        try:
            return {r.pop("id_tag"): r for r in store.rows(conn, "SELECT * FROM auth_cache")}
        finally:
            conn.close()


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path / "station.db")


@pytest.fixture
def make(tmp_path):
    return lambda **kw: Rig(tmp_path / "station.db", **kw)


# --- online: the CSMS decides -----------------------------------------------------------------------


def test_online_an_authorize_req_asks_the_csms_and_its_answer_is_the_verdict(rig):
    rig.online()
    rig.ask("TAG1")
    call = rig.authorize_sent()
    assert call.payload == {"idTag": "TAG1"} and call.reply_to == rig.auth
    rig.asker.expect_none(TagAuthorized)
    rig.answer(call, "Accepted", parentIdTag="GROUP")
    verdict = rig.verdict()
    assert verdict == TagAuthorized("TAG1", freeze({"status": "Accepted", "parentIdTag": "GROUP"}), "csms", TAG)


def test_a_refusal_by_the_csms_is_the_verdict(rig):
    rig.online()
    rig.ask("BAD")
    rig.answer(rig.authorize_sent(), "Blocked")
    verdict = rig.verdict()
    assert (verdict.id_tag, verdict.info["status"], verdict.source) == ("BAD", "Blocked", "csms")


def test_online_needs_both_the_link_and_an_accepted_registration(make):
    # Both make one event now: the BootNotifier publishes CsmsOnline(True) once the link is up and Accepted.
    rig = make(AllowOfflineTxForUnknownId=True)
    assert rig.decide().source == "offline-unknown"  # no CsmsOnline yet (link up, not yet Accepted)
    rig.auth.tell(CsmsOnline(False))  # still Pending
    assert rig.decide().source == "offline-unknown"
    rig.auth.tell(CsmsOnline(True, registered=True))
    rig.ask()
    rig.authorize_sent()
    rig.offline()  # Accepted, but the link is down
    assert rig.decide().source == "offline-unknown"


def test_accepted_without_the_link_is_offline(make):
    # Accepted with the link down: the BootNotifier publishes CsmsOnline(False), never CsmsOnline(True).
    rig = make(AllowOfflineTxForUnknownId=True)
    rig.auth.tell(CsmsOnline(False))
    assert rig.decide().source == "offline-unknown"


# --- the cache is filled -----------------------------------------------------------------------------


def test_an_authorize_answer_fills_the_cache(rig):
    rig.online()
    rig.ask("TAG1")
    rig.answer(rig.authorize_sent(), "Accepted", expiryDate=at(3600), parentIdTag="GROUP")
    rig.verdict()
    entry = rig.cache()["TAG1"]
    assert (entry["status"], entry["expiry_date"], entry["parent_id_tag"]) == ("Accepted", at(3600), "GROUP")


def test_id_tag_info_from_transactions_fills_and_refreshes_the_cache(rig):
    rig.learn("TAG1", "Accepted")
    rig.learn("TAG2", "Accepted", parentIdTag="GROUP")
    rig.learn("TAG1", "Blocked")  # the newest idTagInfo wins
    cache = rig.cache()
    assert {t: e["status"] for t, e in cache.items()} == {"TAG1": "Blocked", "TAG2": "Accepted"}
    assert cache["TAG2"]["parent_id_tag"] == "GROUP"


def test_id_tag_info_from_a_transaction_lets_the_tag_charge_offline(rig):
    rig.learn("TAG9", "Accepted")
    verdict = rig.decide("TAG9")
    assert (verdict.info["status"], verdict.source) == ("Accepted", "cache")


# --- LocalPreAuthorize ---------------------------------------------------------------------------------


def test_local_pre_authorize_answers_from_a_valid_cache_entry_without_authorize(make):
    rig = make(LocalPreAuthorize=True)
    rig.learn("TAG1", "Accepted", parentIdTag="GROUP")
    rig.online()
    verdict = rig.decide("TAG1")
    assert (verdict.source, verdict.tag) == ("cache", TAG)
    assert verdict.info["status"] == "Accepted" and verdict.info["parentIdTag"] == "GROUP"


def test_without_local_pre_authorize_a_cached_tag_is_still_asked_of_the_csms(rig):
    rig.learn("TAG1", "Accepted")
    rig.online()
    rig.ask("TAG1")
    rig.answer(rig.authorize_sent(), "Blocked")
    assert rig.verdict().info["status"] == "Blocked"
    assert rig.cache()["TAG1"]["status"] == "Blocked"


@pytest.mark.parametrize("status, expiry", [("Blocked", None), ("Accepted", -1)])
def test_local_pre_authorize_asks_the_csms_about_a_tag_cached_invalid_or_expired(make, status, expiry):
    rig = make(LocalPreAuthorize=True)
    rig.learn("TAG1", status, **({"expiryDate": at(expiry)} if expiry is not None else {}))
    rig.online()
    rig.ask("TAG1")
    rig.answer(rig.authorize_sent(), "Accepted")
    assert rig.verdict().source == "csms"


def test_local_pre_authorize_asks_the_csms_once_the_entry_expires(make):
    rig = make(LocalPreAuthorize=True)
    rig.learn("TAG1", "Accepted", expiryDate=at(60))
    rig.online()
    assert rig.decide("TAG1").source == "cache"
    rig.advance(60)
    rig.ask("TAG1")
    rig.authorize_sent()


# --- offline -------------------------------------------------------------------------------------------


def test_offline_local_authorize_offline_lets_a_cached_accepted_tag_through(rig):
    rig.learn("TAG1", "Accepted", parentIdTag="GROUP")
    verdict = rig.decide("tag1")  # idTags compare case-insensitively
    assert (verdict.id_tag, verdict.source, verdict.tag) == ("tag1", "cache", TAG)
    assert verdict.info["status"] == "Accepted" and verdict.info["parentIdTag"] == "GROUP"


def test_offline_without_local_authorize_offline_a_cached_tag_is_refused(make):
    rig = make(LocalAuthorizeOffline=False)
    rig.learn("TAG1", "Accepted")
    assert rig.decide("TAG1").info["status"] != "Accepted"


@pytest.mark.parametrize("allow", [False, True])
def test_offline_an_unknown_tag_is_let_through_only_with_allow_offline_tx_for_unknown_id(make, allow):
    rig = make(AllowOfflineTxForUnknownId=allow)
    verdict = rig.decide("NEW")
    if allow:
        assert (verdict.info["status"], verdict.source) == ("Accepted", "offline-unknown")
    else:
        assert (verdict.info["status"], verdict.source) == ("Invalid", "offline")


@pytest.mark.parametrize("status", ["Blocked", "Expired", "Invalid"])
def test_offline_a_tag_cached_as_refused_is_refused_even_with_allow_offline_tx_for_unknown_id(make, status):
    rig = make(AllowOfflineTxForUnknownId=True)
    rig.learn("TAG1", status)
    verdict = rig.decide("TAG1")
    assert (verdict.info["status"], verdict.source) == (status, "offline")


def test_an_accepted_entry_past_its_expiry_date_counts_as_expired(make):
    rig = make(AllowOfflineTxForUnknownId=True)
    rig.learn("TAG1", "Accepted", expiryDate=at(60))
    assert rig.decide("TAG1").info["status"] == "Accepted"
    rig.advance(59)
    assert rig.decide("TAG1").info["status"] == "Accepted"
    rig.advance(1)
    verdict = rig.decide("TAG1")
    assert (verdict.info["status"], verdict.source) == ("Expired", "offline")


@pytest.mark.parametrize("reason", ["Timeout", "Disconnected"])
def test_no_answer_to_authorize_is_decided_by_the_offline_rules(rig, reason):
    rig.learn("TAG1", "Accepted")
    rig.online()
    rig.ask("TAG1")
    call = rig.authorize_sent()
    rig.auth.tell(CallFailed("Authorize", reason, call.tag, "a1"))
    verdict = rig.verdict()
    assert (verdict.info["status"], verdict.source, verdict.tag) == ("Accepted", "cache", TAG)


def test_no_answer_for_an_unknown_tag_refuses_it_without_allow_offline_tx_for_unknown_id(rig):
    rig.online()
    rig.ask("NEW")
    rig.auth.tell(CallFailed("Authorize", "Timeout", rig.authorize_sent().tag, "a1"))
    assert rig.verdict().info["status"] == "Invalid"


@pytest.mark.parametrize("reason", ["CallError", "Invalid"])
def test_an_authorize_answered_with_an_error_online_does_not_start_even_when_offline_starts_are_allowed(make, reason):
    # The intent of the TransactionManager's former test: offline starts are for when the CSMS cannot be reached.
    rig = make(AllowOfflineTxForUnknownId=True)
    rig.online()
    rig.ask("NEW")
    call = rig.authorize_sent()
    rig.auth.tell(CallFailed("Authorize", reason, call.tag, "a1", "InternalError"))
    assert rig.verdict().info["status"] != "Accepted"


# --- AuthorizationCacheEnabled=false --------------------------------------------------------------------


def test_with_the_cache_disabled_nothing_is_cached(make):
    rig = make(AuthorizationCacheEnabled=False)
    rig.online()
    rig.ask("TAG1")
    rig.answer(rig.authorize_sent(), "Accepted")
    assert rig.verdict().source == "csms"
    rig.learn("TAG2", "Accepted")
    assert rig.cache() == {}


def test_with_the_cache_disabled_it_is_not_read(make):
    rig = make(LocalPreAuthorize=True, AllowOfflineTxForUnknownId=True)
    rig.learn("TAG1", "Accepted")
    rig.learn("TAG2", "Blocked")
    rig.auth.tell(ConfigurationChanged("AuthorizationCacheEnabled", False))
    assert rig.decide("TAG2").source == "offline-unknown"  # offline: as if unknown
    assert rig.decide("TAG1").source == "offline-unknown"
    rig.online()
    rig.ask("TAG1")  # LocalPreAuthorize has no cache to answer from
    rig.authorize_sent()
    assert set(rig.cache()) == {"TAG1", "TAG2"}  # left alone, not cleared


# --- ClearCache and persistence -----------------------------------------------------------------------


def test_clear_cache_is_accepted_and_really_empties_the_cache(make):
    rig = make(AllowOfflineTxForUnknownId=False)
    rig.learn("TAG1", "Accepted")
    rig.learn("TAG2", "Blocked")
    assert len(rig.cache()) == 2
    link = Probe()
    rig.auth.tell(csms_request("c1", "ClearCache", {}, link.ref))
    assert link.expect(ReplyResult) == ReplyResult("c1", "ClearCache", freeze({"status": "Accepted"}))
    assert rig.cache() == {}
    assert rig.decide("TAG1").info["status"] == "Invalid"  # unknown now


def test_the_cache_survives_a_restart_from_the_same_database(tmp_path):
    first = Rig(tmp_path / "station.db")
    first.learn("TAG1", "Accepted", parentIdTag="GROUP")
    sync(first.auth)
    first.auth.stop()
    again = Rig(tmp_path / "station.db")
    verdict = again.decide("TAG1")
    assert (verdict.info["status"], verdict.info["parentIdTag"], verdict.source) == ("Accepted", "GROUP", "cache")
