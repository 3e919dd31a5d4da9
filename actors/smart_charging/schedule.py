"""The schedule calculator: which limit a stack of charging profiles sets, at an instant and over a window
(OCPP 1.6 §3.13, §5.7 GetCompositeSchedule, §7.8–7.13; errata 3.43, 3.45, 3.53). Plain and pure: no I/O,
no clock (every instant is given), no threads.

Rules, where the spec leaves room, as decided here:
- A profile is in force at an instant when it is valid (validFrom ≤ t < validTo) and its schedule covers t:
  t is at or after the schedule's start and before start + duration. Absolute: the start is
  startSchedule (absent: the time the station received the profile). Relative: the transaction's start
  (without a transaction, the start of the composite asked for: what the CSMS would get if one began then).
  Recurring: startSchedule repeated every day (Daily) or week (Weekly), not before the first one. A
  duration of 0 or none means "until the next occurrence" (Recurring) or "indefinitely" (others).
- Within a stack (one purpose) the profile in force with the highest stackLevel sets the limit; when its
  schedule ends, the next one down applies, else nothing (errata 3.43).
- A connector's limit comes from its TxProfile stack (the running transaction's) while one is in force,
  else from its TxDefaultProfile stack: the connector's own TxDefaultProfiles if it has any, else those set
  on connector 0 (errata 3.53: connector 0 = every connector; a connector-specific one replaces them).
  The ChargePointMaxProfile stack caps it. The composite for connector 0 is the ChargePointMaxProfile stack.
- Limits are compared in the unit asked for: W = A × voltage × phases (a period's numberPhases, else
  `default_phases`). Where nothing limits, the limit is None (the caller reports the hardware's maximum).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

RECURRENCE_S = {"Daily": 86_400, "Weekly": 7 * 86_400}
MAX_PROFILE, TX_DEFAULT, TX = "ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"


@dataclass(frozen=True)
class Period:
    start: int  # startPeriod: seconds from the schedule's start
    limit: float | None  # None only in a composite schedule: nothing limits then
    number_phases: int | None = None


@dataclass(frozen=True)
class Profile:
    profile_id: int
    stack_level: int
    purpose: str  # ChargePointMaxProfile, TxDefaultProfile, TxProfile
    kind: str  # Absolute, Relative, Recurring
    unit: str  # chargingRateUnit: A or W
    periods: tuple[Period, ...]  # sorted by start; the first starts at 0 (errata 3.45)
    connector: int = 0
    start_schedule: datetime | None = None
    duration: int | None = None  # seconds; None or 0: see the module docstring
    recurrency: str | None = None  # Daily, Weekly
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    transaction_id: int | None = None

    @classmethod
    def from_ocpp(cls, connector: int, p: Mapping[str, Any], received_at: datetime) -> "Profile":
        """From a SetChargingProfile's csChargingProfiles (schema-checked, camelCase). An Absolute or
        Recurring profile without startSchedule starts when the station received it."""
        from actors.infra.clock import parse_time

        s = p["chargingSchedule"]
        when = (lambda key, obj=p: parse_time(obj[key]) if obj.get(key) else None)
        start = when("startSchedule", s)
        if start is None and p["chargingProfileKind"] != "Relative":
            start = received_at
        periods = tuple(sorted((Period(int(x["startPeriod"]), float(x["limit"]), x.get("numberPhases"))
                                for x in s["chargingSchedulePeriod"]), key=lambda x: x.start))
        return cls(p["chargingProfileId"], p["stackLevel"], p["chargingProfilePurpose"], p["chargingProfileKind"],
                   s["chargingRateUnit"], periods, connector, start, s.get("duration") or None,
                   p.get("recurrencyKind"), when("validFrom"), when("validTo"), p.get("transactionId"))

    def occurrence(self, t: datetime, tx_start: datetime) -> datetime | None:
        """The start of the schedule occurrence that may cover `t` (None: none)."""
        if self.kind == "Relative":
            return tx_start
        if self.kind == "Recurring" and self.recurrency in RECURRENCE_S and self.start_schedule is not None:
            n = math.floor((t - self.start_schedule).total_seconds() / RECURRENCE_S[self.recurrency])
            return self.start_schedule + timedelta(seconds=n * RECURRENCE_S[self.recurrency]) if n >= 0 else None
        return self.start_schedule

    def span_s(self) -> float:
        """How long an occurrence lasts, in seconds."""
        cap = RECURRENCE_S.get(self.recurrency or "", math.inf) if self.kind == "Recurring" else math.inf
        return min(self.duration or math.inf, cap)

    def period_at(self, t: datetime, tx_start: datetime) -> Period | None:
        """The period in force at `t`, or None: the profile is not valid or its schedule does not cover t."""
        if (self.valid_from is not None and t < self.valid_from) or (self.valid_to is not None and t >= self.valid_to):
            return None
        start = self.occurrence(t, tx_start)
        if start is None:
            return None
        offset = (t - start).total_seconds()
        if offset < 0 or offset >= self.span_s():
            return None
        found = None
        for period in self.periods:
            if period.start > offset:
                break
            found = period
        return found

    def boundaries(self, start: datetime, end: datetime, tx_start: datetime) -> Iterable[datetime]:
        """Every instant in [start, end) where this profile's limit may change."""
        for t in (self.valid_from, self.valid_to):
            if t is not None:
                yield t
        if self.kind == "Recurring" and self.recurrency in RECURRENCE_S and self.start_schedule is not None:
            step = RECURRENCE_S[self.recurrency]
            first = max(0, math.floor((start - self.start_schedule).total_seconds() / step))
            occurrences = []
            k = first
            while (o := self.start_schedule + timedelta(seconds=k * step)) < end:
                occurrences.append(o)
                k += 1
        else:
            occurrences = [o for o in (self.occurrence(start, tx_start),) if o is not None]
        for o in occurrences:
            yield from (o + timedelta(seconds=p.start) for p in self.periods)
            if self.span_s() < math.inf:
                yield o + timedelta(seconds=self.span_s())


