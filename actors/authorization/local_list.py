"""The Local Authorization List in the station database (OCPP 1.6 §3.5.2, §5.10, §5.15): its SQL, nothing else.

Tables `local_list` and `local_list_version` (created by `actors/authorization/migrations.py`): written
only by the Authorization actor on a SendLocalList (§3.5.2: nothing else changes the list), read by it
for every idTag it decides. A look-up is one search of the idTag's B-tree (the table's key): O(log n)
pages, a few microseconds at 50,000 entries, and no list in memory.

An update is one SQLite transaction (BEGIN IMMEDIATE … COMMIT, WAL, synchronous=FULL): the entries and
the version commit together or not at all, so after a crash or a power cut at any moment the list is the
old one or the new one, never a mix. An update that would make the list longer than its capacity is
rolled back. A storage error (disk full, I/O error) raises `sqlite3.Error` and leaves the old list.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Iterable

from actors.infra import store

Entry = tuple[str, Any]  # (idTag, IdTagInfo mapping, or None: remove it in a Differential update)
_UPSERT = ("INSERT INTO local_list(id_tag, status, expiry_date, parent_id_tag) VALUES(?, ?, ?, ?)"
           " ON CONFLICT(id_tag) DO UPDATE SET status=excluded.status, expiry_date=excluded.expiry_date,"
           " parent_id_tag=excluded.parent_id_tag")


class _TooLong(Exception):
    pass


class LocalListBook:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def get(self, id_tag: str) -> tuple[str, str | None, str | None] | None:
        """(status, expiryDate, parentIdTag) as the CSMS sent them, or None if the idTag is not in the list."""
        return self._db.execute("SELECT status, expiry_date, parent_id_tag FROM local_list WHERE id_tag=?",
                                (id_tag,)).fetchone()

    def version(self) -> int:
        """The list's version as GetLocalListVersion reports it: 0 while the list is empty (§5.10)."""
        row = self._db.execute("SELECT version, EXISTS(SELECT 1 FROM local_list) FROM local_list_version").fetchone()
        return row[0] if row[1] else 0

    def count(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM local_list").fetchone()[0]

    def replace(self, version: int, entries: Iterable[Entry], capacity: int) -> bool:
        """Full update: the list becomes `entries` (every one with its IdTagInfo), version `version`.
        False (nothing changed) if it would hold more than `capacity` idTags."""
        return self._update(version, entries, capacity, full=True)

    def apply(self, version: int, entries: Iterable[Entry], capacity: int) -> bool:
        """Differential update: add or update each entry with an IdTagInfo, remove each without one;
        then version `version`. False (nothing changed) if the list would hold more than `capacity`."""
        return self._update(version, entries, capacity, full=False)

    def _update(self, version: int, entries: Iterable[Entry], capacity: int, full: bool) -> bool:
        try:
            with store.Transaction(self._db):
                if full:
                    self._db.execute("DELETE FROM local_list")
                for sql, batch in _batches(entries):
                    self._db.executemany(sql, batch)
                if self.count() > capacity:
                    raise _TooLong()
                self._db.execute("UPDATE local_list_version SET version=?", (version,))
        except _TooLong:
            return False
        return True


def _batches(entries: Iterable[Entry], size: int = 5000):
    """(SQL, rows) for runs of consecutive upserts or removals, in the order sent (a later entry for the
    same idTag wins), at most `size` rows each."""
    sql, batch = None, []
    for id_tag, info in entries:
        if info is None:
            this, row = "DELETE FROM local_list WHERE id_tag=?", (id_tag,)
        else:
            this, row = _UPSERT, (id_tag, info.get("status", "Invalid"), info.get("expiryDate"),
                                  info.get("parentIdTag"))
        if batch and (this != sql or len(batch) >= size):
            yield sql, batch
            batch = []
        sql = this
        batch.append(row)
    if batch:
        yield sql, batch
