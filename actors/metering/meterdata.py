"""Meter readings as OCPP MeterValue objects (OCPP 1.6 §7.30 MeterValue, §7.44 SampledValue).

Plain functions, shared by the MeterSampler (MeterValues.req) and the TransactionManager
(StopTransaction.transactionData).
"""

from __future__ import annotations

from datetime import datetime

from actors.infra.clock import format_time
from messages.events import MeterReading

ENERGY = "Energy.Active.Import.Register"


def measurand_list(csl: str) -> tuple[str, ...]:
    return tuple(m.strip() for m in csl.split(",") if m.strip())


def _format(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text  # -0.0001 rounds to "-0.000": send "0"


def sampled_values(reading: MeterReading, measurands: tuple[str, ...], context: str) -> list[dict]:
    """One SampledValue per measurand (and phase) asked for that the reading has."""
    out: list[dict] = []
    for measurand in measurands:
        if measurand == ENERGY:
            out.append({"value": _format(reading.energy_wh), "context": context, "format": "Raw",
                        "measurand": ENERGY, "location": "Outlet", "unit": "Wh"})
            continue
        for v in reading.values:
            if v.measurand != measurand:
                continue
            item = {"value": _format(v.value), "context": context, "format": "Raw", "measurand": measurand,
                    "location": v.location, "unit": v.unit}
            if v.phase:
                item["phase"] = v.phase
            out.append(item)
    return out


def meter_value(reading: MeterReading, measurands: tuple[str, ...], context: str,
                timestamp: datetime) -> dict | None:
    values = sampled_values(reading, measurands, context)
    return {"timestamp": format_time(timestamp), "sampledValue": values} if values else None


def transaction_data(config, meter_start_wh: int, started_at: datetime, collected: list,
                     reading: MeterReading | None, meter_stop_wh: int, at: datetime) -> list:
    """StopTransaction.transactionData (OCPP 1.6 §4.10, errata 3.14.5/3.16.6): Transaction.Begin, the
    StopTxnSampledData / StopTxnAlignedData values collected meanwhile, Transaction.End. Both keys
    empty: none."""
    measurands = measurand_list(config["StopTxnSampledData"])
    if not measurands and not measurand_list(config["StopTxnAlignedData"]):
        return []
    begin = meter_value(MeterReading(0, meter_start_wh, ()), tuple(m for m in measurands if m == ENERGY),
                        "Transaction.Begin", started_at) if measurands else None
    end = meter_value(reading or MeterReading(0, meter_stop_wh, ()), measurands, "Transaction.End", at) \
        if measurands else None
    return [d for d in (begin, *collected, end) if d]
