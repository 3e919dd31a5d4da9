"""OCTT 1.6 Core, the rest: TC_041 fault behaviour, TC_062 DataTransfer to the station (OCPP 1.6 §4.9,
§5.6); and the suite's own check that tests/conformance/README.md covers every Core case and every case
of the optional profiles the station declares."""

import ast
import re
from pathlib import Path

import pytest
from ocpp.v16 import call

from actors import features
from tests.conformance.conftest import M, SN, expect_none, expect_sequence, start_fresh

pytestmark = pytest.mark.timeout(90)

HERE = Path(__file__).resolve().parent


def test_tc_041_fault_behavior(csms, make_station):
    """The connector faults (GroundFailure) -> StatusNotification(Faulted, that errorCode); an
    attempted start (EV plugged in, idTag presented, RemoteStartTransaction) produces no
    transaction for as long as the fault lasts (2 s here); the fault clears -> the connector
    leaves Faulted (Preparing: the EV is plugged in)."""
    station = start_fresh(make_station, csms)
    after = csms.mark()
    station.sim(cmd="fault", connector=1, error_code="GroundFailure")
    expect_sequence(csms, after, [SN(1, "Faulted", errorCode="GroundFailure")], exact=True)
    station.sim(cmd="plug", connector=1)
    station.sim(cmd="swipe", id_tag="OCTT1")
    assert csms.call(call.RemoteStartTransaction(id_tag="OCTT1", connector_id=1)).status in ("Rejected", "Accepted")
    expect_none(csms, after, M("StartTransaction"), 2.0)
    assert station.state()["contactor"] is False
    after = csms.mark()
    station.sim(cmd="fault", connector=1, error_code="NoError")
    expect_sequence(csms, after, [SN(1, "Preparing", errorCode="NoError")], exact=True)  # and no StartTransaction


def test_tc_062_data_transfer_to_a_charge_point(csms, make_station):
    """DataTransfer with a vendorId the station does not know -> Rejected, UnknownMessageId or
    UnknownVendorId (OCTT tolerates Accepted with a warning; this suite does not)."""
    start_fresh(make_station, csms)
    conf = csms.call(call.DataTransfer(vendor_id="org.openchargealliance.octt", message_id="Test", data="OCTT"))
    assert conf.status in ("Rejected", "UnknownMessageId", "UnknownVendorId"), conf


# --- the README table -----------------------------------------------------------------------------

CORE_IDS_2024 = ("001 002 003 004_1 004_2 068 069 005_1 005_2 005_3 007 061 010 011_1 011_2 012 013 014 015 016 "
                 "017_1 017_2 018_1 018_2 019 021 070 071 023 024 026 027 028 030 031 032_1 032_2 034 036 037_1 "
                 "037_2 037_3 038 039 040_1 040_2 041 062").split()
SPLIT_IDS = {"007": ("007_1", "007_2"), "061": ("061_1", "061_2"), "023": ("023_4", "023_5")}
# The cases of each optional profile (../shared/reference/octt-1.6-cs-cases.md): required in the table once
# SupportedFeatureProfiles names the profile.
PROFILE_IDS = {
    "RemoteTrigger": ("054", "055"),
    "LocalAuthListManagement": ("042_1", "042_2", "043", "043_1", "043_2", "043_3", "008"),
    "Reservation": ("046_1", "046_2", "047", "048_1", "048_2", "048_3", "048_4", "049", "050_1", "050_2", "050_3",
                    "050_4", "051", "052", "053"),
}


def _tests_and_marks() -> dict[str, str | None]:
    """test_tc_* function in the station's conformance files (not the ocpp-rpc peer's) -> its xfail reason
    (None: no xfail mark)."""
    found = {}
    for path in sorted(p for p in HERE.glob("test_*.py") if not p.name.startswith("test_ocpp_rpc")):
        tree = ast.parse(path.read_text())
        constants = {}
        for node in tree.body:  # module-level marks, e.g. SOME_BUG = pytest.mark.xfail(...)
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        constants[target.id] = node.value
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_tc_"):
                reason = None
                for dec in node.decorator_list:
                    dec = constants.get(dec.id, dec) if isinstance(dec, ast.Name) else dec
                    if isinstance(dec, ast.Call) and ast.unparse(dec.func).endswith("mark.xfail"):
                        reason = next((ast.literal_eval(k.value) for k in dec.keywords if k.arg == "reason"), "")
                found[f"{path.name}::{node.name}"] = reason
    return found


def _readme_rows() -> list[dict]:
    rows = []
    for line in (HERE / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and re.fullmatch(r"TC_\d{3}(_\d)?_CS", cells[0]):
            rows.append(dict(zip(("id", "newer", "title", "tests", "status"), cells)))
    return rows


def test_readme_lists_every_core_case_with_its_tests_and_their_xfail_status():
    tests = _tests_and_marks()
    rows = _readme_rows()
    listed = {r["id"] for r in rows}
    wanted = {f"TC_{i}_CS" for i in CORE_IDS_2024} | {f"TC_{i}_CS" for ids in SPLIT_IDS.values() for i in ids}
    wanted |= {f"TC_{i}_CS" for profile in features.profiles() for i in PROFILE_IDS.get(profile, ())}
    assert wanted <= listed, f"cases missing from README.md: {sorted(wanted - listed)}"
    covered = set()
    for row in rows:
        names = re.findall(r"`([^`]+)`", row["tests"])
        assert names, f"{row['id']}: no test named"
        for name in names:
            assert name in tests, f"{row['id']}: README names {name}, which does not exist"
            covered.add(name)
        xfails = [tests[n] for n in names if tests[n] is not None]
        status = row["status"].lower()
        if xfails:
            assert status.startswith("xfail"), f"{row['id']}: {names} are xfail ({xfails[0]}), README says {status!r}"
        else:
            assert status.startswith("pass"), f"{row['id']}: {names} have no xfail mark, README says {status!r}"
    assert covered == set(tests), f"tests not in README.md: {sorted(set(tests) - covered)}"
