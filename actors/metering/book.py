"""The MeterSampler's one write: a transaction's sample into the durable queue.

It reads the sessions' `transactions` table (written only by the TransactionBook) to queue a
sample only while its transaction is still open, in the same SQLite transaction as the insert:
a sample that races the StopTransaction is dropped, never queued behind it (OCPP 1.6 §3.7 order).
The sample's StopTxn*Data value is kept in that same commit, so a MeterValues the CSMS has seen is
never missing from the StopTransaction.transactionData of a crash (PowerLoss) stop.
"""

from __future__ import annotations

import sqlite3
import uuid

from actors.infra import store
from actors.sessions.book import keep_transaction_data
from actors.txqueue.book import enqueue


def queue_meter_values(db: sqlite3.Connection, local_id: int, payload: dict | None,
                       stop_data: dict | None = None) -> bool:
    """Queue one periodic MeterValues of transaction `local_id` and keep its StopTxn*Data value (either
    may be None), in one commit; False if the transaction has stopped."""
    with store.Transaction(db):
        if db.execute("SELECT 1 FROM transactions WHERE local_id=? AND stopped_at IS NULL",
                      (local_id,)).fetchone() is None:
            return False
        if payload is not None:
            enqueue(db, str(uuid.uuid4()), local_id, "MeterValues", payload, periodic=True)
        if stop_data is not None:
            keep_transaction_data(db, local_id, stop_data)
    return True
