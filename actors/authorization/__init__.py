"""The authorization feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations

PROFILES = ("LocalAuthListManagement",)  # the Local Authorization List (OCPP 1.6 §3.5.2, §5.10, §5.15)


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.authorization.actor import Authorization
    return [(Authorization, Authorization.start(station.db_path, station.config_for(Authorization), station.clock))]
