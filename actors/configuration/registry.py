"""The OCPP 1.6 configuration key registry: every key this station knows (OCPP 1.6 §9).

For each key: its type, default, whether the CSMS may change it (readonly), whether a
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


def _specs(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    measurand_list = dict(kind="csl", items=MEASURANDS, max_items=len(MEASURANDS))
    return [
        KeySpec("AllowOfflineTxForUnknownId", "bool", False),
        KeySpec("AuthorizationCacheEnabled", "bool", True),
        KeySpec("AuthorizeRemoteTxRequests", "bool", True),
        KeySpec("ClockAlignedDataInterval", "int", 0, minimum=0, maximum=86400),
        KeySpec("ConnectionTimeOut", "int", 60, minimum=1, maximum=3600),
        KeySpec("ConnectorPhaseRotation", "csl", ",".join(f"{c}.Unknown" for c in range(connectors + 1))),
        KeySpec("GetConfigurationMaxKeys", "int", 100, readonly=True, minimum=1, maximum=1000),
        KeySpec("HeartbeatInterval", "int", 300, minimum=0, maximum=86400),
        KeySpec("LocalAuthorizeOffline", "bool", True),
        KeySpec("LocalPreAuthorize", "bool", False),
        KeySpec("MaxEnergyOnInvalidId", "int", 0, minimum=0, maximum=1_000_000),
        KeySpec("MeterValuesAlignedData", default="Energy.Active.Import.Register", **measurand_list),
        KeySpec("MeterValuesAlignedDataMaxLength", "int", len(MEASURANDS), readonly=True),
        KeySpec("MeterValuesSampledData", default="Energy.Active.Import.Register", **measurand_list),
        KeySpec("MeterValuesSampledDataMaxLength", "int", len(MEASURANDS), readonly=True),
        KeySpec("MeterValueSampleInterval", "int", 60, minimum=0, maximum=86400),
        KeySpec("MessageTimeout", "int", 30, minimum=1, maximum=600),  # OCPP 1.6 errata 3.83
        KeySpec("MinimumStatusDuration", "int", 0, minimum=0, maximum=3600),
        KeySpec("NumberOfConnectors", "int", connectors, readonly=True),
        KeySpec("ResetRetries", "int", 3, minimum=0, maximum=10),
        KeySpec("StopTransactionOnEVSideDisconnect", "bool", True),
        KeySpec("StopTransactionOnInvalidId", "bool", True),
        KeySpec("StopTxnAlignedData", default="", **measurand_list),
        KeySpec("StopTxnAlignedDataMaxLength", "int", len(MEASURANDS), readonly=True),
        KeySpec("StopTxnSampledData", default="", **measurand_list),
        KeySpec("StopTxnSampledDataMaxLength", "int", len(MEASURANDS), readonly=True),
        KeySpec("SupportedFeatureProfiles", "csl", "Core", readonly=True),
        KeySpec("TransactionMessageAttempts", "int", 3, minimum=1, maximum=100),
        KeySpec("TransactionMessageRetryInterval", "int", 60, minimum=0, maximum=86400),
        # OCPP 1.6 errata 3.84: read-only (false) where a fixed cable cannot be unlocked.
        KeySpec("UnlockConnectorOnEVSideDisconnect", "bool", not fixed_cable, readonly=fixed_cable),
        KeySpec("WebSocketPingInterval", "int", 60, minimum=0, maximum=3600),
    ]


def registry(connectors: int, fixed_cable: bool) -> dict[str, KeySpec]:
    return {s.name: s for s in _specs(connectors, fixed_cable)}


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
    if spec.readonly and key != "GetConfigurationMaxKeys":
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
