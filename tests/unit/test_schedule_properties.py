"""Property tests: actors.smart_charging.schedule's composite schedule against a brute force that works out
the limit second by second, from the rules alone (module docstring of schedule.py), over random stacks of
Absolute, Relative and Recurring profiles of every purpose on connectors 0 and 1.

The suite runs SCHEDULE_EXAMPLES examples (default 150, a few seconds); for a deeper search:
    SCHEDULE_EXAMPLES=5000 scripts/test tests/unit/test_schedule_properties.py
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.smart_charging.schedule import Period, Profile, Stacks, composite_schedule

pytestmark = pytest.mark.timeout(120)

EXAMPLES = int(os.environ.get("SCHEDULE_EXAMPLES", "150"))
T0 = datetime(2026, 3, 2, 0, 0, 0, tzinfo=timezone.utc)
DAY = 86_400
WINDOW_S = 2 * DAY  # the composite asked for: two days from a random start in the first one
VOLTAGE, PHASES = 230.0, 3


def seconds(t: datetime) -> int:
    return int((t - T0).total_seconds())


@st.composite
def profiles(draw):
    kind = draw(st.sampled_from(["Absolute", "Relative", "Recurring"]))
    purpose = draw(st.sampled_from(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]))
    connector = 0 if purpose == "ChargePointMaxProfile" else draw(st.sampled_from([0, 1]))
    if purpose == "TxProfile":
        connector = 1
    starts = sorted(set(draw(st.lists(st.integers(1, DAY), max_size=4))))
    periods = tuple(Period(s, draw(st.integers(6, 32)) * 1.0, draw(st.sampled_from([None, 1, 3])))
                    for s in [0, *starts])
    duration = draw(st.one_of(st.none(), st.just(0), st.integers(1, 2 * DAY)))
    start = T0 + timedelta(seconds=draw(st.integers(-DAY, 2 * DAY)))
    valid_from = draw(st.one_of(st.none(), st.integers(0, 3 * DAY)))
    valid_to = draw(st.one_of(st.none(), st.integers(0, 3 * DAY)))
    return Profile(
        draw(st.integers(1, 10**6)), draw(st.integers(0, 3)), purpose, kind, draw(st.sampled_from(["A", "W"])),
        periods, connector, None if kind == "Relative" else start, duration,
        draw(st.sampled_from(["Daily", "Weekly"])) if kind == "Recurring" else None,
        None if valid_from is None else T0 + timedelta(seconds=valid_from),
        None if valid_to is None else T0 + timedelta(seconds=valid_to),
        draw(st.sampled_from([None, 7, 8])) if purpose == "TxProfile" else None)


# --- the brute force: the rules, one second at a time ------------------------------------------------


def covering_period(p: Profile, t: int, tx_start: int):
    if p.valid_from is not None and t < seconds(p.valid_from):
        return None
    if p.valid_to is not None and t >= seconds(p.valid_to):
        return None
    if p.kind == "Relative":
        origin = tx_start
        span = p.duration or float("inf")
    elif p.kind == "Recurring":
        step = DAY if p.recurrency == "Daily" else 7 * DAY
        first = seconds(p.start_schedule)
        if t < first:
            return None
        origin = first + ((t - first) // step) * step
        span = min(p.duration or step, step)
    else:
        origin, span = seconds(p.start_schedule), p.duration or float("inf")
    offset = t - origin
    if not 0 <= offset < span:
        return None
    in_force = [q for q in p.periods if q.start <= offset]
    return in_force[-1] if in_force else None


def best(candidates, t, tx_start):
    found = [(p, q) for p in candidates if (q := covering_period(p, t, tx_start)) is not None]
    if not found:
        return None
    top = max(p.stack_level for p, _ in found)
    return next((p, q) for p, q in found if p.stack_level == top)


def brute_limit(all_profiles, connector, transaction_id, t, tx_start, unit):
    caps = [p for p in all_profiles if p.purpose == "ChargePointMaxProfile" and p.connector == 0]
    chosen = [best(caps, t, tx_start)]
    if connector != 0:
        tx = [p for p in all_profiles if p.purpose == "TxProfile" and p.connector == connector
              and transaction_id is not None and p.transaction_id in (None, transaction_id)]
        own = [p for p in all_profiles if p.purpose == "TxDefaultProfile" and p.connector == connector]
        zero = [p for p in all_profiles if p.purpose == "TxDefaultProfile" and p.connector == 0]
        chosen.append(best(tx, t, tx_start) or best(own or zero, t, tx_start))
    values = []
    for found in chosen:
        if found is None:
            continue
        p, q = found
        factor = VOLTAGE * (q.number_phases or PHASES)
        limit = q.limit if p.unit == unit else (q.limit * factor if unit == "W" else q.limit / factor)
        values.append((limit, q.number_phases))
    return min(values, key=lambda v: v[0]) if values else (None, None)


def expand(periods, duration):
    """A composite's periods as one (limit, phases) per second."""
    out = []
    for i, p in enumerate(periods):
        end = periods[i + 1].start if i + 1 < len(periods) else duration
        out += [(p.limit, p.number_phases)] * (end - p.start)
    return out


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(profiles(), max_size=6), st.integers(0, DAY), st.sampled_from([0, 1]),
       st.sampled_from([None, 7]), st.sampled_from(["A", "W"]), st.integers(-DAY, DAY))
