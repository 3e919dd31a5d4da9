"""The link feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.link.actor import Link
    s, config = station.settings, station.config
    return [(Link, Link.start(s.csms, s.station.id, config["MessageTimeout"], config["WebSocketPingInterval"],
                              station.scheduler))]
