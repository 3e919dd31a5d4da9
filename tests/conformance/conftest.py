"""OCTT 1.6 Core conformance tests: shared fixtures and helpers.

The fixtures are the integration ones (`csms`: the loopback CSMS on the `ocpp` package;
`make_station`: the real station process with its simulator socket), imported, not copied.
On top of them:

- `M(action, **fields)` matches one received CALL; `AnyOrder(m1, m2)` is a group OCTT accepts in
  either order (e.g. StartTransaction and StatusNotification(Charging), OCTT doc §1.2).
- `expect_sequence()` asserts the sequence of the next CALLs from the station (Heartbeat and
  MeterValues aside unless asked for); with `exact=True` also that nothing else follows within
  QUIET_S. `expect_none()` asserts that something does *not* come within a window (at least
  QUIET_S); these two are the only kind of waiting for a duration these tests do. Both work with
  either test CSMS (`csms`, or the ocpp-rpc one).
- The OCTT reusable states: `booted()` (Boot Accepted, StatusNotification per connector and
  connector 0), `reach_charging()` (Preparing -> RemoteStart -> Authorize -> Start + Charging).
- Performance figures for the OCTT-style report (`scripts/conformance`): every `csms.call` is
  timed (wall time and wire round trip from the CSMS's frame log), and `note_triggered()`
  records the time from a CSMS request to the message it triggers. They are written to
  `var/conformance/timings.json` (or `$CONFORMANCE_DIR`) at the end of the session.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path

import pytest
from ocpp.v16 import call

from tests.integration.conftest import (REPO, StationProcess, csms, go_offline, go_online,  # noqa: F401
                                        make_station, pytest_runtest_makereport)

IGNORED = frozenset({"Heartbeat", "MeterValues"})
QUIET_S = 1.0  # the shortest "nothing (else) happens" window: shorter ones pass on a slow station

# --- matching received CALLs ------------------------------------------------------------------

ABSENT = object()  # M(..., reason=ABSENT): the field must not be there


class M:
    """Matches a received CALL: M("StatusNotification", connectorId=1, status="Preparing").

    A field value may be a literal, a set/tuple of allowed values, ABSENT, or a predicate.
    """

    def __init__(self, action: str, **fields):
        self.action, self.fields = action, fields

    def payload_matches(self, payload) -> bool:
        for key, want in self.fields.items():
            have = payload.get(key, ABSENT) if isinstance(payload, dict) else ABSENT
            if want is ABSENT:
                if have is not ABSENT:
                    return False
            elif isinstance(want, (set, frozenset, tuple)):
                if have not in want:
                    return False
            elif callable(want):
                if have is ABSENT or not want(have):
                    return False
            elif have != want:
                return False
        return True

    def __call__(self, record) -> bool:
        return record.action == self.action and self.payload_matches(record.payload)

    def __repr__(self) -> str:
        def show(v):
            if v is ABSENT:
                return "<absent>"
            if isinstance(v, (set, frozenset, tuple)):
                return "|".join(sorted(map(str, v)))
            return getattr(v, "__name__", repr(v)) if callable(v) else repr(v)
        return f"{self.action}({', '.join(f'{k}={show(v)}' for k, v in self.fields.items())})"


class AnyOrder:
    """A group of messages that may come in any order."""

    def __init__(self, *matchers: M):
        self.matchers = matchers

    def __repr__(self) -> str:
        return "AnyOrder(" + ", ".join(map(repr, self.matchers)) + ")"


def SN(connector: int, status, **fields) -> M:
    return M("StatusNotification", connectorId=connector, status=status, **fields)


def _show(records) -> str:
    return "\n".join(f"  {r.action} {json.dumps(r.payload)[:240]}" for r in records) or "  (nothing)"


def relevant(csms, after: int, ignore=IGNORED) -> list:
    """CALLs received at index >= after, minus the ignored ones (a set of actions, or a predicate
    on the record)."""
    skip = ignore if callable(ignore) else (lambda r: r.action in ignore)
    return [r for r in csms.received[after:] if not skip(r)]


def ignoring_resent(csms, before: int, ignore=IGNORED):
    """An `ignore` predicate for after a restart: also skip re-sends (same message id) of CALLs
    received before index `before` (the one message possibly in flight may come twice)."""
    seen = {r.unique_id for r in csms.received[:before]}
    return lambda r: r.action in ignore or r.unique_id in seen


def expect_sequence(csms, after: int, steps: list, timeout: float = 10, ignore=IGNORED, exact: bool = False,
                    quiet: float = QUIET_S) -> list:
    """The next CALLs from the station after index `after` (minus `ignore`d actions) are `steps`
    (M or AnyOrder groups), in that order. exact=True: and nothing else follows (none at all
    for `quiet` seconds after the last step; a case that requires this exact sequence). Without
    it, later messages are not looked at. Returns the matched records in the order of `steps`."""
    assert quiet >= QUIET_S, f"a 'nothing else follows' window under {QUIET_S} s proves little"
    groups = [s.matchers if isinstance(s, AnyOrder) else (s,) for s in steps]
    count = sum(len(g) for g in groups)
    try:
        csms.wait_until(lambda: len(relevant(csms, after, ignore)) >= count, timeout,
                        f"{count} message(s) {steps}")
    except AssertionError:
        raise AssertionError(f"expected within {timeout}s:\n  {steps}\nreceived:\n"
                             f"{_show(relevant(csms, after, ignore))}") from None
    got = relevant(csms, after, ignore)[:count]
    matched, i = [], 0
    for group in groups:
        chunk = got[i:i + len(group)]
        for perm in itertools.permutations(chunk):
            if all(m(r) for m, r in zip(group, perm)):
                matched.extend(perm)
                break
        else:
            raise AssertionError(f"message sequence differs at position {i}:\nexpected:\n  {steps}\n"
                                 f"received:\n{_show(relevant(csms, after, ignore))}")
        i += len(group)
    if exact:
        try:
            csms.wait_until(lambda: len(relevant(csms, after, ignore)) > count, quiet, "anything else")
        except AssertionError:
            return matched  # nothing else came
        raise AssertionError(f"more than the expected sequence within {quiet}s:\nexpected only:\n  {steps}\n"
                             f"received:\n{_show(relevant(csms, after, ignore))}")
    return matched


def wait(csms, matcher: M, after: int = 0, timeout: float = 10):
    """The first received CALL at index >= after that matches."""
    return csms.wait_for(matcher.action, matcher.payload_matches, timeout=timeout, after=after)


def expect_none(csms, after: int, matcher: M, seconds: float = QUIET_S) -> None:
    """No CALL matching `matcher` arrives (index >= after) within `seconds` (at least QUIET_S)."""
    assert seconds >= QUIET_S, f"a 'nothing happens' window under {QUIET_S} s proves little"
    try:
        found = csms.wait_for(matcher.action, matcher.payload_matches, timeout=seconds, after=after)
    except AssertionError:
        return
    raise AssertionError(f"unexpected {found.action} {json.dumps(found.payload)}; received:\n"
                         f"{_show(csms.received[after:])}")


def poll(predicate, timeout: float = 10, what: str = "condition", every: float = 0.05):
    """Wait for a condition the CSMS does not see (the simulator, the process); return its value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(every)


