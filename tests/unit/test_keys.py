"""actors.configuration.registry: the OCPP 1.6 configuration key registry, assembled from the keys each feature
owns (actors/<feature>/keys.py), and how values are read and written on the wire."""

from __future__ import annotations

import collections
import inspect

import pytest

from actors import features
from actors.configuration import registry as keys
from actors.configuration.registry import KeyError_, parse_wire, to_wire

pytestmark = pytest.mark.timeout(30)

# OCTT TC_019_CS: the Core keys that must be present, with their accessibility (R = read-only).
TC_019_CORE_KEYS = {
    "AuthorizeRemoteTxRequests": None,  # R or RW
    "ClockAlignedDataInterval": False,
    "ConnectionTimeOut": False,
    "ConnectorPhaseRotation": False,
    "GetConfigurationMaxKeys": True,
    "HeartbeatInterval": False,
    "LocalAuthorizeOffline": False,
    "LocalPreAuthorize": False,
    "MeterValuesAlignedData": False,
    "MeterValuesSampledData": False,
    "MeterValueSampleInterval": False,
    "NumberOfConnectors": True,
    "ResetRetries": False,
    "StopTransactionOnInvalidId": False,
    "StopTxnAlignedData": False,
    "StopTxnSampledData": False,
    "SupportedFeatureProfiles": True,
    "TransactionMessageAttempts": False,
    "TransactionMessageRetryInterval": False,
    "UnlockConnectorOnEVSideDisconnect": None,  # R for a fixed cable (errata 3.84)
}


@pytest.fixture
def specs():
    return keys.registry(connectors=2, fixed_cable=True)


def wire(specs, name: str, text: str):
    return parse_wire(specs[name], text)


def refused(specs, name: str, text: str) -> str:
    with pytest.raises(KeyError_) as info:
        parse_wire(specs[name], text)
    return str(info.value)


# --- registry contents ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TC_019_CORE_KEYS))
def test_every_core_key_octt_tc_019_requires_is_registered_with_the_right_accessibility(specs, name):
    assert name in specs
    expected = TC_019_CORE_KEYS[name]
    if expected is not None:
        assert specs[name].readonly is expected


def test_every_key_is_registered_under_its_own_name(specs):
    assert all(spec.name == name for name, spec in specs.items())


def test_every_default_is_valid_for_its_own_key():
    for fixed_cable in (True, False):
        for name, spec in keys.registry(3, fixed_cable).items():
            assert parse_wire(spec, to_wire(spec.default)) == spec.default, name


def test_number_of_connectors_follows_the_hardware(specs):
    assert specs["NumberOfConnectors"].default == 2
    assert keys.registry(5, True)["NumberOfConnectors"].default == 5


def test_connector_phase_rotation_lists_connector_zero_and_every_connector(specs):
    assert specs["ConnectorPhaseRotation"].default == "0.Unknown,1.Unknown,2.Unknown"


def test_unlock_on_ev_side_disconnect_is_read_only_false_with_a_fixed_cable_and_writable_with_a_socket():
    fixed = keys.registry(1, fixed_cable=True)["UnlockConnectorOnEVSideDisconnect"]
    socket = keys.registry(1, fixed_cable=False)["UnlockConnectorOnEVSideDisconnect"]
    assert (fixed.readonly, fixed.default) == (True, False)
    assert (socket.readonly, socket.default) == (False, True)


def test_supported_feature_profiles_is_read_only_core(specs):
    assert specs["SupportedFeatureProfiles"].readonly
    assert "Core" in specs["SupportedFeatureProfiles"].default.split(",")


def test_the_max_length_keys_match_the_number_of_supported_measurands(specs):
    for name in ("MeterValuesAlignedDataMaxLength", "MeterValuesSampledDataMaxLength",
                 "StopTxnAlignedDataMaxLength", "StopTxnSampledDataMaxLength"):
        assert specs[name].readonly and specs[name].default == len(keys.MEASURANDS)


