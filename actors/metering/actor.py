"""MeterSampler: periodic and clock-aligned MeterValues (OCPP 1.6 §3.16, §4.7, errata 3.13-3.16).

Takes: MeterSampled (latest reading per connector, from the MeterDevice), TransactionBegan /
TransactionEnded, ConfigurationChanged, SampleDue / ClockAlignedDue, MeterValuesTriggered (TriggerMessage:
the latest reading now, context Trigger, straight to the link, not into the transaction queue).
Emits: MeterValues of a transaction into the durable queue (then TransactionMessagesQueued);
clock-aligned values of an idle connector straight to the link (they are not transaction data).

Sampled values are stamped at exact multiples of MeterValueSampleInterval from the start of the
transaction, and aligned values exactly on the ClockAlignedDataInterval boundary counted from
midnight UTC (the test tool checks both to the second: EVerest/libocpp#445). The value is the
freshest reading the MeterDevice has delivered, never a blocking read.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from actors.infra.base import StationActor
from actors.infra.clock import StationClock
from actors.metering.book import queue_meter_values
from actors.metering.meterdata import ENERGY, measurand_list, meter_value
from actors.infra.ticker import Scheduler
from messages.events import (ConfigurationChanged, MeterReading, MeterSampled, MeterValuesTriggered, SendCall,
                             TransactionBegan, TransactionDataSampled, TransactionEnded, TransactionMessagesQueued)
from messages.frozen import freeze
from messages.ticks import ClockAlignedDue, SampleDue

log = logging.getLogger(__name__)


class MeterSampler(StationActor):
    subscribes = (MeterSampled, TransactionBegan, TransactionEnded, MeterValuesTriggered)
    watches = ("MeterValueSampleInterval", "ClockAlignedDataInterval", "MeterValuesSampledData",
               "MeterValuesAlignedData", "StopTxnSampledData", "StopTxnAlignedData")
    emits = (TransactionDataSampled, SendCall, TransactionMessagesQueued)

    def __init__(self, db_path: str, config: Any, clock: StationClock, scheduler: Scheduler | None = None):
        super().__init__(db_path, scheduler)
        self._config = dict(config)
        self._clock = clock
        self._readings: dict[int, MeterReading] = {}
        self._sessions: dict[int, tuple[int, datetime, int]] = {}  # connector -> (local_id, start, generation)
        self._start_mono: dict[int, float] = {}  # connector -> scheduler time of the start
        self._generation = 0
        self._sample_timers: dict[int, int] = {}  # connector -> its next SampleDue
        self._aligned_generation = 0

    def receive(self, message: Any) -> Any:
        match message:
            case MeterSampled(reading):
                self._readings[reading.connector] = reading
            case TransactionBegan(connector, local_id):
                self._begin(connector, local_id)
            case TransactionEnded(connector, local_id):
                if self._sessions.get(connector, (None,))[0] == local_id:
                    del self._sessions[connector]
                    self._ticker.cancel(self._sample_timers.pop(connector, None))
            case SampleDue(connector, n, generation):
                self._sample(connector, generation, n)
            case MeterValuesTriggered(connector):
                self._triggered(connector)
            case ClockAlignedDue(boundary, generation) if generation == self._aligned_generation:
                self._aligned(boundary)
            case ClockAlignedDue():
                pass  # a tick from a transaction or interval that has since changed
            case ConfigurationChanged(key, value):
                self._config[key] = value
                if key == "ClockAlignedDataInterval":
                    self._schedule_aligned()
                elif key == "MeterValueSampleInterval":
                    for connector, (local_id, _, _) in list(self._sessions.items()):
                        self._begin(connector, local_id)
            case _:
                self.unexpected(message)

    def wired(self) -> None:
        self._schedule_aligned()

    def _begin(self, connector: int, local_id: int) -> None:
        self._generation += 1
        self._sessions[connector] = (local_id, self._clock.now(), self._generation)
        self._start_mono[connector] = self._ticker.scheduler.now()
        self._schedule_sample(connector, 1)

    def _schedule_sample(self, connector: int, n: int) -> None:
        """Sample n is due n intervals after the start on the monotonic clock, so a clock set by
        the CSMS (forward or back) neither bursts nor skips samples."""
        interval = self._config["MeterValueSampleInterval"]
        if interval <= 0 or connector not in self._sessions:
            return
        _, _, generation = self._sessions[connector]
        start_mono = self._start_mono[connector]
        delay = start_mono + interval * n - self._ticker.scheduler.now()
        self._ticker.cancel(self._sample_timers.get(connector))
        self._sample_timers[connector] = self._ticker.after(delay, SampleDue(connector, n, generation))

    def _sample(self, connector: int, generation: int, n: int) -> None:
        session = self._sessions.get(connector)
        if session is None or session[2] != generation:
            return
        local_id, start, _ = session
        step = timedelta(seconds=self._config["MeterValueSampleInterval"])
        at = start + step * n
        if abs((self._clock.now() - at).total_seconds()) > 2:  # the clock was set: re-anchor the stamps
            start = self._clock.now() - step * n
            self._sessions[connector] = (local_id, start, generation)
            at = start + step * n
        # OCTT TC_070: an empty MeterValuesSampledData still samples the energy register.
        measurands = measurand_list(self._config["MeterValuesSampledData"]) or (ENERGY,)
        self._queue(connector, local_id, "Sample.Periodic", measurands, "StopTxnSampledData", at)
        self._schedule_sample(connector, n + 1)

    def _triggered(self, connector: int | None) -> None:
        """OCPP 1.6 §5.17: the MeterValuesSampledData measurands of the latest reading, stamped now. Not
        transaction data (it goes straight to the link, also while the BootNotification is Pending), so it
        carries no transactionId."""
        measurands = measurand_list(self._config["MeterValuesSampledData"]) or (ENERGY,)
        now = self._clock.now()
        for c in sorted(self._readings) if connector is None else [connector]:
            reading = self._readings.get(c)
            mv = meter_value(reading, measurands, "Trigger", now) if reading is not None else None
            if mv is None:
                log.info("MeterValues triggered for connector %s: no reading yet, nothing to send", c)
                continue
            self.publish(SendCall("MeterValues", freeze({"connectorId": c, "meterValue": [mv]}), before_boot=True))

    def _schedule_aligned(self, served: datetime | None = None) -> None:
        """Aim at the next boundary after now, and always after the one just served: a clock set
        back a few milliseconds by the CSMS must not serve the same boundary twice."""
        self._aligned_generation += 1
        interval = self._config["ClockAlignedDataInterval"]
        if interval <= 0:
            return
        now = self._clock.now()
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        elapsed = (now - midnight).total_seconds()
        boundary = midnight + timedelta(seconds=(int(elapsed // interval) + 1) * interval)
        if served is not None and boundary <= served:
            boundary = served + timedelta(seconds=interval)
        self._ticker.after((boundary - now).total_seconds(), ClockAlignedDue(boundary, self._aligned_generation))

    def _aligned(self, boundary: datetime) -> None:
        if abs((self._clock.now() - boundary).total_seconds()) > 2:  # the clock was set since: re-aim
            self._schedule_aligned()
            return
        measurands = measurand_list(self._config["MeterValuesAlignedData"])
        for connector, reading in sorted(self._readings.items()):
            session = self._sessions.get(connector)
            if session is not None:
                self._queue(connector, session[0], "Sample.Clock", measurands, "StopTxnAlignedData", boundary)
            else:
                mv = meter_value(reading, measurands, "Sample.Clock", boundary)
                if mv:
                    self.publish(SendCall("MeterValues", freeze({"connectorId": connector, "meterValue": [mv]})))
        self._schedule_aligned(boundary)

    def _queue(self, connector: int, local_id: int, context: str, measurands: tuple, stop_key: str,
               at: datetime) -> None:
        """The sample's MeterValues, and its StopTxn*Data value (the same instant, the measurands of
        `stop_key`) kept for StopTransaction.transactionData: both in one commit."""
        reading = self._readings.get(connector)
        if reading is None:
            return
        mv = meter_value(reading, measurands, context, at) if measurands else None
        stop_measurands = measurand_list(self._config[stop_key])
        stop_mv = meter_value(reading, stop_measurands, context, at) if stop_measurands else None
        if mv is None and stop_mv is None:
            return
        payload = {"connectorId": connector, "meterValue": [mv]} if mv is not None else None
        if not queue_meter_values(self._db, local_id, payload, stop_mv):
            log.info("transaction %s has stopped: its sample at %s is not queued after its StopTransaction",
                     local_id, at)
            return
        if stop_mv is not None:
            self.publish(TransactionDataSampled(connector, local_id, freeze(stop_mv)))
        if mv is not None:
            self.publish(TransactionMessagesQueued())