def conf_of(csms, record, timeout: float = 10) -> dict:
    """The payload of the CSMS's CALLRESULT to a received CALL."""
    def find():
        for frame in csms.frames_out:
            try:
                msg = json.loads(frame.text)
            except (TypeError, ValueError):
                continue
            if isinstance(msg, list) and len(msg) == 3 and msg[0] == 3 and msg[1] == record.unique_id:
                return msg[2]
        return None
    return csms.wait_until(find, timeout, f"the CSMS's answer to {record.action} {record.unique_id}")


def config_value(csms, key: str):
    conf = csms.call(call.GetConfiguration(key=[key]))
    entries = {k["key"]: k for k in conf.configuration_key or []}
    return entries[key]["value"] if key in entries else None


def set_config(csms, key: str, value: str) -> None:
    status = csms.call(call.ChangeConfiguration(key=key, value=value)).status
    assert status == "Accepted", f"ChangeConfiguration {key}={value}: {status}"


# --- OCTT reusable states -----------------------------------------------------------------------

def booted(csms, connectors: int = 1, after: int = 0, statuses: dict | None = None, timeout: float = 15,
           also: tuple = (), ignore=IGNORED, exact: bool = False) -> list:
    """BootNotification (Accepted by the CSMS), then one StatusNotification for connector 0 and for
    every connector (errata 3.22), in any order, with the matchers in `also` among them (and with
    exact=True nothing else); `statuses` maps a connector to its expected status (or set of
    statuses), else Available."""
    statuses = statuses or {}
    expected = [SN(c, statuses.get(c, "Available"), errorCode="NoError") for c in range(connectors + 1)]
    return expect_sequence(csms, after, [M("BootNotification"), AnyOrder(*expected, *also)], timeout=timeout,
                           ignore=ignore, exact=exact)


def authorize_remote_tx_requests(csms) -> bool:
    """OCTT reads AuthorizeRemoteTxRequests before it decides whether to expect Authorize."""
    return config_value(csms, "AuthorizeRemoteTxRequests") == "true"


