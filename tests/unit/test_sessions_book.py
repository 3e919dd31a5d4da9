"""TransactionBook (actors/sessions/book.py) on a real SQLite database: the StopTxn*Data values of a running
transaction, kept for its StopTransaction across a crash (migration 3 of actors/sessions/migrations.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from actors.infra import store
from actors.metering.book import queue_meter_values
from actors.sessions.book import TransactionBook, keep_transaction_data
from actors.txqueue.book import enqueue

pytestmark = pytest.mark.timeout(20)

START = datetime(2025, 2, 3, 4, 5, 6, tzinfo=timezone.utc)


@pytest.fixture
def db(tmp_path):
    conn = store.open_database(tmp_path / "station.db")
    yield conn
    conn.close()


def sample(i: int) -> dict:
    return {"timestamp": f"2025-02-03T04:05:{i:02d}.000Z",
            "sampledValue": [{"value": str(100 + i), "context": "Sample.Periodic"}]}


def commits(db, action) -> int:
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        action()
    finally:
        db.set_trace_callback(None)
    return sum(1 for s in statements if s.strip().upper() == "COMMIT")


def test_a_sample_and_its_transaction_data_value_are_one_commit_and_are_found_after_a_crash(db):
    """The MeterValues the CSMS may already have seen and the StopTxn*Data value of the same instant are
    committed together: a crash between them could leave the PowerLoss stop without a sample the CSMS has."""
    book = TransactionBook(db)
    book.begin(1, 1, "TAG1", 100, START)
    for i in range(3):
        payload = {"connectorId": 1, "meterValue": [sample(i)]} if i != 1 else None  # stop data only
        assert commits(db, lambda: queue_meter_values(db, 1, payload, sample(i))) == 1
    [tx] = TransactionBook(db).interrupted()
    assert tx.transaction_data == (sample(0), sample(1), sample(2))
    assert len(tx.meter_values) == 2


def test_a_sample_of_a_stopped_transaction_keeps_nothing(db):
    book = TransactionBook(db)
    book.begin(1, 1, "TAG1", 100, START)
    book.stop(1, None, 150, START, "Local", [])
    assert queue_meter_values(db, 1, {"connectorId": 1, "meterValue": [sample(1)]}, sample(1)) is False
    assert db.execute("SELECT COUNT(*) FROM transaction_data").fetchone() == (0,)
    assert db.execute("SELECT COUNT(*) FROM tx_queue WHERE action='MeterValues'").fetchone() == (0,)


def test_past_keep_values_every_other_one_goes_as_in_the_core(db):
    book = TransactionBook(db)
    book.begin(1, 1, "TAG1", 100, START)
    kept = []
    for i in range(9):
        with store.Transaction(db):
            keep_transaction_data(db, 1, sample(i), keep=4)
        kept.append(sample(i))
        if len(kept) > 4:
            del kept[1::2]  # what transactions.transaction_data_sampled does with its copy
    [tx] = book.interrupted()
    assert list(tx.transaction_data) == kept


def test_the_values_go_with_the_stop_and_belong_to_their_transaction(db):
    book = TransactionBook(db)
    book.begin(1, 1, "TAG1", 100, START)
    book.begin(2, 2, "TAG2", 100, START)
    queue_meter_values(db, 1, None, sample(1))
    queue_meter_values(db, 2, None, sample(2))
    book.stop(1, None, 150, START, "Local", [sample(1)])
    assert db.execute("SELECT local_id FROM transaction_data").fetchall() == [(2,)]
    assert [(tx.local_id, tx.transaction_data) for tx in book.interrupted()] == [(2, (sample(2),))]


def test_an_interrupted_transaction_comes_with_the_meter_values_still_queued_for_it(db):
    book = TransactionBook(db)
    book.begin(1, 1, "TAG1", 100, START)
    with store.Transaction(db):
        enqueue(db, "m1", 1, "MeterValues", {"connectorId": 1, "meterValue": [sample(5)]}, periodic=True)
        enqueue(db, "m2", 2, "MeterValues", {"connectorId": 2, "meterValue": [sample(6)]}, periodic=True)
    [tx] = book.interrupted()
    assert tx.meter_values == (sample(5),)  # not the other transaction's, nor its StartTransaction
    assert (tx.last_meter_wh, tx.last_meter_at) == (100, START)
