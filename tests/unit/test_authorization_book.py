"""actors.authorization.book: the authorization cache's SQL (OCPP 1.6 §3.4.1)."""

from __future__ import annotations

import sqlite3

import pytest

from actors.authorization.book import AuthorizationCacheBook
from actors.infra import store

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def conn(tmp_path):
    connection = store.open_database(tmp_path / "station.db")
    yield connection
    connection.close()


def test_an_unknown_id_tag_is_none(conn):
    assert AuthorizationCacheBook(conn).get("TAG1") is None


def test_remembered_info_is_replaced_and_found_case_insensitively(conn):
    book = AuthorizationCacheBook(conn)
    book.remember("Tag1", {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00.000Z", "parentIdTag": "G"},
                  "2025-01-01T00:00:00.000Z")
    assert book.get("TAG1") == ("Accepted", "2030-01-01T00:00:00.000Z", "G")
    book.remember("TAG1", {"status": "Blocked"}, "2025-01-02T00:00:00.000Z")  # IdToken is a CiString20
    assert book.get("tag1") == ("Blocked", None, None)
    assert len(store.rows(conn, "SELECT * FROM auth_cache")) == 1


def test_the_cache_key_is_case_insensitive_in_the_table_itself(conn):
    conn.execute("INSERT INTO auth_cache(id_tag, status, updated_at) VALUES('Tag1', 'Accepted', 'now')")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("INSERT INTO auth_cache(id_tag, status, updated_at) VALUES('tag1', 'Blocked', 'now')")


def test_clear_empties_the_cache(conn):
    book = AuthorizationCacheBook(conn)
    book.remember("TAG1", {"status": "Accepted"}, "now")
    book.remember("TAG2", {"status": "Invalid"}, "now")
    book.clear()
    assert book.get("TAG1") is None and store.rows(conn, "SELECT * FROM auth_cache") == []
