"""Which drivers exist, the station.toml keys each accepts, and how to build them.

A new driver adds one entry to DRIVERS (its keys and their TOML types) and one branch to
`build`. Drivers are imported lazily so a station without PC/SC never imports pyscard.
"""

from __future__ import annotations

from typing import Any, Mapping

def _keys(module: str) -> dict[str, type]:
    """A driver module's DRIVER_KEYS (importing it does not import its optional packages)."""
    import importlib

    return importlib.import_module(module).DRIVER_KEYS


# Keys of a device section that the station's device actor reads (actors/shell/settings.py checks them).
STATION_KEYS = ("poll_interval_s", "fault_after_s")

# (device, driver) -> {key: TOML type}; "driver" itself is always allowed.
DRIVERS: dict[tuple[str, str], dict[str, type]] = {
    ("evse", "sim"): {},
    ("evse", "openevse"): _keys("hal.openevse"),
    ("meter", "sim"): {},
    ("meter", "sdm"): _keys("hal.sdm"),
    ("rfid", "sim"): {},
    ("rfid", "pcsc"): _keys("hal.pcsc"),
}


def build(device: str, section: Mapping[str, Any], hal: Mapping[str, Any], connectors: int, fixed_cable: bool):
    """Create the driver object for `device` ("evse", "meter", "rfid") from its settings."""
    from messages.frozen import thaw

    section = thaw(section)  # the settings are frozen; drivers take plain TOML values (lists, not tuples)
    for key in STATION_KEYS:  # read by the station's device actor, not by the driver
        section.pop(key, None)
    driver = section.get("driver", "sim")
    if driver == "sim":
        from hal.sim import Simulator, SimEvse, SimMeter, SimReader

        sim = Simulator.shared(hal["sim"]["control"], connectors, fixed_cable)
        return {"evse": SimEvse, "meter": SimMeter, "rfid": SimReader}[device](sim)
    if (device, driver) == ("evse", "openevse"):
        from hal.openevse import from_settings

        return from_settings(section)
    if (device, driver) == ("meter", "sdm"):
        from hal.sdm import from_settings as sdm_from_settings

        return sdm_from_settings(section, connectors)
    if (device, driver) == ("rfid", "pcsc"):
        from hal.pcsc import from_settings as pcsc_from_settings

        return pcsc_from_settings(section)
    raise ValueError(f"no driver {driver!r} for {device}")
