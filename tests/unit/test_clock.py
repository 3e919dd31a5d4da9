"""actors.infra.clock: OCPP dateTime parsing and formatting, and a station clock that never says 1970."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from actors.infra.clock import StationClock, format_time, parse_time

pytestmark = pytest.mark.timeout(30)

UTC = timezone.utc
FLOOR = datetime(2024, 1, 1, tzinfo=UTC)


class FakeMonotonic:
    def __init__(self, start: float = 1000.0):
        self.t = start

    def __call__(self) -> float:
        return self.t


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- parse_time -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("2024-05-01T10:00:00Z", at(2024, 5, 1, 10)),
    ("2024-05-01T10:00:00z", at(2024, 5, 1, 10)),
    ("2024-05-01t10:00:00Z", at(2024, 5, 1, 10)),
    ("2024-05-01T12:00:00+02:00", at(2024, 5, 1, 10)),
    ("2024-05-01T05:30:00-04:30", at(2024, 5, 1, 10)),
    ("2024-05-01T12:00:00+0200", at(2024, 5, 1, 10)),
    ("2024-05-01T10:00:00+00:00", at(2024, 5, 1, 10)),
    ("2024-05-01T10:00:00", at(2024, 5, 1, 10)),  # no offset: taken as UTC
    ("2024-05-01T10:00:00.5Z", at(2024, 5, 1, 10, 0, 0, 500000)),
    ("2024-05-01T10:00:00.12Z", at(2024, 5, 1, 10, 0, 0, 120000)),
    ("2024-05-01T10:00:00.123Z", at(2024, 5, 1, 10, 0, 0, 123000)),
    ("2024-05-01T10:00:00.1234Z", at(2024, 5, 1, 10, 0, 0, 123400)),
    ("2024-05-01T10:00:00.12345Z", at(2024, 5, 1, 10, 0, 0, 123450)),
    ("2024-05-01T10:00:00.123456Z", at(2024, 5, 1, 10, 0, 0, 123456)),
    ("2024-05-01T10:00:00.1234567Z", at(2024, 5, 1, 10, 0, 0, 123456)),  # .NET CSMSs send 7 digits
    ("2016-12-31T23:59:60Z", at(2017, 1, 1)),  # a leap second, valid RFC 3339
])
def test_parse_time_reads_every_rfc_3339_variant_as_utc(text, expected):
    value = parse_time(text)
    assert value == expected
    assert value.tzinfo == UTC


@pytest.mark.parametrize("text", ["", "yesterday", "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z"])
def test_parse_time_refuses_what_is_not_a_date_time(text):
    with pytest.raises(ValueError):
        parse_time(text)


# --- format_time ------------------------------------------------------------------------------


def test_format_time_gives_utc_with_milliseconds_and_z():
    assert format_time(at(2024, 5, 1, 10, 2, 3, 456789)) == "2024-05-01T10:02:03.456Z"


def test_format_time_pads_milliseconds():
    assert format_time(at(2024, 5, 1, 10, 2, 3, 7000)) == "2024-05-01T10:02:03.007Z"
    assert format_time(at(2024, 5, 1, 10, 2, 3)) == "2024-05-01T10:02:03.000Z"


def test_format_time_converts_other_zones_to_utc():
    cest = timezone(timedelta(hours=2))
    assert format_time(datetime(2024, 5, 1, 12, 0, tzinfo=cest)) == "2024-05-01T10:00:00.000Z"


def test_format_then_parse_round_trips_to_the_millisecond():
    value = at(2024, 5, 1, 10, 2, 3, 456000)
    assert parse_time(format_time(value)) == value


# --- StationClock -----------------------------------------------------------------------------


def test_a_station_clock_uses_the_system_clock_when_it_is_plausible():
    system = at(2025, 3, 1, 12).timestamp()
    mono = FakeMonotonic()
    clock = StationClock(system=lambda: system, monotonic=mono)
    assert clock.now() == at(2025, 3, 1, 12)


def test_a_station_clock_never_says_1970_even_if_the_system_clock_does():
    clock = StationClock(system=lambda: 0, monotonic=FakeMonotonic())
    assert clock.now() >= FLOOR


def test_a_station_clock_never_starts_before_the_last_known_time():
    last = at(2026, 6, 1, 8)
    clock = StationClock(last_known=last, system=lambda: 0, monotonic=FakeMonotonic())
    assert clock.now() == last


def test_a_system_clock_behind_the_last_known_time_is_not_trusted():
    last = at(2026, 6, 1, 8)
    system = at(2025, 1, 1).timestamp()  # a battery-less RTC that kept an old value
    clock = StationClock(last_known=last, system=lambda: system, monotonic=FakeMonotonic())
    assert clock.now() == last


def test_a_last_known_time_before_2024_does_not_lower_the_floor():
    clock = StationClock(last_known=at(2001, 1, 1), system=lambda: 0, monotonic=FakeMonotonic())
    assert clock.now() == FLOOR


def test_a_station_clock_runs_with_the_monotonic_clock_not_the_system_clock():
    mono = FakeMonotonic()
    system = [at(2025, 3, 1, 12).timestamp()]
    clock = StationClock(system=lambda: system[0], monotonic=mono)
    system[0] -= 3600  # someone sets the system clock back
    mono.t += 90
    assert clock.now() == at(2025, 3, 1, 12, 1, 30)


def test_set_takes_the_csms_time_and_keeps_running_from_it():
    mono = FakeMonotonic()
    clock = StationClock(system=lambda: 0, monotonic=mono)
    mono.t += 500
    clock.set(at(2025, 7, 4, 9, 0, 0))
    assert clock.now() == at(2025, 7, 4, 9, 0, 0)
    mono.t += 61.5
    assert clock.now() == at(2025, 7, 4, 9, 1, 1, 500000)


def test_set_may_move_the_clock_backwards_because_the_csms_is_the_truth():
    mono = FakeMonotonic()
    clock = StationClock(system=lambda: at(2030, 1, 1).timestamp(), monotonic=mono)
    clock.set(at(2025, 1, 1))
    assert clock.now() == at(2025, 1, 1)


def test_set_accepts_a_csms_time_with_an_offset():
    clock = StationClock(system=lambda: 0, monotonic=FakeMonotonic())
    clock.set(parse_time("2025-07-04T11:00:00+02:00"))
    assert clock.now() == at(2025, 7, 4, 9)


def test_now_is_timezone_aware_utc():
    clock = StationClock()
    assert clock.now().tzinfo == UTC
    assert clock.now() >= FLOOR
