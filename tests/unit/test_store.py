"""actors.infra.store: the station database (SQLite, WAL, synchronous=FULL), per-feature migrations, durability."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors.infra import schema, store
from actors.infra.store import StorageError, Transaction
from actors.sessions import migrations as sessions_migrations

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
TABLES = {"schema_versions", "meta", "configuration", "connectors", "transactions", "tx_queue", "transaction_ids",
          "auth_cache", "transaction_data", "local_list", "local_list_version", "reservations"}

# What firmware before per-feature migrations created, literally (its store.MIGRATIONS, user_version 1 and 2).
# Stations in the field have such databases: never edit this.
OLD_MIGRATION_1 = """
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
"""
OLD_MIGRATION_2 = """
    CREATE TABLE auth_cache (
        id_tag TEXT PRIMARY KEY COLLATE NOCASE, -- IdToken is a CiString20: case-insensitive
        status TEXT NOT NULL,                   -- the last idTagInfo.status the CSMS gave
        expiry_date TEXT,
        parent_id_tag TEXT,
        updated_at TEXT NOT NULL
    );
"""

# A row in every table, as the old firmware wrote them (transactions.transaction_id: never written).
OLD_ROWS = {
    "meta": [("boot_count", "7"), ("last_time", "2025-03-01T10:00:00.000Z")],
    "configuration": [("HeartbeatInterval", "120"), ("LocalPreAuthorize", "true")],
    "connectors": [(0, "Operative"), (2, "Inoperative")],
    "transactions": [
        (1, 1, "TAG1", "2025-03-01T08:00:00.000Z", 100, None, 900, "2025-03-01T09:00:00.000Z",
         "2025-03-01T09:00:00.000Z", "Local", 900, "TAG1"),
        (2, 2, "TAG2", "2025-03-01T09:30:00.000Z", 0, None, 250, "2025-03-01T09:59:00.000Z", None, None, None, None),
    ],
    "tx_queue": [
        (5, "u5", 1, "StopTransaction", '{"meterStop":900}', 0, 2),
        (6, "u6", 2, "StartTransaction", '{"connectorId":2}', 0, 0),
        (7, "u7", 2, "MeterValues", '{"connectorId":2}', 1, 0),
    ],
    "transaction_ids": [(1, 41)],
    "auth_cache": [("Tag1", "Accepted", "2026-01-01T00:00:00.000Z", "GROUP", "2025-03-01T08:00:00.000Z")],
}


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "var" / "station.db"


@pytest.fixture
def conn(db_path):
    connection = store.open_database(db_path)
    yield connection
    connection.close()


def tables(connection) -> set[str]:
    return {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")} - {"sqlite_sequence"}


def user_version(connection) -> int:
    return connection.execute("PRAGMA user_version").fetchone()[0]


def versions(connection) -> dict[str, int]:
    return dict(connection.execute("SELECT feature, version FROM schema_versions"))


def columns(connection, table: str) -> list[tuple]:
    """(name, type, notnull, default, pk) of each column, in order."""
    return [tuple(r[1:]) for r in connection.execute(f"PRAGMA table_info({table})")]


def all_rows(connection, table: str) -> list[tuple]:
    return connection.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def make_old_database(path: Path, user_version: int) -> None:
    """The database the firmware before per-feature migrations left, with a row in every table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old = sqlite3.connect(str(path), isolation_level=None)
    old.execute("PRAGMA journal_mode=WAL")
    old.executescript(OLD_MIGRATION_1)
    if user_version >= 2:
        old.executescript(OLD_MIGRATION_2)
    old.execute(f"PRAGMA user_version={user_version}")
    for table, values in OLD_ROWS.items():
        if table == "auth_cache" and user_version < 2:
            continue
        for row in values:
            old.execute(f"INSERT INTO {table} VALUES({', '.join('?' * len(row))})", row)
    old.close()


KNOWN = {name: len(migrations) for name, migrations in store.feature_migrations().items()}


# --- opening and migrating --------------------------------------------------------------------


