"""The Remote Trigger feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations

PROFILES = ("RemoteTrigger",)


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.trigger.actor import RemoteTrigger
    return [(RemoteTrigger, RemoteTrigger.start(station.settings.station.connectors, scheduler=station.scheduler))]
