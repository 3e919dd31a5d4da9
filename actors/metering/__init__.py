"""The metering feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.metering.actor import MeterSampler
    return [(MeterSampler, MeterSampler.start(station.db_path, station.config_for(MeterSampler), station.clock, station.scheduler))]
