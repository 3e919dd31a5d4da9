"""The data_transfer feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.data_transfer import vendors
    from actors.data_transfer.actor import DataTransfer
    s = station.settings.station
    registry = vendors.station_registry(s.firmware_version, s.vendor_plugins)
    return [(DataTransfer, DataTransfer.start(registry, scheduler=station.scheduler))]
