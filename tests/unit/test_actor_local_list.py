"""Authorization and the Local Authorization List: GetLocalListVersion, SendLocalList, and the list
consulted before the cache, online and offline (OCPP 1.6 §3.5, §5.10, §5.15; errata 3.52)."""

from __future__ import annotations

import sqlite3

import pytest

from actors.authorization import local_list
from messages.events import CallFailed, ConfigurationChanged, ReplyError, ReplyResult, TagAuthorized
from messages.frozen import freeze
from tests.unit.fakes import Probe, csms_request, sync
from tests.unit.test_actor_authorization import TAG, Rig, at

pytestmark = pytest.mark.timeout(30)

ACCEPTED = {"status": "Accepted"}


@pytest.fixture
def make(tmp_path):
    return lambda **kw: Rig(tmp_path / "station.db", **kw)


@pytest.fixture
def rig(make):
    return make()


_ids = iter(range(1, 1_000_000))


def request(rig, action, payload) -> ReplyResult | ReplyError:
    """Send a CSMS request to the actor; its answer."""
    link = Probe()
    unique_id = f"r{next(_ids)}"
    rig.auth.tell(csms_request(unique_id, action, payload, link.ref))
    return link.expect(lambda m: isinstance(m, (ReplyResult, ReplyError)) and m.unique_id == unique_id)


def send_list(rig, version, entries=None, update="Full") -> str:
    payload = {"listVersion": version, "updateType": update}
    if entries is not None:
        payload["localAuthorizationList"] = [
            {"idTag": t} if info is None else {"idTag": t, "idTagInfo": info} for t, info in entries]
    return request(rig, "SendLocalList", payload).payload["status"]


def list_version(rig) -> int:
    return request(rig, "GetLocalListVersion", {}).payload["listVersion"]


# --- the version and the update rules -----------------------------------------------------------------


def test_a_new_list_has_version_0_and_a_full_update_sets_its_version(rig):
    assert list_version(rig) == 0
    assert send_list(rig, 2, [("TAG1", ACCEPTED)]) == "Accepted"
    assert list_version(rig) == 2


def test_an_empty_full_list_reports_version_0(rig):
    # OCTT TC_042_2: SendLocalList(Full, version 1, no list) -> Accepted, then GetLocalListVersion 0.
    assert send_list(rig, 1) == "Accepted"
    assert list_version(rig) == 0


def test_a_differential_update_older_or_equal_is_a_version_mismatch_and_keeps_the_version(rig):
    # OCTT TC_043_2: Full v2, Differential v5, Differential v4 -> VersionMismatch, still 5.
    assert send_list(rig, 2, [("TAG1", ACCEPTED)]) == "Accepted"
    assert send_list(rig, 5, [("TAG2", ACCEPTED)], "Differential") == "Accepted"
    assert list_version(rig) == 5
    assert send_list(rig, 4, [("TAG3", ACCEPTED)], "Differential") == "VersionMismatch"
    assert send_list(rig, 5, [("TAG3", ACCEPTED)], "Differential") == "VersionMismatch"
    assert list_version(rig) == 5
    rig.online()
    rig.ask("TAG3")
    rig.authorize_sent()  # TAG3 never made it into the list


def test_a_full_update_may_go_back_to_an_older_version(rig):
    assert send_list(rig, 5, [("TAG1", ACCEPTED)]) == "Accepted"
    assert send_list(rig, 3, [("TAG1", ACCEPTED)]) == "Accepted" and list_version(rig) == 3


def test_a_differential_entry_without_id_tag_info_removes_the_id_tag(make):
    rig = make(LocalPreAuthorize=True)
    send_list(rig, 1, [("TAG1", ACCEPTED), ("TAG2", ACCEPTED)])
    assert send_list(rig, 2, [("TAG1", None)], "Differential") == "Accepted"
    rig.online()
    assert rig.decide("TAG2").source == "local-list"
    rig.ask("TAG1")
    rig.authorize_sent()


@pytest.mark.parametrize("version", [0, -1])
def test_list_version_0_and_minus_1_are_refused_and_change_nothing(rig, version):
    # Errata 3.52: listVersion SHALL NOT be 0 or -1.
    send_list(rig, 3, [("TAG1", ACCEPTED)])
    reply = request(rig, "SendLocalList", {"listVersion": version, "updateType": "Full",
                                           "localAuthorizationList": [{"idTag": "X", "idTagInfo": ACCEPTED}]})
    assert isinstance(reply, ReplyError) and reply.error_code == "PropertyConstraintViolation"
    assert list_version(rig) == 3


