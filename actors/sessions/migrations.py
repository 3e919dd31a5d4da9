"""The sessions feature's tables: `connectors` (availability), `transactions` (the record of each),
`transaction_data` (the StopTxn*Data values a running transaction has collected for its StopTransaction)
and `reservations` (the ReserveNow reservations the station holds).

Migrations run inside the one SQLite transaction that `actors.infra.store.open_database` opens.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

# SQLite has ALTER TABLE … DROP COLUMN from 3.35.0 (2021-03) on; older libraries rebuild the table.
HAS_DROP_COLUMN = sqlite3.sqlite_version_info >= (3, 35, 0)

_COLUMNS = ("local_id, connector, id_tag, started_at, meter_start_wh, last_meter_wh, last_meter_at, stopped_at,"
            " stop_reason, meter_stop_wh, stop_id_tag")


def _drop_transaction_id(conn: sqlite3.Connection) -> None:
    """transactions.transaction_id was never written: the CSMS's id is in transaction_ids (the queue's)."""
    if HAS_DROP_COLUMN:
        conn.execute("ALTER TABLE transactions DROP COLUMN transaction_id")
        return
    # The rebuild of sqlite.org/lang_altertable.html#otheralter (no index, trigger, view or foreign key
    # refers to this table), keeping the AUTOINCREMENT counter so no local id is ever reused.
    counter = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='transactions'").fetchone()
    conn.execute("""
        CREATE TABLE transactions_new (
            local_id INTEGER PRIMARY KEY AUTOINCREMENT,
            connector INTEGER NOT NULL,
            id_tag TEXT NOT NULL,
            started_at TEXT NOT NULL,
            meter_start_wh INTEGER NOT NULL,
            last_meter_wh INTEGER,                -- the meterStop after a power cut
            last_meter_at TEXT,
            stopped_at TEXT,
            stop_reason TEXT,
            meter_stop_wh INTEGER,
            stop_id_tag TEXT
        )""")
    conn.execute(f"INSERT INTO transactions_new({_COLUMNS}) SELECT {_COLUMNS} FROM transactions")
    conn.execute("DROP TABLE transactions")
    conn.execute("ALTER TABLE transactions_new RENAME TO transactions")
    if counter is not None:
        conn.execute("DELETE FROM sqlite_sequence WHERE name='transactions'")
        conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES('transactions', ?)", counter)


MIGRATIONS: tuple[str | Callable[[sqlite3.Connection], None], ...] = (
    # 1
    """
    CREATE TABLE connectors (
        connector INTEGER PRIMARY KEY,
        availability TEXT NOT NULL            -- Operative | Inoperative
    );
    CREATE TABLE transactions (
        local_id INTEGER PRIMARY KEY AUTOINCREMENT,
        connector INTEGER NOT NULL,
        id_tag TEXT NOT NULL,
        started_at TEXT NOT NULL,
        meter_start_wh INTEGER NOT NULL,
        transaction_id INTEGER,               -- never written (dropped by 2)
        last_meter_wh INTEGER,                -- the meterStop after a power cut
        last_meter_at TEXT,
        stopped_at TEXT,
        stop_reason TEXT,
        meter_stop_wh INTEGER,
        stop_id_tag TEXT
    );
    """,
    # 2
    _drop_transaction_id,
    # 3
    """
    CREATE TABLE transaction_data (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        local_id INTEGER NOT NULL,            -- transactions.local_id, still running
        meter_value TEXT NOT NULL             -- one MeterValue (JSON) for StopTransaction.transactionData
    );
    CREATE INDEX transaction_data_of ON transaction_data(local_id, seq);
    """,
    # 4
    """
    CREATE TABLE reservations (
        reservation_id INTEGER PRIMARY KEY,   -- the CSMS's reservationId (ReserveNow, OCPP 1.6 §5.13)
        connector INTEGER NOT NULL,           -- 0: any connector of the station
        id_tag TEXT NOT NULL,
        parent_id_tag TEXT,
        expiry_date TEXT NOT NULL             -- UTC, as actors.infra.clock.format_time writes it
    );
    """,
)
