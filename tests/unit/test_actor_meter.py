"""MeterSampler: periodic (from the transaction start) and clock-aligned (from midnight) MeterValues."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from actors.configuration import registry as keys

from actors.infra import store
from actors.infra.clock import StationClock
from actors.metering.actor import MeterSampler
from actors.infra.ticker import ManualScheduler
from messages.events import (ConfigurationChanged, MeterReading, MeterSampled, SampledValue, SendCall,
                             TransactionBegan, TransactionEnded, TransactionMessagesQueued)
from tests.unit.fakes import Probe, sync, wire

pytestmark = pytest.mark.timeout(20)

TEN_O_SEVEN = datetime(2025, 4, 5, 10, 0, 7, 250000, tzinfo=timezone.utc)  # 10:00:07.250


def config(**overrides) -> dict:
    values = {n: s.default for n, s in keys.registry(1, True).items()}
    values.update(overrides)
    return values


class Rig:
    def __init__(self, db_path, start=TEN_O_SEVEN, **overrides):
        self.db_path = db_path
        self.scheduler = ManualScheduler()
        self.lag_s = 0.0  # how late the sampler sees its ticks (a busy inbox): stamps must not move
        self.clock = StationClock(system=start.timestamp, monotonic=lambda: self.scheduler.now() + self.lag_s)
        self.link = Probe()
        self.txqueue = Probe()
        self.meter = MeterSampler.start(str(db_path), config(**overrides), self.clock, self.scheduler)
        wire(self.meter, {SendCall: self.link, TransactionMessagesQueued: self.txqueue})

    def begin(self, connector, local_id, meter_start_wh):
        """Play the TransactionManager: an open transaction record, then TransactionBegan."""
        self._record("INSERT INTO transactions(local_id, connector, id_tag, started_at, meter_start_wh)"
                     " VALUES(?, ?, 'TAG', '2025-01-01T00:00:00.000Z', ?)", (local_id, connector, meter_start_wh))
        self.meter.tell(TransactionBegan(connector, local_id, meter_start_wh))

    def record_stop(self, local_id):
        """The TransactionManager committed the stop (its TransactionEnded not yet told)."""
        self._record("UPDATE transactions SET stopped_at='2025-01-01T00:01:00.000Z' WHERE local_id=?", (local_id,))

    def _record(self, sql, params):
        conn = store.open_database(self.db_path)
        try:
            with store.Transaction(conn):
                conn.execute(sql, params)
        finally:
            conn.close()

    def reading(self, energy_wh, connector=1, values=()):
        self.meter.tell(MeterSampled(MeterReading(connector, energy_wh, values)))

    def advance(self, seconds):
        sync(self.meter)  # its timers are armed before the clock moves
        self.scheduler.advance(seconds)
        sync(self.meter)

    def queued(self) -> list[dict]:
        sync(self.meter)
        conn = store.open_database(self.db_path)
        try:
            rows = store.rows(conn, "SELECT * FROM tx_queue ORDER BY seq")
        finally:
            conn.close()
        for r in rows:
            r["payload"] = json.loads(r["payload"])
        return rows


def stamps(rows) -> list[str]:
    return [r["payload"]["meterValue"][0]["timestamp"] for r in rows]


# --- sampled during a transaction -----------------------------------------------------------------


def test_samples_are_stamped_at_exact_multiples_of_the_interval_from_the_transaction_start(tmp_path):
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=15)
    rig.reading(1000)
    rig.begin(1, 5, 1000)
    sync(rig.meter)
    rig.lag_s = 0.4
    rig.advance(14.9)
    assert rig.queued() == []
    rig.advance(0.1)
    [row] = rig.queued()
    assert (row["action"], row["local_id"], row["periodic"]) == ("MeterValues", 5, 1)
    assert row["payload"] == {"connectorId": 1, "meterValue": [{
        "timestamp": "2025-04-05T10:00:22.250Z",
        "sampledValue": [{"value": "1000", "context": "Sample.Periodic", "format": "Raw",
                          "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"}]}]}
    rig.txqueue.expect(TransactionMessagesQueued)
    rig.reading(1200)
    rig.advance(15)
    rig.advance(15)
    rows = rig.queued()
    assert stamps(rows) == ["2025-04-05T10:00:22.250Z", "2025-04-05T10:00:37.250Z", "2025-04-05T10:00:52.250Z"]
    assert [r["payload"]["meterValue"][0]["sampledValue"][0]["value"] for r in rows] == ["1000", "1200", "1200"]


def test_the_sampled_measurands_are_the_configured_ones(tmp_path):
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=10,
              MeterValuesSampledData="Energy.Active.Import.Register,Power.Active.Import")
    rig.reading(1000, values=(SampledValue("Power.Active.Import", 7200.0, "W"), SampledValue("Voltage", 230.0, "V")))
    rig.begin(1, 1, 1000)
    rig.advance(10)
    [row] = rig.queued()
    assert [(v["measurand"], v["value"], v["unit"]) for v in row["payload"]["meterValue"][0]["sampledValue"]] == \
        [("Energy.Active.Import.Register", "1000", "Wh"), ("Power.Active.Import", "7200", "W")]


def test_no_samples_after_the_transaction_ends(tmp_path):
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=10)
    rig.reading(1000)
    rig.begin(1, 1, 1000)
    rig.advance(10)
    rig.meter.tell(TransactionEnded(1, 1))
    rig.advance(30)
    assert len(rig.queued()) == 1


def test_a_new_transaction_ignores_the_ticks_of_the_previous_one(tmp_path):
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=10)
    rig.reading(1000)
    rig.begin(1, 1, 1000)
    rig.advance(4)
    rig.meter.tell(TransactionEnded(1, 1))
    rig.begin(1, 2, 1000)  # at 10:00:11.250
    rig.advance(6)  # the old tick at 10:00:17.250 must not sample
    assert rig.queued() == []
    rig.advance(4)
    [row] = rig.queued()
    assert (row["local_id"], stamps([row])) == (2, ["2025-04-05T10:00:21.250Z"])


def test_sample_interval_zero_samples_nothing(tmp_path):
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=0)
    rig.reading(1000)
    rig.begin(1, 1, 1000)
    rig.advance(3600)
    assert rig.queued() == []


def test_a_changed_sample_interval_applies_to_the_running_transaction(tmp_path):
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=60)
    rig.reading(1000)
    rig.begin(1, 1, 1000)
    rig.advance(5)
    rig.meter.tell(ConfigurationChanged("MeterValueSampleInterval", 10))
    rig.advance(10)
    assert stamps(rig.queued()) == ["2025-04-05T10:00:22.250Z"]


def test_without_a_reading_nothing_is_queued(tmp_path):
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=10)
    rig.begin(1, 1, 0)
    rig.advance(10)
    assert rig.queued() == []
    rig.txqueue.expect_none(TransactionMessagesQueued)


# --- clock-aligned ------------------------------------------------------------------------------------


def test_an_idle_connectors_aligned_values_go_straight_to_the_link_on_exact_boundaries(tmp_path):
    rig = Rig(tmp_path / "station.db", start=datetime(2025, 4, 5, 10, 0, 7, tzinfo=timezone.utc),
              ClockAlignedDataInterval=15, MeterValueSampleInterval=0)
    rig.reading(500)
    sync(rig.meter)
    rig.lag_s = 0.4
    rig.advance(7.9)
    rig.link.expect_none(SendCall)
    rig.advance(0.1)
    call = rig.link.expect(SendCall)
    assert call.action == "MeterValues" and call.reply_to is None
    assert "transactionId" not in call.payload
    assert call.payload == {"connectorId": 1, "meterValue": [{
        "timestamp": "2025-04-05T10:00:15.000Z",
        "sampledValue": [{"value": "500", "context": "Sample.Clock", "format": "Raw",
                          "measurand": "Energy.Active.Import.Register", "location": "Outlet", "unit": "Wh"}]}]}
    rig.advance(15)
    assert rig.link.expect(SendCall).payload["meterValue"][0]["timestamp"] == "2025-04-05T10:00:30.000Z"
    assert rig.queued() == []


def test_aligned_values_during_a_transaction_are_queued_as_transaction_data(tmp_path):
    rig = Rig(tmp_path / "station.db", ClockAlignedDataInterval=900, MeterValueSampleInterval=0)
    rig.reading(700)
    rig.begin(1, 9, 700)
    rig.advance(900 - 7.25)  # 10:15:00
    [row] = rig.queued()
    assert (row["local_id"], row["periodic"]) == (9, 1)
    mv = row["payload"]["meterValue"][0]
    assert mv["timestamp"] == "2025-04-05T10:15:00.000Z" and mv["sampledValue"][0]["context"] == "Sample.Clock"
    rig.link.expect_none(SendCall)


def test_a_changed_aligned_interval_moves_the_next_boundary(tmp_path):
    rig = Rig(tmp_path / "station.db", start=datetime(2025, 4, 5, 10, 0, 7, tzinfo=timezone.utc),
              ClockAlignedDataInterval=900)
    rig.reading(500)
    rig.meter.tell(ConfigurationChanged("ClockAlignedDataInterval", 60))
    rig.advance(53)
    assert rig.link.expect(SendCall).payload["meterValue"][0]["timestamp"] == "2025-04-05T10:01:00.000Z"
    for minute in range(2, 16):  # the 10:15:00 tick of the old interval adds nothing of its own
        rig.advance(60)
        [call] = rig.link.messages(SendCall)
        assert call.payload["meterValue"][0]["timestamp"] == f"2025-04-05T10:{minute:02d}:00.000Z"
        rig.link.expect(SendCall)


def test_aligned_interval_zero_sends_nothing(tmp_path):
    rig = Rig(tmp_path / "station.db", ClockAlignedDataInterval=0)
    rig.reading(500)
    rig.advance(86400)
    rig.link.expect_none(SendCall)


def test_a_forward_clock_jump_during_a_transaction_does_not_burst_catch_up_samples(tmp_path):
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=60)
    rig.reading(1000)
    rig.begin(1, 1, 1000)
    rig.advance(30)
    rig.clock.set(rig.clock.now().replace(hour=11))  # BootNotification.conf after an offline start: +1 h
    rig.advance(30)  # the first sample is due
    assert len(rig.queued()) == 1  # the first sample, once
    for _ in range(10):  # ten more seconds of real time: no further sample is due
        rig.advance(1)
    queued = rig.queued()
    assert len(queued) == 1
    assert stamps(queued)[0].startswith(rig.clock.now().strftime("%Y-%m-%dT11:"))  # stamped on the new clock


def test_a_sample_that_races_the_stop_transaction_is_not_queued_after_it(tmp_path):
    """OCPP 1.6 §3.7: the stop is committed before the sampler hears TransactionEnded; its tick then
    must not queue a MeterValues behind the StopTransaction."""
    rig = Rig(tmp_path / "station.db", MeterValueSampleInterval=10)
    rig.reading(1000)
    rig.begin(1, 1, 1000)
    rig.advance(10)
    assert len(rig.queued()) == 1
    rig.record_stop(1)
    rig.advance(10)
    assert len(rig.queued()) == 1
    rig.meter.tell(TransactionEnded(1, 1))
    rig.advance(30)
    assert len(rig.queued()) == 1
