"""The crash soak's verdict on the whole record (scripts/soak.py gathers it; this module only judges it).

Input: every CALL the CSMS received (with the WebSocket connection it came on), the CSMS's answers,
the station's `transactions` and `transaction_ids` tables at rest, and what the soak saw at each
SIGKILL (the messages then waiting in `tx_queue`, the highest transaction number, the latest time
the station had written down or sent). The rules are in scripts/soak.py's docstring; each rule
applied to one object (a transaction, a duplicated message, an owed message) is one check.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

TX_ACTIONS = ("StartTransaction", "StopTransaction", "MeterValues")
ENERGY = "Energy.Active.Import.Register"
STAMP_SLACK_S = 0.002  # timestamps are sent with milliseconds, truncated
SAMPLER_LAG_S = 0.5    # a sample's timer may fire this late, or a stop overtake it, on a loaded machine


@dataclass(frozen=True)
class Call:
    index: int        # position in the CSMS's record of CALLs
    connection: int   # which WebSocket connection (1, 2, ...) it came on
    action: str
    unique_id: str
    payload: dict


@dataclass(frozen=True)
class Kill:
    number: int                  # 1-based
    received: int                # CALLs received once the killed station's connection was gone
    owed: tuple                  # (unique id, action, local id) waiting in tx_queue after the kill
    max_local_id: int            # the highest transaction number the station had recorded
    last_known: datetime | None  # the latest time the station had persisted or sent


@dataclass
class Record:
    seed: int
    sample_interval_s: int
    calls: list[Call]
    replies: dict[str, list[dict]]  # unique id -> CALLRESULT payloads, in the order sent
    transactions: list[dict]        # the station's `transactions` rows at rest
    transaction_ids: dict[int, int]  # local id -> the transactionId the station took from StartTransaction.conf
    queue_left: int                 # rows left in tx_queue at rest
    kills: list[Kill]


@dataclass
class Verdict:
    passed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (kind, what was expected and seen)
    figures: dict = field(default_factory=dict)

    def check(self, ok: bool, kind: str, detail) -> bool:
        if ok:
            self.passed += 1
        else:
            self.failures.append((kind, detail() if callable(detail) else detail))
        return ok


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def energy_values(meter_values: list) -> list[tuple[datetime, float]]:
    """(timestamp, Wh) of every energy register value in a list of MeterValue objects."""
    out = []
    for mv in meter_values or []:
        for sv in mv.get("sampledValue", []):
            if sv.get("measurand", ENERGY) == ENERGY:
                out.append((parse_time(mv["timestamp"]), float(sv["value"])))
    return out


def judge(record: Record, verdict: Verdict) -> Verdict:
    """Apply every rule to the record; returns `verdict` with the checks added and the figures set."""
    _Judge(record, verdict).run()
    return verdict


class _Judge:
    def __init__(self, record: Record, verdict: Verdict):
        self.r, self.v = record, verdict
        self.receipts: dict[str, list[Call]] = defaultdict(list)  # unique id -> its receipts, in order
        for call in record.calls:
            if call.action in TX_ACTIONS:
                self.receipts[call.unique_id].append(call)
        self.kill_max_local = [k.max_local_id for k in record.kills]
        self.kill_received = [k.received for k in record.kills]
        self.matched_starts: set[tuple] = set()  # StartTransaction keys of recorded transactions
        self.lost = 0

    def where(self, kill: int) -> str:
        return f"[seed {self.r.seed}, {'before the first kill' if kill == 0 else f'after kill {kill}'}]"

    def epoch_of_local(self, local_id: int) -> int:
        """How many kills came before this transaction began."""
        return bisect_left(self.kill_max_local, local_id)

    def epoch_of_index(self, index: int) -> int:
        """How many kills came before the CSMS received CALL `index`."""
        return bisect_right(self.kill_received, index)

    def run(self) -> None:
        self.duplicates()
        self.owed()
        self.at_rest()
        starts = self.starts_by_key()
        stops = defaultdict(list)      # transactionId -> distinct StopTransaction unique ids
        meters = defaultdict(list)     # transactionId -> distinct MeterValues unique ids
        for uid, calls in self.receipts.items():
            action, payload = calls[0].action, calls[0].payload
            if action == "StopTransaction":
                stops[payload["transactionId"]].append(uid)
            elif action == "MeterValues" and "transactionId" in payload:
                meters[payload["transactionId"]].append(uid)
        known_ids = set()
        by_connector = defaultdict(list)  # (connector, epoch) -> transactions, for energy across them
        for tx in self.r.transactions:
            real_id = self.transaction(tx, starts, stops, meters)
            if real_id is not None:
                known_ids.add(real_id)
            by_connector[(tx["connector"], self.epoch_of_local(tx["local_id"]))].append(tx)
        for key, uids in starts.items():
            if key not in self.matched_starts:
                self.v.check(False, "StartTransaction of no recorded transaction",
                             f"[seed {self.r.seed}] StartTransaction {uids} {key} matches no row of the station's "
                             "transactions table")
        for tx_id in set(stops) - known_ids:
            self.v.check(False, "StopTransaction of no recorded transaction",
                         f"[seed {self.r.seed}] StopTransaction {stops[tx_id]} carries transactionId {tx_id}, which "
                         "is no recorded transaction's")
        for tx_id in set(meters) - known_ids:
            self.v.check(False, "MeterValues of no recorded transaction",
                         f"[seed {self.r.seed}] {len(meters[tx_id])} MeterValues carry transactionId {tx_id}, "
                         "which is no recorded transaction's (-1: a StartTransaction never answered)")
        self.energy_across(by_connector)
        self.status_times()
        tx_receipts = sum(len(c) for c in self.receipts.values())
        self.v.figures.update(
            transactions=len(self.r.transactions), messages=len(self.receipts),
            duplicates=tx_receipts - len(self.receipts), lost=self.lost, calls=len(self.r.calls))

    # --- the queue as a whole ---------------------------------------------------------------

    def duplicates(self) -> None:
        """A repeat is allowed only for the transaction message in flight when its connection ended
        (a kill or an outage): the last one received on that connection, again on a later one."""
        last_on_connection: dict[int, str] = {}
        for call in self.r.calls:
            if call.action in TX_ACTIONS:
                last_on_connection[call.connection] = call.unique_id
        others = defaultdict(list)
        for call in self.r.calls:
            if call.action not in TX_ACTIONS:
                others[call.unique_id].append(call)
        for uid, calls in list(self.receipts.items()) + list(others.items()):
            for before, again in zip(calls, calls[1:]):
                where = self.where(self.epoch_of_index(again.index))
                self.v.check(
                    again.action in TX_ACTIONS and again.connection > before.connection
                    and last_on_connection.get(before.connection) == uid
                    and (again.action, again.payload) == (before.action, before.payload),
                    "duplicate beyond the message in flight",
                    lambda: f"{where} {again.action} {uid} received again (CALL #{again.index}, connection "
                            f"{again.connection}) after CALL #{before.index} on connection {before.connection}; "
                            "expected a repeat only of the last transaction message of an ended connection, with "
                            f"the same payload (first {before.payload}, then {again.payload})")

    def owed(self) -> None:
        first_owed = {}  # unique id -> (kill, action, local id), the first kill it was queued at
        for kill in self.r.kills:
            for uid, action, local_id in kill.owed:
                first_owed.setdefault(uid, (kill.number, action, local_id))
        for uid, (kill, action, local_id) in first_owed.items():
            ok = self.v.check(uid in self.receipts, "lost message",
                              f"{self.where(kill)} {action} {uid} of transaction {local_id} was in the queue at the "
                              "kill and never reached the CSMS")
            self.lost += not ok

    def at_rest(self) -> None:
        open_tx = [t["local_id"] for t in self.r.transactions if t["stopped_at"] is None]
        self.v.check(not open_tx and self.r.queue_left == 0, "not at rest",
                     f"[seed {self.r.seed}] at the end: transactions still open {open_tx}, {self.r.queue_left} "
                     "message(s) still queued; expected none of either")

    # --- one transaction --------------------------------------------------------------------

    def starts_by_key(self) -> dict[tuple, list[str]]:
        """(connectorId, idTag, meterStart, timestamp), as the station recorded them -> distinct message ids."""
        starts = defaultdict(list)
        for uid, calls in self.receipts.items():
            p = calls[0].payload
            if calls[0].action == "StartTransaction":
                starts[(p["connectorId"], p["idTag"], p["meterStart"], p["timestamp"])].append(uid)
        return starts

    def transaction(self, tx: dict, starts, stops, meters) -> int | None:
        local, epoch = tx["local_id"], self.epoch_of_local(tx["local_id"])
        who = f"{self.where(epoch)} transaction {local} (connector {tx['connector']}, {tx['id_tag']}"
        name = who + ")"
        key = (tx["connector"], tx["id_tag"], tx["meter_start_wh"], tx["started_at"])
        self.matched_starts.add(key)
        start_uids = starts.get(key, [])
        if not self.v.check(len(start_uids) == 1, "StartTransaction not exactly once",
                            f"{name}: expected one StartTransaction message, the CSMS got {len(start_uids)} "
                            f"distinct ones {start_uids}"):
            self.lost += not start_uids
            return None
        start = self.receipts[start_uids[0]]
        answered = [reply.get("transactionId") for reply in self.r.replies.get(start_uids[0], [])]
        real_id = self.r.transaction_ids.get(local)
        if not self.v.check(real_id is not None and real_id != -1 and answered and real_id == answered[-1],
                            "transactionId", f"{name}: the station uses transactionId {real_id}; the CSMS answered "
                            f"its StartTransaction (received {len(start)} time(s)) with {answered}, expected the "
                            "last of these (-1: never answered, impossible with this CSMS)"):
            return real_id
        name = f"{who}, transactionId {real_id})"
        stop_uids = stops.get(real_id, [])
        if not self.v.check(len(stop_uids) == 1, "StopTransaction not exactly once",
                            f"{name}: expected one StopTransaction message, the CSMS got {len(stop_uids)} distinct "
                            f"ones {stop_uids}"):
            self.lost += not stop_uids
            return real_id
        stop = self.receipts[stop_uids[0]]
        sp = stop[0].payload
        expected = (tx["meter_stop_wh"], tx["stopped_at"], tx["stop_reason"])
        self.v.check((sp["meterStop"], sp["timestamp"], sp.get("reason", "Local")) == expected,
                     "StopTransaction differs from the record",
                     f"{name}: StopTransaction says meterStop/timestamp/reason {sp['meterStop']}, {sp['timestamp']}, "
                     f"{sp.get('reason')}; the station recorded {expected}")
        self.v.check(start[-1].index < stop[0].index, "StopTransaction before StartTransaction",
                     f"{name}: StopTransaction arrived (CALL #{stop[0].index}) before the StartTransaction's last "
                     f"receipt (CALL #{start[-1].index})")
        self.meter_values(tx, name, start, stop, [self.receipts[u] for u in meters.get(real_id, [])])
        return real_id

    def meter_values(self, tx: dict, name: str, start: list[Call], stop: list[Call], mvs: list[list[Call]]) -> None:
        sp = start[0].payload
        begin, end = parse_time(sp["timestamp"]), parse_time(stop[0].payload["timestamp"])
        mvs.sort(key=lambda calls: calls[0].index)
        # Arrival: every receipt between the StartTransaction that was answered and the StopTransaction.
        misplaced = [c[0].unique_id for c in mvs if not (start[-1].index < c[0].index and c[-1].index < stop[0].index)]
        wrong_connector = [c[0].unique_id for c in mvs if c[0].payload["connectorId"] != tx["connector"]]
        self.v.check(not misplaced and not wrong_connector, "MeterValues outside their transaction",
                     f"{name}: MeterValues {misplaced} arrived outside CALLs #{start[-1].index}..#{stop[0].index} "
                     f"(its StartTransaction and StopTransaction); on another connector: {wrong_connector}")
        # Time and energy never fall: from StartTransaction through its MeterValues (in arrival order)
        # to StopTransaction, and from StartTransaction through StopTransaction.transactionData to it.
        stop_payload = stop[0].payload
        first = ("StartTransaction", begin, float(sp["meterStart"]))
        last = ("StopTransaction", end, float(stop_payload["meterStop"]))
        sampled = [(f"MeterValues {calls[0].unique_id}", t, e)
                   for calls in mvs for t, e in energy_values(calls[0].payload["meterValue"])]
        data = [("StopTransaction.transactionData", t, e)
                for t, e in energy_values(stop_payload.get("transactionData"))]
        backwards = [f"{a} ({ta.isoformat()}, {ea:g} Wh) then {b} ({tb.isoformat()}, {eb:g} Wh)"
                     for series in ([first, *sampled, last], [first, *data, last])
                     for (a, ta, ea), (b, tb, eb) in zip(series, series[1:]) if tb < ta or eb < ea]
        self.v.check(not backwards, "time or energy going back within a transaction",
                     f"{name}: expected timestamps and energy never to fall from StartTransaction through its "
                     f"MeterValues (or its transactionData) to StopTransaction; saw {'; '.join(backwards[:3])}")
        # Sampled values are stamped at exact multiples of MeterValueSampleInterval from the start: a
        # wider step between two means samples went missing; so does a start or a stop more than an
        # interval (plus the sampler's lag) away from the nearest sample.
        interval = self.r.sample_interval_s
        points = [begin, *(t for calls in mvs for t, _ in energy_values(calls[0].payload["meterValue"])), end]
        gaps = [(a, b) for i, (a, b) in enumerate(zip(points, points[1:]))
                if (b - a).total_seconds() > interval + (SAMPLER_LAG_S if i in (0, len(points) - 2) else STAMP_SLACK_S)]
        missing = sum(max(1, round((b - a).total_seconds() / interval) - 1) for a, b in gaps)
        self.lost += missing
        self.v.check(not gaps, "MeterValues missing",
                     lambda: f"{name}: expected a sampled MeterValues every {interval} s from StartTransaction to "
                             f"StopTransaction; about {missing} missing between "
                             + ", ".join(f"{a.isoformat()} and {b.isoformat()}" for a, b in gaps[:3]))
        floor = self.floor(self.epoch_of_local(tx["local_id"]))
        early = [f"{what} at {t.isoformat()}" for what, t, _ in [first, *sampled, *data, last] if floor and t < floor]
        self.v.check(not early, "timestamp before the last known time",
                     lambda: f"{name}: began after the station had known the time {floor.isoformat()}, yet "
                             f"{'; '.join(early[:3])}")

    def floor(self, epoch: int) -> datetime | None:
        """The last known time at the kill before `epoch` (None before the first kill)."""
        return self.r.kills[epoch - 1].last_known if epoch > 0 else None

    # --- across transactions ----------------------------------------------------------------

    def energy_across(self, by_connector: dict) -> None:
        """One process's meter never runs back (the simulated meter restarts at 0 with the process)."""
        for (connector, epoch), txs in sorted(by_connector.items()):
            txs.sort(key=lambda t: t["local_id"])
            for a, b in zip(txs, txs[1:]):
                self.v.check(a["meter_stop_wh"] is None or b["meter_start_wh"] >= a["meter_stop_wh"],
                             "energy falling between transactions",
                             f"{self.where(epoch)} connector {connector}: transaction {b['local_id']} started at "
                             f"{b['meter_start_wh']} Wh, below transaction {a['local_id']}'s meterStop "
                             f"{a['meter_stop_wh']} Wh")

    def status_times(self) -> None:
        """A StatusNotification is made after the restart that sends it: never stamped before the
        last time the station knew at the kill."""
        for call in self.r.calls:
            if call.action != "StatusNotification" or "timestamp" not in call.payload:
                continue
            epoch = self.epoch_of_index(call.index)
            floor = self.floor(epoch)
            if floor is None:
                continue
            stamp = parse_time(call.payload["timestamp"])
            self.v.check(stamp >= floor, "timestamp before the last known time",
                         f"{self.where(epoch)} StatusNotification {call.unique_id} (CALL #{call.index}) stamped "
                         f"{stamp.isoformat()}, before {floor.isoformat()}, the last time known at the kill")
