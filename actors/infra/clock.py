"""The station's wall clock, the one piece of state every actor reads (like a hardware RTC).

Controllers without a battery-backed RTC boot at 1970. Sources, best first:
1. the CSMS's `currentTime` (BootNotification.conf, Heartbeat.conf; OCPP 1.6 §4.2, §4.6),
   kept as an offset from the monotonic clock;
2. the system clock, if it is plausible (not before the last time this station knew);
3. the last known time persisted in the database, plus the monotonic time since start.
So no timestamp is ever 1970 (MicroOcpp #311) and time never runs backwards across a reboot.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone

_EPOCH_FLOOR = datetime(2024, 1, 1, tzinfo=timezone.utc)


def parse_time(text: str) -> datetime:
    """Parse an OCPP dateTime (RFC 3339, with or without fraction; 'Z' or an offset)."""
    # RFC 3339 (and the schema's date-time format) allow a leap second, ":60"; datetime does not.
    leap = text[16:19] == ":60" and text[10:11] in ("T", "t")
    if leap:
        text = text[:17] + "59" + text[19:]
    value = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    return value + timedelta(seconds=1) if leap else value


def format_time(value: datetime) -> str:
    """OCPP dateTime in UTC with milliseconds and 'Z' (the reference product could not send ms)."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class StationClock:
    def __init__(self, last_known: datetime | None = None, system=time.time, monotonic=time.monotonic):
        self._lock = threading.Lock()
        self._system = system
        self._monotonic = monotonic
        floor = max(last_known or _EPOCH_FLOOR, _EPOCH_FLOOR)
        sys_now = datetime.fromtimestamp(system(), timezone.utc)
        base = sys_now if sys_now >= floor else floor
        self._offset = base.timestamp() - monotonic()

    def now(self) -> datetime:
        with self._lock:
            return datetime.fromtimestamp(self._monotonic() + self._offset, timezone.utc)

    def set(self, current: datetime) -> None:
        """Take the CSMS's time as the truth from now on."""
        with self._lock:
            self._offset = current.timestamp() - self._monotonic()
