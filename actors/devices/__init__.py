"""The devices feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.devices.evse import EvseDevice
    from actors.devices.meter import MeterDevice
    from actors.devices.rfid import RfidListener
    s, drivers = station.settings, station.drivers
    meter = s.hal["meter"]
    poll_s = float(meter.get("poll_interval_s", 1.0))
    fault_after = max(1, round(float(meter.get("fault_after_s", 3.0)) / poll_s))
    return [(RfidListener, RfidListener.start(drivers["rfid"])),
            (MeterDevice, MeterDevice.start(drivers["meter"], s.station.connectors, station.config_for(MeterDevice), poll_s, fault_after,
                                            scheduler=station.scheduler)),
            (EvseDevice, EvseDevice.start(drivers["evse"]))]
