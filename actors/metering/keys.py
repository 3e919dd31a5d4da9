"""The configuration keys metering owns: which measurands are sampled, clock-aligned and sent with
StopTransaction, and how often (OCPP 1.6 §9.1)."""

from __future__ import annotations

from actors.configuration.registry import MEASURANDS, KeySpec


def keys(connectors: int, fixed_cable: bool) -> list[KeySpec]:
    measurand_list = dict(kind="csl", items=MEASURANDS, max_items=len(MEASURANDS))
    return [
        KeySpec("ClockAlignedDataInterval", "int", 0, minimum=0, maximum=86400),
        KeySpec("MeterValuesAlignedData", default="Energy.Active.Import.Register", **measurand_list),
        KeySpec("MeterValuesAlignedDataMaxLength", "int", len(MEASURANDS), readonly=True),
        KeySpec("MeterValuesSampledData", default="Energy.Active.Import.Register", **measurand_list),
        KeySpec("MeterValuesSampledDataMaxLength", "int", len(MEASURANDS), readonly=True),
        KeySpec("MeterValueSampleInterval", "int", 60, minimum=0, maximum=86400),
        KeySpec("StopTxnAlignedData", default="", **measurand_list),
        KeySpec("StopTxnAlignedDataMaxLength", "int", len(MEASURANDS), readonly=True),
        KeySpec("StopTxnSampledData", default="", **measurand_list),
        KeySpec("StopTxnSampledDataMaxLength", "int", len(MEASURANDS), readonly=True),
    ]
