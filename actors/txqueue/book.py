"""The transaction message queue in the station database: its SQL, nothing else.

Tables (created by `actors/txqueue/migrations.py`):
- `tx_queue`: producers append with `enqueue` (TransactionManager through its TransactionBook,
  MeterSampler), inside the SQLite transaction that writes the state the message describes;
  the TransactionMessageQueue alone, through `TransactionQueueBook`, updates and deletes rows as
  the CSMS answers them.
- `transaction_ids` (local transaction -> the CSMS's transactionId): TransactionMessageQueue alone.

The actor decides (order, retries, what to drop); this book only reads and writes, and each
of its writes is at most one durable SQLite transaction.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from actors.infra import store

_DELETE = "DELETE FROM tx_queue WHERE seq=?"


def enqueue(db: sqlite3.Connection, unique_id: str, local_id: int, action: str, payload: dict,
            periodic: bool = False) -> int:
    """Append one transaction message; returns its seq. Call it inside the producer's
    `store.Transaction`, so the message and the state it describes commit together."""
    cur = db.execute(
        "INSERT INTO tx_queue(unique_id, local_id, action, payload, periodic) VALUES(?, ?, ?, ?, ?)",
        (unique_id, local_id, action, json.dumps(payload, separators=(",", ":")), int(periodic)))
    return cur.lastrowid


class TransactionQueueBook:
    """The consumer's side: the TransactionMessageQueue's reads and writes."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def length(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM tx_queue").fetchone()[0]

    def head(self) -> tuple[int, str, int, str, dict[str, Any]] | None:
        """The oldest message: (seq, unique_id, local_id, action, payload as stored), or None."""
        row = self._db.execute("SELECT seq, unique_id, local_id, action, payload FROM tx_queue ORDER BY seq LIMIT 1"
                               ).fetchone()
        if row is None:
            return None
        seq, unique_id, local_id, action, text = row
        return seq, unique_id, local_id, action, json.loads(text)

    def message(self, seq: int) -> tuple[int, dict[str, Any]] | None:
        """(local_id, payload as stored) of the message at `seq`, or None if it is gone."""
        row = self._db.execute("SELECT local_id, payload FROM tx_queue WHERE seq=?", (seq,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def transaction_id(self, local_id: int) -> int | None:
        """The CSMS's transactionId for our transaction (-1: its StartTransaction was dropped), or None."""
        row = self._db.execute("SELECT transaction_id FROM transaction_ids WHERE local_id=?", (local_id,)).fetchone()
        return row[0] if row else None

    def settle(self, seq: int, local_id: int, transaction_id: int | None = None) -> None:
        """The message at `seq` is done with (answered, or dropped): delete it and, when
        `transaction_id` is given, record it as the CSMS's id of `local_id` — one durable write."""
        with store.Transaction(self._db):
            if transaction_id is not None:
                self._db.execute("INSERT OR REPLACE INTO transaction_ids(local_id, transaction_id) VALUES(?, ?)",
                                 (local_id, transaction_id))
            self._db.execute(_DELETE, (seq,))

    def attempts(self, seq: int) -> int:
        return self._db.execute("SELECT attempts FROM tx_queue WHERE seq=?", (seq,)).fetchone()[0]

    def set_attempts(self, seq: int, attempts: int) -> None:
        """One statement in autocommit: one durable write."""
        self._db.execute("UPDATE tx_queue SET attempts=? WHERE seq=?", (attempts, seq))

    def periodic(self, except_seq: int | None) -> list[int]:
        """The seqs of periodic MeterValues, oldest first, without `except_seq` (the one in flight)."""
        return [r[0] for r in self._db.execute(
            "SELECT seq FROM tx_queue WHERE periodic=1 AND seq IS NOT ? ORDER BY seq", (except_seq,))]

    def discard(self, seqs: Iterable[int]) -> None:
        """Delete these messages, unsent (the queue is over its bound): one durable write."""
        with store.Transaction(self._db):
            self._db.executemany(_DELETE, [(s,) for s in seqs])