def test_a_full_update_with_an_entry_without_id_tag_info_is_refused(rig):
    reply = request(rig, "SendLocalList", {"listVersion": 1, "updateType": "Full",
                                           "localAuthorizationList": [{"idTag": "X"}]})
    assert isinstance(reply, ReplyError) and reply.error_code == "OccurenceConstraintViolation"
    assert list_version(rig) == 0


# --- capacity and storage failures ----------------------------------------------------------------------


def test_more_entries_than_send_local_list_max_length_fail_and_change_nothing(make):
    rig = make(SendLocalListMaxLength=3, LocalAuthListMaxLength=10)
    send_list(rig, 1, [("A", ACCEPTED)])
    assert send_list(rig, 2, [(f"T{i}", ACCEPTED) for i in range(4)]) == "Failed"
    assert send_list(rig, 2, [(f"T{i}", ACCEPTED) for i in range(4)], "Differential") == "Failed"
    assert list_version(rig) == 1
    assert send_list(rig, 2, [(f"T{i}", ACCEPTED) for i in range(3)]) == "Accepted"


def test_an_update_that_would_exceed_local_auth_list_max_length_fails_and_changes_nothing(make):
    rig = make(SendLocalListMaxLength=10, LocalAuthListMaxLength=3, LocalPreAuthorize=True)
    assert send_list(rig, 1, [("A", ACCEPTED), ("B", ACCEPTED)]) == "Accepted"
    assert send_list(rig, 2, [("C", ACCEPTED), ("D", ACCEPTED)], "Differential") == "Failed"
    assert send_list(rig, 2, [(f"T{i}", ACCEPTED) for i in range(4)]) == "Failed"
    assert list_version(rig) == 1
    rig.online()
    assert rig.decide("A").source == "local-list"
    rig.ask("C")
    rig.authorize_sent()


