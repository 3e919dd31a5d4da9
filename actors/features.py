"""The station's features: the one list a new feature is added to.

Each name is a package under `actors/`. The station starts them in this order (the order also
breaks ties in the stop order; see `StationActor.stop_rank`). A package provides what it has:
- `start(station)` in its `__init__.py`: starts its actors, returns [(actor class, ActorRef)];
- `keys.py`: `keys(connectors, fixed_cable)`, the configuration keys it owns;
- `migrations.py`: `MIGRATIONS`, the schema of the tables it owns;
- `PROFILES` in its `__init__.py`: the OCPP 1.6 feature profiles beyond Core it implements in full
  (SupportedFeatureProfiles names exactly those, after Core).
Modules are found by name, so this list imports nothing and anything may read it.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

FEATURES: tuple[str, ...] = (
    "link",
    "boot",
    "status",
    "configuration",
    "data_transfer",
    "trigger",
    "reset",
    "sessions",
    "authorization",
    "metering",
    "txqueue",
    "devices",
)


def part(feature: str, module: str) -> ModuleType | None:
    """`actors.<feature>.<module>`, or None if the feature has no such part."""
    name = f"actors.{feature}.{module}"
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


def with_part(module: str) -> tuple[str, ...]:
    """The features that have `module` (e.g. "keys", "migrations"), in FEATURES order."""
    return tuple(f for f in FEATURES if importlib.util.find_spec(f"actors.{f}.{module}") is not None)


# OCPP 1.6 §3: the feature profiles, in the order SupportedFeatureProfiles lists them.
PROFILE_ORDER = ("Core", "FirmwareManagement", "LocalAuthListManagement", "Reservation", "SmartCharging",
                 "RemoteTrigger")


def profiles() -> tuple[str, ...]:
    """Core and every profile a feature declares in its `PROFILES`, in PROFILE_ORDER."""
    declared = {"Core"}
    for feature in FEATURES:
        declared.update(getattr(importlib.import_module(f"actors.{feature}"), "PROFILES", ()))
    unknown = declared - set(PROFILE_ORDER)
    if unknown:
        raise ValueError(f"not OCPP 1.6 feature profiles: {sorted(unknown)}")
    return tuple(p for p in PROFILE_ORDER if p in declared)
