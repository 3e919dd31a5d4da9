"""The authorization feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.authorization.actor import Authorization
    return [(Authorization, Authorization.start(station.db_path, station.config_for(Authorization), station.clock))]
