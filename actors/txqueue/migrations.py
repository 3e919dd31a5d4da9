"""The transaction message queue's tables: the queued messages and the CSMS's transaction ids."""

from __future__ import annotations

MIGRATIONS: tuple[str, ...] = (
    # 1
    """
    CREATE TABLE tx_queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        unique_id TEXT NOT NULL,              -- kept on every re-send (OCPP-J errata 2025-04 §3.1)
        local_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        payload TEXT NOT NULL,                -- transactionId is filled in when sent
        periodic INTEGER NOT NULL DEFAULT 0,  -- sampled/aligned MeterValues: thinned first when full
        attempts INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE transaction_ids (
        local_id INTEGER PRIMARY KEY,         -- our transaction number
        transaction_id INTEGER NOT NULL       -- the CSMS's, from StartTransaction.conf (-1: never answered)
    );
    """,
)
