"""OCTT 1.6 Core, authorization: TC_007_1/2 (cached id), TC_061_1/2 (ClearCache), TC_023_4/5
(Authorize Invalid) (OCPP 1.6 §3.4, §5.4, §5.11; errata 3.4, 3.23).

`_1`/`_4` are the local variants of the newer OCTT numbering (the idTag is presented at the
station), `_2`/`_5` the remote ones (RemoteStartTransaction). TC_007, TC_061 and TC_023 of the
2024-04 document are the remote variants.
"""

import pytest
from ocpp.v16 import call

from tests.conformance.conftest import AnyOrder, M, SN, expect_sequence, poll, start_fresh

pytestmark = pytest.mark.timeout(90)

CACHE = {"AuthorizationCacheEnabled": True, "LocalPreAuthorize": True, "AuthorizeRemoteTxRequests": True}


def _cache_id_tag(csms, station, id_tag: str) -> None:
    """OCTT memory state IdTagCached: the idTag was authorized by the CSMS (a whole session:
    Authorize, StartTransaction and StopTransaction answers all carry its idTagInfo)."""
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    station.sim(cmd="swipe", id_tag=id_tag)
    expect_sequence(csms, after, [SN(1, "Preparing"), M("Authorize", idTag=id_tag),
                                  AnyOrder(M("StartTransaction", idTag=id_tag), SN(1, "Charging"))])
    after = csms.mark()
    station.sim(cmd="swipe", id_tag=id_tag)
    expect_sequence(csms, after, [AnyOrder(M("StopTransaction", idTag=id_tag), SN(1, "Finishing"))])
    station.sim(cmd="unplug", connector=1)
    expect_sequence(csms, after, [AnyOrder(M("StopTransaction"), SN(1, "Finishing")), SN(1, "Available")])
    poll(lambda: station.queued() == [], what="StopTransaction answered")


def _present(csms, station, id_tag: str, remote: bool) -> None:
    if remote:
        assert csms.call(call.RemoteStartTransaction(id_tag=id_tag, connector_id=1)).status == "Accepted"
    else:
        station.sim(cmd="swipe", id_tag=id_tag)


def test_tc_007_1_start_charging_session_cached_id_local(csms, make_station):
    """AuthorizationCacheEnabled, LocalPreAuthorize; memory state IdTagCached; plug in ->
    Preparing; the cached idTag is presented at the station -> StartTransaction + StatusNotification
    (Charging), either order, with no Authorize round trip."""
    _cached_id_case(csms, make_station, remote=False)


def test_tc_007_2_start_charging_session_cached_id_remote(csms, make_station):
    """As TC_007_1, started by RemoteStartTransaction (AuthorizeRemoteTxRequests=true: the cache
    answers as for a local presentation) -> Accepted -> StartTransaction + Charging, no Authorize."""
    _cached_id_case(csms, make_station, remote=True)


def _cached_id_case(csms, make_station, remote: bool) -> None:
    station = start_fresh(make_station, csms, configuration=CACHE)
    _cache_id_tag(csms, station, "OCTT1")
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    expect_sequence(csms, after, [SN(1, "Preparing")])
    _present(csms, station, "OCTT1", remote)
    expect_sequence(csms, after, [SN(1, "Preparing"),
                                  AnyOrder(M("StartTransaction", connectorId=1, idTag="OCTT1"), SN(1, "Charging"))],
                    exact=True)  # and no Authorize after all


def _clear_cache_case(csms, make_station, remote: bool) -> None:
    station = start_fresh(make_station, csms, configuration=CACHE)
    _cache_id_tag(csms, station, "OCTT1")
    assert csms.call(call.ClearCache()).status == "Accepted"
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    expect_sequence(csms, after, [SN(1, "Preparing")])
    _present(csms, station, "OCTT1", remote)
    expect_sequence(csms, after, [SN(1, "Preparing"), M("Authorize", idTag="OCTT1"),
                                  AnyOrder(M("StartTransaction", connectorId=1, idTag="OCTT1"), SN(1, "Charging"))],
                    exact=True)


def test_tc_061_1_clear_authorization_data_in_authorization_cache_local(csms, make_station):
    """AuthorizationCacheEnabled, LocalPreAuthorize; IdTagCached; ClearCache -> Accepted; the same
    idTag presented at the station now produces an Authorize.req (the cache really is empty),
    then StartTransaction + Charging."""
    _clear_cache_case(csms, make_station, remote=False)


def test_tc_061_2_clear_authorization_data_in_authorization_cache_remote(csms, make_station):
    """As TC_061_1 with RemoteStartTransaction (AuthorizeRemoteTxRequests=true): Authorize.req
    after ClearCache."""
    _clear_cache_case(csms, make_station, remote=True)


def _invalid_case(csms, make_station, remote: bool) -> None:
    csms.authorize_status = {"INVALID1": "Invalid"}
    station = start_fresh(make_station, csms, configuration={**CACHE, "MinimumStatusDuration": 2})
    after = csms.mark()
    station.sim(cmd="plug", connector=1)
    expect_sequence(csms, after, [SN(1, "Preparing")], timeout=10)
    after = csms.mark()
    _present(csms, station, "INVALID1", remote)
    # Then nothing for longer than MinimumStatusDuration: no transaction, no status change.
    expect_sequence(csms, after, [M("Authorize", idTag="INVALID1")], exact=True, quiet=3.0)
    assert station.state()["contactor"] is False


def test_tc_023_4_start_charging_session_authorize_invalid_local(csms, make_station):
    """MinimumStatusDuration 2 s (the tool sets 10; shortened), LocalPreAuthorize=true: plug in
    -> StatusNotification(Preparing); an idTag presented at the station -> Authorize -> Invalid;
    no transaction starts."""
    _invalid_case(csms, make_station, remote=False)


def test_tc_023_5_start_charging_session_authorize_invalid_remote(csms, make_station):
    """As TC_023_4 with RemoteStartTransaction (AuthorizeRemoteTxRequests=true) -> Accepted ->
    Authorize -> Invalid; no transaction starts."""
    _invalid_case(csms, make_station, remote=True)
