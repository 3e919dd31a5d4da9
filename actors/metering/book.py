"""The MeterSampler's one write: a transaction's MeterValues into the durable queue.

It reads the sessions' `transactions` table (written only by the TransactionBook) to queue a
sample only while its transaction is still open, in the same SQLite transaction as the insert:
a sample that races the StopTransaction is dropped, never queued behind it (OCPP 1.6 §3.7 order).
"""

from __future__ import annotations

import sqlite3
import uuid

from actors.infra import store
from actors.txqueue.book import enqueue


def queue_meter_values(db: sqlite3.Connection, local_id: int, payload: dict) -> bool:
    """Queue one periodic MeterValues of transaction `local_id` (one commit); False if it has stopped."""
    with store.Transaction(db):
        if db.execute("SELECT 1 FROM transactions WHERE local_id=? AND stopped_at IS NULL",
                      (local_id,)).fetchone() is None:
            return False
        enqueue(db, str(uuid.uuid4()), local_id, "MeterValues", payload, periodic=True)
    return True