def stack_limit(profiles: Iterable[Profile], t: datetime, tx_start: datetime) -> tuple[Profile, Period] | None:
    """The highest stack level in force at `t`, with its period (errata 3.43: the next one down when a
    higher one's schedule has ended)."""
    best = None
    for profile in profiles:
        period = profile.period_at(t, tx_start)
        if period is not None and (best is None or profile.stack_level > best[0].stack_level):
            best = (profile, period)
    return best


def in_unit(found: tuple[Profile, Period] | None, unit: str, voltage_v: float, default_phases: int) -> float | None:
    if found is None:
        return None
    profile, period = found
    if profile.unit == unit:
        return period.limit
    watts_per_amp = voltage_v * (period.number_phases or default_phases)
    return period.limit * watts_per_amp if unit == "W" else period.limit / watts_per_amp


@dataclass(frozen=True)
class Stacks:
    """The profiles that bear on one connector (see the module docstring)."""

    max_profiles: tuple[Profile, ...]
    tx_profiles: tuple[Profile, ...]
    tx_defaults: tuple[Profile, ...]

    @classmethod
    def of(cls, profiles: Iterable[Profile], connector: int, transaction_id: int | None) -> "Stacks":
        profiles = list(profiles)
        max_profiles = tuple(p for p in profiles if p.purpose == MAX_PROFILE and p.connector == 0)
        if connector == 0:
            return cls(max_profiles, (), ())
        tx = tuple(p for p in profiles if p.purpose == TX and p.connector == connector and transaction_id is not None
                   and p.transaction_id in (None, transaction_id))
        own = tuple(p for p in profiles if p.purpose == TX_DEFAULT and p.connector == connector)
        return cls(max_profiles, tx, own or tuple(p for p in profiles if p.purpose == TX_DEFAULT and p.connector == 0))

    def limit_at(self, t: datetime, tx_start: datetime, unit: str, voltage_v: float,
                 default_phases: int) -> tuple[float | None, int | None]:
        """The limit in force at `t` in `unit` (None: nothing limits) and its numberPhases."""
        tx = stack_limit(self.tx_profiles, t, tx_start) or stack_limit(self.tx_defaults, t, tx_start)
        cap = stack_limit(self.max_profiles, t, tx_start)
        limits = [(in_unit(f, unit, voltage_v, default_phases), f[1].number_phases) for f in (tx, cap) if f]
        if not limits:
            return None, None
        return min(limits, key=lambda x: x[0])

    def all(self) -> tuple[Profile, ...]:
        return self.max_profiles + self.tx_profiles + self.tx_defaults


def composite_schedule(stacks: Stacks, start: datetime, duration_s: int, unit: str, voltage_v: float = 230.0,
                       default_phases: int = 3, tx_start: datetime | None = None) -> list[Period]:
    """GetCompositeSchedule (§5.7): the limits over [start, start + duration_s), as periods from `start`
    (whole seconds: `start` is taken to the second), merged so that no two adjacent ones are equal. A
    period with limit None: nothing limits then. Computed at every instant where any profile may change,
    never by sampling."""
    start = start.replace(microsecond=0)
    end = start + timedelta(seconds=duration_s)
    tx_start = tx_start or start
    points = {start}
    for profile in stacks.all():
        points.update(t for t in profile.boundaries(start, end, tx_start) if start < t < end)
    offsets = sorted({math.ceil((t - start).total_seconds()) for t in points} - {duration_s})
    out: list[Period] = []
    for offset in (o for o in offsets if o < duration_s):
        limit, phases = stacks.limit_at(start + timedelta(seconds=offset), tx_start, unit, voltage_v, default_phases)
        if not out or (out[-1].limit, out[-1].number_phases) != (limit, phases):
            out.append(Period(offset, limit, phases))
    return out
