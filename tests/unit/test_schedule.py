"""actors.smart_charging.schedule: fixed examples (OCPP 1.6 §3.13, §5.7; errata 3.43, 3.53) and the
traps other stacks shipped (a period starting mid-window, duration 0, a recurring schedule across its
boundary, validFrom/validTo, a higher stack level that ended)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from actors.smart_charging.schedule import Period, Profile, Stacks, composite_schedule

pytestmark = pytest.mark.timeout(10)

T0 = datetime(2026, 3, 2, 8, 0, 0, tzinfo=timezone.utc)  # a Monday


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def prof(pid, *periods, stack=0, purpose="TxDefaultProfile", kind="Absolute", unit="A", connector=1, start=T0,
         **kw) -> Profile:
    return Profile(pid, stack, purpose, kind, unit, tuple(Period(s, lim) for s, lim in periods), connector,
                   start if kind != "Relative" else None, **kw)


def composite(profiles, connector=1, start=T0, duration=600, unit="A", transaction_id=None, **kw):
    return [(p.start, p.limit) for p in composite_schedule(Stacks.of(profiles, connector, transaction_id), start,
                                                           duration, unit, **kw)]


def test_no_profile_no_limit():
    assert composite([]) == [(0, None)]


def test_a_period_starting_mid_window_and_a_schedule_that_ends():
    p = prof(1, (0, 16), (100, 10), duration=300, start=at(-50))
    assert composite([p]) == [(0, 16), (50, 10), (250, None)]


def test_duration_zero_or_absent_lasts():
    assert composite([prof(1, (0, 12), duration=0)]) == [(0, 12)]
    assert composite([prof(1, (0, 12))]) == [(0, 12)]


def test_the_higher_stack_level_wins_while_valid_then_the_lower_one_applies():
    low = prof(1, (0, 10), stack=0)
    high = prof(2, (0, 6), stack=1, valid_from=at(100), valid_to=at(200))
    short = prof(3, (0, 8), stack=2, duration=50, start=at(300))
    assert composite([low, high, short]) == [(0, 10), (100, 6), (200, 10), (300, 8), (350, 10)]


def test_charge_point_max_caps_and_the_tx_profile_overrules_the_default():
    cap = prof(1, (0, 20), (60, 9), purpose="ChargePointMaxProfile", connector=0)
    default = prof(2, (0, 16), stack=5)
    tx = prof(3, (0, 12), (120, 32), purpose="TxProfile", transaction_id=7)
    assert composite([cap, default, tx], transaction_id=7) == [(0, 12), (60, 9)]
    assert composite([cap, default, tx], transaction_id=None) == [(0, 16), (60, 9)]  # no transaction: no TxProfile
    assert composite([cap, default, tx], connector=0) == [(0, 20), (60, 9)]  # the station: its own cap


def test_a_tx_profile_that_ended_falls_back_to_the_default():
    default = prof(2, (0, 16))
    tx = prof(3, (0, 6), purpose="TxProfile", duration=100)
    assert composite([default, tx], transaction_id=7) == [(0, 6), (100, 16)]


def test_a_connectors_own_default_replaces_the_connector_0_ones():
    zero = prof(1, (0, 10), connector=0, stack=9)
    own = prof(2, (0, 14), connector=1, stack=0)
    assert composite([zero, own], connector=1) == [(0, 14)]
    assert composite([zero, own], connector=2) == [(0, 10)]


def test_relative_starts_at_the_transaction_and_without_one_at_the_request():
    rel = prof(1, (0, 8), (300, 16), kind="Relative")
    stacks = Stacks.of([rel], 1, 7)
    got = composite_schedule(stacks, T0, 600, "A", tx_start=at(-200))
    assert [(p.start, p.limit) for p in got] == [(0, 8), (100, 16)]
    assert composite([rel]) == [(0, 8), (300, 16)]


def test_daily_recurrence_across_midnight_and_not_before_its_first_day():
    daily = prof(1, (0, 6), (3600, 16), kind="Recurring", recurrency="Daily", start=T0.replace(hour=23),
                 duration=7200)
    got = composite([daily], start=T0.replace(hour=22), duration=86_400 + 3 * 3600)
    assert got == [(0, None), (3600, 6), (7200, 16), (10_800, None), (90_000, 6), (93_600, 16)]


def test_weekly_recurrence():
    weekly = prof(1, (0, 10), kind="Recurring", recurrency="Weekly", start=at(-7 * 86_400 + 60), duration=120)
    assert composite([weekly], duration=300) == [(0, None), (60, 10), (180, None)]


def test_watts_and_amps_convert_with_the_phases():
    amps = Profile(1, 0, "TxDefaultProfile", "Absolute", "A", (Period(0, 10, 1), Period(60, 10)), 1, T0)
    assert composite([amps], unit="W", duration=120) == [(0, 2300), (60, 6900)]
    watts = prof(2, (0, 11_040), unit="W")
    assert composite([watts], unit="A", duration=60) == [(0, 16)]


def test_the_minimum_is_taken_in_the_unit_asked_for():
    cap = prof(1, (0, 7000), purpose="ChargePointMaxProfile", connector=0, unit="W")
    default = prof(2, (0, 16))  # 16 A x 230 V x 3 = 11,040 W: the cap is lower
    assert composite([cap, default], unit="W", duration=60) == [(0, 7000)]


def test_from_ocpp_reads_a_set_charging_profile():
    p = Profile.from_ocpp(1, {"chargingProfileId": 4, "stackLevel": 2, "chargingProfilePurpose": "TxProfile",
                              "chargingProfileKind": "Absolute", "transactionId": 9, "validTo": "2026-03-03T00:00:00Z",
                              "chargingSchedule": {"chargingRateUnit": "W", "duration": 0,
                                                   "chargingSchedulePeriod": [{"startPeriod": 60, "limit": 5000},
                                                                              {"startPeriod": 0, "limit": 7000.5,
                                                                               "numberPhases": 1}]}}, received_at=T0)
    assert (p.profile_id, p.stack_level, p.purpose, p.transaction_id, p.unit, p.duration) == (4, 2, "TxProfile", 9,
                                                                                                "W", None)
    assert p.start_schedule == T0 and p.valid_to == datetime(2026, 3, 3, tzinfo=timezone.utc)
    assert p.periods == (Period(0, 7000.5, 1), Period(60, 5000.0, None))