def test_opening_a_new_database_creates_its_folder_and_every_table(db_path, conn):
    assert db_path.is_file()
    assert tables(conn) == TABLES


def test_every_feature_in_the_schema_list_owns_migrations_and_a_new_database_has_them_all(conn):
    assert list(KNOWN) == list(schema.features())
    assert all(count >= 1 for count in KNOWN.values())
    assert versions(conn) == KNOWN
    assert user_version(conn) == store.PER_FEATURE  # firmware that numbered the whole schema (1, 2) refuses it


def test_transactions_have_no_transaction_id_column(conn):
    # The CSMS's transactionId is kept by the queue, in transaction_ids; transactions never had it written.
    assert "transaction_id" not in [c[0] for c in columns(conn, "transactions")]
    assert columns(conn, "transaction_ids")[1][0] == "transaction_id"


@pytest.mark.parametrize("drop_column", [True, False], ids=["drop-column", "table-rebuild"])
def test_a_version_2_database_of_the_old_firmware_keeps_every_row_and_loses_transaction_id(db_path, tmp_path,
                                                                                           monkeypatch, drop_column):
    fresh = store.open_database(tmp_path / "fresh.db")
    make_old_database(db_path, 2)
    monkeypatch.setattr(sessions_migrations, "HAS_DROP_COLUMN", drop_column)  # SQLite < 3.35 has no DROP COLUMN
    conn = store.open_database(db_path)
    try:
        assert tables(conn) == TABLES
        assert versions(conn) == KNOWN
        assert user_version(conn) == store.PER_FEATURE
        for table, old_rows in OLD_ROWS.items():
            expected = [row[:5] + row[6:] for row in old_rows] if table == "transactions" else old_rows
            assert all_rows(conn, table) == expected, table
            assert columns(conn, table) == columns(fresh, table), table  # as if made by this firmware
        # AUTOINCREMENT counters go on: no local id or queue seq is ever reused.
        assert conn.execute("INSERT INTO transactions(connector, id_tag, started_at, meter_start_wh)"
                            " VALUES(1, 'T', 'now', 0)").lastrowid == 3
        assert conn.execute("INSERT INTO tx_queue(unique_id, local_id, action, payload)"
                            " VALUES('u', 3, 'StartTransaction', '{}')").lastrowid == 8
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()
        fresh.close()


def test_a_version_1_database_of_the_old_firmware_gets_the_authorization_cache_and_keeps_its_data(db_path):
    make_old_database(db_path, 1)
    conn = store.open_database(db_path)
    try:
        assert tables(conn) == TABLES
        assert versions(conn) == KNOWN
        assert store.get_meta(conn, "boot_count") == "7"
        assert all_rows(conn, "tx_queue") == OLD_ROWS["tx_queue"]
        assert all_rows(conn, "auth_cache") == []
    finally:
        conn.close()


def test_an_upgraded_database_opens_again_without_migrating_again(db_path):
    make_old_database(db_path, 2)
    store.open_database(db_path).close()
    conn = store.open_database(db_path)
    try:
        assert versions(conn) == KNOWN
        assert len(all_rows(conn, "transactions")) == 2
    finally:
        conn.close()


class FakeFeature:
    """A feature's migrations module whose migrations count their runs."""

    def __init__(self, *sql: str):
        self.runs: list[int] = []
        self.MIGRATIONS = tuple(self._migration(number, text) for number, text in enumerate(sql, 1))

    def _migration(self, number: int, text: str):
        def migrate(conn):
            self.runs.append(number)
            conn.execute(text)
        return migrate


@pytest.fixture
def add_feature(monkeypatch):
    """Put a feature at the end of the schema list, its migrations module given."""
    def add(name: str, module) -> None:
        monkeypatch.setitem(sys.modules, f"actors.{name}.migrations", module)
        known = schema.features()
        monkeypatch.setattr(schema, "features", lambda: (*known, name))
    return add