def test_the_composite_schedule_is_the_second_by_second_limit_merged(stack, start_s, connector, transaction_id,
                                                                       unit, tx_offset):
    start = T0 + timedelta(seconds=start_s)
    tx_start = start_s + tx_offset if transaction_id is not None else start_s
    periods = composite_schedule(Stacks.of(stack, connector, transaction_id), start, WINDOW_S, unit, VOLTAGE, PHASES,
                                 tx_start=T0 + timedelta(seconds=tx_start))
    assert periods[0].start == 0
    assert all(a.start < b.start and (a.limit, a.number_phases) != (b.limit, b.number_phases)
               for a, b in zip(periods, periods[1:])), "periods must be ordered and merged"
    got = expand(periods, WINDOW_S)
    # Second by second, at every change of the brute force and at a sample of other seconds (every second
    # of two days for every example would take minutes).
    want_at = lambda s: brute_limit(stack, connector, transaction_id, start_s + s, tx_start, unit)  # noqa: E731
    checked = {0, WINDOW_S - 1} | {p.start for p in periods} | {p.start - 1 for p in periods if p.start}
    for p in stack:
        for edge in _edges(p, start_s, tx_start):
            checked |= {edge - 1, edge, edge + 1}
    checked |= set(range(0, WINDOW_S, 997))
    for s in sorted(x for x in checked if 0 <= x < WINDOW_S):
        want = want_at(s)
        if want[0] is None:
            assert got[s][0] is None, (s, got[s], want)
        else:
            assert got[s][0] == pytest.approx(want[0]), (s, got[s], want)


def _edges(p: Profile, start_s: int, tx_start: int):
    """Where the brute force may change for `p` (brute-force side: derived from the fields, not the module)."""
    for t in (p.valid_from, p.valid_to):
        if t is not None:
            yield seconds(t) - start_s
    origins = []
    if p.kind == "Relative":
        origins = [tx_start]
    elif p.kind == "Recurring":
        step = DAY if p.recurrency == "Daily" else 7 * DAY
        origins = [seconds(p.start_schedule) + k * step for k in range(-1, 5)]
    else:
        origins = [seconds(p.start_schedule)]
    for o in origins:
        for q in p.periods:
            yield o + q.start - start_s
        if p.duration:
            yield o + p.duration - start_s


def test_a_dense_check_of_one_busy_stack_every_second():
    """One fixed stack checked at every second of a whole day (what the sampled property test thins out)."""
    stack = [
        Profile(1, 0, "ChargePointMaxProfile", "Recurring", "A", (Period(0, 20), Period(3600, 12)), 0,
                T0 + timedelta(hours=6), 7200, "Daily"),
        Profile(2, 1, "TxDefaultProfile", "Absolute", "W", (Period(0, 9000, 3), Period(500, 4000, 1)), 0,
                T0 + timedelta(hours=1), 40_000),
        Profile(3, 2, "TxDefaultProfile", "Relative", "A", (Period(0, 10), Period(900, 14)), 0, None, 5000,
                valid_from=T0 + timedelta(hours=3)),
        Profile(4, 0, "TxProfile", "Absolute", "A", (Period(0, 8),), 1, T0 + timedelta(hours=10), 600,
                transaction_id=7),
    ]
    periods = composite_schedule(Stacks.of(stack, 1, 7), T0, DAY, "A", VOLTAGE, PHASES,
                                 tx_start=T0 + timedelta(hours=2))
    got = expand(periods, DAY)
    for s in range(DAY):
        want = brute_limit(stack, 1, 7, s, 2 * 3600, "A")
        assert (got[s][0] is None and want[0] is None) or got[s][0] == pytest.approx(want[0]), (s, got[s], want)
