"""The Local Authorization List end to end (OCPP 1.6 §3.5, §5.10, §5.15): the capacity keys from
station.toml, the capacity limits, the list deciding offline, and a 50,000-entry Full update: stored
whole or not at all, also when the process is SIGKILLed in the middle of writing it."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest
from ocpp.v16 import call

from tests.integration.conftest import go_offline, go_online

pytestmark = pytest.mark.timeout(300)

BIG = 50_000


def _version(csms) -> int:
    return csms.call(call.GetLocalListVersion()).list_version


def _entries(prefix: str, n: int, info=None) -> list:
    info = info or {"status": "Accepted", "expiryDate": "2031-01-01T00:00:00.000Z", "parentIdTag": "FLEET"}
    return [{"idTag": f"{prefix}{i:05d}", "idTagInfo": info} for i in range(n)]


def _send(csms, unique_id: str, version: int, entries: list, update: str = "Full") -> None:
    csms.send_raw(json.dumps([2, unique_id, "SendLocalList",
                              {"listVersion": version, "updateType": update, "localAuthorizationList": entries}]))


def _stored(db_path) -> tuple[int, dict[str, int]]:
    """(version, {idTag prefix: count}) as committed in the station's database."""
    conn = sqlite3.connect(str(db_path), timeout=10)
    try:
        version = conn.execute("SELECT version FROM local_list_version").fetchone()[0]
        prefixes = dict(conn.execute("SELECT substr(id_tag, 1, 3), COUNT(*) FROM local_list GROUP BY 1"))
        return version, prefixes
    finally:
        conn.close()


