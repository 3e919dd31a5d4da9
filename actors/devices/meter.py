"""MeterDevice: the one actor that reads the energy meter.

Takes: Wired (then opens the driver and starts polling), MeterReadDue, ConfigurationChanged.
Emits: MeterSampled to the TransactionManager and the MeterSampler after each reading;
ConnectorFaultChanged(PowerMeterFailure) when reads keep failing, NoError when they recover.

Polling happens here, on this actor's thread, so a stalled meter delays only the next reading:
the next poll is scheduled after the previous one returns, so stalls never pile up reads.
A reading that is NaN or lower than the previous one is a meter fault, not a reading.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from actors.infra.base import StationActor

from actors.metering.meterdata import measurand_list
from actors.infra.ticker import Scheduler
from hal import EnergyMeter, HalError
from messages.events import ConfigurationChanged, ConnectorFaultChanged, MeterSampled
from messages.ticks import MeterReadDue

log = logging.getLogger(__name__)


class MeterDevice(StationActor):
    watches = ("MeterValuesSampledData", "MeterValuesAlignedData", "StopTxnSampledData", "StopTxnAlignedData")
    emits = (MeterSampled, ConnectorFaultChanged)
    stop_rank = 2

    def __init__(self, driver: EnergyMeter, connectors: int, config: Any, poll_interval_s: float = 1.0,
                 failures_before_fault: int = 3, scheduler: Scheduler | None = None):
        super().__init__(scheduler=scheduler)
        self._driver = driver
        self._connectors = connectors
        self._poll_s = poll_interval_s
        self._failures_before_fault = failures_before_fault
        self._measurands = self._wanted(config)
        self._config = dict(config)
        self._failures = {c: 0 for c in range(1, connectors + 1)}
        self._last = {c: None for c in range(1, connectors + 1)}
        self._opened = False

    @staticmethod
    def _wanted(config: Any) -> tuple[str, ...]:
        keys = ("MeterValuesSampledData", "MeterValuesAlignedData", "StopTxnSampledData", "StopTxnAlignedData")
        return tuple(dict.fromkeys(m for k in keys for m in measurand_list(config[k])))

    def closing(self) -> None:
        if self._opened:
            try:
                self._driver.close()
            except Exception:
                log.exception("closing the meter failed")

    def wired(self) -> None:
        self._read_all()

    def receive(self, message: Any) -> Any:
        match message:
            case MeterReadDue():
                self._read_all()
            case ConfigurationChanged(key, value):
                self._config[key] = value
                self._measurands = self._wanted(self._config)
            case _:
                self.unexpected(message)

    def _read_all(self) -> None:
        try:
            if not self._opened:
                self._driver.open()
                self._opened = True
        except HalError as exc:
            log.error("meter unavailable: %s", exc)
            for c in self._failures:
                self._failed(c, exc)
        else:
            for c in range(1, self._connectors + 1):
                self._read(c)
        self._ticker.after(self._poll_s, MeterReadDue())

    def _read(self, connector: int) -> None:
        try:
            reading = self._driver.read(connector, self._measurands)
            last = self._last[connector]
            if not math.isfinite(reading.energy_wh):
                raise HalError(f"energy register reads {reading.energy_wh}", "PowerMeterFailure")
            if last is not None and reading.energy_wh < last:
                raise HalError(f"energy went backwards ({last} -> {reading.energy_wh} Wh)", "PowerMeterFailure")
        except HalError as exc:
            self._failed(connector, exc)
            return
        self._last[connector] = reading.energy_wh
        if self._failures[connector] >= self._failures_before_fault:
            log.info("meter on connector %s recovered", connector)
            self.publish(ConnectorFaultChanged(connector, "NoError", source="meter"))
        self._failures[connector] = 0
        sampled = MeterSampled(reading)
        self.publish(sampled)

    def _failed(self, connector: int, exc: HalError) -> None:
        self._failures[connector] += 1
        if self._failures[connector] == self._failures_before_fault:
            log.error("meter on connector %s failing: %s", connector, exc)
            self.publish(ConnectorFaultChanged(connector, "PowerMeterFailure", str(exc)[:50], source="meter"))
