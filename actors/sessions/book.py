"""TransactionBook: the durable record of transactions and the messages they owe the CSMS.

A plain class owned by the TransactionManager (one SQLite connection, its thread), which calls it
to carry out the session core's Record* effects. Each change is one SQLite transaction that writes
the record and queues its OCPP message together, so a crash can never leave a transaction without
its StartTransaction or StopTransaction. Local transaction ids are given by the core, counting on
from `last_local_id()`; they are never reused (the table is AUTOINCREMENT). Tables `connectors`,
`transactions`, `transaction_data` and `reservations` (created by `actors/sessions/migrations.py`) are written only
through this module (the MeterSampler keeps a StopTxn*Data value with `keep_transaction_data`, inside the
commit that queues the sample's MeterValues); it reads the queue's `tx_queue` (the MeterValues still owed for a transaction) when
it finds a transaction a crash interrupted.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime

from actors.infra import store
from actors.infra.clock import format_time, parse_time
from actors.sessions.connector import Reservation
from actors.txqueue.book import enqueue


MAX_TRANSACTION_DATA = 100  # StopTxn*Data values kept for one StopTransaction


def keep_transaction_data(db: sqlite3.Connection, local_id: int, meter_value: dict,
                          keep: int = MAX_TRANSACTION_DATA) -> None:
    """Keep one StopTxn*Data value of a running transaction, for its StopTransaction should the power go.
    Past `keep` values every other one goes (the first and the newest stay), as the session
    core does with its copy. Runs inside the caller's SQLite transaction."""
    db.execute("INSERT INTO transaction_data(local_id, meter_value) VALUES(?, ?)",
               (local_id, json.dumps(meter_value, separators=(",", ":"))))
    seqs = [s for (s,) in db.execute("SELECT seq FROM transaction_data WHERE local_id=? ORDER BY seq", (local_id,))]
    if len(seqs) > keep:
        db.executemany("DELETE FROM transaction_data WHERE seq=?", [(s,) for s in seqs[1::2]])


@dataclass(frozen=True)
class Interrupted:
    """A transaction found open at start-up: a crash or power cut ended it."""

    local_id: int
    connector: int
    id_tag: str
    meter_start_wh: int
    started_at: datetime
    last_meter_wh: int
    last_meter_at: datetime
    transaction_data: tuple = ()  # the StopTxn*Data values collected before the crash, oldest first
    meter_values: tuple = ()  # the MeterValue objects of its MeterValues still in the queue


