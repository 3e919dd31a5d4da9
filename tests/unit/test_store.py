"""actors.infra.store: the station database (SQLite, WAL, synchronous=FULL), its migrations and durability."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from actors.infra import store
from actors.infra.store import StorageError, Transaction

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
TABLES = {"meta", "configuration", "connectors", "transactions", "tx_queue", "transaction_ids", "auth_cache"}


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


# --- opening and migrating --------------------------------------------------------------------


def test_opening_a_new_database_creates_its_folder_and_every_table(db_path, conn):
    assert db_path.is_file()
    assert tables(conn) == TABLES


def test_migrations_set_user_version_to_their_count(conn):
    assert len(store.MIGRATIONS) == 2
    assert user_version(conn) == len(store.MIGRATIONS) == 2


def test_a_version_1_database_is_migrated_to_2_keeping_its_data(db_path):
    db_path.parent.mkdir(parents=True)
    old = sqlite3.connect(str(db_path), isolation_level=None)  # what firmware with migration 1 only left
    old.executescript(store.MIGRATIONS[0])
    old.execute("PRAGMA user_version=1")
    old.execute("INSERT INTO meta(key, value) VALUES('boot_count', '7')")
    old.execute("INSERT INTO tx_queue(unique_id, local_id, action, payload) VALUES('u1', 1, 'StopTransaction', '{}')")
    old.close()
    conn = store.open_database(db_path)
    try:
        assert user_version(conn) == 2
        assert tables(conn) == TABLES
        assert store.get_meta(conn, "boot_count") == "7"
        assert store.queue_length(conn) == 1
        assert store.rows(conn, "SELECT * FROM auth_cache") == []
    finally:
        conn.close()


def test_the_auth_cache_is_keyed_case_insensitively(conn):
    conn.execute("INSERT INTO auth_cache(id_tag, status, updated_at) VALUES('Tag1', 'Accepted', 'now')")
    assert store.rows(conn, "SELECT id_tag, status FROM auth_cache WHERE id_tag='TAG1'") == \
        [{"id_tag": "Tag1", "status": "Accepted"}]
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO auth_cache(id_tag, status, updated_at) VALUES('tag1', 'Blocked', 'now')")


def test_reopening_an_existing_database_is_idempotent_and_keeps_the_data(db_path, conn):
    store.set_meta(conn, "boot_count", "3")
    conn.close()
    again = store.open_database(db_path)
    try:
        assert tables(again) == TABLES
        assert user_version(again) == len(store.MIGRATIONS)
        assert store.get_meta(again, "boot_count") == "3"
    finally:
        again.close()


def test_a_database_from_newer_firmware_is_refused_naming_the_path(db_path, conn):
    conn.execute(f"PRAGMA user_version={len(store.MIGRATIONS) + 1}")
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
            store.enqueue(conn, "u1", 1, "StartTransaction", {"connectorId": 1})
            raise ValueError("boom")
    assert store.get_meta(conn, "a") is None
    assert store.queue_length(conn) == 0
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


def test_configuration_values_round_trip_with_their_types(db_path, conn):
    store.save_configuration(conn, "HeartbeatInterval", 120)
    store.save_configuration(conn, "LocalPreAuthorize", True)
    store.save_configuration(conn, "MeterValuesSampledData", "Voltage,Current.Import")
    store.save_configuration(conn, "HeartbeatInterval", 60)
    conn.close()
    again = store.open_database(db_path)
    try:
        loaded = store.load_configuration(again)
    finally:
        again.close()
    assert loaded == {"HeartbeatInterval": 60, "LocalPreAuthorize": True,
                      "MeterValuesSampledData": "Voltage,Current.Import"}
    assert type(loaded["HeartbeatInterval"]) is int and type(loaded["LocalPreAuthorize"]) is bool


def test_enqueue_appends_in_order_and_queue_length_counts(conn):
    assert store.queue_length(conn) == 0
    with Transaction(conn):
        first = store.enqueue(conn, "u1", 1, "StartTransaction", {"connectorId": 1, "idTag": "ABC"})
        second = store.enqueue(conn, "u2", 1, "MeterValues", {"connectorId": 1}, periodic=True)
    assert second > first
    assert store.queue_length(conn) == 2
    queued = store.rows(conn, "SELECT unique_id, action, payload, periodic, attempts FROM tx_queue ORDER BY seq")
    assert queued == [
        {"unique_id": "u1", "action": "StartTransaction", "payload": '{"connectorId":1,"idTag":"ABC"}',
         "periodic": 0, "attempts": 0},
        {"unique_id": "u2", "action": "MeterValues", "payload": '{"connectorId":1}', "periodic": 1, "attempts": 0},
    ]


def test_rows_returns_dicts_by_column_name(conn):
    store.set_meta(conn, "k", "v")
    assert store.rows(conn, "SELECT key, value FROM meta WHERE key=?", ("k",)) == [{"key": "k", "value": "v"}]


# --- durability -------------------------------------------------------------------------------


def test_a_committed_row_survives_sigkill_of_the_writer(db_path):
    child = textwrap.dedent(f"""
        import os, signal
        from actors.infra import store
        conn = store.open_database({str(db_path)!r})
        with store.Transaction(conn):
            store.enqueue(conn, "kill-1", 7, "StopTransaction", {{"transactionId": 9}})
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
