"""The OCPP 1.6 configuration key registry: every key this station knows (OCPP 1.6 §9).

Each feature declares the keys it owns in its own `keys.py` (see actors/features.py); this module holds the
machinery. For each key: its type, default, whether the CSMS may change it (readonly), whether a
change needs a reboot (RebootRequired), and its range or allowed items. Values are kept
typed (bool, int, str); `to_wire` gives the OCPP string. Only keys whose feature is really
implemented are listed, so GetConfiguration tells the truth.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MEASURANDS = frozenset({
    "Energy.Active.Import.Register", "Energy.Active.Export.Register", "Power.Active.Import", "Current.Import",
    "Voltage", "Current.Offered",
})


# ASCII digits only (str.isdigit() also accepts "²", which int() refuses), and few enough for int().
_INTEGER = re.compile(r"[+-]?[0-9]{1,18}")


class KeyError_(Exception):
    """A value that does not fit its key (the CSMS gets Rejected, station.toml an error)."""


@dataclass(frozen=True)
class KeySpec:
    name: str
    kind: str  # "bool" | "int" | "csl" (comma separated list) | "str"
    default: object
    readonly: bool = False
    reboot: bool = False
    minimum: int | None = None
    maximum: int | None = None
    items: frozenset[str] | None = None  # allowed members of a CSL
    max_items: int | None = None
    max_length: int = 500  # OCPP 1.6 §9: values are CiString500
    operator_set: bool = False  # read-only to the CSMS, but station.toml [configuration] may set it (a capacity)


# The feature packages that own configuration keys, each in `actors/<feature>/keys.py` as
# `keys(connectors, fixed_cable) -> list[KeySpec]`. A new feature with keys adds its name here.

# GetConfiguration lists the keys in this order (OCPP 1.6 prescribes none): by name, except these two,
# kept where the station listed them before the keys moved to their features (key: listed right after).
_LISTED_AFTER = {"MeterValueSampleInterval": "MeterValuesSampledDataMaxLength",
                 "MessageTimeout": "MeterValueSampleInterval"}


def _listing_position(name: str) -> tuple[str, ...]:
    anchor = _LISTED_AFTER.get(name)
    return (name,) if anchor is None else _listing_position(anchor) + (name,)


def owners(connectors: int, fixed_cable: bool) -> dict[str, list[KeySpec]]:
    """Each feature (actors.features) and the keys it declares (found by name: its keys.py imports this module)."""
    from actors import features
    return {feature: features.part(feature, "keys").keys(connectors, fixed_cable)
            for feature in features.with_part("keys")}


def registry(connectors: int, fixed_cable: bool) -> dict[str, KeySpec]:
    """Every key of every feature, in GetConfiguration's order; a key declared twice is a ValueError."""
    specs: dict[str, KeySpec] = {}
    owner: dict[str, str] = {}
    for feature, declared in owners(connectors, fixed_cable).items():
        for spec in declared:
            if spec.name in owner:
                raise ValueError(f"configuration key {spec.name} declared twice (actors.{owner[spec.name]}.keys, "
                                 f"actors.{feature}.keys): one feature owns each key")
            owner[spec.name] = feature
            specs[spec.name] = spec
    return {name: specs[name] for name in sorted(specs, key=_listing_position)}


def to_wire(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _check(spec: KeySpec, value: object) -> object:
    if spec.kind == "int":
        if spec.minimum is not None and value < spec.minimum:
            raise KeyError_(f"{value} is below the minimum {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise KeyError_(f"{value} is above the maximum {spec.maximum}")
    if spec.kind == "csl":
        members = [m.strip() for m in str(value).split(",") if m.strip()]
        if spec.items is not None:
            bad = [m for m in members if m not in spec.items]
            if bad:  # OCPP 1.6 errata 3.14.4: an unsupported measurand rejects the whole value
                raise KeyError_(f"unsupported item {bad[0]!r}")
        if spec.max_items is not None and len(members) > spec.max_items:
            raise KeyError_(f"more than {spec.max_items} items")
        value = ",".join(members)
    if len(to_wire(value)) > spec.max_length:
        raise KeyError_(f"longer than {spec.max_length} characters")
    return value


def parse_wire(spec: KeySpec, text: str) -> object:
    """The typed value of an OCPP string for `spec`, or KeyError_."""
    if spec.kind == "bool":
        if text.strip().lower() not in ("true", "false"):
            raise KeyError_(f"{text!r} is not true or false")
        return text.strip().lower() == "true"
    if spec.kind == "int":
        t = text.strip()
        if not _INTEGER.fullmatch(t):
            raise KeyError_(f"{text!r} is not an integer")
        return _check(spec, int(t))
    return _check(spec, text)


def from_toml(key: str, value: object, connectors: int, fixed_cable: bool = True) -> object:
    """Check a station.toml [configuration] value (TOML-typed; lists allowed for CSL keys)."""
    spec = registry(connectors, fixed_cable).get(key)
    if spec is None:
        raise KeyError_("unknown OCPP configuration key")
    if spec.readonly and not spec.operator_set and key != "GetConfigurationMaxKeys":
        raise KeyError_("read-only: the station derives it from its hardware and firmware")
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise KeyError_("must be true or false")
        return value
    if spec.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise KeyError_("must be an integer")
        return _check(spec, value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)
    if not isinstance(value, str):
        raise KeyError_("must be a string (or a list of strings)")
    return _check(spec, value)
