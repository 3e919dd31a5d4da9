"""The boot feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.boot.actor import BootNotifier
    return [(BootNotifier, BootNotifier.start(station.db_path, station.settings.station, station.clock,
                                              station.config["HeartbeatInterval"], station.scheduler))]
