"""The reset feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.reset.actor import ResetManager
    return [(ResetManager, ResetManager.start(station.request_exit, station.scheduler))]
