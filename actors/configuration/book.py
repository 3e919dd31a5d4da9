"""The configuration keys the CSMS set, in the station database: their SQL, nothing else.

Table `configuration` (created by `actors/configuration/migrations.py`): one JSON value per key,
written only by the Configuration actor (ChangeConfiguration, SetConfigurationValue) and read
once at start-up by the station; a stored value wins over station.toml. Each save is its own
durable transaction, committed before ChangeConfiguration is answered.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from actors.infra import store


class ConfigurationBook:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def load(self) -> dict[str, Any]:
        """Every stored key with its value, typed as it was saved."""
        return {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM configuration")}

    def save(self, key: str, value: Any) -> None:
        with store.Transaction(self._db):
            self._db.execute("INSERT INTO configuration(key, value) VALUES(?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, json.dumps(value)))