class TransactionBook:
    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def latest_time(self) -> str | None:
        """The latest time written in any transaction record (the clock never starts before it)."""
        return max(filter(None, self._db.execute(
            "SELECT MAX(started_at), MAX(last_meter_at), MAX(stopped_at) FROM transactions").fetchone()),
            default=None, key=parse_time)

    def availability(self) -> dict[int, bool]:
        """connector (0 = station) -> operative, as last set by ChangeAvailability."""
        return {c: a == "Operative" for c, a in self._db.execute("SELECT connector, availability FROM connectors")}

    def set_availability(self, connector: int, operative: bool) -> None:
        with store.Transaction(self._db):
            self._db.execute("INSERT INTO connectors(connector, availability) VALUES(?, ?) ON CONFLICT(connector)"
                             " DO UPDATE SET availability=excluded.availability",
                             (connector, "Operative" if operative else "Inoperative"))

    def interrupted(self) -> list[Interrupted]:
        out = []
        for r in store.rows(self._db, "SELECT * FROM transactions WHERE stopped_at IS NULL ORDER BY local_id"):
            last_wh = r["last_meter_wh"] if r["last_meter_wh"] is not None else r["meter_start_wh"]
            data = tuple(json.loads(v) for (v,) in self._db.execute(
                "SELECT meter_value FROM transaction_data WHERE local_id=? ORDER BY seq", (r["local_id"],)))
            queued = tuple(mv for (payload,) in self._db.execute(
                "SELECT payload FROM tx_queue WHERE local_id=? AND action='MeterValues' ORDER BY seq",
                (r["local_id"],)) for mv in json.loads(payload).get("meterValue", ()))
            out.append(Interrupted(r["local_id"], r["connector"], r["id_tag"], r["meter_start_wh"],
                                   parse_time(r["started_at"]), last_wh,
                                   parse_time(r["last_meter_at"] or r["started_at"]), data, queued))
        return out

    def last_local_id(self) -> int:
        """The highest local transaction id ever given: the next transaction takes the one after."""
        row = self._db.execute("SELECT MAX(seq) FROM (SELECT seq FROM sqlite_sequence WHERE name='transactions'"
                               " UNION ALL SELECT MAX(local_id) FROM transactions)").fetchone()
        return row[0] or 0

    def begin(self, local_id: int, connector: int, id_tag: str, meter_start_wh: int, at: datetime,
              reservation_id: int | None = None) -> None:
        """Record a new transaction and queue its StartTransaction; the reservation it ends (OCPP 1.6
        §5.13: its reservationId in the StartTransaction) is deleted in the same commit."""
        stamp = format_time(at)
        payload: dict = {"connectorId": connector, "idTag": id_tag, "meterStart": meter_start_wh, "timestamp": stamp}
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        with store.Transaction(self._db):
            self._db.execute(
                "INSERT INTO transactions(local_id, connector, id_tag, started_at, meter_start_wh, last_meter_wh,"
                " last_meter_at) VALUES(?, ?, ?, ?, ?, ?, ?)",
                (local_id, connector, id_tag, stamp, meter_start_wh, meter_start_wh, stamp))
            if reservation_id is not None:
                self._db.execute("DELETE FROM reservations WHERE reservation_id=?", (reservation_id,))
            enqueue(self._db, str(uuid.uuid4()), local_id, "StartTransaction", payload)

    def reservations(self) -> list[Reservation]:
        """The reservations the station holds (OCPP 1.6 §5.13), by reservationId; expired ones included
        (the session core ends them)."""
        return [Reservation(r["reservation_id"], r["connector"], r["id_tag"], r["parent_id_tag"],
                            parse_time(r["expiry_date"]))
                for r in store.rows(self._db, "SELECT * FROM reservations ORDER BY reservation_id")]

    def reserve(self, reservation: Reservation) -> None:
        """Keep a reservation; one with the same reservationId is replaced (§5.13)."""
        with store.Transaction(self._db):
            self._db.execute(
                "INSERT INTO reservations(reservation_id, connector, id_tag, parent_id_tag, expiry_date)"
                " VALUES(?, ?, ?, ?, ?) ON CONFLICT(reservation_id) DO UPDATE SET connector=excluded.connector,"
                " id_tag=excluded.id_tag, parent_id_tag=excluded.parent_id_tag, expiry_date=excluded.expiry_date",
                (reservation.reservation_id, reservation.connector, reservation.id_tag, reservation.parent_id_tag,
                 format_time(reservation.expiry)))

    def end_reservation(self, reservation_id: int) -> None:
        with store.Transaction(self._db):
            self._db.execute("DELETE FROM reservations WHERE reservation_id=?", (reservation_id,))

    def meter(self, local_id: int, energy_wh: int, at: datetime) -> None:
        """The latest reading: the meterStop if the power goes (autocommit: one small write)."""
        self._db.execute("UPDATE transactions SET last_meter_wh=?, last_meter_at=? WHERE local_id=?",
                         (energy_wh, format_time(at), local_id))

    def stop(self, local_id: int, id_tag: str | None, meter_stop_wh: int, at: datetime, reason: str,
             transaction_data: list | None) -> None:
        """Close the record and queue its StopTransaction (OCPP 1.6 §4.10); the values kept for it go."""
        payload: dict = {"meterStop": meter_stop_wh, "timestamp": format_time(at), "reason": reason}
        if id_tag:
            payload["idTag"] = id_tag
        if transaction_data:
            payload["transactionData"] = transaction_data
        with store.Transaction(self._db):
            self._db.execute("UPDATE transactions SET stopped_at=?, stop_reason=?, meter_stop_wh=?, stop_id_tag=?"
                             " WHERE local_id=?", (payload["timestamp"], reason, meter_stop_wh, id_tag, local_id))
            self._db.execute("DELETE FROM transaction_data WHERE local_id=?", (local_id,))
            enqueue(self._db, str(uuid.uuid4()), local_id, "StopTransaction", payload)
