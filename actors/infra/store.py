"""The station's persistence: one SQLite database (WAL, synchronous=FULL), numbered migrations.

Everything that must survive a power cut lives here. Each actor opens its own connection in
`on_start` (sqlite3 connections are not shared between threads) and writes only its own
tables:

| table           | written by                                                   |
|-----------------|--------------------------------------------------------------|
| configuration   | Configuration (values set by the CSMS; they win over station.toml) |
| meta            | StationClock (last known time), Station (boot counter)       |
| transactions    | TransactionManager                                           |
| connectors      | TransactionManager (availability, persisted per OCPP 1.6 §4.9) |
| auth_cache      | Authorization                                                |
| transaction_ids | TransactionMessageQueue (local transaction -> CSMS transactionId) |
| tx_queue        | producers append (TransactionManager, MeterSampler) in the same SQLite |
|                 | transaction as the state they describe; TransactionMessageQueue  |
|                 | alone updates and deletes rows as the CSMS answers them      |

A row is committed (fsync'd, synchronous=FULL) before anything that depends on it is sent
or acknowledged, so SIGKILL at any moment loses nothing acknowledged to anyone.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterable

MIGRATIONS: tuple[str, ...] = (
    # 1: the station core
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE configuration (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
        transaction_id INTEGER,               -- assigned by the CSMS in StartTransaction.conf
        last_meter_wh INTEGER,                -- the meterStop after a power cut
        last_meter_at TEXT,
        stopped_at TEXT,
        stop_reason TEXT,
        meter_stop_wh INTEGER,
        stop_id_tag TEXT
    );
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
    # 2: the authorization cache (OCPP 1.6 §3.4.1; persists across reboots and power loss: errata 3.4)
    """
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY COLLATE NOCASE, -- IdToken is a CiString20: case-insensitive
        status TEXT NOT NULL,                   -- the last idTagInfo.status the CSMS gave
        expiry_date TEXT,
        parent_id_tag TEXT,
        updated_at TEXT NOT NULL
    );
    """,
)


class StorageError(Exception):
    pass


def open_database(path: str | Path) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the station database at `path`."""
    path = Path(path)
    conn: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        _migrate(conn)
    except (sqlite3.DatabaseError, OSError, StorageError) as exc:
        if conn is not None:
            conn.close()  # no half-open connection (and file handle) left behind
        raise StorageError(f"cannot open the station database {path}: {exc}") from exc
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(MIGRATIONS):
            raise StorageError(f"database schema {version} is newer than this firmware ({len(MIGRATIONS)})")
        for number in range(version, len(MIGRATIONS)):
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number + 1}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
            conn.execute("ROLLBACK")
        raise


class Transaction:
    """`with Transaction(conn):` one atomic, durable write (BEGIN IMMEDIATE … COMMIT)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            if self.conn.in_transaction:  # SQLite may already have rolled back; keep the original error
                self.conn.execute("ROLLBACK")
            return
        try:
            self.conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full, I/O error) leaves the transaction open: every later
            # BEGIN would fail with "cannot start a transaction within a transaction".
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise


# --- meta -----------------------------------------------------------------------------------


def get_meta(conn: sqlite3.Connection, key: str, default: str | None = None) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    return row[0] if row else default


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                 (key, value))


# --- configuration --------------------------------------------------------------------------


def load_configuration(conn: sqlite3.Connection) -> dict[str, Any]:
    return {k: json.loads(v) for k, v in conn.execute("SELECT key, value FROM configuration")}


def save_configuration(conn: sqlite3.Connection, key: str, value: Any) -> None:
    with Transaction(conn):
        conn.execute("INSERT INTO configuration(key, value) VALUES(?, ?) "
                     "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, json.dumps(value)))


# --- transaction message queue ---------------------------------------------------------------


def enqueue(conn: sqlite3.Connection, unique_id: str, local_id: int, action: str, payload: dict,
            periodic: bool = False) -> int:
    """Append one transaction message (call inside the producer's Transaction)."""
    cur = conn.execute(
        "INSERT INTO tx_queue(unique_id, local_id, action, payload, periodic) VALUES(?, ?, ?, ?, ?)",
        (unique_id, local_id, action, json.dumps(payload, separators=(",", ":")), int(periodic)))
    return cur.lastrowid


def queue_length(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COUNT(*) FROM tx_queue").fetchone()[0]


def rows(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
    cur = conn.execute(sql, tuple(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]