def _poll(predicate, what: str, timeout: float = 10, every: float = 0.05):
    """Wait for something the CSMS does not see (the simulator, the database's files)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(every)


def _booted(csms, after: int) -> None:
    csms.wait_for("BootNotification", after=after, timeout=20)
    csms.wait_for("StatusNotification", lambda p: p["connectorId"] == 1, after=after, timeout=20)


def test_capacity_keys_set_in_station_toml_read_back_read_only_with_that_value_and_are_enforced(csms, make_station):
    station = make_station(configuration={"LocalAuthListMaxLength": 5, "SendLocalListMaxLength": 3})
    _booted(csms, 0)
    keys = {k["key"]: k for k in csms.call(call.GetConfiguration(
        key=["LocalAuthListMaxLength", "SendLocalListMaxLength", "LocalAuthListEnabled"])).configuration_key}
    assert keys["LocalAuthListMaxLength"] == {"key": "LocalAuthListMaxLength", "readonly": True, "value": "5"}
    assert keys["SendLocalListMaxLength"] == {"key": "SendLocalListMaxLength", "readonly": True, "value": "3"}
    assert keys["LocalAuthListEnabled"]["readonly"] is False
    assert csms.call(call.ChangeConfiguration(key="LocalAuthListMaxLength", value="9")).status == "Rejected"

    def send(version, entries, update="Full"):
        return csms.call(call.SendLocalList(list_version=version, update_type=update,
                                            local_authorization_list=entries)).status
    assert send(1, _entries("AAA", 3)) == "Accepted"
    assert send(2, _entries("BBB", 4)) == "Failed"  # more than SendLocalListMaxLength
    assert send(2, _entries("CCC", 3), "Differential") == "Failed"  # 6 would exceed LocalAuthListMaxLength
    assert _version(csms) == 1
    assert _stored(station.db_path) == (1, {"AAA": 3})
    assert send(2, _entries("CCC", 2), "Differential") == "Accepted"  # 5 fits
    assert _version(csms) == 2


def test_offline_the_list_decides_a_listed_tag_charges_a_blocked_one_does_not(csms, make_station):
    station = make_station(configuration={"LocalAuthorizeOffline": True, "AllowOfflineTxForUnknownId": True})
    _booted(csms, 0)
    assert csms.call(call.SendLocalList(list_version=1, update_type="Full", local_authorization_list=[
        {"idTag": "GOOD", "idTagInfo": {"status": "Accepted", "parentIdTag": "FLEET"}},
        {"idTag": "BLOCKED", "idTagInfo": {"status": "Blocked"}}])).status == "Accepted"
    go_offline(csms)
    station.sim(cmd="plug", connector=1)
    # Known and not valid: refused even though AllowOfflineTxForUnknownId lets unknown idTags through.
    station.sim(cmd="swipe", id_tag="BLOCKED")
    _poll(lambda: "idTag BLOCKED not accepted (Blocked)" in station.log_path.read_text(errors="replace"),
          "the station's verdict on BLOCKED")
    assert station.state()["contactor"] is False
    station.sim(cmd="swipe", id_tag="GOOD")
    _poll(lambda: station.state()["contactor"], "the contactor closed for GOOD")
    after = csms.mark()
    go_online(csms)
    start = csms.wait_for("StartTransaction", after=after, timeout=20)
    assert start.payload["idTag"] == "GOOD"
    assert [r.payload["idTag"] for r in csms.received if r.action == "StartTransaction"] == ["GOOD"]


def test_a_50000_entry_full_update_is_stored_whole_survives_a_restart_and_authorizes(csms, make_station):
    station = make_station(configuration={"LocalPreAuthorize": True})
    _booted(csms, 0)
    t0 = time.monotonic()
    _send(csms, "big1", 7, _entries("TAG", BIG))
    assert csms.next_raw_reply("big1", timeout=120) == [3, "big1", {"status": "Accepted"}]
    print(f"50,000-entry Full SendLocalList answered in {time.monotonic() - t0:.2f} s")
    assert _stored(station.db_path) == (7, {"TAG": BIG})
    station.terminate()
    after = csms.mark()
    station.start()
    _booted(csms, after)
    assert _version(csms) == 7
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    station.sim(cmd="swipe", id_tag="tag49999")  # case-insensitive, the last entry
    start = csms.wait_for("StartTransaction", after=after, timeout=20)
    assert start.payload["idTag"] == "tag49999"
    assert not [r for r in csms.received[after:] if r.action == "Authorize"]  # from the list, no round trip


def _wal_changed(wal, before) -> bool:
    try:
        st = os.stat(wal)
    except FileNotFoundError:
        return False
    return (st.st_mtime_ns, st.st_size) != before


def test_sigkill_in_the_middle_of_a_50000_entry_update_leaves_the_old_list_or_the_new_one_never_a_mix(
        csms, make_station):
    """A real process, SIGKILLed while it writes the new list (its write-ahead log is growing and no
    answer has gone out). Each time, after the restart, the list is all OLD with version 1 or all NEW
    with version 2, 50,000 entries either way. The kills come 0 to 200 ms after the first write of the
    update reaches the log, so they land at different points of it."""
    station = make_station()
    _booted(csms, 0)
    _send(csms, "old", 1, _entries("OLD", BIG))
    assert csms.next_raw_reply("old", timeout=120)[2] == {"status": "Accepted"}
    wal = str(station.db_path) + "-wal"
    kills_mid_write, outcomes = 0, []
    for attempt, delay_s in enumerate((0.0, 0.01, 0.05, 0.2)):  # after the first write to the log
        version, prefixes = _stored(station.db_path)
        target = ("NEW", 2) if prefixes == {"OLD": BIG} else ("OLD", 1)
        st = os.stat(wal)
        before = (st.st_mtime_ns, st.st_size)
        uid = f"kill{attempt}"
        _send(csms, uid, target[1], _entries(target[0], BIG))
        _poll(lambda: _wal_changed(wal, before), "the update's first write", timeout=120, every=0.0005)
        time.sleep(delay_s)  # where in the update the kill lands: a position in it, not a wait for something
        answered = any(m[1] == uid for m in csms._raw_replies)
        station.kill()
        if not answered:
            kills_mid_write += 1
        version, prefixes = _stored(station.db_path)  # what a restart finds (SQLite recovers the WAL)
        assert (version, prefixes) in ((1, {"OLD": BIG}), (2, {"NEW": BIG})), (version, prefixes)
        outcomes.append((delay_s, "answered" if answered else "mid-write", version))
        after = csms.mark()
        station.start()
        _booted(csms, after)
        assert _version(csms) == version
    print("kills (delay after the first write, when, version found):", outcomes)
    assert kills_mid_write >= 2, f"only {kills_mid_write} of 4 kills landed before the answer: {outcomes}"
