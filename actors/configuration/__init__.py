"""The configuration feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.configuration.actor import Configuration
    return [(Configuration, Configuration.start(station.db_path, station.specs, station.config,
                                                station.configuration_view))]
