"""The sessions feature: see actors/features.py for what a feature package provides."""

from __future__ import annotations

PROFILES = ("Reservation",)  # OCPP 1.6 §3.5: ReserveNow, CancelReservation (actors/sessions/reservations.py)


def start(station):
    """Start this feature's actors (imported here, so importing the package stays light)."""
    from actors.sessions.actor import TransactionManager
    s = station.settings.station
    return [(TransactionManager, TransactionManager.start(station.db_path, s.connectors, s.fixed_cable, station.config_for(TransactionManager),
                                                          station.clock, station.scheduler, s.backup_power,
                                                          s.reservations))]
