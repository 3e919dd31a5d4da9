"""The status feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.status.actor import StatusDebouncer
    return [(StatusDebouncer, StatusDebouncer.start(station.config["MinimumStatusDuration"], station.scheduler))]
