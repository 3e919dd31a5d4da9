"""actors.smart_charging.book: the charging profiles' SQL (OCPP 1.6 §3.13, §5.5, §5.16; errata 3.37).

The feature is not in actors/features.py yet, so the table is made here from its migration."""

from __future__ import annotations

import pytest

from actors.infra import store
from actors.smart_charging.book import ChargingProfileBook
from actors.smart_charging.migrations import MIGRATIONS

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def path(tmp_path):
    conn = store.open_database(tmp_path / "station.db")
    for migration in MIGRATIONS:
        conn.executescript(migration)
    conn.close()
    return tmp_path / "station.db"


@pytest.fixture
def book(path):
    conn = store.open_database(path)
    yield ChargingProfileBook(conn)
    conn.close()


def profile(profile_id, stack_level=0, purpose="TxDefaultProfile", limit=16, **extra) -> dict:
    return {"chargingProfileId": profile_id, "stackLevel": stack_level, "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]},
            **extra}


def installed(book) -> list[tuple[int, int, float]]:
    return [(p.connector, p.profile_id, p.profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"])
            for p in book.all()]


def test_profiles_are_kept_as_sent_in_installation_order(book):
    assert book.install(1, profile(5, limit=10), capacity=10)
    assert book.install(0, profile(3, purpose="ChargePointMaxProfile", limit=32), capacity=10)
    assert installed(book) == [(1, 5, 10), (0, 3, 32)]
    assert book.all()[0].profile == profile(5, limit=10)


def test_the_same_id_replaces_wherever_it_was(book):
    book.install(1, profile(5, stack_level=0, limit=10), capacity=10)
    book.install(2, profile(5, stack_level=3, limit=12), capacity=10)
    assert installed(book) == [(2, 5, 12)]


def test_the_same_stack_level_and_purpose_replaces_on_the_same_connector_only(book):
    book.install(1, profile(1, stack_level=2, limit=10), capacity=10)
    book.install(0, profile(2, stack_level=2, limit=11), capacity=10)  # connector 0: stands beside it
    book.install(1, profile(3, stack_level=2, purpose="TxProfile", limit=12, transactionId=7), capacity=10)
    assert [p for _, p, _ in installed(book)] == [1, 2, 3]
    book.install(1, profile(4, stack_level=2, limit=13), capacity=10)  # replaces 1, not 2 or 3
    assert installed(book) == [(0, 2, 11), (1, 3, 12), (1, 4, 13)]


def test_capacity_counts_what_a_profile_replaces_and_refuses_without_changing_anything(book):
    book.install(1, profile(1, stack_level=0), capacity=2)
    book.install(1, profile(2, stack_level=1), capacity=2)
    assert not book.install(1, profile(3, stack_level=2), capacity=2)
    assert book.install(1, profile(3, stack_level=1, limit=20), capacity=2)  # replaces 2: still 2
    assert installed(book) == [(1, 1, 16), (1, 3, 20)]


def test_clear_by_id_ignores_the_other_criteria_and_by_criteria_matches_them_all(book):
    book.install(0, profile(1, stack_level=0), capacity=10)
    book.install(1, profile(2, stack_level=1), capacity=10)
    book.install(1, profile(3, stack_level=2), capacity=10)
    book.install(0, profile(4, purpose="ChargePointMaxProfile"), capacity=10)
    assert book.clear(profile_id=9) == []  # nothing: the answer is Unknown
    assert book.clear(profile_id=2, connector=0) == [2]
    assert book.clear(connector=1, stack_level=1) == []
    assert book.clear(purpose="TxDefaultProfile") == [1, 3]
    assert book.clear() == [4]
    assert book.count() == 0


def test_a_tx_profile_ends_with_its_transaction(book):
    book.install(1, profile(1, purpose="TxProfile", transactionId=7), capacity=10)
    book.install(1, profile(2, stack_level=1, purpose="TxProfile", transactionId=8), capacity=10)
    book.install(1, profile(3), capacity=10)
    assert book.end_transaction(7) == [1]
    assert [p for _, p, _ in installed(book)] == [2, 3]


def test_profiles_persist_and_a_replaced_one_never_comes_back(path):
    conn = store.open_database(path)
    book = ChargingProfileBook(conn)
    book.install(1, profile(1, stack_level=0, limit=10), capacity=10)
    book.install(1, profile(2, stack_level=0, limit=6), capacity=10)
    conn.close()
    conn = store.open_database(path)
    try:
        assert installed(ChargingProfileBook(conn)) == [(1, 2, 6)]
    finally:
        conn.close()
