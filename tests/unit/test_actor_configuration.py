"""Configuration: GetConfiguration / ChangeConfiguration, persistence, and the value precedence."""

from __future__ import annotations

import pytest

from actors.configuration import registry as keys

from actors.infra import store
from actors.configuration.book import ConfigurationBook
from actors.configuration.actor import Configuration, ConfigurationView, effective_values
from messages.events import ConfigurationChanged, ReplyError, ReplyResult
from tests.unit.fakes import Probe, csms_request, sync, wire

pytestmark = pytest.mark.timeout(20)

SPECS = keys.registry(1, True)


def defaults(**overrides) -> dict:
    values = {n: s.default for n, s in SPECS.items()}
    values.update(overrides)
    return values


class Rig:
    def __init__(self, db_path, **overrides):
        self.db_path = db_path
        self.link = Probe()
        self.subscriber = Probe()
        values = defaults(**overrides)
        self.view = ConfigurationView(SPECS, values)
        self.config = Configuration.start(str(db_path), SPECS, values, self.view)
        wire(self.config, {ConfigurationChanged: self.subscriber})

    def get(self, *key_names, uid="g1"):
        """GetConfiguration as the link answers it: from the view the actor keeps up to date."""
        payload = {"key": list(key_names)} if key_names else {}
        return self.view.get(csms_request(uid, "GetConfiguration", payload, self.link.ref))

    def change(self, key, value, uid="c1") -> str:
        self.config.tell(csms_request(uid, "ChangeConfiguration", {"key": key, "value": value}, self.link.ref))
        reply = self.link.expect(ReplyResult)
        assert (reply.unique_id, reply.action) == (uid, "ChangeConfiguration")
        return reply.payload["status"]

    def stored(self) -> dict:
        conn = store.open_database(self.db_path)
        try:
            return ConfigurationBook(conn).load()
        finally:
            conn.close()


@pytest.fixture
def rig(tmp_path):
    return Rig(tmp_path / "station.db")


def entries(reply) -> dict:
    return {e["key"]: (e["value"], e["readonly"]) for e in reply.payload["configurationKey"]}


# --- GetConfiguration --------------------------------------------------------------------------


def test_get_configuration_without_keys_lists_every_key(rig):
    reply = rig.get()
    assert isinstance(reply, ReplyResult) and reply.unique_id == "g1"
    got = entries(reply)
    assert set(got) == set(SPECS)
    assert got["HeartbeatInterval"] == ("300", False)
    assert got["NumberOfConnectors"] == ("1", True)
    assert got["StopTransactionOnInvalidId"] == ("true", False)
    assert "unknownKey" not in reply.payload


def test_get_configuration_with_some_keys_lists_only_those(rig):
    reply = rig.get("HeartbeatInterval", "MeterValueSampleInterval")
    assert entries(reply) == {"HeartbeatInterval": ("300", False), "MeterValueSampleInterval": ("60", False)}
    assert "unknownKey" not in reply.payload


def test_unknown_keys_are_listed_as_unknown(rig):
    reply = rig.get("HeartbeatInterval", "NoSuchKey")
    assert set(entries(reply)) == {"HeartbeatInterval"}
    assert list(reply.payload["unknownKey"]) == ["NoSuchKey"]


def test_key_names_are_case_insensitive(rig):
    reply = rig.get("heartbeatINTERVAL")
    assert entries(reply) == {"HeartbeatInterval": ("300", False)}
    assert "unknownKey" not in reply.payload


def test_more_keys_than_get_configuration_max_keys_is_an_occurence_violation(tmp_path):
    rig = Rig(tmp_path / "station.db", GetConfigurationMaxKeys=2)
    reply = rig.get("HeartbeatInterval", "ConnectionTimeOut", "MessageTimeout", uid="g9")
    assert isinstance(reply, ReplyError)
    assert (reply.unique_id, reply.error_code) == ("g9", "OccurenceConstraintViolation")