def reach_charging(csms, station: StationProcess, id_tag: str = "OCTT1", connector: int = 1,
                   plug: bool = True, exact: bool = False) -> tuple:
    """OCTT reusable state Charging: (plug ->) Preparing -> RemoteStartTransaction Accepted ->
    Authorize (if AuthorizeRemoteTxRequests) -> StartTransaction + StatusNotification(Charging),
    either order (exact=True: and nothing else). Returns (StartTransaction record, transactionId
    the CSMS gave)."""
    authorize = authorize_remote_tx_requests(csms)
    if plug:
        after = csms.mark()
        station.sim(cmd="plug", connector=connector)
        expect_sequence(csms, after, [SN(connector, "Preparing")])
    after = csms.mark()
    status = csms.call(call.RemoteStartTransaction(id_tag=id_tag, connector_id=connector)).status
    assert status == "Accepted"
    steps = [M("Authorize", idTag=id_tag)] if authorize else []
    steps.append(AnyOrder(M("StartTransaction", connectorId=connector, idTag=id_tag),
                          SN(connector, "Charging")))
    records = expect_sequence(csms, after, steps, exact=exact)
    start = next(r for r in records if r.action == "StartTransaction")
    note_triggered(csms, "RemoteStartTransaction", records[0])
    return start, conf_of(csms, start)["transactionId"]


def start_fresh(make_station, csms, connectors: int = 1, configuration: dict | None = None,
                station: dict | None = None) -> StationProcess:
    """A new station (empty database), booted, every connector Available."""
    sp = make_station(configuration=configuration, station={"connectors": connectors, **(station or {})})
    booted(csms, connectors)
    return sp


def restart_after_exit(station: StationProcess, code: int, timeout: float = 30) -> None:
    """What the supervisor does: wait for the process to exit (with `code`), start it again."""
    got = station.proc.wait(timeout)
    assert got == code, f"station exited with {got}, expected {code}:\n{station.log_tail()}"
    station.start()


def start_offline_then_connect(csms, station: StationProcess, before_connect=None) -> None:
    """Start the station while the CSMS refuses connections, run `before_connect(station)` (e.g.
    the EV is still plugged in when power returns), then let it connect."""
    csms.refuse_connections = True
    station.start()
    if before_connect is not None:
        before_connect(station)
    go_online(csms)


# --- performance figures ------------------------------------------------------------------------

OUT_DIR = Path(os.environ.get("CONFORMANCE_DIR", REPO / "var" / "conformance"))
TIMINGS: dict = {"calls": [], "triggered": [], "meta": {}}
_current_test = ["?"]


def _wire_round_trip(csms, frames_before: int, action: str):
    """Seconds from our CALL frame to the station's reply frame, from the CSMS's frame log."""
    out = csms.frames_out[frames_before:]
    for frame in out:
        try:
            msg = json.loads(frame.text)
        except (TypeError, ValueError):
            continue
        if isinstance(msg, list) and len(msg) >= 3 and msg[0] == 2 and msg[2] == action:
            for reply in csms.frames_in:
                try:
                    r = json.loads(reply.text)
                except (TypeError, ValueError):
                    continue
                if isinstance(r, list) and len(r) >= 3 and r[0] in (3, 4) and r[1] == msg[1]:
                    return round(reply.time - frame.time, 6)
            return None
    return None


def note_triggered(csms, request_action: str, record) -> None:
    """Record the time from the latest `request_action` CALL we sent to `record` (the message it
    triggered): the report's "OCPP triggered function" figure."""
    sent = None
    for frame in csms.frames_out:
        try:
            msg = json.loads(frame.text)
        except (TypeError, ValueError):
            continue
        if isinstance(msg, list) and len(msg) >= 3 and msg[0] == 2 and msg[2] == request_action \
                and frame.time <= record.time:
            sent = frame.time
    if sent is not None:
        TIMINGS["triggered"].append({"test": _current_test[0], "request": request_action,
                                     "message": record.action, "seconds": round(record.time - sent, 6)})


def note_meta(key: str, value) -> None:
    TIMINGS["meta"][key] = value


@pytest.fixture(autouse=True)
def _timed_csms_calls(request):
    """Wrap csms.call: every CSMS request's round trip goes into the timings file (only for the
    tests that use the `csms` fixture; the ocpp-rpc tests bring their own CSMS)."""
    if "csms" not in request.fixturenames:
        yield
        return
    csms = request.getfixturevalue("csms")
    _current_test[0] = request.node.nodeid
    original = csms.call

    def timed(payload, *args, **kwargs):
        action = type(payload).__name__
        before = len(csms.frames_out)
        t0 = time.monotonic()
        outcome = "result"
        try:
            return original(payload, *args, **kwargs)
        except Exception as exc:
            outcome = type(exc).__name__
            raise
        finally:
            wall = time.monotonic() - t0
            TIMINGS["calls"].append({"test": request.node.nodeid, "action": action, "outcome": outcome,
                                     "wall_s": round(wall, 6),
                                     "wire_s": _wire_round_trip(csms, before, action)})

    csms.call = timed
    yield
    _current_test[0] = "?"


def pytest_sessionfinish(session, exitstatus):
    if not TIMINGS["calls"] and not TIMINGS["triggered"]:
        return
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "timings.json").write_text(json.dumps(TIMINGS, indent=1))