def test_the_errata_message_timeout_key_is_present(specs):
    assert specs["MessageTimeout"].kind == "int" and not specs["MessageTimeout"].readonly


# --- ownership: each feature package declares the keys it owns -------------------------------

# What GetConfiguration() reported, in this order, before the keys moved to their features
# (2 connectors, fixed cable): key, readonly, default on the wire.
REPORTED_BEFORE = [
    ("AllowOfflineTxForUnknownId", False, "false"),
    ("AuthorizationCacheEnabled", False, "true"),
    ("AuthorizeRemoteTxRequests", False, "true"),
    ("ClockAlignedDataInterval", False, "0"),
    ("ConnectionTimeOut", False, "60"),
    ("ConnectorPhaseRotation", False, "0.Unknown,1.Unknown,2.Unknown"),
    ("GetConfigurationMaxKeys", True, "100"),
    ("HeartbeatInterval", False, "300"),
    ("LocalAuthorizeOffline", False, "true"),
    ("LocalPreAuthorize", False, "false"),
    ("MaxEnergyOnInvalidId", False, "0"),
    ("MeterValuesAlignedData", False, "Energy.Active.Import.Register"),
    ("MeterValuesAlignedDataMaxLength", True, "6"),
    ("MeterValuesSampledData", False, "Energy.Active.Import.Register"),
    ("MeterValuesSampledDataMaxLength", True, "6"),
    ("MeterValueSampleInterval", False, "60"),
    ("MessageTimeout", False, "30"),
    ("MinimumStatusDuration", False, "0"),
    ("NumberOfConnectors", True, "2"),
    ("ResetRetries", False, "3"),
    ("StopTransactionOnEVSideDisconnect", False, "true"),
    ("StopTransactionOnInvalidId", False, "true"),
    ("StopTxnAlignedData", False, ""),
    ("StopTxnAlignedDataMaxLength", True, "6"),
    ("StopTxnSampledData", False, ""),
    ("StopTxnSampledDataMaxLength", True, "6"),
    ("SupportedFeatureProfiles", True, ",".join(features.profiles())),  # Core and the profiles built since
    ("TransactionMessageAttempts", False, "3"),
    ("TransactionMessageRetryInterval", False, "60"),
    ("UnlockConnectorOnEVSideDisconnect", True, "false"),
    ("WebSocketPingInterval", False, "60"),
]

# Which feature package owns which key (the one whose actor reads it).
OWNERS = {
    "link": {"MessageTimeout", "WebSocketPingInterval"},
    "boot": {"HeartbeatInterval"},
    "status": {"MinimumStatusDuration"},
    "sessions": {"AuthorizeRemoteTxRequests", "ConnectionTimeOut", "ConnectorPhaseRotation", "MaxEnergyOnInvalidId",
                 "NumberOfConnectors", "ReserveConnectorZeroSupported", "StopTransactionOnEVSideDisconnect", "StopTransactionOnInvalidId",
                 "UnlockConnectorOnEVSideDisconnect"},
    "txqueue": {"TransactionMessageAttempts", "TransactionMessageRetryInterval"},
    "authorization": {"AllowOfflineTxForUnknownId", "AuthorizationCacheEnabled", "LocalAuthorizeOffline",
                      "LocalPreAuthorize", "LocalAuthListEnabled", "LocalAuthListMaxLength", "SendLocalListMaxLength"},
    "metering": {"ClockAlignedDataInterval", "MeterValuesAlignedData", "MeterValuesAlignedDataMaxLength",
                 "MeterValuesSampledData", "MeterValuesSampledDataMaxLength", "MeterValueSampleInterval",
                 "StopTxnAlignedData", "StopTxnAlignedDataMaxLength", "StopTxnSampledData",
                 "StopTxnSampledDataMaxLength"},
    "configuration": {"GetConfigurationMaxKeys", "SupportedFeatureProfiles"},
    "reset": {"ResetRetries"},
}