def test_exactly_get_configuration_max_keys_is_answered(tmp_path):
    rig = Rig(tmp_path / "station.db", GetConfigurationMaxKeys=2)
    reply = rig.get("HeartbeatInterval", "ConnectionTimeOut")
    assert isinstance(reply, ReplyResult) and len(entries(reply)) == 2


# --- ChangeConfiguration -----------------------------------------------------------------------


def test_an_accepted_change_is_persisted_told_to_subscribers_and_read_back(rig):
    assert rig.change("HeartbeatInterval", "120") == "Accepted"
    assert rig.stored() == {"HeartbeatInterval": 120}
    assert rig.subscriber.expect(ConfigurationChanged) == ConfigurationChanged("HeartbeatInterval", 120)
    assert entries(rig.get("HeartbeatInterval")) == {"HeartbeatInterval": ("120", False)}


def test_a_change_with_a_differently_cased_key_is_stored_under_the_registry_name(rig):
    assert rig.change("heartbeatinterval", "90") == "Accepted"
    assert rig.stored() == {"HeartbeatInterval": 90}


def test_a_boolean_change_is_typed(rig):
    assert rig.change("StopTransactionOnInvalidId", "FALSE") == "Accepted"
    assert rig.subscriber.expect(ConfigurationChanged).value is False
    assert rig.stored() == {"StopTransactionOnInvalidId": False}


def test_an_unknown_key_is_not_supported(rig):
    assert rig.change("NoSuchKey", "1") == "NotSupported"
    assert rig.stored() == {}


def test_a_read_only_key_is_rejected(rig):
    assert rig.change("NumberOfConnectors", "2") == "Rejected"
    assert rig.stored() == {}
    sync(rig.config)
    rig.subscriber.expect_none(ConfigurationChanged)


@pytest.mark.parametrize("key, value", [
    ("MeterValueSampleInterval", "-1"),
    ("MeterValueSampleInterval", "abc"),
    ("MeterValueSampleInterval", "1.5"),
    ("MeterValueSampleInterval", "86401"),
    ("StopTransactionOnInvalidId", "yes"),
    ("MeterValuesSampledData", "Energy.Active.Import.Register,Temperature"),
])
def test_a_bad_value_is_rejected_and_nothing_changes(rig, key, value):
    assert rig.change(key, value) == "Rejected"
    assert rig.stored() == {}
    sync(rig.config)
    rig.subscriber.expect_none(ConfigurationChanged)
    assert entries(rig.get(key))[key][0] == keys.to_wire(SPECS[key].default)


def test_minimum_status_duration_zero_is_accepted(tmp_path):
    rig = Rig(tmp_path / "station.db", MinimumStatusDuration=5)
    assert rig.change("MinimumStatusDuration", "0") == "Accepted"
    assert rig.subscriber.expect(ConfigurationChanged) == ConfigurationChanged("MinimumStatusDuration", 0)
    assert rig.stored() == {"MinimumStatusDuration": 0}


# --- effective values --------------------------------------------------------------------------


def test_effective_values_take_the_file_over_defaults_and_the_database_over_the_file():
    values = effective_values(SPECS, {"HeartbeatInterval": 100, "ConnectionTimeOut": 30},
                              {"HeartbeatInterval": 200})
    assert values["HeartbeatInterval"] == 200
    assert values["ConnectionTimeOut"] == 30
    assert values["MeterValueSampleInterval"] == SPECS["MeterValueSampleInterval"].default
    assert set(values) == set(SPECS)


def test_a_stored_value_no_longer_valid_or_read_only_is_ignored():
    values = effective_values(SPECS, {"HeartbeatInterval": 100},
                              {"HeartbeatInterval": -5, "NumberOfConnectors": 7, "Gone": 1})
    assert values["HeartbeatInterval"] == 100
    assert values["NumberOfConnectors"] == 1
    assert "Gone" not in values


def test_a_changed_value_survives_a_restart_through_effective_values(rig):
    rig.change("MeterValueSampleInterval", "15")
    rig.config.stop()
    restarted = effective_values(SPECS, {"MeterValueSampleInterval": 30}, rig.stored())
    assert restarted["MeterValueSampleInterval"] == 15
