"""OCTT 1.6 Local Auth List Management: TC_042_1/2 GetLocalListVersion, TC_043 and TC_043_1/2/3
SendLocalList, TC_008 (TC_008_1 local, TC_008_2 remote) Start with an Id in the Local Authorization List
(OCPP 1.6 §3.5, §5.10, §5.15, §9.2; errata 3.52).

This station implements the profile, so the "not supported" cases (TC_042_1, TC_043_1) are played the
way OCTT allows for such a station: with LocalAuthListEnabled=false (set in station.toml, and turned off
at run time by ChangeConfiguration).
"""

import json
import resource

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import AnyOrder, M, SN, expect_sequence, set_config, start_fresh

pytestmark = pytest.mark.timeout(120)

ACCEPTED = {"status": "Accepted"}


def _entries(tags, info=ACCEPTED) -> list:
    return [{"idTag": t, "idTagInfo": dict(info)} for t in tags]


def _send_list(csms, version: int, update: str = "Full", entries=None) -> str:
    return csms.call(call.SendLocalList(list_version=version, update_type=update,
                                        local_authorization_list=entries or [])).status


def _raw_send_list(csms, unique_id: str, payload: dict, timeout: float = 60) -> list:
    """SendLocalList as the tool may send it (e.g. without localAuthorizationList); the station's reply."""
    csms.send_raw(json.dumps([2, unique_id, "SendLocalList", payload]))
    return csms.next_raw_reply(unique_id, timeout)


def _version(csms) -> int:
    return csms.call(call.GetLocalListVersion()).list_version


def test_tc_042_1_get_local_list_version_not_supported(csms, make_station):
    """LocalAuthListEnabled=false: GetLocalListVersion -> listVersion -1 (§5.10). Also when a list with
    entries is switched off by ChangeConfiguration (it takes effect at once; the list is kept)."""
    start_fresh(make_station, csms, configuration={"LocalAuthListEnabled": False})
    assert _version(csms) == -1
    set_config(csms, "LocalAuthListEnabled", "true")
    assert _version(csms) == 0
    assert _send_list(csms, 3, entries=_entries(["OCTT1"])) == "Accepted"
    assert _version(csms) == 3
    set_config(csms, "LocalAuthListEnabled", "false")
    assert _version(csms) == -1
    set_config(csms, "LocalAuthListEnabled", "true")
    assert _version(csms) == 3  # switched off, not emptied


def test_tc_042_2_get_local_list_version_empty(csms, make_station):
    """SendLocalList(Full, listVersion 1, localAuthorizationList omitted) -> Accepted;
    GetLocalListVersion -> 0: an empty list reports 0 whatever version was sent."""
    start_fresh(make_station, csms)
    reply = _raw_send_list(csms, "tc0422", {"listVersion": 1, "updateType": "Full"})
    assert reply == [3, "tc0422", {"status": "Accepted"}]
    assert _version(csms) == 0


def test_tc_043_send_local_authorization_list(csms, make_station):
    """SendLocalList Full -> Accepted; SendLocalList Differential -> Accepted (and each one's version is
    the list's version afterwards)."""
    start_fresh(make_station, csms)
    assert _send_list(csms, 1, "Full", _entries(["OCTT1", "OCTT2"])) == "Accepted"
    assert _version(csms) == 1
    assert _send_list(csms, 2, "Differential", _entries(["OCTT3"]) + [{"idTag": "OCTT1"}]) == "Accepted"
    assert _version(csms) == 2


def test_tc_043_1_send_local_list_not_supported(csms, make_station):
    """LocalAuthListEnabled=false: SendLocalList -> NotSupported, and nothing is stored."""
    start_fresh(make_station, csms, configuration={"LocalAuthListEnabled": False})
    assert _send_list(csms, 1, "Full", _entries(["OCTT1"])) == "NotSupported"
    assert _send_list(csms, 2, "Differential", _entries(["OCTT1"])) == "NotSupported"
    set_config(csms, "LocalAuthListEnabled", "true")
    assert _version(csms) == 0


