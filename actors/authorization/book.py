"""The authorization cache in the station database (OCPP 1.6 §3.4.1): its SQL, nothing else.

Table `auth_cache` (created by `actors/authorization/migrations.py`): written and read only by the
Authorization actor, which decides what to keep. Every write is its own durable transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from actors.infra import store


class AuthorizationCacheBook:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def get(self, id_tag: str) -> tuple[str, str | None, str | None] | None:
        """(status, expiryDate, parentIdTag) as stored, or None if the idTag is unknown."""
        return self._db.execute("SELECT status, expiry_date, parent_id_tag FROM auth_cache WHERE id_tag=?",
                                (id_tag,)).fetchone()

    def remember(self, id_tag: str, info: Any, updated_at: str) -> None:
        with store.Transaction(self._db):
            self._db.execute(
                "INSERT INTO auth_cache(id_tag, status, expiry_date, parent_id_tag, updated_at) VALUES(?, ?, ?, ?, ?)"
                " ON CONFLICT(id_tag) DO UPDATE SET status=excluded.status, expiry_date=excluded.expiry_date,"
                " parent_id_tag=excluded.parent_id_tag, updated_at=excluded.updated_at",
                (id_tag, info.get("status", "Invalid"), info.get("expiryDate"), info.get("parentIdTag"), updated_at))

    def clear(self) -> None:
        with store.Transaction(self._db):
            self._db.execute("DELETE FROM auth_cache")
