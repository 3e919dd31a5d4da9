"""actors.txqueue.book: the transaction message queue's SQL (enqueue for producers, TransactionQueueBook for the queue)."""

from __future__ import annotations

import sqlite3

import pytest

from actors.infra import store
from actors.infra.store import Transaction
from actors.txqueue.book import TransactionQueueBook, enqueue

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def conn(tmp_path):
    connection = store.open_database(tmp_path / "station.db")
    yield connection
    connection.close()


@pytest.fixture
def book(conn):
    return TransactionQueueBook(conn)


def produce(conn, *messages) -> list[int]:
    """(unique_id, local_id, action, payload[, periodic]) rows in one producer transaction; their seqs."""
    with Transaction(conn):
        return [enqueue(conn, unique_id, local_id, action, payload, *periodic)
                for unique_id, local_id, action, payload, *periodic in messages]


class Statements:
    """Every SQL statement the connection runs (sqlite3's trace callback)."""

    def __init__(self, conn: sqlite3.Connection):
        self.seen: list[str] = []
        conn.set_trace_callback(self.seen.append)

    def commits(self) -> int:
        return sum(s.strip().upper() == "COMMIT" for s in self.seen)

    def writes(self) -> list[str]:
        return [s for s in self.seen if s.split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


# --- producers ------------------------------------------------------------------------------


def test_enqueue_appends_in_order_with_compact_json(conn, book):
    assert book.length() == 0
    first, second = produce(conn, ("u1", 1, "StartTransaction", {"connectorId": 1, "idTag": "ABC"}),
                            ("u2", 1, "MeterValues", {"connectorId": 1}, True))
    assert second > first
    assert book.length() == 2
    assert store.rows(conn, "SELECT unique_id, action, payload, periodic, attempts FROM tx_queue ORDER BY seq") == [
        {"unique_id": "u1", "action": "StartTransaction", "payload": '{"connectorId":1,"idTag":"ABC"}',
         "periodic": 0, "attempts": 0},
        {"unique_id": "u2", "action": "MeterValues", "payload": '{"connectorId":1}', "periodic": 1, "attempts": 0},
    ]


def test_enqueue_commits_with_the_producers_own_write_or_not_at_all(conn, book):
    with pytest.raises(RuntimeError):
        with Transaction(conn):
            store.set_meta(conn, "producer_state", "x")  # the state the message describes
            enqueue(conn, "u1", 1, "StopTransaction", {"meterStop": 1})
            raise RuntimeError
    assert book.length() == 0 and store.get_meta(conn, "producer_state") is None
    statements = Statements(conn)
    produce(conn, ("u1", 1, "StartTransaction", {}), ("u2", 1, "MeterValues", {}, True))
    assert statements.commits() == 1  # enqueue itself never commits


# --- the queue's side -------------------------------------------------------------------------


def test_the_head_is_the_oldest_message_with_its_payload_parsed(conn, book):
    assert book.head() is None
    seq, _ = produce(conn, ("u1", 7, "StartTransaction", {"connectorId": 1}), ("u2", 7, "StopTransaction", {}))
    assert book.head() == (seq, "u1", 7, "StartTransaction", {"connectorId": 1})


def test_a_message_is_found_by_seq_until_it_is_settled(conn, book):
    [seq] = produce(conn, ("u1", 7, "StopTransaction", {"idTag": "TAG"}))
    assert book.message(seq) == (7, {"idTag": "TAG"})
    book.settle(seq, 7)
    assert book.message(seq) is None and book.length() == 0


def test_settling_a_start_transaction_records_its_id_and_deletes_it_in_one_commit(conn, book):
    start, stop = produce(conn, ("u1", 7, "StartTransaction", {}), ("u2", 7, "StopTransaction", {}))
    assert book.transaction_id(7) is None
    statements = Statements(conn)
    book.settle(start, 7, 42)
    assert statements.commits() == 1
    assert book.transaction_id(7) == 42
    assert book.head()[0] == stop


def test_a_dropped_start_transaction_is_recorded_as_minus_one(conn, book):
    [start] = produce(conn, ("u1", 7, "StartTransaction", {}))
    book.settle(start, 7, -1)
    assert book.transaction_id(7) == -1


def test_settling_writes_both_or_neither(conn, book):
    [seq] = produce(conn, ("u1", 7, "StartTransaction", {}))
    conn.execute("CREATE TEMP TRIGGER refuse BEFORE DELETE ON tx_queue BEGIN SELECT RAISE(ABORT, 'no'); END")
    with pytest.raises(sqlite3.IntegrityError):
        book.settle(seq, 7, 42)
    assert book.transaction_id(7) is None and book.length() == 1 and not conn.in_transaction


def test_attempts_are_counted_durably_one_autocommitted_statement_each(conn, book):
    [seq] = produce(conn, ("u1", 7, "StopTransaction", {}))
    assert book.attempts(seq) == 0
    statements = Statements(conn)
    book.set_attempts(seq, 2)
    assert len(statements.writes()) == 1 and statements.commits() == 0 and not conn.in_transaction
    assert book.attempts(seq) == 2


def test_periodic_lists_periodic_meter_values_oldest_first_without_the_one_in_flight(conn, book):
    seqs = produce(conn, ("s", 1, "StartTransaction", {}), ("m1", 1, "MeterValues", {}, True),
                   ("m2", 1, "MeterValues", {}, False), ("m3", 1, "MeterValues", {}, True),
                   ("m4", 1, "MeterValues", {}, True))
    assert book.periodic(except_seq=None) == [seqs[1], seqs[3], seqs[4]]
    assert book.periodic(except_seq=seqs[1]) == [seqs[3], seqs[4]]


def test_discard_deletes_the_given_messages_in_one_commit(conn, book):
    seqs = produce(conn, *[(f"m{i}", 1, "MeterValues", {}, True) for i in range(4)])
    statements = Statements(conn)
    book.discard([seqs[1], seqs[3]])
    assert statements.commits() == 1
    assert [r["seq"] for r in store.rows(conn, "SELECT seq FROM tx_queue ORDER BY seq")] == [seqs[0], seqs[2]]