def test_the_assembled_registry_is_what_the_station_reported_before_in_the_same_order(specs):
    """The Core keys as the station reported them before the registry was split by feature; keys of the
    optional profiles come in between (GetConfiguration lists them all)."""
    core = {name for name, _, _ in REPORTED_BEFORE}
    assert [(name, spec.readonly, to_wire(spec.default)) for name, spec in specs.items() if name in core] == \
        REPORTED_BEFORE


@pytest.mark.parametrize("connectors, fixed_cable", [(1, True), (2, False), (5, True)])
def test_every_key_is_owned_by_exactly_one_feature_module(connectors, fixed_cable):
    declared = keys.owners(connectors, fixed_cable)
    counts = collections.Counter(spec.name for specs in declared.values() for spec in specs)
    assert [name for name, n in counts.items() if n != 1] == []
    assert set(counts) == set(keys.registry(connectors, fixed_cable))


def test_each_key_lives_in_the_package_of_the_feature_that_uses_it():
    declared = keys.owners(2, True)
    assert {feature: {spec.name for spec in specs} for feature, specs in declared.items()} == OWNERS


def test_a_key_declared_by_two_features_stops_the_assembly_naming_it_and_both_owners(monkeypatch):
    from actors.boot import keys as boot_keys
    from actors.reset import keys as reset_keys
    reset_only = reset_keys.keys
    monkeypatch.setattr(reset_keys, "keys", lambda c, f: reset_only(c, f) + boot_keys.keys(c, f))
    with pytest.raises(ValueError, match=r"HeartbeatInterval declared twice \(actors.boot.keys, actors.reset.keys\)"):
        keys.registry(1, True)


def test_the_registry_module_declares_no_key_itself():
    assert 'KeySpec("' not in inspect.getsource(keys)


# --- parse_wire: bool -------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("true", True), ("false", False), ("TRUE", True), (" False ", False)])
def test_booleans_are_read_case_insensitively(specs, text, value):
    assert wire(specs, "LocalPreAuthorize", text) is value


@pytest.mark.parametrize("text", ["yes", "1", "", "truee"])
def test_anything_else_is_not_a_boolean(specs, text):
    assert "true or false" in refused(specs, "LocalPreAuthorize", text)


# --- parse_wire: int --------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("60", 60), (" 60 ", 60), ("+5", 5), ("007", 7), ("0", 0)])
def test_integers_are_read(specs, text, value):
    assert wire(specs, "MeterValueSampleInterval", text) == value


def test_minus_one_for_meter_value_sample_interval_is_rejected(specs):
    assert "minimum" in refused(specs, "MeterValueSampleInterval", "-1")


def test_a_value_above_the_maximum_is_rejected(specs):
    assert "maximum" in refused(specs, "HeartbeatInterval", "86401")


@pytest.mark.parametrize("text", ["abc", "", "1.5", "1e3", "0x10", "+-5", "--5", "5-", "²", "٣", "1 000",
                                  pytest.param("9" * 5000, id="5000-digits")])
def test_text_that_is_not_a_plain_integer_is_rejected_not_a_crash(specs, text):
    assert "not an integer" in refused(specs, "HeartbeatInterval", text)


def test_minimum_status_duration_accepts_zero(specs):
    assert wire(specs, "MinimumStatusDuration", "0") == 0


def test_get_configuration_max_keys_must_be_at_least_one(specs):
    assert "minimum" in refused(specs, "GetConfigurationMaxKeys", "0")


# --- parse_wire: comma separated lists --------------------------------------------------------


def test_a_measurand_list_is_normalised(specs):
    value = wire(specs, "MeterValuesSampledData", " Energy.Active.Import.Register , Voltage,, ")
    assert value == "Energy.Active.Import.Register,Voltage"


def test_a_measurand_list_with_one_unsupported_member_is_rejected_as_a_whole(specs):
    message = refused(specs, "MeterValuesSampledData", "Energy.Active.Import.Register,SoC,Voltage")
    assert "SoC" in message


