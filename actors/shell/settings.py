"""station.toml: the operator's configuration, read once at start-up and never rewritten.

Every section and key is checked; a mistake stops start-up with one message that names the
key (`SettingsError`). Relative paths are taken from the folder holding the file, except the
database and log file under systemd: from $STATE_DIRECTORY and $LOGS_DIRECTORY.
OCPP configuration keys in `[configuration]` are checked against the key registry
(`actors.configuration.registry`); values the CSMS changes later live in the database and win over the file.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from actors.configuration import registry as keyreg
from messages.frozen import FrozenDict, freeze


class SettingsError(Exception):
    pass


@dataclass(frozen=True)
class StationSettings:
    id: str
    vendor: str
    model: str
    serial_number: str
    firmware_version: str
    connectors: int
    fixed_cable: bool
    backup_power: bool
    vendor_plugins: tuple[str, ...] = ()
    reservations: bool = True  # false: ReserveNow is Rejected and SupportedFeatureProfiles leaves Reservation out
    reserve_connector_zero: bool = True  # ReserveConnectorZeroSupported (OCPP 1.6 §9.3.1)


@dataclass(frozen=True)
class CsmsSettings:
    url: str
    password: str | None
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    max_frame_bytes: int
    reconnect_min_s: float
    reconnect_max_s: float


@dataclass(frozen=True)
class Settings:
    path: Path
    station: StationSettings
    csms: CsmsSettings
    storage_path: Path
    log_level: str
    log_file: Path
    log_max_bytes: int
    log_backups: int
    queue_max_messages: int
    hal: FrozenDict  # device -> {driver: ..., driver keys}; "sim" -> {control: ...}
    configuration: FrozenDict = field(default_factory=FrozenDict)  # OCPP key -> typed value


def _section(section: Any, name: str, allowed: dict[str, type | tuple], required=()) -> dict:
    if not isinstance(section, dict):
        raise SettingsError(f"[{name}] must be a table")
    for key, value in section.items():
        if key not in allowed:
            raise SettingsError(f"unknown key {name}.{key}")
        kind = allowed[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise SettingsError(f"{name}.{key} must be of type {names}, not {type(value).__name__}")
    for key in required:
        if key not in section:
            raise SettingsError(f"missing key {name}.{key}")
    return section


def _path(base: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (base / p)


def load(path: str | Path) -> Settings:
    path = Path(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise SettingsError(f"configuration file not found: {path}") from None
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    base = path.resolve().parent
    unknown = set(data) - {"station", "csms", "storage", "logging", "queue", "hal", "configuration"}
    if unknown:
        raise SettingsError(f"unknown section [{sorted(unknown)[0]}]")

    st = _section(data.get("station", {}), "station", {"id": str, "vendor": str, "model": str, "serial_number": str,
                                    "firmware_version": str, "connectors": int, "fixed_cable": bool,
                                    "backup_power": bool, "vendor_plugins": list, "reservations": bool,
                                    "reserve_connector_zero": bool}, required=("id", "vendor", "model"))
    cp_id = st["id"]
    # The id is the last path segment of the WebSocket URL (OCPP-J 1.6 §3.1.1): printable ASCII only.
    if (not cp_id or len(cp_id) > 48 or any(c in cp_id for c in "/?#% ") or not cp_id.isprintable()
            or not cp_id.isascii()):
        raise SettingsError("station.id must be 1-48 printable ASCII characters without / ? # % or spaces")
    for key in ("vendor", "model"):
        if not 1 <= len(st[key]) <= 20:
            raise SettingsError(f"station.{key} must be 1-20 characters (OCPP CiString20)")
    # BootNotification.req: chargePointSerialNumber CiString25, firmwareVersion CiString50 (OCPP 1.6 §6.2).
    for key, limit in (("serial_number", 25), ("firmware_version", 50)):
        if len(st.get(key, "")) > limit:
            raise SettingsError(f"station.{key} must be at most {limit} characters (OCPP CiString{limit})")
    connectors = st.get("connectors", 1)
    if not 1 <= connectors <= 8:
        raise SettingsError("station.connectors must be between 1 and 8")
    station = StationSettings(cp_id, st["vendor"], st["model"], st.get("serial_number", ""),
                              st.get("firmware_version", ""), connectors, st.get("fixed_cable", True),
                              st.get("backup_power", False), _plugins(st.get("vendor_plugins", [])),
                              st.get("reservations", True), st.get("reserve_connector_zero", True))

    cs = _section(data.get("csms", {}), "csms", {"url": str, "password": str, "ca_file": str, "cert_file": str, "key_file": str,
                                 "max_frame_bytes": int, "reconnect_min_s": float, "reconnect_max_s": float},
                  required=("url",))
    url = urlparse(cs["url"])
    if url.scheme not in ("ws", "wss") or not url.hostname:
        raise SettingsError(f"csms.url must be a ws:// or wss:// URL with a host, not {cs['url']!r}")
    try:
        url.port
    except ValueError:
        raise SettingsError(f"csms.url has an invalid port: {cs['url']!r}") from None
    if url.query or url.fragment or cs["url"].rstrip().endswith(("?", "#")):
        # the station appends "/<station.id>" to the path: a query or fragment would swallow it
        raise SettingsError(f"csms.url must not have a query or fragment: {cs['url']!r}")
    files = {k: str(_path(base, cs[k])) for k in ("ca_file", "cert_file", "key_file") if k in cs}
    for key, file in files.items():
        if not Path(file).is_file():
            raise SettingsError(f"csms.{key}: file not found: {file}")
    if ("cert_file" in files) != ("key_file" in files):
        raise SettingsError("csms.cert_file and csms.key_file go together")
    csms = CsmsSettings(cs["url"].rstrip("/"), cs.get("password"), files.get("ca_file"), files.get("cert_file"),
                        files.get("key_file"), cs.get("max_frame_bytes", 10 * 1024 * 1024),
                        float(cs.get("reconnect_min_s", 1.0)), float(cs.get("reconnect_max_s", 60.0)))
    if csms.max_frame_bytes < 1024:
        raise SettingsError("csms.max_frame_bytes must be at least 1024")
    if not 0 < csms.reconnect_min_s <= csms.reconnect_max_s:
        raise SettingsError("csms.reconnect_min_s must be > 0 and <= csms.reconnect_max_s")

    sto = _section(data.get("storage", {}), "storage", {"path": str})
    # Under systemd (StateDirectory=, LogsDirectory=) relative paths go where the unit allows writing;
    # elsewhere beside the configuration file.
    state_dir = Path(os.environ["STATE_DIRECTORY"].split(":")[0]) if os.environ.get("STATE_DIRECTORY") else base
    storage_path = _path(state_dir, sto.get("path", "var/station.db"))
    lg = _section(data.get("logging", {}), "logging", {"level": str, "file": str, "max_bytes": int, "backups": int})
    level = lg.get("level", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise SettingsError("logging.level must be DEBUG, INFO, WARNING or ERROR")
    logs_dir = Path(os.environ["LOGS_DIRECTORY"].split(":")[0]) if os.environ.get("LOGS_DIRECTORY") \
        else storage_path.parent
    log_file = _path(logs_dir, lg["file"]) if "file" in lg else logs_dir / "station.log"
    # RotatingFileHandler never rotates with max_bytes 0 or backups 0: the log would fill the flash.
    if lg.get("max_bytes", 5_000_000) < 1024:
        raise SettingsError("logging.max_bytes must be at least 1024")
    if lg.get("backups", 5) < 1:
        raise SettingsError("logging.backups must be at least 1")
    q = _section(data.get("queue", {}), "queue", {"max_messages": int})
    max_messages = q.get("max_messages", 10000)
    if max_messages < 100:
        raise SettingsError("queue.max_messages must be at least 100")

    hal = _hal(data.get("hal", {}), base)
    configuration = data.get("configuration", {})
    if not isinstance(configuration, dict):
        raise SettingsError("[configuration] must be a table")
    typed: dict[str, Any] = {}
    for key, value in configuration.items():
        try:
            typed[key] = keyreg.from_toml(key, value, connectors, station.fixed_cable)
        except keyreg.KeyError_ as exc:
            raise SettingsError(f"configuration.{key}: {exc}") from None
    if not station.reserve_connector_zero:
        typed["ReserveConnectorZeroSupported"] = False
    if not station.reservations:
        # OCPP 1.6 §5.13: a station configured not to accept reservations answers ReserveNow Rejected; it
        # does not claim the profile either.
        from actors import features
        typed["SupportedFeatureProfiles"] = ",".join(p for p in features.profiles() if p != "Reservation")
    return Settings(path, station, csms, storage_path, level, log_file, lg.get("max_bytes", 5_000_000),
                    lg.get("backups", 5), max_messages, freeze(hal), freeze(typed))


def _plugins(names: list) -> tuple[str, ...]:
    for name in names:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise SettingsError(f"station.vendor_plugins: {name!r} is not a Python module name")
    return tuple(names)


def _hal(hal: Any, base: Path) -> dict:
    from hal.registry import DRIVERS  # the drivers declare their own keys

    if not isinstance(hal, dict):
        raise SettingsError("[hal] must be a table")
    out: dict[str, dict] = {}
    for device in ("evse", "meter", "rfid"):
        section = hal.get(device, {"driver": "sim"})
        if not isinstance(section, dict):
            raise SettingsError(f"[hal.{device}] must be a table")
        driver = section.get("driver", "sim")
        if not isinstance(driver, str):
            raise SettingsError(f"hal.{device}.driver must be of type str, not {type(driver).__name__}")
        if (device, driver) not in DRIVERS:
            known = ", ".join(sorted(d for dev, d in DRIVERS if dev == device))
            raise SettingsError(f"hal.{device}.driver: unknown driver {driver!r} (known: {known})")
        allowed = DRIVERS[(device, driver)]
        station_keys = {"poll_interval_s": float, "fault_after_s": float} if device == "meter" else {}
        checked = _section(section, f"hal.{device}", {"driver": str, **station_keys, **allowed})
        for key in station_keys:
            if key in checked and not 0.1 <= checked[key] <= 3600:
                raise SettingsError(f"hal.{device}.{key} must be between 0.1 and 3600 seconds")
        out[device] = checked
    for key in hal:
        if key not in ("evse", "meter", "rfid", "sim"):
            raise SettingsError(f"unknown section [hal.{key}]")
    sim = _section(hal.get("sim", {}), "hal.sim", {"control": str})
    control = sim.get("control", "127.0.0.1:7700")
    host, _, port = control.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]") or not port.isdigit() or int(port) > 65535:
        raise SettingsError(f"hal.sim.control must be a loopback host:port, not {control!r}")
    out["sim"] = {"control": control}
    return out
