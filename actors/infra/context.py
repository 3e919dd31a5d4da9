"""What a feature's `start(station)` gets: everything the station assembled before the actors start.

Plain and read-only by convention: the values are handed to actors' constructors, never shared
mutable state between actors (the clock is the one exception, and it is thread-safe).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from actors.infra.clock import StationClock
from actors.infra.ticker import Scheduler


@dataclass(frozen=True)
class StationContext:
    settings: Any  # actors.shell.settings.Settings
    db_path: str
    config: Mapping[str, Any]  # the effective configuration key values at start
    specs: Mapping[str, Any]  # configuration key name -> KeySpec
    clock: StationClock
    scheduler: Scheduler | None
    drivers: Mapping[str, Any]  # "evse" | "meter" | "rfid" -> the HAL driver
    configuration_view: Any  # the GetConfiguration snapshot the link answers from
    request_exit: Callable[[int], None]

    def config_for(self, actor_class: type) -> dict[str, Any]:
        """The start values of the keys `actor_class` watches, and only those (see StationActor.watches)."""
        return {key: self.config[key] for key in actor_class.watches}
