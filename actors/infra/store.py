"""The station's persistence: one SQLite database (WAL, synchronous=FULL), migrations per feature.

Everything that must survive a power cut lives here. Each actor opens its own connection in
`on_start` (sqlite3 connections are not shared between threads) and writes only the tables of
its own feature, through that feature's book:

| feature (`actors/`) | tables                    | its SQL                                                  |
|---------------------|---------------------------|----------------------------------------------------------|
| `infra`             | meta                      | `get_meta` / `set_meta` below                            |
| `configuration`     | configuration             | `configuration/book.py`                                  |
| `sessions`          | connectors, transactions  | `sessions/book.py`                                       |
| `txqueue`           | tx_queue, transaction_ids | `txqueue/book.py` (producers append with its `enqueue`)  |
| `authorization`     | auth_cache                | `authorization/book.py`                                  |
|                     | local_list(_version)      | `authorization/local_list.py`                            |

Each book's docstring says who writes its tables (meta: BootNotifier `last_time`, Station `boot_count`);
each feature's `migrations.py` creates them.
`actors/infra/schema.py` lists the features, in the order their migrations apply, and the
`schema_versions` table (written here alone) holds each feature's version.

A row is committed (fsync'd, synchronous=FULL) before anything that depends on it is sent
or acknowledged, so SIGKILL at any moment loses nothing acknowledged to anyone.
"""

from __future__ import annotations

import importlib
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from actors.infra import schema

# PRAGMA user_version: 1 and 2 numbered the whole schema (firmware before per-feature migrations);
# PER_FEATURE means "see schema_versions". A firmware that knows only 1 and 2 refuses such a database.
PER_FEATURE = 3

Migration = str | Callable[[sqlite3.Connection], None]


class StorageError(Exception):
    pass


def open_database(path: str | Path) -> sqlite3.Connection:
    """Open (creating and migrating if needed) the station database at `path`."""
    path = Path(path)
    conn: sqlite3.Connection | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=True)
        conn.execute("PRAGMA busy_timeout=10000")
        _use_wal(conn)
        conn.execute("PRAGMA synchronous=FULL")
        _migrate(conn)
    except (sqlite3.DatabaseError, OSError, StorageError) as exc:
        if conn is not None:
            conn.close()  # no half-open connection (and file handle) left behind
        raise StorageError(f"cannot open the station database {path}: {exc}") from exc
    return conn


def _use_wal(conn: sqlite3.Connection, deadline_s: float = 10.0) -> None:
    """Switch a database to WAL. Switching a new database needs it to itself, and SQLite reports a
    concurrent opener's lock at once rather than through the busy timeout: try again until the deadline."""
    give_up = time.monotonic() + deadline_s
    while True:
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= give_up:
                raise
            time.sleep(0.02)


def feature_migrations() -> dict[str, Sequence[Migration]]:
    """Every feature's migrations, in the order schema.features() applies them."""
    return {name: importlib.import_module(f"actors.{name}.migrations").MIGRATIONS for name in schema.features()}


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring every feature's tables to this firmware's version: all of it in one SQLite transaction, or none."""
    features = feature_migrations()
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > PER_FEATURE:
            raise StorageError(f"database schema {version} is newer than this firmware ({PER_FEATURE})")
        if version < PER_FEATURE:  # new, or written by firmware that numbered the whole schema
            legacy = schema.LEGACY_USER_VERSIONS.get(version)
            if legacy is None:
                raise StorageError(f"database schema {version} is unknown to this firmware")
            # Once: what that number had created, as per-feature versions.
            conn.execute("CREATE TABLE schema_versions (feature TEXT PRIMARY KEY, version INTEGER NOT NULL)")
            conn.executemany("INSERT INTO schema_versions(feature, version) VALUES(?, ?)", legacy.items())
            conn.execute(f"PRAGMA user_version={PER_FEATURE}")
        have = dict(conn.execute("SELECT feature, version FROM schema_versions"))
        unknown = sorted(have.keys() - features.keys())
        if unknown:
            raise StorageError(f"the database has tables of feature {unknown[0]} (version {have[unknown[0]]}), "
                               "which this firmware does not know: it is newer than this firmware")
        for name, migrations in features.items():
            done = have.get(name, 0)
            if done > len(migrations):
                raise StorageError(f"the {name} schema (version {done}) is newer than this firmware "
                                   f"({len(migrations)})")
            for migration in migrations[done:]:
                _apply(conn, migration)
            if done < len(migrations):
                conn.execute("INSERT INTO schema_versions(feature, version) VALUES(?, ?) ON CONFLICT(feature)"
                             " DO UPDATE SET version=excluded.version", (name, len(migrations)))
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:  # SQLite may already have rolled back (e.g. disk full)
            conn.execute("ROLLBACK")
        raise


def _apply(conn: sqlite3.Connection, migration: Migration) -> None:
    if callable(migration):
        migration(conn)
        return
    # Statement by statement: executescript() would COMMIT the transaction first.
    for statement in migration.split(";"):
        if statement.strip():
            conn.execute(statement)


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


# --- any table -----------------------------------------------------------------------------


def rows(conn: sqlite3.Connection, sql: str, params: Iterable[Any] = ()) -> list[dict[str, Any]]:
    cur = conn.execute(sql, tuple(params))
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r)) for r in cur.fetchall()]