def test_each_migration_of_a_feature_runs_once(db_path, monkeypatch, add_feature):
    feature = FakeFeature("CREATE TABLE wishes (id INTEGER PRIMARY KEY)")
    add_feature("wishlist", feature)
    for _ in range(3):
        store.open_database(db_path).close()
    assert feature.runs == [1]
    # The next firmware adds a migration: only that one runs, on the data already there.
    conn = store.open_database(db_path)
    conn.execute("INSERT INTO wishes(id) VALUES(9)")
    conn.close()
    newer = FakeFeature("CREATE TABLE wishes (id INTEGER PRIMARY KEY)",
                        "ALTER TABLE wishes ADD COLUMN expiry TEXT")
    monkeypatch.setitem(sys.modules, "actors.wishlist.migrations", newer)
    for _ in range(2):
        store.open_database(db_path).close()
    assert newer.runs == [2]
    conn = store.open_database(db_path)
    try:
        assert versions(conn)["wishlist"] == 2
        assert all_rows(conn, "wishes") == [(9, None)]
    finally:
        conn.close()


def test_a_failing_migration_leaves_the_database_as_it_was(db_path, add_feature):
    make_old_database(db_path, 2)
    add_feature("broken", FakeFeature("CREATE TABLE fine (x)", "CREATE TABLE fine (x)"))  # the 2nd fails
    with pytest.raises(StorageError) as info:
        store.open_database(db_path)
    assert str(db_path) in str(info.value)
    old = sqlite3.connect(str(db_path))
    try:  # nothing happened: not the per-feature versions, not the dropped column, not the first table
        assert old.execute("PRAGMA user_version").fetchone()[0] == 2
        assert "schema_versions" not in tables(old) and "fine" not in tables(old)
        assert "transaction_id" in [c[0] for c in columns(old, "transactions")]
    finally:
        old.close()


def test_reopening_an_existing_database_is_idempotent_and_keeps_the_data(db_path, conn):
    store.set_meta(conn, "boot_count", "3")
    conn.close()
    again = store.open_database(db_path)
    try:
        assert tables(again) == TABLES
        assert versions(again) == KNOWN
        assert store.get_meta(again, "boot_count") == "3"
    finally:
        again.close()


@pytest.mark.parametrize("feature", list(schema.features()))
def test_a_feature_schema_newer_than_the_firmware_is_refused_naming_the_feature_and_the_path(db_path, conn,
                                                                                             feature):
    conn.execute("UPDATE schema_versions SET version=version+1 WHERE feature=?", (feature,))
    conn.close()
    with pytest.raises(StorageError) as info:
        store.open_database(db_path)
    message = str(info.value)
    assert str(db_path) in message and feature in message and "newer" in message


def test_a_feature_this_firmware_does_not_know_is_refused_naming_it(db_path, conn):
    conn.execute("INSERT INTO schema_versions(feature, version) VALUES('reservation', 1)")
    conn.close()
    with pytest.raises(StorageError) as info:
        store.open_database(db_path)
    assert "reservation" in str(info.value) and "newer" in str(info.value)


def test_a_database_numbered_beyond_per_feature_versions_is_refused(db_path, conn):
    conn.execute(f"PRAGMA user_version={store.PER_FEATURE + 1}")
    conn.close()
    with pytest.raises(StorageError) as info:
        store.open_database(db_path)
    assert str(db_path) in str(info.value) and "newer" in str(info.value)


def test_a_file_that_is_not_a_database_is_refused_naming_the_path(tmp_path):
    path = tmp_path / "station.db"
    path.write_bytes(b"this is a text file, not SQLite\n" * 200)
    with pytest.raises(StorageError) as info:
        store.open_database(path)
    assert str(path) in str(info.value)
    assert path.read_bytes().startswith(b"this is a text file")  # not overwritten


def test_a_database_path_inside_a_file_is_a_storage_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError):
        store.open_database(tmp_path / "file" / "station.db")


def test_wal_journal_and_full_synchronous_are_really_set(conn):
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_the_connection_is_in_autocommit_mode(conn):
    store.set_meta(conn, "k", "v")
    assert not conn.in_transaction


