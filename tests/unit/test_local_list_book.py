"""actors.authorization.local_list: the Local Authorization List's SQL (OCPP 1.6 §3.5.2, §5.10, §5.15)."""

from __future__ import annotations

import sqlite3
import time

import pytest

from actors.authorization.local_list import LocalListBook
from actors.infra import store

pytestmark = pytest.mark.timeout(60)

A = {"status": "Accepted"}


@pytest.fixture
def conn(tmp_path):
    connection = store.open_database(tmp_path / "station.db")
    yield connection
    connection.close()


@pytest.fixture
def book(conn):
    return LocalListBook(conn)


def rows(conn) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in conn.execute("SELECT * FROM local_list ORDER BY id_tag")}


def test_a_new_list_is_empty_with_version_0(book):
    assert book.version() == 0 and book.count() == 0 and book.get("TAG1") is None


def test_a_full_update_replaces_the_whole_list_and_sets_its_version(conn, book):
    assert book.replace(3, [("OLD1", A), ("OLD2", A)], 100)
    assert book.replace(4, [("NEW1", {"status": "Blocked", "expiryDate": "2030-01-01T00:00:00.000Z",
                                      "parentIdTag": "GROUP"})], 100)
    assert rows(conn) == {"NEW1": ("Blocked", "2030-01-01T00:00:00.000Z", "GROUP")}
    assert book.version() == 4


def test_an_empty_list_reports_version_0_whatever_version_was_sent(book):
    # OCPP 1.6 §5.10 and OCTT TC_042_2: 0 means the list is empty.
    assert book.replace(1, [], 100)
    assert book.version() == 0
    assert book.replace(7, [("T", A)], 100) and book.version() == 7
    assert book.apply(8, [("T", None)], 100)  # removing the last entry empties it too
    assert book.version() == 0


def test_a_differential_update_adds_updates_and_removes_in_the_order_sent(conn, book):
    book.replace(1, [("KEEP", A), ("CHANGE", A), ("GONE", A)], 100)
    assert book.apply(2, [("CHANGE", {"status": "Blocked"}), ("GONE", None), ("NEW", A), ("NEW", None),
                          ("NEW", {"status": "Expired"}), ("ABSENT", None)], 100)
    assert rows(conn) == {"CHANGE": ("Blocked", None, None), "KEEP": ("Accepted", None, None),
                          "NEW": ("Expired", None, None)}
    assert book.version() == 2


def test_id_tags_are_case_insensitive(book):
    # IdToken is a CiString20.
    book.replace(1, [("Tag1", A), ("TAG1", {"status": "Invalid"})], 100)
    assert book.count() == 1 and book.get("tag1") == ("Invalid", None, None)


def test_an_update_over_the_capacity_changes_nothing(conn, book):
    book.replace(5, [("A", A), ("B", A)], 3)
    assert not book.replace(6, [(f"T{i}", A) for i in range(4)], 3)
    assert not book.apply(6, [("C", A), ("D", A)], 3)
    assert rows(conn).keys() == {"A", "B"} and book.version() == 5
    assert book.apply(6, [("A", None), ("C", A), ("D", A)], 3)  # one out, two in: three fits
    assert rows(conn).keys() == {"B", "C", "D"}


def test_a_storage_error_raises_and_leaves_the_old_list(tmp_path, conn, book):
    book.replace(1, [("OLD", A)], 100)
    blocker = sqlite3.connect(str(tmp_path / "station.db"), isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the database
    conn.execute("PRAGMA busy_timeout=50")
    try:
        with pytest.raises(sqlite3.OperationalError):
            book.replace(2, [("NEW", A)], 100)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert rows(conn) == {"OLD": ("Accepted", None, None)} and book.version() == 1
    assert book.replace(2, [("NEW", A)], 100)  # the connection is usable again


def test_the_list_survives_reopening_the_database(tmp_path, conn, book):
    book.replace(9, [("T1", {"status": "Accepted", "parentIdTag": "P"})], 100)
    conn.close()
    again = store.open_database(tmp_path / "station.db")
    try:
        assert LocalListBook(again).get("T1") == ("Accepted", None, "P") and LocalListBook(again).version() == 9
    finally:
        again.close()


def test_a_look_up_is_an_index_search_not_a_scan(conn):
    plan = " ".join(r[3] for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT status, expiry_date, parent_id_tag FROM local_list WHERE id_tag=?", ("X",)))
    assert "SEARCH" in plan and "PRIMARY KEY" in plan, plan


def test_50000_entries_are_stored_in_one_update_and_a_look_up_stays_fast(book):
    entries = [(f"TAG{i:05d}", {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00.000Z",
                                "parentIdTag": f"P{i % 100}"}) for i in range(50_000)]
    assert book.replace(1, entries, 50_000)
    assert book.count() == 50_000 and book.version() == 1
    t0 = time.perf_counter()
    for i in range(0, 50_000, 50):
        assert book.get(f"tag{i:05d}") is not None
    per_lookup = (time.perf_counter() - t0) / 1000
    assert per_lookup < 0.002, f"{per_lookup * 1e6:.0f} µs per look-up"