def test_measurands_are_case_sensitive(specs):
    refused(specs, "StopTxnSampledData", "voltage")


def test_an_empty_stop_txn_list_is_allowed(specs):
    assert wire(specs, "StopTxnSampledData", "") == ""
    assert wire(specs, "StopTxnAlignedData", "  ") == ""


def test_more_measurands_than_the_max_length_are_rejected(specs):
    text = ",".join(sorted(keys.MEASURANDS) + ["Voltage"])
    assert "more than" in refused(specs, "MeterValuesAlignedData", text)


def test_a_free_list_keeps_its_members_without_the_spaces(specs):
    assert wire(specs, "ConnectorPhaseRotation", "0.RST, 1.RST, 2.RTS") == "0.RST,1.RST,2.RTS"


def test_a_value_longer_than_500_characters_is_rejected(specs):
    assert "500" in refused(specs, "ConnectorPhaseRotation", "0.RST," * 100)


# --- to_wire and from_toml --------------------------------------------------------------------


@pytest.mark.parametrize("value, text", [(True, "true"), (False, "false"), (0, "0"), (300, "300"),
                                         ("Energy.Active.Import.Register", "Energy.Active.Import.Register")])
def test_to_wire_gives_the_ocpp_string(value, text):
    assert to_wire(value) == text


def test_wire_values_round_trip(specs):
    for name, text in (("HeartbeatInterval", "120"), ("LocalPreAuthorize", "true"),
                       ("MeterValuesSampledData", "Voltage,Current.Import")):
        assert to_wire(wire(specs, name, text)) == text


def test_from_toml_checks_types_and_ranges():
    assert keys.from_toml("HeartbeatInterval", 120, 1) == 120
    assert keys.from_toml("MeterValuesSampledData", ["Voltage", "Power.Active.Import"], 1) == \
        "Voltage,Power.Active.Import"
    for key, value in (("HeartbeatInterval", True), ("HeartbeatInterval", -5), ("LocalPreAuthorize", 1),
                       ("MeterValuesSampledData", ["Voltage", 3]), ("Nope", 1), ("NumberOfConnectors", 1)):
        with pytest.raises(KeyError_):
            keys.from_toml(key, value, 1)


def test_get_configuration_max_keys_may_be_set_by_the_operator_but_not_to_zero():
    assert keys.from_toml("GetConfigurationMaxKeys", 1, 1) == 1
    with pytest.raises(KeyError_):
        keys.from_toml("GetConfigurationMaxKeys", 0, 1)


def test_supported_feature_profiles_names_core_and_what_the_features_declare(monkeypatch):
    from actors import features
    import actors.metering
    assert keys.registry(1, False)["SupportedFeatureProfiles"].default == ",".join(features.profiles())
    assert features.profiles()[0] == "Core"
    monkeypatch.setattr(actors.metering, "PROFILES", ("RemoteTrigger", "Reservation"), raising=False)
    assert features.profiles()[1:] == tuple(p for p in ("LocalAuthListManagement", "Reservation", "RemoteTrigger")
                                            if p in features.profiles())
    assert keys.registry(1, False)["SupportedFeatureProfiles"].default.endswith("Reservation,RemoteTrigger")
    monkeypatch.setattr(actors.metering, "PROFILES", ("Billing",), raising=False)
    with pytest.raises(ValueError, match="Billing"):
        features.profiles()


def test_the_local_list_capacity_keys_are_read_only_but_the_operator_may_size_them():
    specs = keys.registry(1, True)
    for name in ("LocalAuthListMaxLength", "SendLocalListMaxLength"):
        assert specs[name].readonly and specs[name].default >= 50_000  # a 50,000-entry list fits
        assert keys.from_toml(name, 1234, 1) == 1234
        with pytest.raises(KeyError_):
            keys.from_toml(name, 0, 1)
    assert not specs["LocalAuthListEnabled"].readonly
