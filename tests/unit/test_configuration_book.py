"""actors.configuration.book: the configuration values the CSMS set, stored with their types."""

from __future__ import annotations

import pytest

from actors.configuration.book import ConfigurationBook
from actors.infra import store

pytestmark = pytest.mark.timeout(30)


def test_configuration_values_round_trip_with_their_types(tmp_path):
    path = tmp_path / "station.db"
    conn = store.open_database(path)
    book = ConfigurationBook(conn)
    assert book.load() == {}
    book.save("HeartbeatInterval", 120)
    book.save("LocalPreAuthorize", True)
    book.save("MeterValuesSampledData", "Voltage,Current.Import")
    book.save("HeartbeatInterval", 60)
    conn.close()
    again = store.open_database(path)
    try:
        loaded = ConfigurationBook(again).load()
    finally:
        again.close()
    assert loaded == {"HeartbeatInterval": 60, "LocalPreAuthorize": True,
                      "MeterValuesSampledData": "Voltage,Current.Import"}
    assert type(loaded["HeartbeatInterval"]) is int and type(loaded["LocalPreAuthorize"]) is bool


def test_each_save_is_one_durable_commit(tmp_path):
    conn = store.open_database(tmp_path / "station.db")
    try:
        seen: list[str] = []
        conn.set_trace_callback(seen.append)
        ConfigurationBook(conn).save("HeartbeatInterval", 60)
        assert seen.count("COMMIT") == 1 and not conn.in_transaction
    finally:
        conn.close()