def test_a_storage_error_is_answered_failed_and_the_old_list_stays(rig, monkeypatch):
    send_list(rig, 1, [("OLD", ACCEPTED)])

    def broken(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")
    monkeypatch.setattr(local_list.LocalListBook, "_update", broken)
    assert send_list(rig, 2, [("NEW", ACCEPTED)]) == "Failed"
    monkeypatch.undo()
    assert list_version(rig) == 1
    assert send_list(rig, 2, [("NEW", ACCEPTED)]) == "Accepted"  # the actor lives on


# --- LocalAuthListEnabled --------------------------------------------------------------------------------


def test_disabled_the_version_is_minus_1_and_send_local_list_is_not_supported(make):
    rig = make(LocalAuthListEnabled=False)
    assert list_version(rig) == -1
    assert send_list(rig, 1, [("TAG1", ACCEPTED)]) == "NotSupported"
    rig.auth.tell(ConfigurationChanged("LocalAuthListEnabled", True))  # at once, no reboot
    assert list_version(rig) == 0
    assert send_list(rig, 1, [("TAG1", ACCEPTED)]) == "Accepted"


def test_a_disabled_list_is_not_consulted_and_is_kept(make):
    rig = make(LocalPreAuthorize=True)
    send_list(rig, 4, [("TAG1", {"status": "Blocked"})])
    rig.auth.tell(ConfigurationChanged("LocalAuthListEnabled", False))
    rig.online()
    rig.ask("TAG1")
    rig.authorize_sent()  # not refused locally: the list is off
    rig.auth.tell(ConfigurationChanged("LocalAuthListEnabled", True))
    assert list_version(rig) == 4
    assert rig.decide("TAG1").info["status"] == "Blocked"


# --- authorizing from the list ---------------------------------------------------------------------------


def test_online_with_local_pre_authorize_a_listed_tag_is_accepted_without_authorize(make):
    rig = make(LocalPreAuthorize=True, AuthorizationCacheEnabled=False)
    send_list(rig, 1, [("TAG1", {"status": "Accepted", "parentIdTag": "GROUP", "expiryDate": at(3600)})])
    rig.online()
    assert rig.decide("tag1") == TagAuthorized(
        "tag1", freeze({"status": "Accepted", "expiryDate": at(3600), "parentIdTag": "GROUP"}), "local-list", TAG)


def test_online_without_local_pre_authorize_a_listed_tag_is_asked_of_the_csms(rig):
    send_list(rig, 1, [("TAG1", ACCEPTED)])
    rig.online()
    rig.ask("TAG1")
    rig.answer(rig.authorize_sent(), "Accepted")
    assert rig.verdict().source == "csms"


@pytest.mark.parametrize("status", ["Blocked", "Expired", "Invalid", "ConcurrentTx"])
@pytest.mark.parametrize("online", [True, False])
def test_a_listed_tag_that_is_not_valid_is_refused_locally(make, status, online):
    # §3.5.4: a list entry other than Accepted is refused, even with AllowOfflineTxForUnknownId.
    rig = make(LocalPreAuthorize=False, AllowOfflineTxForUnknownId=True)
    send_list(rig, 1, [("TAG1", {"status": status})])
    if online:
        rig.online()
    verdict = rig.decide("TAG1")
    assert (verdict.info["status"], verdict.source) == (status, "local-list")


def test_a_listed_tag_past_its_expiry_date_is_expired(make):
    rig = make(LocalPreAuthorize=True)
    send_list(rig, 1, [("TAG1", {"status": "Accepted", "expiryDate": at(60)})])
    rig.online()
    assert rig.decide("TAG1").info["status"] == "Accepted"
    rig.advance(60)
    verdict = rig.decide("TAG1")
    assert (verdict.info["status"], verdict.source) == ("Expired", "local-list")


def test_offline_a_listed_tag_is_accepted_with_local_authorize_offline(rig):
    send_list(rig, 1, [("TAG1", {"status": "Accepted", "parentIdTag": "G"})])
    rig.offline()
    verdict = rig.decide("TAG1")
    assert verdict.info == {"status": "Accepted", "parentIdTag": "G"} and verdict.source == "local-list"


def test_offline_without_local_authorize_offline_a_listed_tag_is_refused(make):
    rig = make(LocalAuthorizeOffline=False, AllowOfflineTxForUnknownId=True)
    send_list(rig, 1, [("TAG1", ACCEPTED)])
    rig.offline()
    assert rig.decide("TAG1").info["status"] == "Invalid"


def test_an_unanswered_authorize_for_a_listed_tag_is_decided_by_the_list(rig):
    send_list(rig, 1, [("TAG1", ACCEPTED)])
    rig.online()
    rig.ask("TAG1")
    rig.auth.tell(CallFailed("Authorize", "Timeout", rig.authorize_sent().tag, "a1"))
    assert rig.verdict().source == "local-list"


def test_the_list_has_priority_over_the_cache(make):
    rig = make(LocalPreAuthorize=True)
    rig.learn("TAG1", "Accepted")  # cached as Accepted
    send_list(rig, 1, [("TAG1", {"status": "Blocked"})])
    rig.online()
    assert rig.decide("TAG1").info["status"] == "Blocked"


def test_answers_from_the_csms_change_the_cache_not_the_list_and_a_listed_tag_is_not_cached(make):
    rig = make(LocalPreAuthorize=True)
    send_list(rig, 1, [("TAG1", ACCEPTED)])
    rig.learn("TAG1", "Blocked")  # StartTransaction.conf says otherwise: the list stays (§3.5.2)
    rig.learn("TAG2", "Accepted")
    assert set(rig.cache()) == {"TAG2"}  # §3.5.3: an idTag in the list is not cached
    rig.online()
    assert rig.decide("TAG1").info["status"] == "Accepted"


def test_clear_cache_leaves_the_list(make):
    rig = make(LocalPreAuthorize=True)
    send_list(rig, 3, [("TAG1", ACCEPTED)])
    assert request(rig, "ClearCache", {}).payload["status"] == "Accepted"
    assert list_version(rig) == 3
    rig.online()
    assert rig.decide("TAG1").source == "local-list"


def test_the_list_survives_a_restart(tmp_path):
    rig = Rig(tmp_path / "station.db", LocalPreAuthorize=True)
    send_list(rig, 6, [("TAG1", ACCEPTED)])
    rig.auth.stop()
    again = Rig(tmp_path / "station.db", LocalPreAuthorize=True)
    assert list_version(again) == 6
    again.online()
    assert again.decide("TAG1").source == "local-list"
    sync(again.auth)