# --- Transaction ------------------------------------------------------------------------------


def test_a_transaction_commits_when_the_block_succeeds(db_path, conn):
    with Transaction(conn):
        store.set_meta(conn, "a", "1")
    other = store.open_database(db_path)
    try:
        assert store.get_meta(other, "a") == "1"
    finally:
        other.close()


def test_a_transaction_rolls_back_everything_when_the_block_raises(conn):
    with pytest.raises(ValueError):
        with Transaction(conn):
            store.set_meta(conn, "a", "1")
            store.set_meta(conn, "b", "2")
            raise ValueError("boom")
    assert store.get_meta(conn, "a") is None and store.get_meta(conn, "b") is None
    assert not conn.in_transaction


def test_the_connection_is_usable_after_a_rollback(conn):
    with pytest.raises(RuntimeError):
        with Transaction(conn):
            store.set_meta(conn, "a", "1")
            raise RuntimeError
    with Transaction(conn):
        store.set_meta(conn, "a", "2")
    assert store.get_meta(conn, "a") == "2"


def test_the_original_error_survives_when_sqlite_already_rolled_back(conn):
    with pytest.raises(ValueError, match="original"):
        with Transaction(conn):
            store.set_meta(conn, "a", "1")
            conn.execute("ROLLBACK")  # as SQLite does by itself on some errors (e.g. disk full)
            raise ValueError("original")


def test_a_failed_commit_raises_and_leaves_no_transaction_open(conn):
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE child (pid INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(sqlite3.IntegrityError):
        with Transaction(conn):
            store.set_meta(conn, "lost", "1")
            conn.execute("INSERT INTO child VALUES (42)")  # fails only at COMMIT
    assert not conn.in_transaction
    assert store.get_meta(conn, "lost") is None
    with Transaction(conn):
        store.set_meta(conn, "next", "1")
    assert store.get_meta(conn, "next") == "1"


# --- tables -----------------------------------------------------------------------------------


def test_meta_values_are_replaced_not_duplicated(conn):
    store.set_meta(conn, "last_time", "2024-01-01T00:00:00Z")
    store.set_meta(conn, "last_time", "2024-06-01T00:00:00Z")
    assert store.get_meta(conn, "last_time") == "2024-06-01T00:00:00Z"
    assert store.get_meta(conn, "missing", "default") == "default"


def test_rows_returns_dicts_by_column_name(conn):
    store.set_meta(conn, "k", "v")
    assert store.rows(conn, "SELECT key, value FROM meta WHERE key=?", ("k",)) == [{"key": "k", "value": "v"}]


# --- durability -------------------------------------------------------------------------------


def test_a_committed_row_survives_sigkill_of_the_writer(db_path):
    child = textwrap.dedent(f"""
        import os, signal
        from actors.infra import store
        from actors.txqueue.book import enqueue
        conn = store.open_database({str(db_path)!r})
        with store.Transaction(conn):
            enqueue(conn, "kill-1", 7, "StopTransaction", {{"transactionId": 9}})
            store.set_meta(conn, "written", "yes")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, timeout=30)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    conn = store.open_database(db_path)
    try:
        assert store.get_meta(conn, "written") == "yes"
        assert store.rows(conn, "SELECT unique_id, local_id FROM tx_queue") == [{"unique_id": "kill-1", "local_id": 7}]
    finally:
        conn.close()


def test_an_uncommitted_row_is_gone_after_sigkill_of_the_writer(db_path):
    child = textwrap.dedent(f"""
        import os, signal
        from actors.infra import store
        conn = store.open_database({str(db_path)!r})
        with store.Transaction(conn):
            store.set_meta(conn, "committed", "yes")
        conn.execute("BEGIN IMMEDIATE")
        store.set_meta(conn, "half", "written")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, timeout=30)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    conn = store.open_database(db_path)
    try:
        assert store.get_meta(conn, "committed") == "yes"
        assert store.get_meta(conn, "half") is None
    finally:
        conn.close()
