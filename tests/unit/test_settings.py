"""actors.shell.settings: station.toml is checked key by key; every mistake names the key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from actors.shell.settings import SettingsError, load

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]


def minimal() -> dict:
    return {
        "station": {"id": "CP001", "vendor": "OpenStation", "model": "AC22-PY"},
        "csms": {"url": "ws://127.0.0.1:9000/ocpp"},
    }


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def _render(data: dict, prefix: str = "") -> str:
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    out = [f"[{prefix}]"] if prefix and (scalars or not tables) else []
    out += [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in scalars.items()]
    for key, table in tables.items():
        out.append(_render(table, f"{prefix}.{key}" if prefix else key))
    return "\n".join(out)


def write(folder: Path, data: dict, name: str = "station.toml") -> Path:
    path = folder / name
    path.write_text(_render(data) + "\n")
    return path


def refused(folder: Path, data: dict) -> str:
    with pytest.raises(SettingsError) as info:
        load(write(folder, data))
    return str(info.value)


def with_(section: str, **values) -> dict:
    data = minimal()
    node = data
    for part in section.split("."):
        node = node.setdefault(part, {})
    node.update(values)
    return data


# --- what loads -------------------------------------------------------------------------------


def test_the_repositorys_station_toml_loads():
    settings = load(REPO / "station.toml")
    assert settings.station.id == "CP001"
    assert settings.station.connectors == 1 and settings.station.fixed_cable is True
    assert settings.csms.url == "ws://127.0.0.1:9000/ocpp"
    assert settings.storage_path == REPO / "var" / "station.db"
    assert settings.configuration["HeartbeatInterval"] == 300
    assert settings.configuration["MeterValuesSampledData"] == "Energy.Active.Import.Register,Power.Active.Import"
    assert settings.hal["evse"]["driver"] == "sim"
    assert settings.hal["sim"]["control"] == "127.0.0.1:7700"


def test_a_minimal_file_gets_the_documented_defaults(tmp_path):
    settings = load(write(tmp_path, minimal()))
    assert settings.station.connectors == 1
    assert settings.station.fixed_cable is True and settings.station.backup_power is False
    assert settings.station.reservations is True and settings.station.reserve_connector_zero is True
    assert settings.csms.max_frame_bytes == 10 * 1024 * 1024  # a 50,000-entry SendLocalList fits
    assert (settings.csms.reconnect_min_s, settings.csms.reconnect_max_s) == (1.0, 60.0)
    assert settings.storage_path == tmp_path / "var" / "station.db"
    assert settings.log_level == "INFO"
    assert settings.queue_max_messages == 10000
    assert settings.configuration == {}


def test_relative_paths_resolve_against_the_files_folder_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "ca.pem").write_text("x")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = with_("csms", url="wss://csms.example:443/ocpp", ca_file="certs/ca.pem")
    data["storage"] = {"path": "data/station.db"}
    write(tmp_path, data)
    settings = load(Path("..") / "station.toml")  # a relative path to the file, from another folder
    assert settings.csms.ca_file == str(tmp_path / "certs" / "ca.pem")
    assert settings.storage_path == tmp_path / "data" / "station.db"


def test_the_log_file_is_relative_to_the_database_folder(tmp_path):
    data = minimal()
    data["storage"] = {"path": "data/station.db"}
    data["logging"] = {"file": "logs/station.log"}
    assert load(write(tmp_path, data)).log_file == tmp_path / "data" / "logs" / "station.log"


def test_a_trailing_slash_on_the_csms_url_is_dropped(tmp_path):
    assert load(write(tmp_path, with_("csms", url="ws://h:9000/ocpp/"))).csms.url == "ws://h:9000/ocpp"


def test_integers_are_accepted_where_seconds_are_floats(tmp_path):
    settings = load(write(tmp_path, with_("csms", reconnect_min_s=2, reconnect_max_s=30)))
    assert settings.csms.reconnect_min_s == 2.0 and isinstance(settings.csms.reconnect_min_s, float)


def test_measurand_lists_may_be_toml_arrays(tmp_path):
    data = with_("configuration", MeterValuesSampledData=["Energy.Active.Import.Register", "Voltage"])
    assert load(write(tmp_path, data)).configuration["MeterValuesSampledData"] == \
        "Energy.Active.Import.Register,Voltage"


def test_a_secure_csms_with_a_client_certificate_loads(tmp_path):
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("x")
    data = with_("csms", url="wss://csms.example/ocpp", ca_file="ca.pem", cert_file="client.pem",
                 key_file="client.key", password="0123456789abcdef")
    csms = load(write(tmp_path, data)).csms
    assert (csms.cert_file, csms.key_file) == (str(tmp_path / "client.pem"), str(tmp_path / "client.key"))
    assert csms.password == "0123456789abcdef"


def test_the_settings_are_frozen(tmp_path):
    settings = load(write(tmp_path, with_("configuration", HeartbeatInterval=60)))
    with pytest.raises(TypeError):
        settings.configuration["HeartbeatInterval"] = 1  # type: ignore[index]
    with pytest.raises(AttributeError):
        settings.station.id = "other"  # type: ignore[misc]


# --- the file itself --------------------------------------------------------------------------


def test_a_missing_file_is_a_settings_error_naming_it(tmp_path):
    with pytest.raises(SettingsError, match="not found.*nope.toml"):
        load(tmp_path / "nope.toml")


def test_a_file_that_is_not_toml_is_a_settings_error(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text("[station\nid = 1\n")
    with pytest.raises(SettingsError, match="station.toml"):
        load(path)


def test_a_folder_instead_of_a_file_is_a_settings_error(tmp_path):
    with pytest.raises(SettingsError):
        load(tmp_path)


# --- each kind of mistake names the key -------------------------------------------------------


def test_an_unknown_section_is_named(tmp_path):
    data = minimal()
    data["stations"] = {"id": "x"}
    assert "[stations]" in refused(tmp_path, data)


def test_an_unknown_key_is_named(tmp_path):
    assert "station.colour" in refused(tmp_path, with_("station", colour="red"))


def test_reserve_connector_zero_false_sets_the_read_only_key(tmp_path):
    settings = load(write(tmp_path, with_("station", reserve_connector_zero=False)))
    assert settings.configuration["ReserveConnectorZeroSupported"] is False


def test_a_station_without_reservations_does_not_claim_the_profile(tmp_path):
    from actors import features
    assert "Reservation" in features.profiles()
    settings = load(write(tmp_path, with_("station", reservations=False)))
    assert settings.station.reservations is False
    listed = settings.configuration["SupportedFeatureProfiles"].split(",")
    assert listed == [p for p in features.profiles() if p != "Reservation"]


def test_reserve_connector_zero_supported_in_configuration_is_refused_as_read_only(tmp_path):
    assert "read-only" in refused(tmp_path, with_("configuration", ReserveConnectorZeroSupported=False))


@pytest.mark.parametrize("section, key, value", [
    ("station", "connectors", "2"),
    ("station", "connectors", True),
    ("station", "fixed_cable", 1),
    ("station", "reservations", "no"),
    ("station", "reserve_connector_zero", 0),
    ("station", "id", 1),
    ("csms", "max_frame_bytes", 65536.0),
    ("csms", "reconnect_min_s", "1"),
    ("csms", "reconnect_max_s", True),
    ("queue", "max_messages", "100"),
    ("logging", "level", 10),
    ("storage", "path", 5),
])
def test_a_value_of_the_wrong_type_is_named(tmp_path, section, key, value):
    assert f"{section}.{key}" in refused(tmp_path, with_(section, **{key: value}))


def test_a_section_that_is_not_a_table_is_named(tmp_path):
    data = minimal()
    data["queue"] = 5
    assert "[queue]" in refused(tmp_path, data)


@pytest.mark.parametrize("key", ["id", "vendor", "model"])
def test_a_missing_required_station_key_is_named(tmp_path, key):
    data = minimal()
    del data["station"][key]
    assert f"station.{key}" in refused(tmp_path, data)


def test_a_missing_csms_url_is_named(tmp_path):
    data = minimal()
    del data["csms"]
    assert "csms.url" in refused(tmp_path, data)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9000/ocpp",   # not a WebSocket URL
    "https://csms.example/ocpp",
    "ws:///ocpp",                   # no host
    "ws://:9000/ocpp",
    "127.0.0.1:9000/ocpp",          # no scheme
    "ws://host:port/ocpp",          # port not a number
    "ws://host:99999/ocpp",         # port out of range
    "ws://host/ocpp?token=1",       # the station id would land in the query
    "ws://host/ocpp#x",
])
def test_a_bad_csms_url_is_named(tmp_path, url):
    assert "csms.url" in refused(tmp_path, with_("csms", url=url))


@pytest.mark.parametrize("connectors", [0, 9, -1])
def test_connectors_out_of_range_are_named(tmp_path, connectors):
    assert "station.connectors" in refused(tmp_path, with_("station", connectors=connectors))


@pytest.mark.parametrize("cp_id", ["", "CP/1", "CP 1", "CP?1", "CP#1", "CP%201", "x" * 49, "CP\t1", "CPÄ1"])
def test_a_station_id_that_cannot_be_a_url_path_segment_is_named(tmp_path, cp_id):
    assert "station.id" in refused(tmp_path, with_("station", id=cp_id))


@pytest.mark.parametrize("key, value", [
    ("vendor", "V" * 21), ("model", ""), ("serial_number", "S" * 26), ("firmware_version", "F" * 51)])
def test_boot_notification_fields_over_their_ocpp_length_are_named(tmp_path, key, value):
    assert f"station.{key}" in refused(tmp_path, with_("station", **{key: value}))


def test_boot_notification_fields_at_their_ocpp_length_load(tmp_path):
    data = with_("station", vendor="V" * 20, model="M" * 20, serial_number="S" * 25, firmware_version="F" * 50)
    assert load(write(tmp_path, data)).station.serial_number == "S" * 25


def test_a_ca_file_that_does_not_exist_is_named(tmp_path):
    message = refused(tmp_path, with_("csms", url="wss://h/ocpp", ca_file="missing-ca.pem"))
    assert "csms.ca_file" in message and "missing-ca.pem" in message


def test_a_cert_file_without_a_key_file_is_named(tmp_path):
    (tmp_path / "client.pem").write_text("x")
    message = refused(tmp_path, with_("csms", url="wss://h/ocpp", cert_file="client.pem"))
    assert "csms.cert_file" in message and "csms.key_file" in message


def test_a_key_file_without_a_cert_file_is_named(tmp_path):
    (tmp_path / "client.key").write_text("x")
    assert "csms.key_file" in refused(tmp_path, with_("csms", url="wss://h/ocpp", key_file="client.key"))


def test_a_tiny_max_frame_bytes_is_named(tmp_path):
    assert "csms.max_frame_bytes" in refused(tmp_path, with_("csms", max_frame_bytes=100))


@pytest.mark.parametrize("low, high", [(0, 60), (-1, 60), (30, 10)])
def test_reconnect_bounds_out_of_order_are_named(tmp_path, low, high):
    assert "csms.reconnect_min_s" in refused(tmp_path, with_("csms", reconnect_min_s=low, reconnect_max_s=high))


def test_an_unknown_log_level_is_named(tmp_path):
    assert "logging.level" in refused(tmp_path, with_("logging", level="CHATTY"))


def test_a_lower_case_log_level_is_accepted(tmp_path):
    assert load(write(tmp_path, with_("logging", level="debug"))).log_level == "DEBUG"


@pytest.mark.parametrize("key, value", [("max_bytes", 0), ("backups", 0)])
def test_a_log_that_would_never_rotate_is_named(tmp_path, key, value):
    assert f"logging.{key}" in refused(tmp_path, with_("logging", **{key: value}))


def test_a_tiny_queue_is_named(tmp_path):
    assert "queue.max_messages" in refused(tmp_path, with_("queue", max_messages=10))


# --- [hal] ------------------------------------------------------------------------------------


def test_an_unknown_hal_driver_is_named_with_the_known_ones(tmp_path):
    message = refused(tmp_path, with_("hal.evse", driver="openevse-v9"))
    assert "hal.evse.driver" in message and "openevse-v9" in message and "sim" in message


def test_a_hal_driver_that_is_not_a_string_is_named(tmp_path):
    assert "hal.meter.driver" in refused(tmp_path, with_("hal.meter", driver=["sim"]))


def test_an_unknown_hal_key_is_named(tmp_path):
    assert "hal.rfid.port" in refused(tmp_path, with_("hal.rfid", driver="sim", port="/dev/ttyUSB0"))


def test_an_unknown_hal_section_is_named(tmp_path):
    assert "[hal.display]" in refused(tmp_path, with_("hal.display", driver="sim"))


@pytest.mark.parametrize("control", ["0.0.0.0:7700", "192.168.1.5:7700", "example.com:7700", "127.0.0.1",
                                     "127.0.0.1:70000", "127.0.0.1:x"])
def test_a_sim_control_socket_that_is_not_loopback_host_and_port_is_named(tmp_path, control):
    assert "hal.sim.control" in refused(tmp_path, with_("hal.sim", control=control))


@pytest.mark.parametrize("control", ["127.0.0.1:7701", "localhost:1", "[::1]:7700"])
def test_a_loopback_sim_control_socket_is_accepted(tmp_path, control):
    assert load(write(tmp_path, with_("hal.sim", control=control))).hal["sim"]["control"] == control


# --- [configuration] --------------------------------------------------------------------------


def test_configuration_values_are_kept_typed(tmp_path):
    data = with_("configuration", HeartbeatInterval=120, LocalPreAuthorize=True, StopTxnSampledData="")
    configuration = load(write(tmp_path, data)).configuration
    assert configuration == {"HeartbeatInterval": 120, "LocalPreAuthorize": True, "StopTxnSampledData": ""}


@pytest.mark.parametrize("key, value, why", [
    ("HeartBeatInterval", 300, "unknown"),                         # misspelt
    ("HeartbeatInterval", "300", "integer"),                       # wrong TOML type
    ("HeartbeatInterval", 300.0, "integer"),
    ("LocalPreAuthorize", "true", "true or false"),
    ("MeterValueSampleInterval", -1, "minimum"),                   # out of range
    ("ConnectionTimeOut", 0, "minimum"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,SoC", "SoC"),  # unsupported measurand
    ("MeterValuesSampledData", 5, "string"),
    ("NumberOfConnectors", 2, "read-only"),                        # read-only key
    ("SupportedFeatureProfiles", "Core,SmartCharging", "read-only"),
])
def test_a_bad_configuration_key_or_value_is_named(tmp_path, key, value, why):
    message = refused(tmp_path, with_("configuration", **{key: value}))
    assert f"configuration.{key}" in message and why in message


def test_unlock_connector_on_ev_side_disconnect_is_read_only_only_with_a_fixed_cable(tmp_path):
    assert "read-only" in refused(tmp_path, with_("configuration", UnlockConnectorOnEVSideDisconnect=True))
    data = with_("configuration", UnlockConnectorOnEVSideDisconnect=True)
    data["station"]["fixed_cable"] = False
    assert load(write(tmp_path, data)).configuration["UnlockConnectorOnEVSideDisconnect"] is True


def test_the_meter_section_takes_the_station_s_poll_interval_and_fault_grace(tmp_path):
    data = minimal()
    data["hal"] = {"meter": {"driver": "sim", "poll_interval_s": 0.5, "fault_after_s": 10}}
    settings = load(write(tmp_path, data))
    assert settings.hal["meter"]["fault_after_s"] == 10
    data["hal"]["meter"]["fault_after_s"] = 0
    with pytest.raises(SettingsError, match="hal.meter.fault_after_s"):
        load(write(tmp_path, data))
    data["hal"] = {"evse": {"driver": "sim", "fault_after_s": 3}}
    with pytest.raises(SettingsError, match="hal.evse.fault_after_s"):
        load(write(tmp_path, data))


def test_under_systemd_relative_storage_and_log_paths_use_the_unit_s_directories(tmp_path, monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setenv("LOGS_DIRECTORY", str(tmp_path / "logs"))
    settings = load(write(tmp_path, minimal()))
    assert settings.storage_path == tmp_path / "state" / "var" / "station.db"
    assert settings.log_file == tmp_path / "logs" / "station.log"