def test_tc_043_2_send_local_list_version_mismatch(csms, make_station):
    """Full v2 -> version 2; Differential v5 -> version 5; Differential v4 -> VersionMismatch, the version
    stays 5."""
    start_fresh(make_station, csms)
    assert _send_list(csms, 2, "Full", _entries(["OCTT1"])) == "Accepted"
    assert _version(csms) == 2
    assert _send_list(csms, 5, "Differential", _entries(["OCTT2"])) == "Accepted"
    assert _version(csms) == 5
    assert _send_list(csms, 4, "Differential", _entries(["OCTT3"])) == "VersionMismatch"
    assert _version(csms) == 5


def test_tc_043_3_send_local_list_failed(csms, make_station):
    """The station is put in a state where storing fails: its files may not grow (RLIMIT_FSIZE on the
    running process, as a full disk does: the write fails with EFBIG). A Full list too big to store ->
    Failed; the old list and its version stay. Once storage works again, the same list -> Accepted."""
    station = start_fresh(make_station, csms)
    assert _send_list(csms, 1, "Full", _entries(["OLD1"])) == "Accepted"
    db = station.db_path
    files = [db, db.with_name(db.name + "-wal")]
    limit = max(f.stat().st_size for f in files if f.exists()) + 256 * 1024
    big = {"listVersion": 2, "updateType": "Full",
           "localAuthorizationList": _entries([f"NEW{i:05d}" for i in range(20_000)],
                                              {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00.000Z"})}
    _, hard = resource.prlimit(station.proc.pid, resource.RLIMIT_FSIZE)
    resource.prlimit(station.proc.pid, resource.RLIMIT_FSIZE, (limit, hard))  # the soft limit: it can be lifted
    try:
        assert _raw_send_list(csms, "tc0433a", big) == [3, "tc0433a", {"status": "Failed"}]
        assert _version(csms) == 1
    finally:
        resource.prlimit(station.proc.pid, resource.RLIMIT_FSIZE, (hard, hard))
    assert station.proc.poll() is None, station.log_tail()
    # (The station's log cannot say why: its log file may not grow either.) 20,000 entries are within both
    # capacity keys: the one thing in the way was storage, as the same list now shows.
    assert _raw_send_list(csms, "tc0433b", big) == [3, "tc0433b", {"status": "Accepted"}]
    assert _version(csms) == 2


LIST_ONLY = {"LocalPreAuthorize": True, "AuthorizationCacheEnabled": False, "LocalAuthListEnabled": True,
             "AuthorizeRemoteTxRequests": True}


def _listed_id_case(csms, make_station, remote: bool) -> None:
    station = start_fresh(make_station, csms, configuration=LIST_ONLY)
    assert _send_list(csms, 1, "Full", _entries(["OCTT1"])) == "Accepted"
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    expect_sequence(csms, after, [SN(1, "Preparing")])
    if remote:
        assert csms.call(call.RemoteStartTransaction(id_tag="OCTT1", connector_id=1)).status == "Accepted"
    else:
        station.sim(cmd="swipe", id_tag="OCTT1")
    expect_sequence(csms, after, [SN(1, "Preparing"),
                                  AnyOrder(M("StartTransaction", connectorId=1, idTag="OCTT1"), SN(1, "Charging"))],
                    exact=True)  # authorized from the list: no Authorize round trip


def test_tc_008_1_start_with_id_in_local_authorization_list_local(csms, make_station):
    """LocalPreAuthorize=true, cache disabled, LocalAuthListEnabled=true, AuthorizeRemoteTxRequests=true;
    SendLocalList(Full, the idTag Accepted) -> Accepted; plug in -> Preparing; the idTag presented at the
    station -> StartTransaction + StatusNotification(Charging), either order, without Authorize."""
    _listed_id_case(csms, make_station, remote=False)


def test_tc_008_2_start_with_id_in_local_authorization_list_remote(csms, make_station):
    """As TC_008_1, started by RemoteStartTransaction -> Accepted (AuthorizeRemoteTxRequests=true: the list
    answers as for a local presentation) -> StartTransaction + Charging, without Authorize."""
    _listed_id_case(csms, make_station, remote=True)
